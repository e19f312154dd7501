"""The language: notation, options, defaults, blocks, control flow, tensors, imports."""

from __future__ import annotations

import json
from typing import Annotated, get_args, get_origin

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import Strict, ValidationError

import cnndsl
from cnndsl import CnnDslError
from cnndsl.ir import Layer
from cnndsl.ir.base import PLACEMENT, value_forms
from conftest import SPEC_FILES


def net(text: str, **kw) -> cnndsl.Network:
    return cnndsl.loads(text, **kw)


def layers(text: str):
    return [layer for layer in net(text).layers if layer.kind != "input"]


# ------------------------------------------------------------------------- layer notation


def test_book_notation():
    (conv,) = layers("input 32x32x3\n3x3+2(S) conv 64 relu")
    assert (conv.kernel, conv.stride, conv.padding, conv.filters, conv.activation) == (
        (3, 3), (2, 2), "same", 64, "relu",
    )
    assert conv.notation() == "3x3+2(S) conv 64 relu"


@pytest.mark.parametrize(
    "text,kernel,stride,padding",
    [
        ("1x1+1(V) conv 16", (1, 1), (1, 1), "valid"),
        ("7x7+2(3) conv 64", (7, 7), (2, 2), ((3, 3), (3, 3))),
        ("1x7(S) conv 8", (1, 7), (1, 1), "same"),
        ("3x3 conv 8", (3, 3), (1, 1), "valid"),
        ("conv 8 kernel=(3, 5) stride=(1, 2) padding=((0, 1), (2, 2))", (3, 5), (1, 2), ((0, 1), (2, 2))),
        ("conv 8 kernel=3x3 padding=(1, 2)", (3, 3), (1, 1), ((1, 1), (2, 2))),
        ("conv 8 kernel_size=3 strides=2 padding=same", (3, 3), (2, 2), "same"),
    ],
)
def test_kernel_stride_padding_forms(text, kernel, stride, padding):
    (conv,) = layers(f"input 32x32x3\n{text}")
    assert (conv.kernel, conv.stride, conv.padding) == (kernel, stride, padding)


def test_pooling_stride_defaults_to_window():
    pool, = layers("input 32x32x3\n3x3 maxpool")
    assert pool.stride == (3, 3)
    pool, = layers("input 32x32x3\nmaxpool")
    assert pool.kernel == pool.stride == (2, 2)


def test_long_options():
    conv, = layers(
        "input 32x32x8\nconv 16 kernel=3 dilation=2 groups=4 bias=off activation=leakyrelu name=c"
    )
    assert (conv.dilation, conv.groups, conv.bias, conv.activation, conv.name) == (
        (2, 2), 4, False, "leakyrelu", "c",
    )
    pool, = layers("input 33x33x8\n3x3+2(V) maxpool ceil")
    assert pool.ceil_mode
    bn, = layers("input 8x8x4\nbn epsilon=1e-5 momentum=0.9 center=off")
    assert (bn.epsilon, bn.momentum, bn.center, bn.scale) == (1e-5, 0.9, False, True)


def test_every_layer_kind_is_writable():
    text = """
    input 32x32x8
    3x3+1(S) conv 8
    3x3+1(S) dwconv 2
    3x3+1(S) sepconv 16
    2x2+2(S) convtranspose 8
    2x2+2 maxpool
    2x2+2 avgpool
    depthmaxpool 2
    lrn radius=2
    bn
    dropout 0.1
    zeropad 1
    upsample 2 bilinear
    relu
    relu6
    leakyrelu 0.2
    elu
    selu
    tanh
    sigmoid
    softmax
    linear
    silu
    gelu
    gelu_tanh
    hardsigmoid
    hardswish
    layernorm
    pointwise 8
    layerscale
    stochasticdepth 0.1
    rescaling 0.5
    normalization
    split 2 part=1
    shuffle 2
    crop 1
    adaptiveavgpool 4
    reshape shape=(4, 4, -1)
    x = globalavgpool keepdims
    globalmaxpool
    flatten
    dense 4
    """
    kinds = {layer.kind for layer in net(text).layers}
    expected = {cls.model_fields["kind"].default for cls in cnndsl.ir.LAYER_CLASSES}
    assert expected - kinds == {"add", "concat", "multiply"}
    leaky = next(l for l in net(text).layers if getattr(l, "function", "") == "leakyrelu")
    assert leaky.alpha == 0.2


# ----------------------------------------------------------------------------- defaults


def test_defaults_act_like_functools_partial():
    a, b = layers(
        "defaults conv kernel=3 activation=relu padding=same\ninput 28x28x1\nconv 64 kernel=7\nconv 128"
    )
    assert (a.kernel, a.activation, a.padding) == ((7, 7), "relu", "same")
    assert (b.kernel, b.filters) == ((3, 3), 128)


def test_defaults_conflict_is_an_error():
    with pytest.raises(CnnDslError, match="set kernel twice"):
        net("defaults conv kernel=3\ndefaults conv kernel=5\ninput 8x8x1\nconv 1")


# ------------------------------------------------------------------------------- blocks


def test_block_arguments_defaults_and_arithmetic():
    text = """
    input 16x16x3
    block unit(f, g=f*2, act=relu) { conv f kernel=1 -> conv g // 4 + 1 kernel=1 act }
    unit(8)
    unit(4, g=40, act=tanh)
    """
    c1, c2, c3, c4 = layers(text)
    assert (c1.filters, c2.filters, c2.activation) == (8, 5, "relu")
    assert (c3.filters, c4.filters, c4.activation) == (4, 11, "tanh")
    assert c1.calls[0].signature() == "unit(8)"
    assert c1.calls[0].args == {"f": 8, "g": 16, "act": "relu"}
    assert c3.calls[0].signature() == "unit(4, g=40, act=tanh)"
    assert c1.name == "unit_1_conv_1" and c3.name == "unit_2_conv_1"


def test_block_call_names_its_instance():
    c, = layers("input 8x8x3\nblock b(f) { conv f kernel=1 }\nstem = b(4)")
    assert c.name == "stem_conv_1" and c.calls[0].instance == "stem"


def test_nested_blocks_keep_provenance():
    text = """
    input 8x8x3
    block inner(f) { conv f kernel=1 }
    block outer(f) { inner(f) -> inner(2*f) }
    outer(3)
    """
    a, b = layers(text)
    assert [c.block for c in b.calls] == ["outer", "inner"]
    assert b.calls[1].args == {"f": 6}
    assert b.name == "outer_1_inner_2_conv_1"


def test_recursive_block_is_refused():
    with pytest.raises(CnnDslError, match="calls itself"):
        net("input 8x8x3\nblock a() { b() }\nblock b() { a() }\na()")


# ------------------------------------------------------------------------- control flow


def test_repeat_for_if():
    text = """
    input 8x8x3
    repeat 2 { conv 4 kernel=1 }
    for f in [8, 16] + [32] * 2 { conv f kernel=1 }
    if 2 > 1 and not false { relu } else { tanh }
    """
    ls = layers(text)
    assert [l.filters for l in ls if l.kind == "conv"] == [4, 4, 8, 16, 32, 32]
    assert ls[-1].function == "relu"


def test_if_without_else_in_a_branch_is_identity():
    text = """
    input 8x8x4
    block unit(project) { add { conv 4 kernel=1 | if project { conv 4 kernel=1 } } }
    unit(false)
    unit(true)
    """
    adds = [l for l in net(text).layers if l.kind == "add"]
    assert adds[0].inputs[1] == "input"
    assert adds[1].inputs[1].startswith("unit_2_conv")


# ------------------------------------------------------------------ tensors and merges


def test_branches_merge():
    n = net("input 8x8x3\nconcat {\n  conv 4 kernel=1\n| conv 5 kernel=1 -> relu\n| identity\n}")
    assert n.shape(n.outputs[0]) == (8, 8, 12)


def test_named_tensors_build_a_dag():
    text = """
    input 16x16x3
    a = conv 8 kernel=3 padding=same
    b = 2x2+2 maxpool -> 2x2+2(S) convtranspose 8
    concat(a) -> conv 4 kernel=1
    """
    n = net(text)
    concat = next(l for l in n.layers if l.kind == "concat")
    assert concat.inputs == ("b", "a")
    assert n.shape(concat.name) == (16, 16, 16)


def test_chain_can_start_from_a_tensor_and_several_outputs():
    text = """
    input 8x8x3
    f = globalavgpool
    p = f -> dense 10 softmax
    q = f -> dense 4
    output p, q
    """
    n = net(text)
    assert n.outputs == ["p", "q"]
    assert n["q"].inputs == ("f",)


def test_multiply_broadcasts_channel_vectors():
    n = net("input 8x8x16\nmultiply { identity | globalavgpool -> dense 16 sigmoid }")
    assert n.shape(n.outputs[0]) == (8, 8, 16)


def test_tensor_arguments_to_blocks():
    text = """
    input 8x8x3
    skip = conv 4 kernel=1
    block join(other) { conv 4 kernel=1 -> add(other) }
    join(skip)
    """
    n = net(text)
    add = n[n.outputs[0]]
    assert add.inputs[1] == "skip"


def test_several_inputs():
    n = net("input image 8x8x3\ninput meta 5\nimage -> globalavgpool -> concat(meta) -> dense 2")
    assert [i.name for i in n.inputs] == ["image", "meta"]
    assert n.shape(n.outputs[0]) == (2,)


# -------------------------------------------------------------------------------- syntax


def test_comments_semicolons_continuations():
    text = """# a comment
    input 8x8x3   # trailing comment
    conv 4 kernel=1; relu
    conv 4 kernel=1 ->
       relu
    conv 4 kernel=1
       -> relu
    block b(
        f,
        g,
    ) { conv f kernel=1 }
    b(1,
      2)
    """
    assert len(layers(text)) == 7


def test_network_name_and_default_name(tmp_path):
    assert net("network lenet\ninput 8x8x1\nrelu").name == "lenet"
    path = tmp_path / "my_net.cnn"
    path.write_text("input 8x8x1\nrelu\n")
    assert cnndsl.load(path).name == "my_net"


# ------------------------------------------------------------------------------- imports


def test_import_blocks_relative_to_the_file(tmp_path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "blocks.cnn").write_text(
        "defaults conv kernel=3 padding=same\nblock cbr(f) { conv f -> bn -> relu }\n"
        "block unused() { relu }\n"
    )
    (tmp_path / "main.cnn").write_text(
        'import "lib/blocks.cnn"\ninput 8x8x3\ncbr(4)\n'
    )
    (tmp_path / "main2.cnn").write_text(
        'from "lib/blocks.cnn" import cbr\ninput 8x8x3\ncbr(4)\n'
    )
    for name in ("main.cnn", "main2.cnn"):
        conv = cnndsl.load(tmp_path / name).layers[1]
        # the imported block keeps the defaults of the file that defines it
        assert (conv.kernel, conv.padding) == ((3, 3), "same")
        assert conv.position.file.endswith("blocks.cnn")


def test_import_cycle_is_refused(tmp_path):
    (tmp_path / "a.cnn").write_text('import "b.cnn"\ninput 8x8x1\nrelu\n')
    (tmp_path / "b.cnn").write_text('import "a.cnn"\nblock x() { relu }\n')
    with pytest.raises(CnnDslError, match="import cycle"):
        cnndsl.load(tmp_path / "a.cnn")


# ------------------------------------------------------------------------------------ IR


def test_positions_point_at_the_layer(tmp_path):
    path = tmp_path / "p.cnn"
    path.write_text("input 8x8x3\n\n   3x3+1(S) conv 4\n")
    conv = cnndsl.load(path).layers[1]
    assert (conv.position.line, conv.position.column) == (3, 4)


def test_json_round_trip_is_lossless():
    n = net("input 8x8x3\nblock b(f) { conv f kernel=1 }\nadd { b(3) | identity }")
    again = cnndsl.Network.from_json(n.to_json())
    assert again == n and again.to_json() == n.to_json()


def test_minus_after_a_value_subtracts():
    # like Python: `conv f -1` is f - 1; a leading minus is a negative number
    a, b = layers("input 8x8x2\nblock b(f) { conv f -1 kernel=1 }\nb(4)\nleakyrelu -0.1")
    assert a.filters == 3 and b.alpha == -0.1


def test_grammar_ships_inside_the_package():
    from importlib.resources import files

    from conftest import ROOT

    packaged = files("cnndsl") / "grammars" / "cnn.lark"
    assert packaged.is_file()
    assert (ROOT / "grammars" / "cnn.lark").read_text() == packaged.read_text()


def test_parentheses_group_after_an_operator():
    a, b = layers("input 8x8x2\nblock b(f) { conv 2*(f+1) kernel=1 -> conv(f * (2 + 1), kernel=1) }\nb(3)")
    assert (a.filters, b.filters) == (8, 9)


@pytest.mark.parametrize("name", ["resnet152_torchvision", "googlenet", "unet", "xception", "se_resnet50"])
def test_repeated_block_calls_are_copied_exactly(name):
    # the elaborator copies the expansion of a block call it has seen with the same arguments;
    # the network must be the same as when every call is elaborated afresh
    from conftest import SPECS
    from cnndsl.elaborate import Elaborator
    from cnndsl.parser import parse

    path = SPECS / f"{name}.cnn"
    module = parse(path.read_text(), str(path))
    copied = Elaborator().elaborate(module)
    afresh = Elaborator(memoize=False).elaborate(parse(path.read_text(), str(path)))
    assert copied.to_json() == afresh.to_json()



LOOPS = """\
input 8x8x4
block unit(f) { repeat 2 { 3x3(S) conv f } -> relu }
repeat 3 { unit(8) }
for c in [4, 8, 4] { if c == 8 { bn } -> 1x1 conv c }
"""


def test_loops_are_recorded_on_their_nodes():
    """Every node records the repeat/for iterations it was made in (outermost first, placed by
    the depth of block calls), also when its block call is a copy of an earlier one."""
    from cnndsl.elaborate import Elaborator
    from cnndsl.parser import parse

    net = cnndsl.loads(LOOPS)
    found = {
        layer.name: [(s.position.line, s.depth, s.iteration, s.count) for s in layer.loops]
        for layer in net.layers
    }
    assert found["input"] == []
    assert found["unit_1_conv_1"] == [(3, 0, 0, 3), (2, 1, 0, 2)]
    assert found["unit_2_conv_2"] == [(3, 0, 1, 3), (2, 1, 1, 2)]  # a copy of unit_1's nodes
    assert found["unit_3_relu_1"] == [(3, 0, 2, 3)]
    assert [found[n] for n in ("conv_1", "batchnorm_1", "conv_2", "conv_3")] == [
        [(4, 0, i, 3)] for i in (0, 1, 1, 2)
    ]
    assert net.layers[1].loops[0] is net.layers[2].loops[0]  # one object per iteration
    afresh = Elaborator(memoize=False).elaborate(parse(LOOPS, "<string>"))
    assert afresh.to_json() == net.to_json()
    assert cnndsl.Network.from_json(net.to_json()) == net


def test_loop_sites_outside_their_calls_are_refused():
    net = cnndsl.loads(LOOPS)
    data = json.loads(net.to_json())
    data["layers"][-1]["loops"][0]["depth"] = 1  # conv_3 is in no block call
    with pytest.raises(ValidationError, match="none deeper than the node's block calls"):
        cnndsl.Network.model_validate_json(json.dumps(data))
    data["layers"][-1]["loops"][0].update(depth=0, iteration=3)
    with pytest.raises(ValidationError, match="iteration 3 of a loop of 3"):
        cnndsl.Network.model_validate_json(json.dumps(data))

@pytest.mark.parametrize("kind", sorted(Layer.registry()))
def test_placed_nodes_equal_validated_copies(kind):
    # Layer.placed() sets pydantic's slots itself (no validation, no copy): for every kind,
    # the node must equal what validation and model_copy make, and round-trip through JSON
    from cnndsl.ir import CallSite, LoopSite, Position

    cls = Layer.registry()[kind]
    layer = cls(name="_", **valid_fields(cls))
    position = Position(file="f.cnn", line=1, column=1, end_column=4)
    site = CallSite(block="b", instance="b_1", args={"f": 4}, call="b(4)", position=position)
    loop = LoopSite(position=position, depth=1, iteration=2, count=3)
    update = dict(
        name="node",
        inputs=("a",) * max(cls.min_inputs, 1) if cls.max_inputs != 0 else (),
        position=position,
        calls=() if kind == "input" else (site,),
        loops=() if kind == "input" else (loop,),
    )
    placed = layer.placed(**update)
    copied = layer.model_copy(update=update)
    assert placed == copied == cls(**{**layer.model_dump(), **update})
    assert type(placed) is cls
    assert placed.model_fields_set == copied.model_fields_set
    assert placed.model_dump() == cls.model_validate(placed.model_dump()).model_dump()
    assert cls.model_validate_json(placed.model_dump_json()) == placed
    # placing one layer many times shares its fields_set, and the template is unchanged
    fields = layer.placed_fields()
    again = layer.placed(
        "other", update["inputs"], position, update["calls"], update["loops"], fields
    )
    assert again.name == "other" and layer.name == "_" and placed.name == "node"


@pytest.mark.parametrize("name", [p.stem for p in SPEC_FILES])
def test_networks_built_without_validation_pass_it(name):
    # the elaborator makes its Network with model_construct (its nodes were validated one by
    # one); validating the whole network again must accept it and give the same network
    from conftest import SPECS

    made = cnndsl.load(SPECS / f"{name}.cnn", analyze=False)
    assert cnndsl.Network.model_validate(made.model_dump()) == made
    assert cnndsl.Network.from_json(made.to_json()) == made


# ------------------------------------------- a load depends on its text alone (issue 10 §1)

# Values that `==` confuses (True == 1 == 1.0, [2] == [2.0], 0.0 == -0.0) but a spec does not.
TYPED_VALUES = [
    1, 1.0, True, 2, 2.0, 0, 0.0, -0.0, False, "1",
    (1, 1), (True, 1), (1.0, 1), (1, True), [1, 1], [True, 1], [2], [2.0], [True],
    ((1, 1), (0, 1)), ((True, 1), (0, 1)), ((1.0, 1), (0, 1)),
]
# Where a value goes: `{v}` is the value; as a block body, `v` is its parameter.
VALUE_USES = [
    "conv 4 kernel=3 padding={v}",
    "conv 4 kernel={v}",
    "conv {v} kernel=1",
    "conv 4 kernel=1 stride={v}",
    "conv 4 kernel=1 groups={v}",
    "leakyrelu {v}",
    "bn epsilon={v}",
    "2x2 maxpool padding={v}",
    "dropout {v}",
    "zeropad {v}",
    "for k in {v} {{ conv 4 kernel=k }}",
    "if {v} {{ relu }}",
]


def spec_value(value) -> str:
    """A value as spec text that keeps its type (1.0 stays a float, -0.0 its sign)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return f'"{value}"'
    inner = ", ".join(spec_value(v) for v in value)
    return f"[{inner}]" if isinstance(value, list) else f"({inner})"


def outcome(text: str) -> tuple[str, object]:
    """What loading a spec gives: the network's JSON, or the error's diagnostics."""
    try:
        return "ok", cnndsl.loads(text).to_json()
    except CnnDslError as e:
        return "error", [(d.message, d.location and d.location.line) for d in e.diagnostics]


def outcome_layers(result) -> list:
    return cnndsl.Network.from_json(result[1]).layers


def parses(text: str) -> bool:
    from cnndsl.parser import parse

    try:
        parse(text, "<string>")
    except CnnDslError:
        return False
    return True


def test_a_load_does_not_depend_on_earlier_loads(tmp_path, capsys):
    from cnndsl.cli import main

    (tmp_path / "A.cnn").write_text("input 8x8x3\nconv 4 kernel=3 padding=(true, 1)\n")
    (tmp_path / "B.cnn").write_text("input 8x8x3\nconv 4 kernel=3 padding=(1, 1)\n")
    assert main(["check", str(tmp_path / "A.cnn")]) == 1
    assert main(["check", str(tmp_path / "B.cnn"), str(tmp_path / "A.cnn")]) == 1
    err = capsys.readouterr().err
    assert err.count("A.cnn:2:26: error: conv padding") == 2


def test_a_block_call_is_not_replayed_for_arguments_of_another_type():
    block = "input 8x8x3\nblock b(ks) { for k in ks { conv 4 kernel=k } }\n"
    alone = outcome(block + "b([2.0])\n")
    assert alone[0] == "error"
    assert outcome(block + "b([2])\nb([2.0])\n") == alone
    # and the same layer, written twice in one file with values of other types
    assert outcome("input 8x8x3\nconv 4 kernel=3 padding=(1, 1)\nconv 4 kernel=3 padding=(true, 1)\n")[0] == "error"
    # -0.0 and 0.0 are equal, but a node keeps the one its spec wrote
    a, b = layers("input 8x8x3\nleakyrelu 0.0\nleakyrelu -0.0\n")
    assert str(a.alpha) == "0.0" and str(b.alpha) == "-0.0"


@settings(max_examples=25, deadline=None)
@given(use=st.sampled_from(VALUE_USES), value=st.sampled_from(TYPED_VALUES))
def test_loads_and_block_calls_are_independent_of_what_came_before(use, value):
    head = "input 8x8x4\n"
    line = use.format(v=spec_value(value))
    block = "block b(v) { " + use.replace("{{", "{").replace("}}", "}").replace("{v}", "v") + " }\n"
    skip = PLACEMENT
    alone = outcome(head + line + "\n")
    for earlier in TYPED_VALUES:
        # another load first
        outcome(head + use.format(v=spec_value(earlier)) + "\n")
        assert outcome(head + line + "\n") == alone
        # in one load: the same line, or the same block called, with another value first
        for first, then in (
            (use.format(v=spec_value(earlier)), line),
            (f"b({spec_value(earlier)})", f"b({spec_value(value)})"),
        ):
            if not parses(head + block + first + "\n" + then + "\n"):
                continue  # a syntax error stops a load before elaboration
            both = outcome(head + block + first + "\n" + then + "\n")
            one = outcome(head + block + then + "\n")
            before = outcome(head + block + first + "\n")
            if one[0] == "error":
                assert both[0] == "error"
                # `then` is one line further down in `both`
                assert {(m, n + 1 if n == 3 else n) for m, n in one[1]} <= set(both[1])
            elif before[0] == "ok":
                assert both[0] == "ok"
                made = outcome_layers(one)[1:]  # what `then` makes
                last = outcome_layers(both)[len(outcome_layers(before)):]
                assert [n.model_dump(exclude=skip) for n in last] == [
                    n.model_dump(exclude=skip) for n in made
                ]


# ------------------------------- numbers, booleans and strings are strict (issue 10 §1, §5)


PLACE = PLACEMENT | {"kind"}


def settable_fields(cls) -> dict[str, frozenset[str]]:
    """The fields of a layer class that a spec or a JSON IR sets, with what they take."""
    return {k: value_forms(f.annotation) for k, f in cls.model_fields.items() if k not in PLACE}


def spec_word(cls) -> str:
    return "leakyrelu" if cls.__name__ == "Activation" else cls.spec_names[0]


def valid_fields(cls) -> dict:
    """Values that make a valid node of ``cls``: every required field, and every numeric or
    boolean field, set (1 for integers and pairs, 0.5 for numbers, true for booleans)."""
    if cls.__name__ == "Input":
        return {"shape": (8, 8, 4)}
    values = {}
    for key, forms in settable_fields(cls).items():
        if key == "function":
            values[key] = "leakyrelu"
        elif "int" in forms:
            values[key] = {"output_padding": 0, "kernel": 2, "parts": 2}.get(key, 1)
        elif "float" in forms:
            values[key] = 0.5
        elif "bool" in forms:
            values[key] = True
        elif cls.model_fields[key].is_required():
            raise AssertionError(f"no valid value known for {cls.__name__}.{key}: add one here")
    if "stride" in values and "dilation" in values:
        values["stride"] = 1
    return values


def spec_text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return "(" + ", ".join(spec_text(v) for v in value) + ")"
    return repr(value) if not isinstance(value, str) else f'"{value}"'


def bad_values(forms: frozenset[str]) -> list:
    """Values of the wrong type for a field that takes ``forms``."""
    if forms & {"int", "float"}:
        bad = [True, False, "1"]
        if "float" not in forms:
            bad += [1.5, 2.0]
        if "tuple" in forms:
            bad += [(True, 1), (1, False), (1, "1")]
            if "float" not in forms:
                bad.append((1.0, 1))
        return bad
    if "bool" in forms:
        return [1, 0, "true"]
    return []


NUMERIC_FIELDS = [
    (kind, key)
    for kind, cls in Layer.registry().items()
    for key, forms in settable_fields(cls).items()
    if forms & {"int", "float", "bool"}
]


def test_every_number_and_boolean_field_is_strict():
    # the mechanism: every int, float and bool in every layer class's fields is Strict
    def check(annotation, where, strict=False):
        origin = get_origin(annotation)
        if origin is Annotated:
            base, *meta = get_args(annotation)
            return check(base, where, strict or any(isinstance(m, Strict) for m in meta))
        if annotation in (int, float, bool):
            assert strict, f"{where} takes a lax {annotation.__name__}: use base.Int/Float/Bool"
        for arg in get_args(annotation):
            check(arg, where)

    for kind, cls in Layer.registry().items():
        for key, field in cls.model_fields.items():
            if key not in PLACE:
                strict = any(isinstance(m, Strict) for m in field.metadata)
                check(field.annotation, f"{cls.__name__}.{key}", strict)
    assert len(NUMERIC_FIELDS) > 40


@pytest.mark.parametrize("kind,key", NUMERIC_FIELDS)
def test_values_of_the_wrong_type_are_refused_in_a_spec(kind, key):
    cls = Layer.registry()[kind]
    if kind == "input":  # the grammar writes input shapes: digits only
        with pytest.raises(CnnDslError):
            net("input 8xtruex4\nrelu")
        return
    good = {k: v for k, v in valid_fields(cls).items() if k != "function"}  # the word sets it

    def line(fields):
        return f"input 8x8x4\n{spec_word(cls)} " + " ".join(f"{k}={spec_text(v)}" for k, v in fields.items())

    net(line(good), analyze=False)  # the node is valid with the right types
    for bad in bad_values(settable_fields(cls)[key]):
        with pytest.raises(CnnDslError) as e:
            net(line({**good, key: bad}), analyze=False)
        assert key in str(e.value), (bad, str(e.value))
    if settable_fields(cls)[key] & {"int", "float"} and not cls.positional[:1] == (key,):
        return
    # a bare value after the kind (`conv true`) is the same field
    for bad in bad_values(settable_fields(cls)[key]):
        rest = {k: v for k, v in good.items() if k != key}
        text = f"input 8x8x4\n{spec_word(cls)} {spec_text(bad)} " + " ".join(
            f"{k}={spec_text(v)}" for k, v in rest.items()
        )
        with pytest.raises(CnnDslError):
            net(text, analyze=False)


@pytest.mark.parametrize("kind,key", NUMERIC_FIELDS)
def test_values_of_the_wrong_type_are_refused_in_a_json_ir(kind, key):
    import json

    cls = Layer.registry()[kind]
    data = {"name": "n", "layers": [{"kind": "input", "name": "input", "shape": [8, 8, 4]}], "outputs": []}
    if kind == "input":
        node, forms = data["layers"][0], frozenset({"int"})
        bad_items = [True, 8.0, "8", 8.5]
        bads = [[b, 8, 4] for b in bad_items]
    else:
        node = {"kind": kind, "name": "x", "inputs": ["input"]} | {
            k: list(v) if isinstance(v, tuple) else v for k, v in valid_fields(cls).items()
        }
        if cls.min_inputs > 1:
            node["inputs"] = ["input", "input"]
        data["layers"].append(node)
        forms = settable_fields(cls)[key]
        bads = [list(b) if isinstance(b, tuple) else b for b in bad_values(forms)]
    data["outputs"] = [data["layers"][-1]["name"]]
    cnndsl.Network.model_validate_json(json.dumps(data))  # valid with the right types
    for bad in bads:
        node[key] = bad
        with pytest.raises(ValidationError):
            cnndsl.Network.model_validate_json(json.dumps(data))
        with pytest.raises(ValidationError):
            cnndsl.Network.model_validate(json.loads(json.dumps(data)))


def test_the_reported_booleans_as_numbers_are_refused():
    for text, message in [
        ("conv true kernel=1", "conv filters must be an integer, got true"),
        ("conv 4 kernel=(true, 3)", "conv kernel takes integers, got (true, 3)"),
        ("conv 4 kernel=1 groups=true", "conv groups must be an integer, got true"),
        ("conv 4 kernel=3 padding=(true, 1)", "conv padding takes integers, got (true, 1)"),
        ("conv 4.0 kernel=1", "conv filters must be an integer, got 4.0"),
    ]:
        with pytest.raises(CnnDslError, match=message.replace("(", r"\(").replace(")", r"\)")):
            net("input 8x8x4\n" + text)


def test_a_json_ir_is_validated_as_strictly_as_a_spec():
    import json

    good = json.loads(net("input 8x8x3\nblock b() { conv 4 kernel=1 }\nx = b()\ny = x -> relu\noutput x, y").to_json())
    cnndsl.Network.model_validate(good)
    for change, match in [
        (lambda d: d.update(outputs=[d["outputs"][0]] * 2), "listed twice"),
        (lambda d: d["layers"][1].update(filters="4"), "integer"),
        (lambda d: d["layers"][0].update(shape=[8, True, 3]), "integer"),
        (lambda d: d["layers"][0].update(calls=d["layers"][1]["calls"]), "top level"),
        (lambda d: d["layers"][1]["position"].update(line="3"), "integer"),
    ]:
        data = json.loads(json.dumps(good))
        change(data)
        with pytest.raises(ValidationError, match=match):
            cnndsl.Network.model_validate_json(json.dumps(data))


# ---------------------------------------- every word the language accepts is in README

SPELLINGS_BEGIN = "<!-- spellings: generated from the layer classes by tests/test_language.py"
SPELLINGS_END = "<!-- end of spellings -->"


def spellings_table() -> str:
    """README's table of every kind's words, option spellings and bare words, from the
    layer classes (their spec_names, aliases and flags)."""
    from cnndsl.elaborate.values import written

    def listing(mapping: dict[str, str]) -> str:
        groups: dict[str, list[str]] = {}
        for word, meaning in mapping.items():
            groups.setdefault(meaning, []).append(f"`{word}`")
        return "; ".join(f"{', '.join(words)} ({meaning})" for meaning, words in groups.items())

    rows = ["| kind | also written | option spellings | bare words |", "|---|---|---|---|"]
    for cls in Layer.registry().values():
        if not cls.spec_names:
            continue
        if cls.__name__ == "Activation":
            canonical = [w for w in cls.spec_names if cls.preset(w)["function"] == w]
            kind = "activations: " + ", ".join(f"`{w}`" for w in canonical)
            others = listing({w: cls.preset(w)["function"] for w in cls.spec_names if w not in canonical})
        else:
            kind = f"`{cls.spec_names[0]}`"
            others = ", ".join(f"`{w}`" for w in cls.spec_names[1:])
        flags = listing({
            w: f"{k}={'on' if v is True else 'off' if v is False else v if isinstance(v, str) else written(v)}"
            for w, (k, v) in cls.flags.items()
        })
        if others or cls.aliases or flags:
            rows.append(f"| {kind} | {others} | {listing(cls.aliases)} | {flags} |")
    return "\n".join(rows) + "\n"


def test_readme_lists_every_word_the_language_accepts():
    import os
    import re

    from conftest import ROOT

    readme = ROOT / "README.md"
    text = readme.read_text(encoding="utf-8")
    start = text.index(SPELLINGS_BEGIN)
    start = text.index("\n", start) + 1
    end = text.index(SPELLINGS_END)
    table = spellings_table()
    if os.environ.get("CNNDSL_UPDATE_GOLDEN") == "1":
        readme.write_text(text[:start] + table + text[end:], encoding="utf-8")
        text = readme.read_text(encoding="utf-8")
        end = start + len(table)
    assert text[start:end] == table, "README's spellings table is stale: CNNDSL_UPDATE_GOLDEN=1 rewrites it"
    quoted = set(re.findall(r"`([A-Za-z_][A-Za-z0-9_]*)`", text))
    for cls in Layer.registry().values():
        for word in (*cls.spec_names, *cls.aliases, *cls.flags):
            assert word in quoted, f"{cls.__name__}: README does not list `{word}`"


# ------------------------------------------------ another input size, without editing the spec


@pytest.mark.parametrize("name", ["vgg16", "resnet50_torchvision", "unet", "googlenet"])
def test_a_spec_at_another_input_size_is_the_spec_with_that_size_written(name):
    from conftest import SPECS

    path = SPECS / f"{name}.cnn"
    text = path.read_text()
    declared = next(line for line in text.splitlines() if line.startswith("input "))
    size = declared.split()[1]
    other = "x".join(str(int(d) + 32) if i < 2 else d for i, d in enumerate(size.split("x")))
    assert len(other) == len(size)  # the same columns, so the same positions
    given = cnndsl.load(path, input=tuple(int(d) for d in other.split("x")))
    written = cnndsl.loads(text.replace(declared, declared.replace(size, other)), str(path))
    assert given.to_json() == written.to_json()
    assert given.analysis.macs == written.analysis.macs != cnndsl.load(path).analysis.macs


def test_input_sizes_by_name_and_their_errors():
    text = "input image 32x32x3\ninput meta 5\nimage -> globalavgpool -> concat(meta) -> dense 2\n"
    n = net(text, input={"image": (64, 48, 3), "meta": [7]})
    assert [i.shape for i in n.inputs] == [(64, 48, 3), (7,)]
    assert n.shape(n.outputs[0]) == (2,) and n["dense_1"].inputs
    assert n.analysis["dense_1"].input_shapes == ((10,),)
    for sizes, message in [
        ((64, 64, 3), "the spec has 2 inputs \\(image, meta\\): give the sizes by name"),
        ({"image": (64, 64)}, "has 2 dimensions; the spec declares 32x32x3"),
        ({"meta": (1, 1, 7)}, "has 3 dimensions; the spec declares 5"),
        ({"imag": (64, 64, 3)}, "no input by that name"),
        ({"image": (0, 64, 3)}, "at least 1"),
        ({"image": (True, 64, 3)}, "integer"),
        ({"image": (64.0, 64, 3)}, "integer"),
    ]:
        with pytest.raises(CnnDslError, match=message):
            net(text, input=sizes)
    with pytest.raises(CnnDslError, match="did you mean 'image'"):
        net(text, input={"imag": (64, 64, 3)})


def test_input_sizes_on_the_command_line(tmp_path):
    import json
    import subprocess
    import sys

    spec = tmp_path / "two.cnn"
    spec.write_text("input image 32x32x3\ninput meta 5\nimage -> globalavgpool -> concat(meta) -> dense 2\n")

    def run(*args):
        return subprocess.run([sys.executable, "-m", "cnndsl", *args], capture_output=True, text=True)

    done = run("summary", str(spec), "--format", "json", "--input", "image=64x48x3", "--input", "meta=7")
    assert done.returncode == 0, done.stderr
    shapes = {i["name"]: i["shape"] for i in json.loads(done.stdout)["inputs"]}
    assert shapes == {"image": [64, 48, 3], "meta": [7]}
    assert run("check", str(spec), "--input", "image=64x48x3").returncode == 0
    done = run("compile", str(spec), "--target", "json", "--input", "meta=9")
    assert done.returncode == 0 and '"shape": [\n        9\n      ]' in done.stdout.replace("\r", "")
    for args, code, message in [
        (("--input", "64x64x3"), 1, "give the sizes by name"),
        (("--input", "image=64x64"), 1, "has 2 dimensions"),
        (("--input", "image=64x64x3", "--input", "7"), 2, "name every input"),
        (("--input", "image=axbxc"), 2, "not an input size"),
        (("--input", "meta=3", "--input", "meta=4"), 2, "two sizes"),
    ]:
        done = run("check", str(spec), *args)
        assert (done.returncode, message in done.stderr) == (code, True), done.stderr


# --------------------------------------------- activations, kinds and blocks as values (issue 12)


def test_a_parameter_naming_an_activation_is_a_layer_and_an_option():
    text = """
    input 8x8x4
    block mbconv(c, act=relu) { 1x1 conv c -> act -> 1x1 conv c activation=act }
    mbconv(8)
    mbconv(8, act=swish)
    mbconv(8, act=hardswish)
    for a in [tanh, leakyrelu] { a }
    """
    ls = layers(text)
    acts = [l.function for l in ls if l.kind == "activation"]
    assert acts == ["relu", "silu", "hardswish", "tanh", "leakyrelu"]
    assert [l.activation for l in ls if l.kind == "conv"][1::2] == ["relu", "silu", "hardswish"]
    assert ls[-1].alpha == 0.3
    # the same network as written out
    written = layers("""
    input 8x8x4
    block mbconv(c, act=relu) { 1x1 conv c -> act -> 1x1 conv c activation=act }
    mbconv(8)
    mbconv(8, act=silu)
    mbconv(8, act=hardswish)
    tanh
    leakyrelu
    """)
    skip = PLACEMENT
    assert [l.model_dump(exclude=skip) for l in ls] == [l.model_dump(exclude=skip) for l in written]


def test_parameters_naming_kinds_merges_blocks_and_tensors():
    text = """
    input 8x8x4
    block unit() { relu }
    block stage(unit, pool=maxpool, op=add, n=2) { repeat n { unit() } -> 2x2 pool -> op { tanh | identity } }
    block join(skip) { conv 4 kernel=1 -> add(skip) -> identity }
    block start(skip) { skip -> sigmoid }
    s = stage(unit)
    t = stage(unit, pool=avgpool, op=concat, n=1)
    j = s -> join(s)
    k = start(s) -> concat(j)
    output t, k
    """
    kinds = [l.type_name for l in net(text).layers]
    assert kinds[:6] == ["input", "relu", "relu", "maxpool", "tanh", "add"]
    assert kinds[6:10] == ["relu", "avgpool", "tanh", "concat"]
    n = net(text)
    assert kinds[-2:] == ["sigmoid", "concat"] and n.layers[-2].inputs == ("s_add_1",)
    with pytest.raises(CnnDslError, match="'n' holds 3, which is not a layer kind or a block"):
        net("input 8x8x4\nblock b(n) { n }\nb(3)")
    with pytest.raises(CnnDslError, match="conv activation must be"):
        net("input 8x8x4\nblock b(act) { conv 4 kernel=1 activation=act }\nb(maxpool)")


# ------------------------------------------------------ conventions travel with imports (issue 12)


def test_defaults_travel_with_imports_and_the_importer_wins_field_by_field(tmp_path):
    (tmp_path / "base.cnn").write_text("defaults bn epsilon=1e-5 momentum=0.9\n")
    (tmp_path / "lib.cnn").write_text(
        'import "base.cnn"\ndefaults conv kernel=3 padding=same bias=off\n'
        "block cbr(f) { conv f -> bn -> relu }\n"
    )
    (tmp_path / "main.cnn").write_text(
        'from "lib.cnn" import cbr\ndefaults bn momentum=0.99\ninput 8x8x3\n'
        "cbr(4)\nconv 8 -> bn\n"
    )
    net = cnndsl.load(tmp_path / "main.cnn")
    block_conv, block_bn, _, conv, bn = net.layers[1:]
    # the imported block: its own file's conventions (and those it imports)
    assert (block_conv.kernel, block_conv.padding, block_conv.bias) == ((3, 3), "same", False)
    assert (block_bn.epsilon, block_bn.momentum) == (1e-5, 0.9)
    # the importer's own layers: the imported conventions, its own declarations winning
    assert (conv.kernel, conv.padding, conv.bias) == ((3, 3), "same", False)
    assert (bn.epsilon, bn.momentum) == (1e-5, 0.99)


def test_imported_defaults_that_disagree_are_an_error_unless_the_importer_decides(tmp_path):
    (tmp_path / "keras.cnn").write_text("defaults bn epsilon=0.001\nblock k() { bn }\n")
    (tmp_path / "torch.cnn").write_text("defaults bn epsilon=1e-5 momentum=0.9\nblock t() { bn }\n")
    (tmp_path / "same.cnn").write_text("defaults bn epsilon=0.001\n")
    main = tmp_path / "main.cnn"
    main.write_text('import "keras.cnn"\nimport "torch.cnn"\ninput 8x8x3\nbn\n')
    with pytest.raises(CnnDslError) as e:
        cnndsl.load(main)
    assert e.value.location.line == 2 and "disagree" in e.value.message
    assert "keras.cnn sets bn epsilon=0.001, " in e.value.message and "epsilon=1e-5" in e.value.message
    main.write_text('import "keras.cnn"\nimport "torch.cnn"\ndefaults bn epsilon=1e-3\ninput 8x8x3\nk() -> t() -> bn\n')
    k, t, own = cnndsl.load(main).layers[1:]
    assert (k.epsilon, t.epsilon, own.epsilon, own.momentum) == (0.001, 1e-5, 0.001, 0.9)
    main.write_text('import "keras.cnn"\nimport "same.cnn"\ninput 8x8x3\nbn\n')  # agreeing
    assert cnndsl.load(main).layers[1].epsilon == 0.001


def test_defaults_for_one_activation_are_not_for_another():
    a, b, c = layers("defaults leakyrelu alpha=0.2\ninput 8x8x3\nleakyrelu\nelu\nrelu\n")
    assert (a.alpha, b.alpha, c.alpha) == (0.2, 1.0, None)


# --------------------------------------------------- shapes while elaborating (issue 12)


@pytest.mark.parametrize("path", SPEC_FILES + sorted((SPEC_FILES[0].parent.parent / "docs" / "examples").glob("*.cnn")),
                         ids=lambda p: p.stem)
def test_shapes_on_demand_agree_with_the_analysis(path):
    from conftest import SPECS

    from cnndsl.elaborate import Elaborator
    from cnndsl.parser import parse

    elaborator = Elaborator(import_path=[SPECS])
    net = elaborator.elaborate(parse(path.read_text(), str(path)))
    shapes = elaborator.shapes
    # asked last node first (the walk computes what it reads), then every node
    last = len(net.layers) - 1
    assert shapes.of(last) == net.analysis[net.layers[last].name].output_shape
    assert [shapes.of(i) for i in range(len(net.layers))] == [
        net.analysis[layer.name].output_shape for layer in net.layers
    ]


def test_a_shape_that_cannot_be_computed_is_the_analysis_error():
    from cnndsl.elaborate import Elaborator
    from cnndsl.parser import parse

    text = "input 8x8x3\nblock b() { 9x9 conv 4 }\nb() -> relu\n"
    elaborator = Elaborator()
    elaborator.elaborate(parse(text, "<string>"))
    with pytest.raises(CnnDslError) as asked:
        elaborator.shapes.of(2)
    with pytest.raises(CnnDslError) as analysed:
        net(text)
    assert str(asked.value) == str(analysed.value)


DENSENET = """
input 32x32x24
block dense_layer(growth) { bn -> relu -> 1x1 conv 4 * growth bias=off -> bn -> relu -> 3x3(S) conv growth bias=off }
block dense_block(n, growth) { repeat n { x = identity; concat { identity | dense_layer(growth) } } }
block transition() { bn -> relu -> 1x1 conv channels() // 2 bias=off -> 2x2+2 avgpool }
block mbconv(c, e=4, act=swish) {
  add {
    1x1 conv channels() * e -> act -> 3x3(S) dwconv activation=act -> 1x1 conv c
  | if channels() != c { 1x1 conv c } else { identity }
  }
}
dense_block(2, 8) -> transition()
dense_block(3, 8) -> transition()
dense_block(2, 8) -> transition() -> transition()
mbconv(16) -> mbconv(16) -> mbconv(24, e=6)
globalavgpool -> dense channels() + 1
"""


def test_channels_height_width_read_the_current_tensor():
    n = net(DENSENET)
    transitions = [l for l in n.layers if l.kind == "conv" and l.calls[-1].block == "transition"]
    # 24 + 2*8 = 40 -> 20; 20 + 3*8 = 44 -> 22; 22 + 2*8 = 38 -> 19 -> 9
    assert [t.filters for t in transitions] == [20, 22, 19, 9]
    first: dict[str, int] = {}  # each mbconv call's first conv: the expansion
    for layer in n.layers:
        if layer.kind == "conv" and layer.calls[-1].block == "mbconv":
            first.setdefault(layer.calls[-1].instance, layer.filters)
    assert list(first.values()) == [9 * 4, 16 * 4, 16 * 6]
    assert n.layers[-1].units == 25
    sizes = net("input 20x12x3\nx = conv 4 kernel=1\ny = 2x2+2 maxpool\n"
                "flatten -> dense height(x) * 100 + (width(y) * 10 + channels(x))")
    assert sizes.layers[-1].units == 20 * 100 + 6 * 10 + 4


def test_block_calls_that_read_shapes_are_replayed_only_for_that_shape():
    from cnndsl.elaborate import Elaborator
    from cnndsl.parser import parse

    copied = Elaborator().elaborate(parse(DENSENET, "<string>"))
    afresh = Elaborator(memoize=False).elaborate(parse(DENSENET, "<string>"))
    assert copied.to_json() == afresh.to_json()


def test_shape_functions_errors():
    for text, message in [
        ("globalavgpool -> dense height()", "height\\(\\): a vector of 3 has no height"),
        ("conv 4 kernel=1 -> conv channels(3) kernel=1", "channels\\(\\): expected a tensor, got 3"),
        ("conv channels(1, 2) kernel=1", "channels\\(\\) takes 0 to 1 values, got 2"),
        ("9x9 conv 4 -> conv channels() kernel=1", "gives -0 rows|9x9 window does not fit"),
    ]:
        with pytest.raises(CnnDslError, match=message):
            net("input 8x8x3\n" + text)
    with pytest.raises(CnnDslError, match="no tensor to read in a `defaults` line"):
        net("defaults conv filters=channels()\ninput 8x8x3\nconv kernel=1")


def test_errors_inside_block_calls_name_the_calls_innermost_first():
    text = "input 8x8x3\nblock inner(f) { conv f / 3 kernel=1 }\nblock outer(f) { inner(f + 1) }\nouter(3)\n"
    with pytest.raises(CnnDslError) as e:
        net(text)
    (d,) = e.value.diagnostics
    assert d.location.line == 2
    assert [(text, where.line) for text, where in d.notes] == [("in inner(4), called", 3), ("in outer(3), called", 4)]
    # an error about a layer that cannot apply, met while reading a shape, keeps its own calls
    text = "input 8x8x3\nblock big() { 9x9 conv 4 }\nblock reads() { conv channels() kernel=1 }\nbig() -> reads()\n"
    with pytest.raises(CnnDslError) as e:
        net(text)
    (d,) = e.value.diagnostics
    assert d.location.line == 2 and [where.line for _, where in d.notes] == [4]


# ------------------------------------------------------------------------- every kind's examples

from cnndsl.ir import ACTIVATIONS  # noqa: E402
from cnndsl.ir.examples import EXAMPLES, example_lines, example_spec  # noqa: E402

EXAMPLE_CASES = example_lines()


def test_every_kind_and_activation_has_an_example():
    """The registry of example lines (cnndsl/ir/examples.py) names every layer kind, and its
    examples use every activation: a new kind or activation without one fails here."""
    assert set(EXAMPLES) == set(Layer.registry())
    used = set()
    for _, shape, line in EXAMPLE_CASES:
        for layer in net(example_spec(shape, line)).layers:
            used.add(getattr(layer, "function", None))
            used.add(getattr(layer, "activation", None))
    assert set(ACTIVATIONS) <= used


@pytest.mark.parametrize("kind,shape,line", EXAMPLE_CASES, ids=[f"{k}:{l}" for k, _, l in EXAMPLE_CASES])
def test_every_example_loads_and_its_notation_reads_back(kind, shape, line):
    network = net(example_spec(shape, line))
    layer = network.layers[-1]
    activations = {getattr(layer, "function", None), getattr(layer, "activation", None)}
    assert layer.kind == kind or (kind == "activation" and activations & set(ACTIVATIONS))
    if layer.max_inputs == 1 and layer.kind != "input":  # (a merge's notation has no branches)
        again = net(f"input {shape}\n{layer.notation()}\n").layers[-1]
        assert again.model_dump(exclude=PLACEMENT - {"inputs"}) == layer.model_dump(
            exclude=PLACEMENT - {"inputs"}
        )
    assert cnndsl.Network.from_json(network.to_json()) == network
