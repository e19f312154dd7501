"""Shapes, parameters, MACs, receptive fields and memory against independent computations."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cnndsl
from cnndsl.ir.geometry import same_padding, window_output


def net(text: str) -> cnndsl.Network:
    return cnndsl.loads(text)


# ------------------------------------------------------------------------------- geometry


@pytest.mark.parametrize(
    "n,k,s,expected",
    [(224, 7, 2, (2, 3)), (112, 3, 2, (0, 1)), (113, 3, 2, (1, 1)), (5, 1, 2, (0, 0)), (6, 4, 1, (1, 2))],
)
def test_tensorflow_same_padding(n, k, s, expected):
    # TensorFlow: out = ceil(n / s), total = max((out - 1) * s + k - n, 0), smaller half first
    assert same_padding(n, k, s) == expected


@settings(max_examples=300, deadline=None)
@given(n=st.integers(1, 60), k=st.integers(1, 7), s=st.integers(1, 4), d=st.integers(1, 3))
def test_valid_and_same_sizes(n, k, s, d):
    k_eff = d * (k - 1) + 1
    assert window_output(n, k, s, d, "same", 0)[0] == math.ceil(n / s)
    assert window_output(n, k, s, d, "valid", 0)[0] == math.floor((n - k_eff) / s) + 1


@settings(max_examples=300, deadline=None)
@given(n=st.integers(1, 40), k=st.integers(1, 6), s=st.integers(1, 4), p=st.integers(0, 3))
def test_ceil_mode_follows_pytorch(n, k, s, p):
    if n + 2 * p < k or 2 * p > k:
        return
    out = window_output(n, k, s, 1, ((p, p), (p, p)), 0, ceil_mode=True)[0]
    # torch.nn.MaxPool2d(ceil_mode=True): windows may run off the end but must start inside
    # the input or the left padding
    expected = math.ceil((n + 2 * p - k) / s) + 1
    if (expected - 1) * s >= n + p:
        expected -= 1
    assert out == expected


# ------------------------------------------------------------------------ params and MACs


def test_parameters_and_macs_per_kind():
    n = net(
        """
        input 10x10x8
        c = 3x3+1(S) conv 16
        g = 3x3+1(S) conv 16 groups=4 bias=off
        d = 3x3+1(S) dwconv 2
        s = 3x3+1(S) sepconv 8
        t = 2x2+2(V) convtranspose 4
        b = bn
        f = flatten
        y = dense 5
        """
    )
    a = n.analysis
    assert (a["c"].params, a["c"].macs) == (3 * 3 * 8 * 16 + 16, 10 * 10 * 16 * 9 * 8)
    assert (a["g"].params, a["g"].macs) == (3 * 3 * 4 * 16, 10 * 10 * 16 * 9 * 4)
    assert (a["d"].params, a["d"].macs) == (9 * 32 + 32, 10 * 10 * 32 * 9)
    assert (a["s"].params, a["s"].macs) == (9 * 32 + 32 * 8 + 8, 10 * 10 * 32 * 9 + 10 * 10 * 32 * 8)
    assert a["t"].output_shape == (20, 20, 4)
    assert (a["t"].params, a["t"].macs) == (2 * 2 * 8 * 4 + 4, 10 * 10 * 8 * 4 * 4)
    assert (a["b"].trainable_params, a["b"].non_trainable_params) == (8, 8)
    assert (a["y"].params, a["y"].macs) == (20 * 20 * 4 * 5 + 5, 1600 * 5)


@pytest.mark.parametrize(
    "layer,n,expected",
    [
        ("3x3+2(S) convtranspose 1", 5, 10),  # Keras: SAME multiplies by the stride
        ("3x3+2(V) convtranspose 1", 5, 11),  # (n - 1) * s + k
        ("2x2+3(V) convtranspose 1", 5, 15),  # n * s when k < s (Keras)
        ("3x3+2(1) convtranspose 1", 5, 9),  # PyTorch: (n - 1) * s - 2p + k
        ("3x3+2(1) convtranspose 1 output_padding=1", 5, 10),
        ("3x3+2(S) convtranspose 1 output_padding=0", 5, 9),
    ],
)
def test_transposed_output_sizes(layer, n, expected):
    x = net(f"input {n}x{n}x1\n{layer}")
    assert x.shape(x.outputs[0]) == (expected, expected, 1)


# ------------------------------------------------------------------- receptive fields
# An independent, brute-force computation: follow the input pixels each output pixel reads
# (padding cells count as pixels at negative or overflowing positions), one axis at a time.


def brute_force_field(layers_1d, o: int = 3):
    """layers_1d: [(kernel, stride, dilation, pad_before)]: (size, start) of output o's field."""
    positions = {o}
    for k, s, d, before in reversed(layers_1d):
        positions = {i * s - before + t * d for i in positions for t in range(k)}
    return max(positions) - min(positions) + 1, min(positions)


layer_strategy = st.tuples(
    st.sampled_from(["conv", "maxpool", "avgpool"]),
    st.integers(1, 5),  # kernel
    st.integers(1, 3),  # stride
    st.sampled_from(["S", "V", "1"]),
    st.integers(1, 2),  # dilation (convs only)
)


@settings(max_examples=150, deadline=None)
@given(st.lists(layer_strategy, min_size=1, max_size=6))
def test_receptive_field_matches_brute_force(stack):
    lines = []
    for kind, k, s, pad, d in stack:
        if kind != "conv":
            d = 1
        if pad == "1" and kind != "conv" and k < 2:
            pad = "V"
        if kind == "conv" and d > 1 and s > 1:
            s = 1
        option = f" dilation={d}" if d > 1 else ""
        lines.append(f"{k}x{k}+{s}({pad}) {kind}{' 1' if kind == 'conv' else ''}{option}")
    spec = "input 200x200x1\n" + "\n".join(lines)
    try:
        x = net(spec)
    except cnndsl.CnnDslError:  # the map shrank below the window: not a test case
        return
    one_d = []
    for layer in x.layers[1:]:
        before = layer.explicit_padding(list(x.analysis[layer.name].input_shapes))[0][0]
        one_d.append((layer.kernel[0], layer.stride[0], getattr(layer, "dilation", (1, 1))[0], before))
    rf = x.analysis[x.outputs[0]].receptive_field.as_dict()
    size, start = brute_force_field(one_d)
    stride = math.prod(s for _, s, _, _ in one_d)
    assert rf["size"][0] == size
    assert rf["stride"][0] == stride
    assert 3 * stride - rf["padding"][0] == start  # output 3 starts at 3 * stride - padding


def test_receptive_field_of_a_dag_is_the_union_of_paths():
    # one branch sees [-1, 1] around each output pixel, the other [0, 4]: the union is [-1, 4]
    x = net("input 32x32x1\nadd {\n 3x3+1(1) conv 1\n| 5x5+1(V) conv 1 -> zeropad padding=((0, 4), (0, 4))\n}")
    rf = x.analysis[x.outputs[0]].receptive_field.as_dict()
    assert rf == {"size": [6, 6], "stride": [1, 1], "padding": [1, 1]}
    # centred branches: the largest one
    x = net("input 32x32x1\nconcat { 3x3+1(S) conv 1 | 5x5+1(S) conv 1 | 1x1+1(S) conv 1 }")
    assert x.analysis[x.outputs[0]].receptive_field.as_dict()["size"] == [5, 5]


def test_receptive_field_through_global_pooling_and_dense():
    x = net("input 32x32x3\n3x3+2(S) conv 4\nglobalavgpool\ndense 10")
    a = x.analysis
    # the conv map is 16x16 at effective stride 2: global pooling spans 15 more strides
    assert a["globalavgpool_1"].receptive_field.as_dict()["size"] == [3 + 15 * 2] * 2
    assert a["dense_1"].receptive_field == a["globalavgpool_1"].receptive_field


def test_vector_inputs_have_no_receptive_field():
    x = net("input 10\ndense 4")
    assert x.analysis["dense_1"].receptive_field is None


# --------------------------------------------------------------------------------- memory


def test_inference_peak_of_a_stack_is_two_consecutive_layers():
    x = net("input 10x10x1\n3x3+1(S) conv 8\n3x3+1(S) conv 2\n3x3+1(S) conv 16\nflatten")
    sizes = [100, 800, 200, 1600, 1600]
    m = x.analysis.memory(batch_size=3, dtype="float16")
    params = x.analysis.total_params
    pairs = max(a + b for a, b in zip(sizes, sizes[1:]))
    assert m.inference_peak_bytes == pairs * 3 * 2 + params * 2
    assert m.training_bytes == sum(sizes) * 3 * 2 + params * 2
    assert m.params_bytes == params * 2


def test_inference_peak_keeps_skip_connections_alive():
    x = net("input 10x10x4\nadd {\n 1x1 conv 4 -> 1x1 conv 4 -> 1x1 conv 4\n| identity\n}")
    # while the last conv runs: the input (kept for the add), its input and its output --
    # three 10x10x4 maps, where a plain stack would need two
    m = x.analysis.memory()
    assert m.inference_peak_bytes == 3 * 400 * 4 + x.analysis.total_params * 4


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 10**6), st.integers(0, 12)), min_size=1, max_size=12))
def test_peak_live_elements_against_brute_force(nodes):
    from cnndsl.analysis.memory import peak_live_elements

    sizes = [size for size, _ in nodes]
    n = len(sizes)
    last_use = [min(n, i + reach) for i, (_, reach) in enumerate(nodes)]  # may be the end (n)
    # while node i runs, tensor k is alive if it was made by then and is read at i or later
    brute = max(
        sum(sizes[k] for k in range(i + 1) if max(last_use[k], k) >= i) for i in range(n)
    )
    assert peak_live_elements(sizes, last_use) == brute


def test_memory_dtypes():
    a = net("input 4x4x1\nrelu").analysis
    assert a.memory(dtype="bfloat16").activation_bytes == 32 * 2
    with pytest.raises(ValueError):
        a.memory(dtype="int8")


# ---------------------------------------------------------------------------- big inputs


def test_absurd_sizes_are_computed_not_allocated():
    x = net("input 1000000000x1000000000x3\n3x3+2(S) conv 64\nglobalavgpool")
    a = x.analysis
    assert a["conv_1"].output_shape == (500000000, 500000000, 64)
    assert a["conv_1"].macs == 500000000**2 * 64 * 27
    assert a.memory().activation_bytes == (3 * 10**18 + 64 * 25 * 10**16 + 64) * 4


def test_a_load_leaves_no_reference_cycles():
    # A network, its analysis and everything made on the way are freed as soon as they are
    # unused: a cycle would leave each load to the garbage collector (and a slower warm loop).
    import gc

    cnndsl.load("specs/googlenet.cnn")  # the first load in a process loads the grammar
    gc.collect()
    gc.disable()
    try:
        net = cnndsl.load("specs/googlenet.cnn")  # blocks, named calls, merges
        net.analysis.memory(batch_size=2)
        assert net.analysis["inception_3a_concat_1"].output_shape == (28, 28, 256)
        del net
        assert gc.collect() == 0
    finally:
        gc.enable()
