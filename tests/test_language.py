"""The language: notation, options, defaults, blocks, control flow, tensors, imports."""

from __future__ import annotations

import pytest

import cnndsl
from cnndsl import CnnDslError


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


def test_placed_nodes_equal_validated_copies():
    from cnndsl.ir import Conv2D, Position

    layer = Conv2D(name="_", filters=8, kernel=3)
    update = dict(name="c", inputs=("input",), position=Position(file="f", line=1, column=1), calls=())
    placed = layer.placed(**update)
    assert placed == layer.model_copy(update=update) == Conv2D(**{**layer.model_dump(), **update})
    assert placed.model_fields_set == layer.model_copy(update=update).model_fields_set
    assert Conv2D.model_validate_json(placed.model_dump_json()) == placed
