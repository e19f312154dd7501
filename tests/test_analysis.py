"""Shapes, parameters, MACs, receptive fields and memory against independent computations."""

from __future__ import annotations

import math
from fractions import Fraction

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
    assert rf == {"size": [6, 6], "stride": [1, 1], "padding": [1, 1], "global": False}
    # centred branches: the largest one
    x = net("input 32x32x1\nconcat { 3x3+1(S) conv 1 | 5x5+1(S) conv 1 | 1x1+1(S) conv 1 }")
    assert x.analysis[x.outputs[0]].receptive_field.as_dict()["size"] == [5, 5]


def test_receptive_field_through_global_pooling_and_dense():
    x = net("input 32x32x3\n3x3+2(S) conv 4\nglobalavgpool\ndense 10")
    a = x.analysis
    # the conv map is 16x16 at effective stride 2: global pooling spans 15 more strides, and
    # every output sees that (stride 0: global)
    gap = a["globalavgpool_1"].receptive_field
    assert gap.as_dict() == {"size": [3 + 15 * 2] * 2, "stride": [0, 0], "padding": [0, 0], "global": True}
    assert gap.short() == "global"
    assert a["dense_1"].receptive_field == gap


def test_receptive_field_after_squeeze_excitation_stops_growing():
    # issue 10: the global pool's field was carried on as a sliding window (24/1/4 at the end)
    x = net(
        "input 16x16x4\n3x3(S) conv 4\nmultiply { identity | gap keepdims -> 1x1 conv 4 sigmoid }"
        "\n3x3(S) conv 4\n3x3(S) conv 4\n3x3(S) conv 4"
    )
    rf = x.analysis["conv_5"].receptive_field
    # every pixel of the last map depends on every input pixel: the hull of what the pooled
    # 16x16 map saw, [-1, 16]
    assert rf.as_dict() == {"size": [18, 18], "stride": [0, 0], "padding": [1, 1], "global": True}
    assert x.analysis["conv_1"].receptive_field.short() == "3/1/1"
    check_fields_by_brute_force(x)


def test_se_resnet50_fields_stop_at_the_first_squeeze_excitation():
    # was 3775 on a 224 image: every SE block grew it again
    a = cnndsl.load("specs/se_resnet50.cnn").analysis
    first = next(i.receptive_field for i in a if i.receptive_field.is_global)
    assert list(a)[-1].receptive_field == first
    assert first.size == (239, 239) and first.padding == (9, 9)  # covers the image, [-9, 229]


def test_broadcasting_a_1x1_map_is_global():
    # the 1x1 map is not from a global pooling, but multiply reads it at every position
    x = net("input 9x9x2\nmultiply { identity | 9x9(V) conv 2 }\n3x3(S) conv 2")
    assert x.analysis["multiply_1"].receptive_field.is_global
    check_fields_by_brute_force(x)


# An independent brute force for DAGs: for every node, axis and output position, the set of
# input positions it depends on, following what each layer reads (as in the article, maps
# extend beyond their edges: a padding cell at position i stands where the layer's own
# position i would be).  A node with a path through a global read (global pooling, flatten,
# a broadcast) has one set for all its positions: what its valid positions depend on.


def _reads(layer, in_shapes, out_shape, axis, o):
    """[(input index, position)] read by output position o; position None: the whole input."""
    kind = layer.kind
    if kind in ("conv", "dwconv", "sepconv", "maxpool", "avgpool"):
        before = layer.explicit_padding(list(in_shapes))[axis][0]
        k, s = layer.kernel[axis], layer.stride[axis]
        d = getattr(layer, "dilation", (1, 1))[axis]
        return [(0, o * s - before + t * d) for t in range(k)]
    if kind == "convtranspose":
        before = layer.explicit_padding(list(in_shapes))[axis][0]
        k, s, d = layer.kernel[axis], layer.stride[axis], layer.dilation[axis]
        return [(0, (o + before - t * d) // s) for t in range(k) if (o + before - t * d) % s == 0]
    if kind == "zeropad":
        return [(0, o - layer.padding[axis][0])]
    if kind == "crop":
        return [(0, o + layer.cropping[axis][0])]
    if kind == "adaptiveavgpool":  # PyTorch's bins: [floor(o*n/m), ceil((o+1)*n/m))
        n, m = in_shapes[0][axis], layer.output_size[axis]
        if m == 1:
            return [(0, None)]
        return [(0, i) for i in range(math.floor(o * n / m), math.ceil((o + 1) * n / m))]
    if kind == "upsample":
        f = layer.size[axis]
        if layer.interpolation == "nearest":
            return [(0, o // f)]
        x = Fraction(2 * o + 1, 2 * f) - Fraction(1, 2)  # half-pixel centres
        low = math.floor(x)
        return [(0, low)] if x == low else [(0, low), (0, low + 1)]
    if kind in ("globalavgpool", "globalmaxpool", "flatten") and len(in_shapes[0]) == 3:
        return [(0, None)]
    reads = []
    for k, shape in enumerate(in_shapes):
        if len(shape) == 1 or len(out_shape) == 1:
            reads.append((k, None))  # a vector: no positions
        elif shape[:2] != out_shape[:2]:
            reads.append((k, None))  # a broadcast 1x1 map: its whole map at every position
        else:
            reads.append((k, o))
    return reads


def brute_force_fields(x):
    """{(node, axis): (global, {position: set of input positions})} by brute force."""
    a = x.analysis
    result = {}
    for layer in x.layers:
        for axis in (0, 1):
            if layer.kind == "input":
                result[layer.name, axis] = (False, _Positions(lambda i: {i}))
            else:
                sources = [result[name, axis] for name in layer.inputs]
                result[layer.name, axis] = _brute_node(layer, a[layer.name], sources, axis)
    return result


def _brute_node(layer, info, sources, axis):
    out, in_shapes = info.output_shape, info.input_shapes

    def deps(k, i):
        g, table = sources[k]
        return table["all"] if g else table[i]

    def at(o):
        seen = set()
        for k, i in _reads(layer, in_shapes, out, axis, o):
            if i is None:  # the whole input: every one of its valid positions
                m = in_shapes[k][axis] if len(in_shapes[k]) == 3 else 1
                for j in range(m):
                    seen |= deps(k, j)
            else:
                seen |= deps(k, i)
        return seen

    whole = any(i is None for _, i in _reads(layer, in_shapes, out, axis, 0))
    if len(out) == 1 or whole or any(g for g, _ in sources):
        union = set()
        for o in range(out[axis] if len(out) == 3 else 1):
            union |= at(o)
        return True, {"all": union}
    return False, _Positions(at)


class _Positions(dict):
    """Positions computed on demand (later layers read them beyond the map's edges)."""

    def __init__(self, at):
        super().__init__()
        self.at = at

    def __missing__(self, i):
        self[i] = value = self.at(i)
        return value


def _rounding(x):
    """Per node and axis, how far a field may be from the exact one: the continuous field of an
    upsampling or a transposed convolution is within one pixel of that layer's input, and so is
    the window of adaptive pooling to a size that does not divide its input (its bins vary)."""
    a = x.analysis
    slack = {}
    for layer in x.layers:
        for axis in (0, 1):
            e = max((slack[name, axis] for name in layer.inputs), default=0)
            rf_in = a[layer.inputs[0]].receptive_field if layer.inputs else None
            fractional = (layer.kind == "upsample" and layer.size[axis] > 1) or (
                layer.kind == "convtranspose" and layer.stride[axis] > 1
            ) or (
                layer.kind == "adaptiveavgpool"
                and a[layer.name].input_shapes[0][axis] % layer.output_size[axis] != 0
            )
            if fractional and rf_in is not None:
                e += rf_in.stride[axis]
            slack[layer.name, axis] = e
    return slack


def check_fields_by_brute_force(x):
    """Every node's receptive field against :func:`brute_force_fields`, at every position."""
    a = x.analysis
    brute = brute_force_fields(x)
    slack = _rounding(x)
    for layer in x.layers[1:]:
        rf = a[layer.name].receptive_field
        out = a[layer.name].output_shape
        for axis in (0, 1):
            r, j, p = rf.size[axis], rf.stride[axis], rf.padding[axis]
            g, table = brute[layer.name, axis]
            e = slack[layer.name, axis]
            where = f"{layer.name} axis {axis}: {rf}"
            assert g == (j == 0), where
            positions = ["all"] if g else range(out[axis])
            for o in positions:
                seen = table[o]
                if not seen:  # depends on no pixel (a transposed conv's gap): nothing to check
                    continue
                start = -p if g else o * j - p
                assert abs(min(seen) - start) <= e, (where, o, min(seen), start)
                assert abs(max(seen) - (start + r - 1)) <= e, (where, o, max(seen), start + r - 1)


def _kspec(draw, kinds):
    kind = draw(st.sampled_from(kinds))
    k = draw(st.integers(1, 4))
    s = draw(st.integers(1, 3))
    pad = draw(st.sampled_from(["S", "V", "explicit"]))
    if kind in ("maxpool", "avgpool"):
        if pad == "explicit":
            p = draw(st.integers(0, k // 2))
            return f"{k}x{k}+{s}({p}) {kind}" + draw(st.sampled_from(["", " ceil"]))
        return f"{k}x{k}+{s}({pad}) {kind}"
    d = draw(st.integers(1, 2)) if s == 1 else 1
    dil = f" dilation={d}" if d > 1 else ""
    if kind == "convtranspose":
        k = max(k, s)  # k < s leaves outputs that read nothing
        if pad == "explicit":
            pad = str(draw(st.integers(0, (k - 1) // 2)))
        return f"{k}x{k}+{s}({pad}) convtranspose 2{dil}"
    filters = "" if kind == "dwconv" else " 2"
    if pad == "explicit":
        t, b, l, r = (draw(st.integers(0, 2)) for _ in range(4))
        return f"{k}x{k}+{s}(V) {kind}{filters} padding=(({t}, {b}), ({l}, {r})){dil}"
    return f"{k}x{k}+{s}({pad}) {kind}{filters}{dil}"


@st.composite
def _branch(draw):
    """A chain that keeps the height and width (on even sizes)."""
    units = []
    for _ in range(draw(st.integers(1, 2))):
        k = draw(st.integers(1, 4))
        d = draw(st.integers(1, 2))
        dil = f" dilation={d}" if d > 1 else ""
        k_eff = d * (k - 1) + 1
        a, b = draw(st.integers(0, k_eff - 1)), draw(st.integers(0, k_eff - 1))
        units.append(draw(st.sampled_from([
            "identity",
            f"{k}x{k}(S) conv 2{dil}",
            f"{k}x{k}(V) conv 2{dil} -> zeropad padding=(({a}, {k_eff - 1 - a}), ({b}, {k_eff - 1 - b}))",
            "2x2+2 maxpool -> upsample 2" + draw(st.sampled_from(["", " bilinear"])),
            f"{k}x{k}+2(S) conv 2 -> {max(k, 2)}x{max(k, 2)}+2(S) convtranspose 2",
            "2x2+2 avgpool -> 2x2+2(V) convtranspose 2",
        ])))
    return " -> ".join(units)


@st.composite
def dag_specs(draw):
    h, w = draw(st.integers(6, 16)), draw(st.integers(6, 16))
    lines = [f"input {h}x{w}x2"]
    for i in range(draw(st.integers(1, 6))):
        unit = draw(st.sampled_from(["layer", "layer", "merge", "se", "skip", "upsample", "global"]))
        if unit == "layer":
            lines.append(_kspec(draw, ["conv", "dwconv", "sepconv", "maxpool", "avgpool", "convtranspose"]))
        elif unit == "upsample":
            f = draw(st.integers(1, 3))
            lines.append(f"upsample size=({f}, {draw(st.integers(1, 3))})" + draw(st.sampled_from(["", " bilinear"])))
        elif unit == "merge":
            branches = draw(st.lists(_branch(), min_size=2, max_size=3))
            merge = draw(st.sampled_from(["add", "concat"]))
            lines.append(f"{merge} {{ " + " | ".join(branches) + " }")
            if merge == "concat":
                lines.append("1x1 conv 2")
        elif unit == "se":
            lines.append(draw(st.sampled_from([
                "multiply { identity | gap keepdims -> 1x1 conv 2 sigmoid }",
                "multiply { identity | gmp -> dense 2 sigmoid }",
            ])))
        elif unit == "skip":
            lines.append(f"t{i} = relu")
            lines.append(draw(_branch()))
            lines.append(draw(st.sampled_from([f"add(t{i})", f"concat(t{i}) -> 1x1 conv 2"])))
        else:  # a global map carried on, upsampled and merged
            lines.append(draw(st.sampled_from([
                "gap keepdims -> 1x1 conv 2 -> upsample 3",
                "flatten -> dense 4",
                "gap -> dense 4",
                f"t{i} = relu\ngap keepdims -> 1x1 conv 2 -> upsample 2 -> zeropad 1 -> 3x3(S) conv 2",
            ])))
        if lines[-1].startswith(("flatten", "gap ->")):
            break
    return "\n".join(lines)


@settings(max_examples=300, deadline=None)
@given(dag_specs())
def test_receptive_fields_of_dags_match_brute_force(spec):
    try:
        x = net(spec)
        x.analysis
    except cnndsl.CnnDslError:  # shapes that do not fit: not a test case
        return
    a = x.analysis
    for layer in x.layers:  # the field of a merge of unaligned paths is not exact (documented)
        strides = {a[name].receptive_field.stride for name in layer.inputs}
        if len(layer.inputs) > 1 and len({s for s in strides if 0 not in s}) > 1:
            return
    check_fields_by_brute_force(x)


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


# ------------------------------------------------------------------ the elaborator's origins


@pytest.mark.parametrize("name", ["googlenet", "resnet152_torchvision", "se_resnet50", "unet", "mobilenet_v2_keras"])
def test_facts_shared_through_origins_equal_facts_computed_per_node(name):
    # the elaborator's Origins let nodes placed from one layer share their facts: the same
    # facts as analysing every node on its own
    from cnndsl.analysis import analyze

    x = cnndsl.load(f"specs/{name}.cnn", analyze=False)
    origins = x._origins
    assert origins is not None and len(origins.templates) == len(x.layers)
    assert len({id(t) for t in origins.templates}) < len(x.layers)  # some nodes share one
    shared, alone = analyze(x, origins), analyze(x)
    assert list(shared) == list(alone)
    assert shared.memory(batch_size=3) == alone.memory(batch_size=3)
    x.analysis  # noqa: B018
    assert x._origins is None  # handed over once, then dropped


def test_origins_follow_the_layers_they_describe():
    from cnndsl.analysis import analyze
    from cnndsl.ir import Origins

    x = cnndsl.loads("input 8x8x3\n3x3(S) conv 4\nrelu", analyze=False)
    with pytest.raises(ValueError, match="another list of layers"):
        analyze(x, Origins(x._origins.templates[:2], x._origins.inputs[:2]))
    x.layers = list(reversed(x.layers))[::-1]  # assigning layers drops what described the old
    assert x._origins is None and x.analysis.total_params == 3 * 3 * 3 * 4 + 4
