"""The layer kinds of today's CNNs (torchvision, keras.applications): layernorm, pointwise,
layerscale, stochasticdepth, adaptiveavgpool, rescaling, normalization, reshape, crop, split,
shuffle, and the activations gelu_tanh, hardsigmoid, hardswish.

Shapes, parameters and MACs against hand-computed values and against the frameworks' own
layers; receptive fields against a brute-force dependency computation; the functions each
kind's docstring promises against the frameworks' functions.
"""

from __future__ import annotations

import json
import math
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cnndsl
from cnndsl.ir import Layer
from cnndsl.ir.examples import EXAMPLES as ALL_EXAMPLES
from cnndsl.ir.pool import adaptive_bins, adaptive_window

from conftest import SPECS as ROOT_SPECS
from test_analysis import check_fields_by_brute_force  # the DAG brute force, shared

NEW_KINDS = {
    "layernorm",
    "pointwise",
    "layerscale",
    "stochasticdepth",
    "adaptiveavgpool",
    "rescaling",
    "normalization",
    "reshape",
    "crop",
    "split",
    "shuffle",
}
NEW_ACTIVATIONS = {"hardswish", "hardsigmoid", "gelu_tanh"}

# Example lines per kind, (input shape, line), from the project's registry
# (cnndsl/ir/examples.py): the new kinds', and for each new activation the examples that use it.
EXAMPLES: dict[str, list[tuple[str, str]]] = {
    kind: list(lines) for kind, lines in ALL_EXAMPLES.items() if kind in NEW_KINDS
}
EXAMPLES.update(
    {
        name: [
            (shape, line)
            for shape, line in ALL_EXAMPLES["activation"]
            if name in line or name.replace("hards", "hard_s") in line
        ]
        for name in sorted(NEW_ACTIVATIONS)
    }
)


def load(text: str) -> cnndsl.Network:
    return cnndsl.loads(text)


def one(shape: str, line: str) -> tuple[cnndsl.Network, Layer]:
    net = load(f"input {shape}\n{line}")
    return net, net.layers[-1]


def info(shape: str, line: str):
    net, layer = one(shape, line)
    return net.analysis[layer.name]


CASES = [(kind, shape, line) for kind, lines in EXAMPLES.items() for shape, line in lines]


def test_every_new_kind_and_activation_has_examples():
    kinds = set(Layer.registry())
    assert NEW_KINDS <= kinds
    assert set(EXAMPLES) == NEW_KINDS | NEW_ACTIVATIONS
    assert NEW_ACTIVATIONS <= set(cnndsl.ir.ACTIVATIONS)


@pytest.mark.parametrize("kind,shape,line", CASES, ids=[f"{k}:{l}" for k, _, l in CASES])
def test_examples_load_and_their_notation_reads_back(kind, shape, line):
    net, layer = one(shape, line)
    assert kind in (
        layer.kind,
        getattr(layer, "function", None),
        getattr(layer, "activation", None),
    )
    again = one(shape, layer.notation())[1]
    assert again.model_dump(exclude={"name", "position"}) == layer.model_dump(
        exclude={"name", "position"}
    )
    assert cnndsl.Network.from_json(net.to_json()) == net


# ------------------------------------------------------------- shapes, parameters, MACs


def test_layernorm():
    a = info("56x56x96", "layernorm epsilon=1e-6")
    assert (a.output_shape, a.trainable_params, a.non_trainable_params, a.macs) == (
        (56, 56, 96),
        192,
        0,
        0,
    )
    assert info("768", "layernorm").params == 2 * 768
    assert info("7x7x96", "layernorm center=off").params == 96
    assert info("7x7x96", "layernorm center=off scale=off").params == 0
    assert one("7x7x96", "layernorm")[1].epsilon == 1e-3  # Keras's default, as bn's


def test_pointwise_dense():
    a = info("56x56x96", "pointwise 384 gelu")
    assert a.output_shape == (56, 56, 384)
    assert a.params == 96 * 384 + 384
    assert a.macs == 56 * 56 * 96 * 384
    assert info("56x56x96", "pointwise 384 bias=off").params == 96 * 384
    # on a vector it is dense
    v, d = info("96", "pointwise 10"), info("96", "dense 10")
    assert (v.output_shape, v.params, v.macs) == (d.output_shape, d.params, d.macs)


def test_dense_on_a_map_still_says_flatten_and_offers_pointwise():
    with pytest.raises(cnndsl.CnnDslError) as e:
        load("input 7x7x512\ndense 10")
    message = str(e.value)
    assert "add `flatten`" in message and "pointwise 10" in message


def test_layerscale_stochasticdepth_rescaling():
    assert info("56x56x96", "layerscale").trainable_params == 96
    assert info("768", "layerscale").trainable_params == 768
    for line in (
        "stochasticdepth 0.1",
        "rescaling 1/255",
        "rescaling 2 offset=-1",
        "rescale scale=(1, 2, 3)",
    ):
        a = info("8x8x3", line)
        assert (a.output_shape, a.params, a.macs) == ((8, 8, 3), 0, 0)
    assert one("8x8x3", "droppath 0.2")[1].mode == "row"


def test_normalization_counts_keras_statistics():
    # keras.applications.EfficientNetB0: Normalization(axis=-1) on RGB holds mean (3),
    # variance (3) and a count: 7 non-trainable weights; given constants, it holds none
    a = info("224x224x3", "normalization")
    assert (a.trainable_params, a.non_trainable_params) == (0, 7)
    a = info("224x224x3", "normalization mean=(0.485, 0.456, 0.406) variance=(0.05, 0.05, 0.05)")
    assert a.params == 0
    assert info("16", "normalization").non_trainable_params == 33


def test_adaptive_average_pooling_shapes():
    assert info("14x14x512", "adaptiveavgpool 7").output_shape == (7, 7, 512)
    assert info("13x13x256", "adaptiveavgpool 6").output_shape == (6, 6, 256)  # AlexNet at 224
    assert info("5x9x4", "adaptiveavgpool 7").output_shape == (7, 7, 4)  # bins repeat cells
    assert info("14x14x4", "adaptiveavgpool 4x2").output_shape == (4, 2, 4)
    a = info("14x14x512", "adaptiveavgpool 4")
    assert (a.params, a.macs) == (0, 0)


def test_reshape_and_crop():
    assert info("1x1x1024", "reshape 1024").output_shape == (1024,)
    assert info("1024", "reshape 1x1x1024").output_shape == (1, 1, 1024)
    assert info("4x4x8", "reshape shape=(2, -1, 4)").output_shape == (2, 16, 4)
    assert info("83x83x96", "crop cropping=((0, 1), (0, 1))").output_shape == (82, 82, 96)
    assert info("10x12x3", "crop 2x3").output_shape == (6, 6, 3)


def test_split_and_shuffle():
    _, split = one("28x28x116", "split 2 part=1")
    assert info("28x28x116", "split 2 part=1").output_shape == (28, 28, 58)
    assert split.channels([(28, 28, 116)]) == range(58, 116)
    _, shuffle = one("1x1x6", "shuffle 2")
    # torchvision's channel_shuffle: view (g, C/g), transpose, flatten
    rows = [list(range(i * 3, i * 3 + 3)) for i in range(2)]
    assert (
        shuffle.permutation(6)
        == [rows[i][j] for j in range(3) for i in range(2)]
        == [0, 3, 1, 4, 2, 5]
    )


# torchvision's InvertedResidual(116, 116, 1): x1, x2 = x.chunk(2, dim=1);
# cat(x1, branch2(x2)); channel_shuffle(out, 2)
SHUFFLE_UNIT = """
input 28x28x116
concat {
    split 2 part=0
  | split 2 part=1 -> 1x1 conv 58 bias=off -> bn -> relu
    -> 3x3+1(1) dwconv 1 bias=off -> bn -> 1x1 conv 58 bias=off -> bn -> relu
}
shuffle 2
"""


def test_shufflenet_unit_is_expressible():
    net = load(SHUFFLE_UNIT)
    a = net.analysis
    assert a[net.outputs[0]].output_shape == (28, 28, 116)
    bn = 58 * 2
    assert a.trainable_params == 58 * 58 + bn + 9 * 58 + bn + 58 * 58 + bn
    assert a.non_trainable_params == 3 * bn
    assert a.macs == 28 * 28 * (58 * 58 + 9 * 58 + 58 * 58)


CNBLOCK = """
input 56x56x96
add {
    7x7+1(3) conv 96 groups=96 -> layernorm epsilon=1e-6 -> pointwise 384 gelu -> pointwise 96
    -> layerscale 1e-6 -> stochasticdepth 0.1
  | identity
}
"""


def test_convnext_block_by_hand():
    a = load(CNBLOCK).analysis
    assert a.trainable_params == (49 * 96 + 96) + 192 + (96 * 384 + 384) + (384 * 96 + 96) + 96
    assert a.macs == 56 * 56 * 96 * 49 + 2 * 56 * 56 * 96 * 384


# ------------------------------------------------------------------- receptive fields


def test_adaptive_bins_are_pytorchs():
    # torch/aten/src/ATen/native/AdaptiveAveragePooling.cpp: start_index = floor(a*b/c),
    # end_index = ceil((a+1)*b/c)
    for n in range(1, 30):
        for out in range(1, 30):
            bins = adaptive_bins(n, out)
            assert bins == [
                (math.floor(i * n / out), math.ceil((i + 1) * n / out)) for i in range(out)
            ]


@pytest.mark.parametrize("n", range(1, 25))
def test_adaptive_window_is_the_smallest_that_holds_every_bin(n):
    for out in range(2, 25):
        span, stride, pad = adaptive_window((n, n, 1), 0, out)
        assert stride == Fraction(n, out)
        slack_before = [
            start - (o * stride - pad) for o, (start, _) in enumerate(adaptive_bins(n, out))
        ]
        slack_after = [
            o * stride - pad + span - (end - 1) for o, (_, end) in enumerate(adaptive_bins(n, out))
        ]
        assert min(slack_before) == 0 and min(slack_after) == 0  # contains every bin, tightly
        if n % out == 0:  # a plain pooling window
            assert (span, stride, pad) == (n // out - 1, n // out, 0)


def _dependencies(net: cnndsl.Network, axis: int) -> list:
    """Per layer of a stack, along one spatial axis: a function from a position of its output
    to the positions of its input it reads, from the layer's definition (not its window).  A
    position outside the input is padding: the first layer's padding cells are positions of the
    image (outside it, as the receptive-field convention counts them); a later layer's padding
    reads nothing."""
    deps = []
    for i, layer in enumerate(net.layers[1:]):
        inputs = list(net.analysis[layer.name].input_shapes)
        n = inputs[0][axis]
        if layer.kind in ("conv", "maxpool", "avgpool"):
            k, s = layer.kernel[axis], layer.stride[axis]
            d = getattr(layer, "dilation", (1, 1))[axis]
            before = layer.explicit_padding(inputs)[axis][0]
            reads = lambda o, k=k, s=s, d=d, b=before: {o * s - b + t * d for t in range(k)}
        elif layer.kind == "adaptiveavgpool":
            reads = lambda o, bins=adaptive_bins(n, layer.output_size[axis]): set(range(*bins[o]))
        elif layer.kind == "crop":
            reads = lambda o, t=layer.cropping[axis][0]: {o + t}
        else:  # per position: the same position
            assert layer.window(inputs) is None, layer.kind
            reads = lambda o: {o}
        if i == 0:
            deps.append(reads)
        else:
            deps.append(lambda o, reads=reads, n=n: {j for j in reads(o) if 0 <= j < n})
    return deps


def _check_field(net: cnndsl.Network) -> None:
    """Every output position reads only input pixels inside its receptive field."""
    last = net.layers[-1]
    rf = net.analysis[last.name].receptive_field
    out = net.analysis[last.name].output_shape
    for axis in (0, 1):
        deps = _dependencies(net, axis)
        size, stride, pad = rf.size[axis], rf.stride[axis], rf.padding[axis]
        for o in range(out[axis]):
            positions = {o}
            for dep in reversed(deps):
                positions = set().union(*(dep(i) for i in positions))
            low, high = o * stride - pad, o * stride - pad + size - 1
            assert all(low <= p <= high for p in positions), (axis, o, sorted(positions), low, high)


spatial_layer = st.one_of(
    st.tuples(st.just("conv"), st.integers(1, 4), st.integers(1, 3), st.sampled_from("SV1")),
    st.tuples(st.just("maxpool"), st.integers(2, 3), st.integers(1, 2), st.sampled_from("SV")),
    st.tuples(st.just("adaptiveavgpool"), st.integers(2, 9), st.integers(2, 9), st.just("")),
    st.tuples(st.just("crop"), st.integers(0, 2), st.integers(0, 2), st.just("")),
    st.sampled_from(
        [
            ("layernorm", 0, 0, ""),
            ("pointwise 4", 0, 0, ""),
            ("layerscale", 0, 0, ""),
            ("shuffle 2", 0, 0, ""),
            ("rescaling 2", 0, 0, ""),
            ("stochasticdepth 0.5", 0, 0, ""),
            ("hardswish", 0, 0, ""),
            ("reshape shape=(%d, %d, -1)", 0, 0, ""),
        ]
    ),
)


def _line(kind, a, b, pad):
    if kind == "conv":
        return f"{a}x{a}+{b}({pad}) conv 4"
    if kind == "maxpool":
        return f"{a}x{a}+{b}({pad}) maxpool"
    if kind == "adaptiveavgpool":
        return f"adaptiveavgpool {a}x{b}"
    if kind == "crop":
        return f"crop cropping=(({a}, {b}), ({b}, {a}))"
    return kind


@settings(max_examples=200, deadline=None)
@given(st.integers(6, 30), st.lists(spatial_layer, min_size=1, max_size=6))
def test_receptive_fields_contain_every_dependency(size, stack):
    lines = [f"input {size}x{size + 3}x4"]
    shape = None
    for kind, a, b, pad in stack:
        line = _line(kind, a, b, pad)
        if line.startswith("reshape"):  # the same positions, other channels: no window
            if shape is None:
                continue
            line = line % shape[:2]
        lines.append(line)
        try:
            net = load("\n".join(lines))
        except cnndsl.CnnDslError:  # the map became too small for this layer: skip it
            lines.pop()
            continue
        shape = net.analysis[net.layers[-1].name].output_shape
    if len(lines) > 1:
        _check_field(load("\n".join(lines)))


@st.composite
def kinds_dags(draw):
    """DAGs of the new kinds: ShuffleNet units (split, concat, shuffle), ConvNeXt-like residual
    blocks, adaptive pooling (global or not), crops, reshapes, squeeze-and-excitation, and
    the new activations after a normalization."""
    h, w = draw(st.integers(5, 20)), draw(st.integers(5, 20))
    lines = [f"input {h}x{w}x8"]
    for i in range(draw(st.integers(1, 5))):
        k, s = draw(st.integers(1, 3)), draw(st.integers(1, 2))
        a, b = draw(st.integers(1, 9)), draw(st.integers(1, 9))
        t, u = draw(st.integers(0, 2)), draw(st.integers(0, 2))
        lines.append(draw(st.sampled_from([
            f"adaptiveavgpool {a}x{b}",
            f"adaptiveavgpool {a}x{b} -> {k}x{k}+{s}(S) conv 8",
            f"crop cropping=(({t}, {u}), ({u}, {t}))",
            f"{k}x{k}+{s}(1) maxpool -> layernorm",
            f"concat {{ split 2 part=0 | split 2 part=1 -> {k}x{k}(S) dwconv -> pointwise 4 }}"
            " -> shuffle 2",
            f"concat {{ {k}x{k}+2(S) dwconv -> pointwise 4 | split 2 part=1 -> {k}x{k}+2(S) conv 4 }}"
            " -> shuffle 4",
            f"add {{ {2 * k + 1}x{2 * k + 1}(S) dwconv -> layernorm -> pointwise 16 gelu"
            " -> pointwise 8 -> layerscale -> stochasticdepth 0.1 | identity }",
            "multiply { identity | adaptiveavgpool 1 -> pointwise 2 relu -> pointwise 8 hardsigmoid }",
            f"t{i} = rescaling 0.5\n{k}x{k}(S) conv 8 -> add(t{i})",
            "reshape shape=(2, -1, 8) -> 3x3(S) conv 8",
            f"normalization -> {k}x{k}+{s}(S) conv 8 hardswish -> gelu_tanh",
        ])))
    return "\n".join(lines)


@settings(max_examples=200, deadline=None)
@given(kinds_dags())
def test_receptive_fields_of_dags_of_the_new_kinds_match_brute_force(spec):
    try:
        net = load(spec)
        net.analysis
    except cnndsl.CnnDslError:  # shapes that do not fit: not a test case
        return
    check_fields_by_brute_force(net)


def _behind_a_strided_conv(shape: str, line: str) -> str | None:
    """An example of the registry behind a 3x3 stride-2 SAME convolution that gives the
    example its input (so that the field it reads is wider than a pixel and strided), and
    before a 3x3 one when it gives a map (which reads its edges).  An example on a vector
    reads the convolution's map pooled globally.  None for the input examples."""
    if line.startswith("input "):
        return None
    dims = [int(d) for d in shape.split("x")]
    h, w, c = dims if len(dims) == 3 else (4, 4, dims[0])
    spec = f"input {2 * h}x{2 * w}x{c}\n3x3+2(S) conv {c}\n"
    spec += f"{line}\n" if len(dims) == 3 else f"gap\n{line}\n"
    net = load(spec)
    if len(net.analysis[net.outputs[0]].output_shape) == 3:
        spec += "3x3(S) conv 2\n"
    return spec


FIELD_CASES = [
    (kind, shape, line)
    for kind, lines in ALL_EXAMPLES.items()
    for shape, line in lines
    if _behind_a_strided_conv(shape, line) is not None
]


def test_every_kind_has_a_receptive_field_case():
    """Every layer kind of the registry (input aside) and every activation is in
    FIELD_CASES: a kind added with its examples is checked against the brute force."""
    assert {kind for kind, _, _ in FIELD_CASES} == set(Layer.registry()) - {"input"}
    lines = " ".join(line for kind, _, line in FIELD_CASES if kind == "activation")
    assert all(name in lines.replace("hard_s", "hards") for name in cnndsl.ir.ACTIVATIONS)


@pytest.mark.parametrize(
    "kind,shape,line", FIELD_CASES, ids=[f"{k}:{l}" for k, _, l in FIELD_CASES]
)
def test_receptive_field_of_every_kind_matches_brute_force(kind, shape, line):
    """Every example of every kind (cnndsl/ir/examples.py), behind a strided convolution and
    before another: each node's field against the brute-force dependencies, at every
    position."""
    net = load(_behind_a_strided_conv(shape, line))
    kinds = {layer.kind for layer in net.layers}
    assert kind in kinds or kind == "activation"  # an activation may be a layer's option
    check_fields_by_brute_force(net)


def test_divisible_adaptive_pooling_is_an_exact_window():
    net = load("input 28x28x1\n3x3+1(1) conv 1\nadaptiveavgpool 7")
    rf = net.analysis[net.outputs[0]].receptive_field
    # bins of 4 at stride 4 after a 3x3 conv: 6 pixels, stride 4, padding 1
    assert (rf.size, rf.stride, rf.padding) == ((6, 6), (4, 4), (1, 1))


def test_uneven_adaptive_pooling_has_a_fractional_window():
    # 14 -> 4 (GoogLeNet's auxiliary heads): bins [0, 4), [3, 7), [7, 11), [10, 14)
    net = load("input 14x14x1\nadaptiveavgpool 4")
    rf = net.analysis[net.outputs[0]].receptive_field
    assert rf.stride == (Fraction(7, 2),) * 2
    assert rf.padding == (Fraction(1, 2),) * 2
    assert rf.size == (Fraction(9, 2),) * 2  # [o*3.5 - 0.5, o*3.5 + 3] holds 4 pixels for every o
    _check_field(net)


def test_crop_moves_the_field():
    net = load("input 20x20x1\n3x3+1(V) conv 1\ncrop cropping=((2, 0), (0, 1))")
    rf = net.analysis[net.outputs[0]].receptive_field
    assert (rf.size, rf.stride, rf.padding) == ((3, 3), (1, 1), (-2, 0))
    _check_field(net)


def test_per_position_kinds_leave_the_field_alone():
    base = load("input 16x16x4\n3x3+2(S) conv 4").analysis["conv_1"].receptive_field
    for line in (
        "layernorm",
        "pointwise 8",
        "layerscale",
        "stochasticdepth 0.1",
        "rescaling 2",
        "normalization",
        "split 2 part=1",
        "shuffle 2",
        "hardswish",
        "reshape 8x8x4",
    ):
        net = load(f"input 16x16x4\n3x3+2(S) conv 4\n{line}")
        assert net.analysis[net.outputs[0]].receptive_field == base, line


def test_reshape_across_positions_sees_the_whole_map():
    # as global pooling: every value may move to any position
    for line in ("reshape 4x16x4", "reshape 256"):
        reshaped = load(f"input 8x8x4\n3x3+1(S) conv 4\n{line}").analysis["reshape_1"]
        pooled = load("input 8x8x4\n3x3+1(S) conv 4\ngap keepdims")
        assert reshaped.receptive_field == pooled.analysis[pooled.outputs[0]].receptive_field


# ------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    "shape,line,message",
    [
        ("8x8x6", "split 4 part=0", "split 4 needs channels divisible by 4, got 6"),
        ("8x8x6", "split 2 part=2", "split part=2 does not exist: the parts are 0 to 1"),
        ("8x8x6", "split 1", "split parts must be at least 2"),
        ("8x8x6", "shuffle 4", "shuffle 4 needs channels divisible by 4, got 6"),
        ("8", "shuffle 2", "shuffle 2 needs a feature map"),
        ("8x8x3", "normalization mean=(1, 2, 3)", "normalization takes both mean= and variance="),
        (
            "8x8x3",
            "normalization mean=(1, 2) variance=(1, 1)",
            "normalization has 2 values for mean, but its input has 3 channels",
        ),
        ("8x8x3", "normalization mean=0 variance=-1", "variance must be at least 0, got -1"),
        (
            "8x8x3",
            "rescaling scale=(1, 2)",
            "rescaling has 2 values for scale, but its input has 3 channels",
        ),
        ("8x8x3", "reshape 10", "reshape cannot make 10 (10 values) of 8x8x3 (192 values)"),
        ("8x8x3", "reshape shape=(5, -1, 1)", "192 values are not a multiple of 5"),
        ("8x8x3", "reshape shape=(-1, -1, 3)", "at most one -1"),
        ("8x8x3", "reshape shape=(2, 96)", "not 2 dimensions"),
        ("8x8x3", "crop 4", "leaves nothing of a 8x8x3 map"),
        ("8", "adaptiveavgpool 2", "adaptiveavgpool 2 needs a feature map"),
        ("8x8x3", "adaptiveavgpool 0", "at least 1"),
        ("8x8x3", "stochasticdepth 1", "must be below 1"),
        ("8x8x3", "layerscale init=(1, 2)", "layerscale init must be a number"),
        ("8x8x3", "gelu approximate=tanh", "has no option 'approximate'"),
    ],
)
def test_misuse_is_a_located_error(shape, line, message):
    with pytest.raises(cnndsl.CnnDslError) as e:
        load(f"input {shape}\n{line}")
    text = str(e.value)
    assert message in text, text
    assert "<string>:2:" in text


# -------------------------------------------------------------------- the frameworks


@pytest.mark.torch
def test_counts_and_shapes_equal_pytorch_layers():
    torch = pytest.importorskip("torch")
    from torch import nn
    from torch.utils.flop_counter import FlopCounterMode

    assert (
        sum(p.numel() for p in nn.LayerNorm(96, eps=1e-6).parameters())
        == info("7x7x96", "layernorm").params
    )
    assert (
        sum(p.numel() for p in nn.LayerNorm(96, bias=False).parameters())
        == info("7x7x96", "layernorm center=off").params
    )

    # ConvNeXt's block: parameters and conv + linear MACs (FlopCounterMode counts 2 per MAC)
    from torchvision.models.convnext import CNBlock

    block = CNBlock(96, 1e-6, 0.1).eval()
    x = torch.randn(1, 96, 56, 56)
    with FlopCounterMode(display=False) as counter:
        block(x)
    a = load(CNBLOCK).analysis
    assert sum(p.numel() for p in block.parameters()) == a.trainable_params
    assert counter.get_total_flops() == 2 * a.macs

    # ShuffleNetV2's unit
    from torchvision.models.shufflenetv2 import InvertedResidual

    unit = InvertedResidual(116, 116, 1).eval()
    params = sum(p.numel() for p in unit.parameters())
    stats = sum(
        t.numel() for k, t in unit.named_buffers() if k.endswith(("running_mean", "running_var"))
    )
    with FlopCounterMode(display=False) as counter:
        y = unit(torch.randn(1, 116, 28, 28))
    a = load(SHUFFLE_UNIT).analysis
    assert tuple(y.shape[1:]) == (116, 28, 28)
    assert (params, stats, counter.get_total_flops()) == (
        a.trainable_params,
        a.non_trainable_params,
        2 * a.macs,
    )

    # adaptive pooling: output sizes, and the bins (each output is the mean of its bin)
    for n, m in ((14, 4), (13, 6), (5, 7), (14, 7), (9, 1)):
        x = torch.arange(n * (n + 2), dtype=torch.float64).reshape(1, 1, n, n + 2)
        y = nn.AdaptiveAvgPool2d(m)(x)
        assert tuple(y.shape[2:]) == info(f"{n}x{n + 2}x1", f"adaptiveavgpool {m}").output_shape[:2]
        rows, cols = adaptive_bins(n, m), adaptive_bins(n + 2, m)
        for i, (r0, r1) in enumerate(rows):
            for j, (c0, c1) in enumerate(cols):
                assert y[0, 0, i, j].item() == pytest.approx(x[0, 0, r0:r1, c0:c1].mean().item())

    # channel shuffle and split, as the docstrings say
    from torchvision.models.shufflenetv2 import channel_shuffle

    x = torch.arange(12.0).reshape(1, 12, 1, 1)
    order = one("1x1x12", "shuffle 3")[1].permutation(12)
    assert channel_shuffle(x, 3).flatten().tolist() == [float(i) for i in order]
    assert nn.ChannelShuffle(3)(x).flatten().tolist() == [float(i) for i in order]
    split = one("1x1x12", "split 3 part=1")[1]
    assert x.chunk(3, dim=1)[1].flatten().tolist() == [
        float(i) for i in split.channels([(1, 1, 12)])
    ]


@pytest.mark.torch
def test_pytorch_activations_are_the_documented_functions():
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    x = torch.linspace(-5, 5, 201, dtype=torch.float64)
    assert torch.equal(F.hardsigmoid(x), F.relu6(x + 3) / 6)
    assert torch.equal(F.hardswish(x), x * F.relu6(x + 3) / 6)
    tanh = 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    assert torch.allclose(F.gelu(x, approximate="tanh"), tanh, atol=1e-12)
    assert torch.allclose(F.gelu(x), 0.5 * x * (1 + torch.erf(x / math.sqrt(2))), atol=1e-12)


@pytest.mark.keras
def test_counts_shapes_and_functions_equal_keras_layers():
    keras = pytest.importorskip("keras")
    import numpy as np

    def built(layer, shape):
        y = layer(keras.Input(shape))
        return tuple(y.shape[1:]), layer.count_params(), len(layer.non_trainable_weights)

    def counts(layer, shape):
        layer(keras.Input(shape))
        trainable = sum(int(np.prod(w.shape)) for w in layer.trainable_weights)
        return trainable, layer.count_params() - trainable

    def ours(shape, line):
        a = info("x".join(map(str, shape)), line)
        return a.trainable_params, a.non_trainable_params

    assert counts(keras.layers.LayerNormalization(epsilon=1e-6), (7, 7, 96)) == ours(
        (7, 7, 96), "layernorm"
    )
    assert counts(keras.layers.LayerNormalization(center=False), (96,)) == ours(
        (96,), "layernorm center=off"
    )
    assert (
        counts(keras.layers.Normalization(axis=-1), (224, 224, 3))
        == ours((224, 224, 3), "normalization")
        == (0, 7)
    )
    fixed = keras.layers.Normalization(mean=[0.5, 0.4, 0.3], variance=[0.1, 0.2, 0.3])
    assert counts(fixed, (8, 8, 3)) == ours(
        (8, 8, 3), "normalization mean=(0.5, 0.4, 0.3) variance=(0.1, 0.2, 0.3)"
    )
    assert counts(keras.layers.Rescaling(1 / 255), (8, 8, 3)) == (0, 0)
    assert counts(keras.layers.Dense(384), (56, 56, 96)) == ours((56, 56, 96), "pointwise 384")
    from keras.src.applications.convnext import LayerScale

    assert counts(LayerScale(1e-6, 96), (56, 56, 96)) == ours((56, 56, 96), "layerscale")

    for layer, shape, line in [
        (keras.layers.Dense(384), (56, 56, 96), "pointwise 384"),
        (keras.layers.Reshape((1000,)), (1, 1, 1000), "reshape 1000"),
        (keras.layers.Reshape((2, -1, 4)), (4, 4, 8), "reshape shape=(2, -1, 4)"),
        (keras.layers.Cropping2D(((0, 1), (0, 1))), (83, 83, 96), "crop cropping=((0, 1), (0, 1))"),
        (keras.layers.AdaptiveAveragePooling2D(4), (14, 14, 8), "adaptiveavgpool 4"),
        (keras.layers.AdaptiveAveragePooling2D((7, 7)), (5, 9, 8), "adaptiveavgpool 7"),
    ]:
        out = tuple(layer(keras.Input(shape)).shape[1:])
        assert out == info("x".join(map(str, shape)), line).output_shape, line

    # Keras's adaptive pooling uses PyTorch's bins
    for n, m in ((14, 4), (13, 6), (5, 7), (9, 7)):
        x = np.arange(n * n, dtype="float32").reshape(1, n, n, 1)
        y = np.asarray(keras.layers.AdaptiveAveragePooling2D(m)(x))
        bins = adaptive_bins(n, m)
        expected = [[x[0, r0:r1, c0:c1, 0].mean() for c0, c1 in bins] for r0, r1 in bins]
        np.testing.assert_allclose(y[0, :, :, 0], expected, rtol=1e-5)

    # the activations, as documented
    x = np.linspace(-5, 5, 201).astype("float64")
    relu6 = np.clip(x + 3, 0, 6)
    np.testing.assert_allclose(np.asarray(keras.activations.hard_sigmoid(x)), relu6 / 6, atol=1e-7)
    np.testing.assert_allclose(np.asarray(keras.activations.hard_silu(x)), x * relu6 / 6, atol=1e-7)
    tanh = 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    np.testing.assert_allclose(
        np.asarray(keras.activations.gelu(x, approximate=True)), tanh, atol=1e-6
    )
    erf = np.vectorize(math.erf)
    np.testing.assert_allclose(
        np.asarray(keras.activations.gelu(x)), 0.5 * x * (1 + erf(x / math.sqrt(2))), atol=1e-6
    )

    # channel shuffle written as the ChannelShuffle docstring says
    x = np.arange(12, dtype="float32").reshape(1, 1, 1, 12)
    y = keras.layers.Reshape((1, 1, 12))(
        keras.layers.Permute((1, 2, 4, 3))(keras.layers.Reshape((1, 1, 3, 4))(x))
    )
    assert np.asarray(y).flatten().tolist() == one("1x1x12", "shuffle 3")[1].permutation(12)
    # Normalization divides by max(sqrt(variance), 1e-7)
    norm = keras.layers.Normalization(mean=[1.0], variance=[0.0])
    np.testing.assert_allclose(
        np.asarray(norm(np.full((1, 1), 1.5, "float32"))), [[0.5 / 1e-7]], rtol=1e-5
    )


# ------------------------------------------------------------------- training outputs

AUX_HEADS = """
# torchvision's InceptionAux: computed only in training mode
block aux_head(classes) {
  adaptiveavgpool 4 -> conv_bn(128) -> flatten -> dense 1024 relu -> dropout 0.7 -> dense classes
}
aux1 = inception4a -> aux_head(1000)
aux2 = inception4d -> aux_head(1000)
output fc, aux2 (training), aux1 (training)
"""


def googlenet_with_aux() -> cnndsl.Network:
    text = (ROOT_SPECS / "googlenet_torchvision.cnn").read_text() + AUX_HEADS
    return cnndsl.loads(text, "googlenet_aux.cnn")


def test_training_outputs_are_counted_apart(refs):
    net = googlenet_with_aux()
    # the tensors aux2 and aux1 are the last layers of the calls that make them
    assert net.outputs == ["fc", "aux2_dense_2", "aux1_dense_2"]
    assert net.training_outputs == net.outputs[1:] and net.inference_outputs == ["fc"]
    a = net.analysis
    # without the auxiliary heads: torchvision's googlenet(aux_logits=False)
    plain = cnndsl.load(ROOT_SPECS / "googlenet_torchvision.cnn").analysis
    assert a.inference == (plain.trainable_params, plain.non_trainable_params, plain.macs)
    # each head: conv 512 (528) -> 128 without bias, bn, 2048 -> 1024 -> 1000
    heads = [c * 128 + 2 * 128 + 2048 * 1024 + 1024 + 1024 * 1000 + 1000 for c in (512, 528)]
    assert a.trainable_params == plain.trainable_params + sum(heads)
    assert a.non_trainable_params == plain.non_trainable_params + 2 * 2 * 128
    head_macs = [4 * 4 * 128 * c + 2048 * 1024 + 1024 * 1000 for c in (512, 528)]
    assert a.macs == plain.macs + sum(head_macs)
    assert a.training_only == {n for n in a.layers if n.startswith(("aux1", "aux2"))}
    # inference does not run the heads: its peak is the plain network's plus their weights
    extra = sum(heads) + 2 * 2 * 128
    assert a.memory().inference_peak_bytes == plain.memory().inference_peak_bytes + 4 * extra
    assert a.memory().training_bytes > plain.memory().training_bytes + 4 * extra
    # the summary says both
    assert f"Without the training-only outputs: params {plain.total_params:,}" in net.summary()
    data = json.loads(net.summary(format="json"))
    assert data["training_outputs"] == ["aux2_dense_2", "aux1_dense_2"]
    assert data["inference"]["macs"] == plain.macs
    assert cnndsl.Network.from_json(net.to_json()) == net


def test_networks_without_training_outputs_are_unchanged():
    net = cnndsl.load(ROOT_SPECS / "vgg16.cnn")
    a = net.analysis
    assert net.training_outputs == [] and a.training_only == frozenset()
    assert a.inference == (a.trainable_params, a.non_trainable_params, a.macs)
    assert "training-only" not in net.summary()
    assert "inference" not in json.loads(net.summary(format="json"))


@pytest.mark.parametrize(
    "text,message",
    [
        ("output y (eval)", "an output can be marked `(training)` only, not `(eval)`"),
        ("output y (training)", "every output is marked (training)"),
        ("output y, z (training), w (training)", "unknown tensor 'w' in output"),
    ],
)
def test_training_output_misuse(text, message):
    with pytest.raises(cnndsl.CnnDslError) as e:
        load(f"input 8x8x3\nx = 3x3 conv 4\ny = x -> gap\nz = x -> flatten\n{text}")
    assert message in str(e.value)
    assert "<string>:5:" in str(e.value)


@pytest.mark.parametrize(
    "change,message",
    [
        ({"training_outputs": ["nowhere"]}, "training output 'nowhere' is not an output"),
        ({"training_outputs": ["y", "z"]}, "every output is a training output"),
        ({"training_outputs": ["z", "z"]}, "is listed twice"),
        ({"outputs": ["y", "y", "z"]}, "is listed twice"),
    ],
)
def test_json_training_outputs_are_validated(change, message):
    net = load("input 8x8x3\nx = 3x3 conv 4\ny = x -> gap\nz = x -> flatten\noutput y, z (training)")
    data = json.loads(net.to_json())
    data.update(change)
    with pytest.raises(Exception) as e:
        cnndsl.Network.from_json(json.dumps(data))
    assert message in str(e.value)


@pytest.mark.torch
def test_training_outputs_equal_torchvisions_aux_heads():
    torch = pytest.importorskip("torch")
    from torch.utils.flop_counter import FlopCounterMode
    from torchvision.models import googlenet

    model = googlenet(weights=None, aux_logits=True, init_weights=False)
    a = googlenet_with_aux().analysis
    stats = sum(t.numel() for k, t in model.named_buffers() if k.endswith(("running_mean", "running_var")))
    assert (sum(p.numel() for p in model.parameters()), stats) == (a.trainable_params, a.non_trainable_params)
    x = torch.randn(1, 3, 224, 224)
    for train, macs in ((True, a.macs), (False, a.inference.macs)):
        model.train(train)
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            out = model(x)
        assert counter.get_total_flops() == 2 * macs
        assert isinstance(out, tuple) == train  # (logits, aux2, aux1) in training, logits in eval


def test_readme_lists_every_word_of_the_new_kinds():
    from conftest import ROOT

    from cnndsl.ir.core import _ACTIVATION_WORDS

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    classes = [c for c in Layer.registry().values() if c.model_fields["kind"].default in NEW_KINDS]
    words = [w for cls in classes for w in cls.spec_names]
    words += [w for w, function in _ACTIVATION_WORDS.items() if function in NEW_ACTIVATIONS]
    assert [w for w in words if f"`{w}`" not in readme] == []


# -------------------------------------------------------------------- the back ends
# (Every example line builds in both back ends, or is refused with a located error: the
# registry-driven tests of test_keras and test_torch.)


def test_every_activation_word_names_its_function_as_a_layer_an_option_and_a_value():
    """`hard_sigmoid`, `swish`, `lrelu`... mean their function wherever an activation is
    written: as a layer, as `activation=`, and passed to a block that uses it both ways."""
    from cnndsl.ir.core import _ACTIVATION_WORDS

    for word, function in _ACTIVATION_WORDS.items():
        net = load(
            "input 4x4x3\nblock b(act) { 1x1 conv 2 activation=act -> act }\n"
            f"1x1 conv 2 activation={word}\n{word}\nb({word})"
        )
        conv_1, activation_1, conv_2, activation_2 = net.layers[1:]
        assert [conv_1.activation, conv_2.activation] == [function] * 2, word
        assert [activation_1.function, activation_2.function] == [function] * 2, word


def test_back_ends_compute_training_outputs_only_in_training():
    # returning the auxiliary output in inference mode too would be a different model
    net = load("input 8x8x3\nx = 3x3 conv 4\ny = x -> gap\nz = x -> flatten\noutput y, z (training)")
    torch_source = net.to_source("torch")
    assert "if self.training:" in torch_source
    assert "return y, z" in torch_source and "return y\n" in torch_source
    keras_source = net.to_source("keras")
    assert "def build_model(training_outputs=False):" in keras_source
    assert "if training_outputs:" in keras_source
