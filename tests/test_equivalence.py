"""The Keras and PyTorch back ends compute the same function: a proof by experiment.

For every spec of the zoo and hand-written specs of every layer kind and padding case, both
models are built, the Keras weights are randomized (He-scaled kernels, random biases, gamma and
beta, and batch-norm moving statistics that are neither 0 nor 1: calibrated on another random
batch so that deep networks keep O(1) activations, then perturbed), copied into the PyTorch
model by :func:`cnndsl.backends.transfer.keras_to_torch`, and both run in inference mode on the
same random input (NHWC for Keras, NCHW for PyTorch).  Not only the outputs are compared but
every node's value (the Keras layer that gives it; PyTorch's value through ``build(tap=)``):
a difference is caught where it arises, even when a softmax or a max pooling downstream would
hide it.  Every node must agree within TOLERANCE (relative to its magnitude when above 1).

float32 hides differences below its rounding, and the deepest network rounds more than
TOLERANCE: the small specs and the deepest network are also run in float64 in both frameworks,
where they agree to about 1e-12.  :func:`torch_to_keras` is checked the other way round, and
both for exact round trips.

Run as a script (``python tests/test_equivalence.py [names]``) to print the table of observed
differences.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import SPEC_FILES, free_memory, trim_memory  # noqa: E402  (first: torch, then TF)

torch = pytest.importorskip("torch")
keras = pytest.importorskip("keras")

import cnndsl  # noqa: E402
from cnndsl.backends import keras as keras_backend  # noqa: E402
from cnndsl.backends import torch as torch_backend  # noqa: E402
from cnndsl.backends.transfer import finalize, keras_to_torch, torch_to_keras  # noqa: E402
from cnndsl.ir.examples import example_lines, example_spec  # noqa: E402

from test_keras import SMALL  # noqa: E402
from test_torch import HAND_SPECS  # noqa: E402

# Each test's models are dropped, and their memory given back, before the next is built
# (without, the suite's process grew to 4.4 GB by ResNet-152 and VGG-16 took it to 7.5).
pytestmark = [pytest.mark.keras, pytest.mark.torch, pytest.mark.usefixtures("freed")]
torch.set_num_threads(min(2, torch.get_num_threads()))

TOLERANCE = 1e-4
"""Largest difference allowed between the frameworks at a node whose values are at most 1 in
magnitude; a node whose values reach M > 1 is allowed TOLERANCE * M (a relative 1e-4: float32
sums of many products round in proportion to their size)."""

FLOAT32_LIMITED = {
    "resnet152_torchvision": "50 residual blocks: float32 rounding, relative to the large mean"
    " of the post-ReLU residual stream, grows each time a convolution or batch norm removes that"
    " mean, to about 1e-3 relative by the last blocks; PyTorch alone is as far from float64",
}
"""Specs too deep for TOLERANCE in float32, with why.  For them the frameworks must agree with
the float64 function instead: at every node, Keras's float32 value is no further from the
float64 PyTorch value than FLOAT64_FACTOR times PyTorch's own float32 value is (or within
TOLERANCE).  A semantic difference would put Keras far off while PyTorch stays close."""
FLOAT64_FACTOR = 3.0

FLOAT64_TOLERANCE = 1e-6
"""Largest difference allowed, relative to max(1, |value|), when both frameworks compute in
float64.  They agree to about 1e-12 there, except that TensorFlow's LeakyRelu op keeps its slope
as a float32 attribute (0.2 -> 0.20000000298...): 1e-8 relative after a leakyrelu.  (In float32
both frameworks use the float32 slope.)"""

NO_FLOAT64 = {
    "keras_transposed": "TensorFlow's CPU kernels refuse float64 transposed convolutions with"
    " dilation",
    "corners": "the same",
}
"""Specs whose Keras model cannot run in float64, with why."""

# What the small specs of test_keras.py and test_torch.py leave out.
EXTRA = {
    "corners": """
        network corners
        input x 29x22x6
        input v 12
        a = x -> 1x7 conv 8 padding=((0, 0), (3, 3)) relu       # non-square kernels
        a -> 7x1 conv 8 padding=((3, 3), (0, 0)) stride=(2, 1)   # non-square stride
        3x3 dwconv 2 stride=2 padding=((1, 0), (0, 1)) nobias   # explicit asymmetric, odd sizes
        3x3(S) sepconv 12 dilation=2 nobias leakyrelu
        lrn 3 alpha=0.3 beta=0.6 bias=1.5                       # strong: the window shows
        depthmaxpool 3 -> 1x1 conv 12
        3x3+2(S) sepconv 12 depth_multiplier=3 relu            # SAME stride 2, odd rows
        b = 3x3+2(S) maxpool
        c = b -> 3x3+2(S) convtranspose 6 output_padding=(0, 1) tanh
        d = c -> 5x5+2 convtranspose 4 padding=((1, 2), (1, 3)) output_padding=1
        e = d -> 3x3 convtranspose 4 dilation=2 padding=same
        f = e -> 4x4+2 avgpool padding=((2, 1), (1, 2)) include_pad=off
        g = e -> 4x4+2 avgpool padding=((2, 1), (1, 2)) include_pad=on
        h = f -> add(g) -> multiply(g) -> bn center=off scale=off epsilon=0.01
        w = v -> dense 6 nobias -> bn momentum=0.5 -> gelu
        s = h -> gap -> concat(w) -> dense 4 sigmoid
        o1 = h -> multiply(s) -> 2x2+2(S) maxpool -> flatten -> dense 3 softmax
        o2 = w -> concat(s) -> bn scale=off -> dense 2 relu6
        output o1, o2, h
    """,
    "training_heads": """
        network training_heads
        input 16x16x3
        block head(n) { gap -> layernorm -> dense n }
        x = 3x3(S) conv 8 bias=off -> bn -> relu
        aux1 = head(3)
        x -> 3x3(S) conv 8 relu
        aux2 = 1x1 conv 2 -> flatten -> dense 4
        x -> 3x3+2(S) conv 8 relu -> gap
        logits = dense 5
        output aux2 (training), logits, aux1 (training)
    """,
}

CASES: dict[str, tuple[str, str]] = {p.stem: ("file", str(p)) for p in SPEC_FILES}
CASES.update({f"keras_{k}": ("text", v) for k, v in SMALL.items()})
CASES.update({f"torch_{k}": ("text", v) for k, v in HAND_SPECS.items()})
CASES.update({k: ("text", v) for k, v in EXTRA.items()})


# Every example line of the registry (cnndsl/ir/examples.py) whose kind both back ends express
# (an input alone computes nothing).
EXAMPLES = {
    f"example_{i}_{kind}": example_spec(shape, line)
    for i, (kind, shape, line) in enumerate(example_lines())
    if kind != "input"
    and not any(
        type(layer) in keras_backend.UNSUPPORTED or type(layer) in torch_backend.UNSUPPORTED
        for layer in cnndsl.loads(example_spec(shape, line)).layers
    )
}


def load(name: str) -> cnndsl.Network:
    if name in EXAMPLES:
        return cnndsl.loads(EXAMPLES[name], f"{name}.cnn")
    how, what = CASES[name]
    if how == "file":
        return cnndsl.load(what)
    return cnndsl.loads(textwrap.dedent(what), f"{name}.cnn")


# ------------------------------------------------------------------ random weights


def _fan_in(node, var) -> int:
    """The number of terms each output of a kernel sums (He initialization's fan-in)."""
    shape = tuple(var.shape)
    if node.kind in ("dense", "pointwise"):
        return shape[0]
    if node.kind == "dwconv" or var.name == "depthwise_kernel":
        return shape[0] * shape[1]
    if node.kind == "convtranspose":  # an output gathers about kh*kw/(sh*sw) taps per channel
        sh, sw = node.stride
        return max(1, shape[0] * shape[1] * shape[3] // (sh * sw))
    return shape[0] * shape[1] * shape[2]


def _assign_he_normal(var, rng: np.random.Generator, std: float) -> None:
    """``var.assign(rng.standard_normal(shape) * std)``, the same numbers, drawn and assigned 16
    million at a time (slices of the first axis).  Memory: VGG-16's first dense kernel (103
    million weights) drawn whole in float64, scaled, cast and assigned took 2 GB for a moment;
    assigning a variable whole takes twice its size for a moment, by slices once (and a
    variable assigned by slices copies itself when read: once more, in the transfer)."""
    shape = tuple(var.shape)
    row = int(np.prod(shape[1:]))
    rows = max(1, 2**24 // max(row, 1))
    if rows >= shape[0]:
        var.assign((rng.standard_normal(shape) * std).astype(var.dtype))
        return
    for start in range(0, shape[0], rows):
        n = min(rows, shape[0] - start)
        chunk = (rng.standard_normal((n, *shape[1:])) * std).astype(var.dtype)
        var.value[start : start + n].assign(chunk)  # in place: a tf.Variable's slice


def randomize(net: cnndsl.Network, model, seed: int = 0, calibration=None) -> None:
    """Random Keras weights: He-normal kernels, biases N(0, 0.1), gamma U(0.5, 1.5) (of batch
    and layer norms and layer scales), beta N(0, 0.2), a normalization's mean N(0, 0.5),
    variance U(0.5, 2) and count; batch-norm moving statistics are the batch statistics of ``calibration`` (one
    training-mode pass with momentum 0, dropout on), then perturbed: mean + 0.1 std N(0, 1),
    variance * U(0.7, 1.4)."""
    rng = np.random.default_rng(seed)
    norms = []
    for node in net.layers:
        if node.kind == "input" or not net.analysis[node.name].params:
            continue
        layer = model.get_layer(node.name)
        for var in layer.weights:
            shape, name = tuple(var.shape), var.name
            if name.endswith("kernel"):
                _assign_he_normal(var, rng, np.sqrt(2.0 / _fan_in(node, var)))
                continue
            if name == "bias":
                value = rng.normal(0, 0.1, shape)
            elif name == "gamma":
                value = rng.uniform(0.5, 1.5, shape)
            elif name == "beta":
                value = rng.normal(0, 0.2, shape)
            elif name == "moving_mean":
                value = rng.normal(0, 0.5, shape)
            elif name == "moving_variance":
                value = rng.uniform(0.5, 2.0, shape)
            elif name == "mean":  # a normalization's statistics
                value = rng.normal(0, 0.5, shape)
            elif name == "variance":
                value = rng.uniform(0.5, 2.0, shape)
            elif name == "count":
                value = rng.integers(1, 1000, shape)
            else:
                raise AssertionError(f"unexpected weight {var.path}")
            var.assign(value.astype(var.dtype))
        finalize([layer])  # a Normalization computes with copies of its statistics
        if node.kind == "batchnorm":
            norms.append(layer)
    if norms and calibration is not None:
        momenta = [layer.momentum for layer in norms]
        for layer in norms:
            layer.momentum = 0.0
        model(calibration, training=True)
        for layer, momentum in zip(norms, momenta):
            layer.momentum = momentum
            mean, var = layer.moving_mean.numpy(), layer.moving_variance.numpy()
            mean = mean + 0.1 * np.sqrt(var) * rng.standard_normal(mean.shape)
            var = np.maximum(var, 1e-2) * rng.uniform(0.7, 1.4, var.shape)
            layer.moving_mean.assign(mean.astype("float32"))
            layer.moving_variance.assign(var.astype("float32"))


def keras_model(net: cnndsl.Network):
    """The Keras model of every node: with its training outputs, if it has any."""
    return keras_backend.build(net, training_outputs=bool(net.training_outputs))


def random_inputs(net: cnndsl.Network, batch: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((batch, *node.shape)).astype("float32") for node in net.inputs]


def keras_args(xs: list[np.ndarray]):
    return xs[0] if len(xs) == 1 else xs


def to_nchw(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2) if x.ndim == 4 else x))


def to_nhwc(t: torch.Tensor) -> np.ndarray:
    t = t.detach().cpu().numpy()
    return t.transpose(0, 2, 3, 1) if t.ndim == 4 else t


# ------------------------------------------------------------------ running both


def keras_values(net: cnndsl.Network, model, inputs: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Every node's value in the Keras model (inference mode), by node name."""
    names = keras_backend.layer_names(net)
    nodes = [n.name for n in net.layers if n.kind != "input"]
    probe = keras.Model(model.inputs, [model.get_layer(names[n][-1]).output for n in nodes])
    out = probe(inputs, training=False)  # probe is built on model.inputs, a list
    out = list(out) if isinstance(out, (list, tuple)) else [out]
    del probe
    out.reverse()
    values = {}
    for n in nodes:  # a view of the tensor, not a copy (ResNet-152's: 600 MB in float64)
        values[n] = np.asarray(out.pop())
    return values


def torch_values(net: cnndsl.Network, model, inputs: list[np.ndarray], dtype=torch.float32):
    """Every node's value in the PyTorch model (eval mode, channels last), by node name, and
    the outputs.  ``model`` is a state dict or a model: its weights go into a model built with
    a tap."""
    values: dict[str, torch.Tensor] = {}
    tapped = torch_backend.build(net, tap=values.__setitem__)
    state = model if isinstance(model, dict) else model.state_dict()
    tapped.load_state_dict(state)
    return run_tapped(net, tapped.to(dtype), values, inputs, dtype)


def run_tapped(net: cnndsl.Network, tapped, values: dict, inputs: list[np.ndarray], dtype=torch.float32):
    """:func:`torch_values` of a model built with ``tap=values.__setitem__``, in ``dtype``."""
    values.clear()
    out = forward(net, tapped, inputs, dtype)
    result = {n: to_nhwc(v) for n, v in values.items()}
    values.clear()
    return result, out


def forward(net: cnndsl.Network, model, inputs: list[np.ndarray], dtype) -> list[np.ndarray]:
    """The outputs of the PyTorch model (eval mode, channels last)."""
    model.eval()
    if net.training_outputs:  # computed in training mode: the root's, its layers in eval mode
        model.train()
        for module in model.children():
            module.eval()
    with torch.no_grad():
        out = model(*(to_nchw(x).to(dtype) for x in inputs))
    out = list(out) if isinstance(out, tuple) else [out]
    return [to_nhwc(t) for t in out]


class Pair:
    """A network's two models, the Keras one randomized and copied into the PyTorch one (built
    with a tap, so that one copy of the weights gives every node's value), and a random input.
    Memory: VGG-16's weights take 553 MB in each framework, and Keras takes as much again for a
    moment when it initializes them or a forward pass reads them, so the Keras values are
    computed before the PyTorch model exists, and the Keras model is dropped once copied."""

    def __init__(self, name: str, seed: int = 0):
        self.name = name
        self.net = load(name)
        self.keras = keras_model(self.net)
        # a batch of 2 (1 for the zoo's 224x224 networks, to keep the run short)
        small = sum(int(np.prod(n.shape)) for n in self.net.inputs) <= 64 * 64 * 3
        batch = 2 if small else 1
        calibration = random_inputs(self.net, 8 if small else 2, seed + 1)
        randomize(self.net, self.keras, seed, keras_args(calibration))
        del calibration
        trim_memory()  # what the calibration pass computed (ResNet-152: 600 MB)
        self.inputs = random_inputs(self.net, batch, seed + 2)
        self.keras_values = keras_values(self.net, self.keras, self.inputs)
        self.values: dict[str, torch.Tensor] = {}
        self._sink = self.values.__setitem__  # where the tap puts a node's value
        self.torch = self._tapped_torch()
        keras_to_torch(self.net, self.keras, self.torch)
        self.keras = None  # its values are computed and its weights copied: drop it
        free_memory()

    def _tapped_torch(self):
        """A PyTorch model of the network whose tap hands every node's value to ``_sink``."""
        return torch_backend.build(self.net, tap=lambda node, value: self._sink(node, value))

    def run(self) -> tuple[dict, dict, list]:
        """Keras's node values, PyTorch's, and PyTorch's outputs."""
        values, outputs = run_tapped(self.net, self.torch, self.values, self.inputs)
        return self.keras_values, values, outputs

    def stream(self, dtype, each) -> None:
        """Run the PyTorch model in ``dtype`` (converted in place, and back to float32 after:
        float32 -> float64 -> float32 is exact), handing each node's value (channels last) to
        ``each(node, value)`` as it is computed, and keeping none."""
        self._sink = lambda node, value: each(node, to_nhwc(value))
        try:
            forward(self.net, self.torch.to(dtype), self.inputs, dtype)
        finally:
            self._sink = self.values.__setitem__
            self.torch.float()

    def float64_failures(self, want: dict, values: dict) -> list[str]:
        """``float64_check(want, values, exact) + float64_agreement(self, exact)`` where
        ``exact = self.run_float64()``, without every node's value held four times at once
        (ResNet-152's take 300 MB in float32, 600 MB in float64): the float64 PyTorch values
        are checked as they are computed (twice), and ``want`` and ``values`` emptied on the
        way."""
        bad: list[str] = []

        def check(node, x):
            bad.extend(float64_check({node: want.pop(node)}, {node: values.pop(node)}, {node: x}))

        self.stream(torch.float64, check)
        free_memory()
        keras64 = self.run_keras_float64(park=True)

        def agree(node, x):
            bad.extend(float64_disagreements({node: keras64.pop(node)}, {node: x}))

        self.stream(torch.float64, agree)
        assert not keras64, f"Keras nodes PyTorch lacks: {sorted(keras64)[:5]}"
        return bad

    def run_float64(self) -> dict[str, np.ndarray]:
        """Every node's value in a float64 copy of the PyTorch model, on the same input: the
        function both float32 models approximate."""
        return torch_values(self.net, self.torch, self.inputs, torch.float64)[0]

    def run_keras_float64(self, park: bool = False) -> dict[str, np.ndarray]:
        """Every node's value in a float64 Keras model with the same weights, on the same
        input.  With ``park``, the PyTorch model waits in a temporary file while the Keras model
        runs (which holds every node's value at once: ResNet-152's, 600 MB, beside its 480 MB
        of weights, and the PyTorch model's 240 MB)."""
        with keras_float64():
            model = keras_model(self.net)
        torch_to_keras(self.net, self.torch, model)
        inputs = [x.astype(np.float64) for x in self.inputs]
        if not park:
            values = keras_values(self.net, model, inputs)
        else:
            with tempfile.TemporaryFile() as parked:
                torch.save(self.torch.state_dict(), parked)
                self.torch = None
                free_memory()
                values = keras_values(self.net, model, inputs)
                del model
                free_memory()
                parked.seek(0)
                self.torch = self._tapped_torch()
                self.torch.load_state_dict(torch.load(parked, weights_only=True))
        assert all(v.dtype == np.float64 for v in values.values())
        return values


@contextlib.contextmanager
def keras_float64():
    """Keras builds float64 models within."""
    floatx, policy = keras.config.floatx(), keras.config.dtype_policy()
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")
    try:
        yield
    finally:
        keras.config.set_floatx(floatx)
        keras.config.set_dtype_policy(policy)


def compare(want: dict[str, np.ndarray], got: dict[str, np.ndarray]) -> dict[str, tuple]:
    """{node: (max abs difference, max abs value)}; shapes must agree, values be finite."""
    assert set(want) == set(got)
    result = {}
    for node, a in want.items():
        b = got[node]
        assert a.shape == b.shape, f"{node}: Keras {a.shape}, PyTorch {b.shape}"
        a64, b64 = a.astype(np.float64), b.astype(np.float64)
        assert np.isfinite(a64).all() and np.isfinite(b64).all(), f"{node}: not finite"
        result[node] = (float(np.abs(a64 - b64).max()), float(np.abs(a64).max()))
    return result


def allowed(magnitude: float) -> float:
    return TOLERANCE * max(1.0, magnitude)


def worst(diffs: dict[str, tuple]) -> tuple[str, float, float]:
    """The node nearest its allowance: (node, difference, its magnitude)."""
    node = max(diffs, key=lambda n: diffs[n][0] / allowed(diffs[n][1]))
    return (node, *diffs[node])


def float64_agreement(pair: Pair, exact: dict[str, np.ndarray]) -> list[str]:
    """The nodes where the float64 Keras model and the float64 PyTorch values ``exact``
    differ by more than FLOAT64_TOLERANCE."""
    return float64_disagreements(pair.run_keras_float64(), exact)


def float64_disagreements(keras64: dict[str, np.ndarray], exact: dict[str, np.ndarray]) -> list[str]:
    """:func:`float64_agreement` of the float64 Keras values ``keras64``."""
    bad = []
    for node, (d, m) in compare(keras64, exact).items():
        if not d <= FLOAT64_TOLERANCE * max(1.0, m):
            bad.append(f"{node}: float64 |diff| {d:.3g} on values up to {m:.3g}")
    return bad


def float64_check(want, values, exact) -> list[str]:
    """The nodes where Keras is further from the float64 values than FLOAT64_FACTOR times
    PyTorch's float32 rounding (and than TOLERANCE)."""
    bad = []
    for node, x in exact.items():
        keras_error = float(np.abs(want[node] - x).max())
        torch_error = float(np.abs(values[node] - x).max())
        limit = max(allowed(float(np.abs(x).max())), FLOAT64_FACTOR * torch_error)
        if not keras_error <= limit:
            bad.append(f"{node}: Keras off by {keras_error:.3g}, PyTorch by {torch_error:.3g}")
    return bad


# ------------------------------------------------------------------ the tests


@pytest.mark.parametrize("name", list(CASES))
def test_keras_and_torch_compute_the_same_function(name):
    pair = Pair(name)
    net = pair.net
    want, values, outputs = pair.run()
    # The model's outputs, in order, are those nodes' values.
    assert len(outputs) == len(net.outputs)
    for node, out in zip(net.outputs, outputs):
        np.testing.assert_array_equal(out, values[node])
    if name in FLOAT32_LIMITED:
        bad = pair.float64_failures(want, values)
    else:
        bad = [
            f"{n}: |diff| {d:.3g} on values up to {m:.3g}"
            for n, (d, m) in compare(want, values).items()
            if not d < allowed(m)
        ]
    assert not bad, f"{len(bad)} nodes differ, first: " + "; ".join(bad[:5])
    # Batch norm was neither the identity nor left with PyTorch's initial statistics.
    paths = torch_backend.module_paths(net)
    for node in net.layers:
        if node.kind == "batchnorm":
            bn = pair.torch.get_submodule(paths[node.name])
            assert not torch.allclose(bn.running_var, torch.ones_like(bn.running_var))
            assert not torch.allclose(bn.running_mean, torch.zeros_like(bn.running_mean))


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_every_example_computes_the_same_function(name):
    """Each example line of every kind both back ends express: one function, node by node."""
    pair = Pair(name)
    want, values, _ = pair.run()
    bad = [
        f"{n}: |diff| {d:.3g} on values up to {m:.3g}"
        for n, (d, m) in compare(want, values).items()
        if not d < allowed(m)
    ]
    assert not bad, f"{EXAMPLES[name]!r}: " + "; ".join(bad[:5])


FLOAT64_CASES = [n for n, (how, _) in CASES.items() if how == "text" and n not in NO_FLOAT64]


@pytest.mark.parametrize("name", FLOAT64_CASES)
def test_in_float64_they_agree_to_rounding(name):
    """In float64 the frameworks agree far below what float32 can show: a difference of
    semantics as small as 1e-6 (an epsilon, a window one channel too wide under a small LRN
    alpha) would show here."""
    pair = Pair(name)
    bad = float64_agreement(pair, pair.run_float64())
    assert not bad, f"{len(bad)} nodes differ, first: " + "; ".join(bad[:5])


def randomize_torch(model, seed: int = 1) -> None:
    """Random PyTorch weights: He-normal convolution and linear weights, biases N(0, 0.1),
    batch-norm weight U(0.5, 1.5), bias N(0, 0.2), running mean N(0, 0.2), var U(0.5, 1.5);
    layer-norm weight and bias, layer-scale gamma U(0.5, 1.5), a normalization's mean
    N(0, 0.5), variance U(0.5, 2) and count."""
    generator = torch.Generator().manual_seed(seed)

    def normal(t, std):
        t.copy_(torch.randn(t.shape, generator=generator) * std)

    def uniform(t, low, high):
        t.copy_(torch.rand(t.shape, generator=generator) * (high - low) + low)

    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.ConvTranspose2d):  # (in, out/groups, kh, kw)
                fan = module.weight.shape[0] * module.weight[0, 0].numel()
                fan = max(1, fan // (module.stride[0] * module.stride[1]))
                normal(module.weight, (2 / fan) ** 0.5)
            elif isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):  # (out, in/groups, ...)
                normal(module.weight, (2 / module.weight[0].numel()) ** 0.5)
            elif isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                if module.weight is not None:
                    uniform(module.weight, 0.5, 1.5)
                if module.bias is not None:
                    normal(module.bias, 0.2)
                normal(module.running_mean, 0.2)
                uniform(module.running_var, 0.5, 1.5)
                continue
            elif isinstance(module, torch.nn.LayerNorm):  # and the LayerNorm2d of maps
                if module.weight is not None:
                    uniform(module.weight, 0.5, 1.5)
                if module.bias is not None:
                    normal(module.bias, 0.2)
                continue
            elif type(module).__name__ == "LayerScale":
                uniform(module.gamma, 0.5, 1.5)
                continue
            elif type(module).__name__ == "Normalization" and hasattr(module, "count"):
                normal(module.mean, 0.5)
                uniform(module.variance, 0.5, 2.0)
                module.count.fill_(int(torch.randint(1, 1000, (), generator=generator)))
                continue
            else:
                continue
            if module.bias is not None:
                normal(module.bias, 0.1)


@pytest.mark.parametrize(
    "name",
    [
        "keras_layers_zoo",
        "keras_transposed",
        "torch_two_heads",
        "corners",
        "keras_modern",
        "torch_modern",
        "training_heads",
    ],
)
def test_torch_to_keras_computes_the_same_function(name):
    net = load(name)
    source = torch_backend.build(net).eval()
    randomize_torch(source)
    model = keras_model(net)
    torch_to_keras(net, source, model)
    inputs = random_inputs(net, 2, 5)
    want = keras_values(net, model, inputs)
    values, _ = torch_values(net, source, inputs)
    diffs = compare(want, values)
    node, d, m = worst(diffs)
    assert d < allowed(m), (node, d, m)


@pytest.mark.parametrize(
    "name",
    ["xception", "mobilenet_v2_keras", "torch_kinds", "corners", "keras_modern", "training_heads"],
)
def test_round_trips_are_exact(name):
    """PyTorch -> Keras -> PyTorch and Keras -> PyTorch -> Keras give back every tensor, bit
    for bit (num_batches_tracked aside: Keras has no such counter)."""
    net = load(name)
    source = torch_backend.build(net)
    randomize_torch(source)
    model = keras_model(net)
    torch_to_keras(net, source, model)
    back = torch_backend.build(net)
    keras_to_torch(net, model, back)
    theirs, ours = source.state_dict(), back.state_dict()
    assert list(theirs) == list(ours)
    for key in theirs:
        if not key.endswith("num_batches_tracked"):
            assert torch.equal(theirs[key], ours[key]), key
    again = keras_model(net)
    torch_to_keras(net, back, again)
    for a, b in zip(model.weights, again.weights, strict=True):
        assert a.path == b.path
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)


def test_transfer_is_by_node_not_by_order():
    """The same graph with its branches written in the other order: the Keras model of one
    and the PyTorch model of the other hold their layers in different orders."""
    body = ["a = x -> 3x3(S) conv 3", "b = x -> 5x5(S) conv 3 relu"]
    first, second = (
        cnndsl.loads("\n".join(["network n", "input x 6x6x2", *lines, "a -> add(b)"]))
        for lines in (body, body[::-1])
    )
    assert [n.name for n in first.layers] != [n.name for n in second.layers]
    k = keras_backend.build(first)
    randomize(first, k)
    t = torch_backend.build(second)
    keras_to_torch(second, k, t)
    for node in ("a", "b"):
        want = k.get_layer(node).kernel.numpy().transpose(3, 2, 0, 1)
        np.testing.assert_array_equal(t.get_submodule(node).weight.detach().numpy(), want)
    x = random_inputs(first, 2, 0)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(k(x[0], training=False)),
        torch_values(second, t, x)[1][0],
        atol=TOLERANCE,
    )


@pytest.mark.parametrize("direction", ["keras_to_torch", "torch_to_keras"])
def test_a_transfer_holds_one_weight_at_a_time(direction):
    """keras_to_torch, and then torch_to_keras, converted every weight before copying any (to
    copy nothing if one did not fit): another copy of the model for a moment, 553 MB on top
    of VGG-16's two models, 480 MB for a float64 Keras ResNet-152 from PyTorch's float32.
    Each checks every shape first, then converts and copies one weight at a time.  (numpy
    reports its arrays to tracemalloc; what the frameworks hold is not counted.  Weights that
    need no conversion are views, so the Keras model here is float64.)"""
    import tracemalloc

    net = cnndsl.loads("input 1024\n" + "dense 1024 nobias\n" * 8, "wide.cnn")
    t = torch_backend.build(net)
    if direction == "keras_to_torch":
        k = keras_backend.build(net)
        randomize(net, k)
        copy, weight = lambda: keras_to_torch(net, k, t), 1024 * 1024 * 4
    else:
        with keras_float64():
            k = keras_backend.build(net)
        copy, weight = lambda: torch_to_keras(net, t, k), 1024 * 1024 * 8
    tracemalloc.start()
    try:
        copy()
        kept, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # What was held beyond what the model keeps (TensorFlow may adopt an assigned array as a
    # variable's memory, or copy it): a weight and its conversions (2 to 4 weights' worth),
    # not the whole model (9 before the fix).
    extra = peak - kept
    assert extra < 6 * weight, f"{extra / weight:.1f} weights held at once (of 8)"
    for i, node in enumerate(n.name for n in net.layers if n.kind == "dense"):
        want = k.get_layer(node).kernel.numpy().T
        got = t.get_submodule(node).weight.detach().numpy()
        np.testing.assert_array_equal(got.astype(want.dtype), want, err_msg=str(i))


def test_mismatched_models_name_the_layer():
    net = cnndsl.loads("input 8x8x3\n3x3(S) conv 4\nbn\ngap\ndense 2\n", "a.cnn")
    wider = cnndsl.loads("input 8x8x3\n3x3(S) conv 5\nbn\ngap\ndense 2\n", "b.cnn")
    nobias = cnndsl.loads("input 8x8x3\n3x3(S) conv 4 nobias\nbn\ngap\ndense 2\n", "c.cnn")
    renamed = cnndsl.loads("input 8x8x3\nc = 3x3(S) conv 4\nbn\ngap\ndense 2\n", "d.cnn")
    k, t = keras_backend.build(net), torch_backend.build(wider)
    message = r"layer 'conv_1' \(3x3\+1\(S\) conv 4\): Keras 'kernel' \(3, 3, 3, 4\) is"
    message += r" \(4, 3, 3, 3\) in PyTorch's layout, but PyTorch 'weight' is \(5, 3, 3, 3\)"
    with pytest.raises(ValueError, match=message):
        keras_to_torch(net, k, t)
    with pytest.raises(ValueError, match=r"layer 'conv_1' .*: PyTorch 'weight' \(5, 3, 3, 3\)"):
        torch_to_keras(net, t, k)
    with pytest.raises(ValueError, match=r"layer 'conv_1' .* no counterpart: PyTorch \['bias'\]"):
        keras_to_torch(nobias, keras_backend.build(nobias), torch_backend.build(net))
    with pytest.raises(ValueError, match=r"layer 'conv_1' .* Keras layer has no 'bias'"):
        keras_to_torch(net, keras_backend.build(nobias), torch_backend.build(net))
    with pytest.raises(ValueError, match=r"layer 'conv_1' .* Keras model has no layer"):
        keras_to_torch(net, keras_backend.build(renamed), torch_backend.build(net))
    with pytest.raises(ValueError, match=r"layer 'conv_1' .* PyTorch model has no module 'conv_1'"):
        keras_to_torch(net, k, torch_backend.build(renamed))
    extra = cnndsl.loads("input 8x8x3\n3x3(S) conv 4\n1x1 conv 4\nbn\ngap\ndense 2\n")
    with pytest.raises(ValueError, match=r"PyTorch tensor 'conv_2\.weight' belongs to no node"):
        keras_to_torch(net, k, torch_backend.build(extra))
    with pytest.raises(ValueError, match=r"Keras weight 'conv_2/kernel' belongs to no node"):
        torch_to_keras(net, torch_backend.build(net), keras_backend.build(extra))


# ------------------------------------------------------------------ the table


def main(names: list[str]) -> None:
    """Print each spec's differences: at the outputs, the node nearest its allowance, and for
    FLOAT32_LIMITED specs the float32 errors of both frameworks against float64."""
    print(
        f"{'spec':26} {'nodes':>5} {'max |value|':>11} {'outputs':>9} {'all nodes':>9}"
        f" {'worst node (|diff| / |value|)':>44} {'s':>5}"
    )
    for name in names or list(CASES):
        start = time.perf_counter()
        pair = Pair(name)
        want, values, _ = pair.run()
        diffs = compare(want, values)
        out = max(diffs[n][0] for n in pair.net.outputs)
        node, d, m = worst(diffs)
        top = max(m for _, m in diffs.values())
        every = max(d for d, _ in diffs.values())
        note = f"{node[-24:]} {d:.2e} / {m:.3g}"
        line = f"{name:26} {len(diffs):5} {top:11.3g} {out:9.2e} {every:9.2e} {note:>44}"
        exact = pair.run_float64()
        k = max(float(np.abs(want[n] - x).max()) for n, x in exact.items())
        t = max(float(np.abs(values[n] - x).max()) for n, x in exact.items())
        line += f"  float32 vs float64: Keras {k:.2e}, PyTorch {t:.2e}"
        if name in NO_FLOAT64:
            line += "; float64 Keras: n/a"
        else:
            both = compare(pair.run_keras_float64(), exact)
            line += f"; float64 Keras vs PyTorch {max(d for d, _ in both.values()):.2e}"
        print(f"{line} {time.perf_counter() - start:5.1f}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])


def test_the_inference_model_of_training_outputs_is_refused_with_the_option():
    """The Keras inference model lacks the layers of the training outputs that the PyTorch
    model holds: the transfer says how to build the Keras model that has them."""
    net = load("training_heads")
    with pytest.raises(ValueError, match=r"aux1_layernorm_1.*training_outputs=True"):
        keras_to_torch(net, keras_backend.build(net), torch_backend.build(net))


@pytest.mark.parametrize("size", [225, 161])
@pytest.mark.parametrize("spec", ["mobilenet_v2_keras", "mobilenet_v2_torchvision"])
def test_pytorch_models_compute_the_spec_at_other_input_sizes(spec, size):
    """The PyTorch model compiled for 224x224, fed another size, computes the spec evaluated at
    that size: every node has the shape of the spec re-analysed there, and, with the weights of
    the Keras model of that spec, the same values.  The Keras model of the 224 spec refuses the
    other size, naming the size it takes."""
    path = next(p for p in SPEC_FILES if p.stem == spec)
    text = path.read_text(encoding="utf-8")
    net224 = cnndsl.loads(text, path.name)
    resized = text.replace("input 224x224x3", f"input {size}x{size}x3")
    assert resized != text
    net = cnndsl.loads(resized, path.name)
    model = keras_backend.build(net)
    randomize(net, model, 0, keras_args(random_inputs(net, 2, 1)))
    torch224 = torch_backend.build(net224).eval()
    keras_to_torch(net, model, torch224)
    inputs = random_inputs(net, 1, 2)
    values, _ = torch_values(net224, torch224, inputs)
    want = keras_values(net, model, inputs)
    for node, value in values.items():
        assert value.shape[1:] == net.shape(node), node
    bad = [f"{n}: {d:.3g} on {m:.3g}" for n, (d, m) in compare(want, values).items() if not d < allowed(m)]
    assert not bad, bad[:5]
    with pytest.raises(ValueError, match=r"expected shape=\(None, 224, 224, 3\)"):
        keras_backend.build(net224)(inputs[0])
