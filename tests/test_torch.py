"""The PyTorch back end: every spec of the zoo and hand-written specs of every layer kind.

For each spec: parameter and batch-norm statistic counts equal the IR's; every node's value has
the IR's shape; the generated source, run alone in a fresh process, builds the same model;
generated code is deterministic, formatted and matches the golden files.  Tricky operations are
compared with independent numpy implementations of the TensorFlow / IR formulas.
"""

from __future__ import annotations

import inspect
import os
import select
import subprocess
import sys
import textwrap
from math import ceil

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import cnndsl  # noqa: E402
from cnndsl.backends import torch as backend  # noqa: E402
from cnndsl.ir import LAYER_CLASSES  # noqa: E402
from conftest import ROOT, SPEC_FILES, LastBuilt  # noqa: E402

pytestmark = pytest.mark.torch
torch.set_num_threads(min(2, torch.get_num_threads()))

GOLDEN = ROOT / "tests" / "golden" / "torch"

# ------------------------------------------------------------------ hand-written specs

KINDS = """\
network kinds
input 16x16x4
3x3+2(S) conv 8 relu6
3x3+1(S) conv 8 groups=2
leakyrelu 0.2
5x5+1(S) dwconv 2 elu
3x3+2(S) sepconv 12 selu
bn
lrn radius=2 alpha=0.0001 beta=0.75 bias=2
upsample 2
upsample 2 bilinear
3x3+2(S) maxpool
3x3+2(S) avgpool
zeropad 1
3x3+1(S) avgpool
3x3+1(1) avgpool
3x3+2(V) maxpool ceil
depthmaxpool 2
2x2+2(S) convtranspose 6 gelu
3x3+2(S) convtranspose 6
3x3+2(V) convtranspose 4 silu
4x4+2(1) convtranspose 4 nobias
3x3+2(1) avgpool ceil
2x2+2(S) avgpool
zeropad padding=((0, 1), (2, 0))
3x3+1(S) conv 4 dilation=2 leakyrelu
linear
sigmoid
tanh
softmax
flatten
dense 10 relu
bn center=off
dropout 0.3
dense 5 softmax
"""

TWO_HEADS = """\
network two_heads
input image 12x12x3
input meta 5

block se(c, r=4) {
  multiply { identity | globalavgpool -> dense c/r relu -> dense c sigmoid }
}
block fuse(skip, slope) {
  concat(skip) -> 1x1 conv 8 -> leakyrelu slope
}

stem = image -> 3x3+1(S) conv 8 bias=off -> bn center=off -> relu
se(8)
a = 3x3+2(S) conv 16 -> bn scale=off -> silu
se(16)
b = 2x2+2(V) avgpool
fuse(b, 0.1)
fuse(b, 0.2)
fuse(b, 0.3)
gate = globalmaxpool keepdims
b -> 1x1 conv 8
multiply(gate)
c = add { 1x1 conv 8 relu | identity | 3x3(S) conv 8 }
m = meta -> dense 8 -> bn -> elu 0.5
g = c -> globalmaxpool
head1 = concat(m) -> dense 3 softmax
head2 = c -> 2x2+2(S) conv 4 -> flatten -> dense 2
output head1, head2
"""

BLOCKS = """\
network blocks
input 16x16x3

block unit(filters, slope) {
  3x3(S) conv filters bias=off -> bn -> leakyrelu slope
}
block down(filters, slope) {
  unit(filters, slope) -> unit(filters*2, slope) -> 2x2+2(V) maxpool
}
block res(filters, project=false) {
  add { unit(filters/2, 0.2) -> 1x1 conv filters | if project { 1x1 conv filters } }
}

down(8, 0.1)
down(16, 0.3)
res(32, true)
repeat 2 { res(32) }
globalavgpool
dense 10 softmax
"""

MODERN = """\
network modern
input 32x32x3

block stage(c, rates) {
  for rate in rates {
    add {
      7x7(S) dwconv 1 -> layernorm epsilon=1e-6 -> pointwise 4*c gelu -> pointwise c
      layerscale -> stochasticdepth rate
    | identity
    }
  }
}
block inverted(c) {
  concat {
    split 2 part=0
  | split 2 part=1 -> 1x1 conv c/2 bias=off -> bn -> relu -> 3x3(S) dwconv 1 -> 1x1 conv c/2 relu
  }
  shuffle 2
}

rescaling 1/255
normalization
rescaling scale=(2, 1, 0.5) offset=-1
4x4+4 conv 16 -> layernorm epsilon=1e-6
stage(16, [0.0, 0.05])
layernorm epsilon=1e-6 -> 2x2+2 conv 32
stage(32, [0.1])
inverted(32)
crop cropping=((0, 1), (1, 0)) -> adaptiveavgpool 2
reshape shape=(1, 1, -1) -> reshape 128 -> layernorm -> pointwise 10 relu6
normalization mean=[0.5] * 10 variance=0.5 -> layerscale 1 -> dense 4 softmax
"""

HAND_SPECS = {"kinds": KINDS, "two_heads": TWO_HEADS, "blocks": BLOCKS, "modern": MODERN}
CASES = [p.stem for p in SPEC_FILES] + list(HAND_SPECS)
GOLDEN_CASES = list(HAND_SPECS)


def load(name: str) -> cnndsl.Network:
    if name in HAND_SPECS:
        return cnndsl.loads(HAND_SPECS[name], f"{name}.cnn")
    return cnndsl.load(ROOT / "specs" / f"{name}.cnn")


def nchw(shape: tuple[int, ...], batch: int = 2) -> tuple[int, ...]:
    """An IR shape (H, W, C) or (N,) as PyTorch's, with the batch."""
    return (batch, shape[2], shape[0], shape[1]) if len(shape) == 3 else (batch, *shape)


class Built:
    """A spec's network, its live model (observing every node's value) and one forward pass."""

    def __init__(self, name: str):
        self.net = load(name)
        self.values: dict[str, tuple[int, ...]] = {}
        torch.manual_seed(0)
        self.model = backend.build(self.net, tap=self.record).eval()
        self.inputs = [torch.randn(nchw(layer.shape)) for layer in self.net.inputs]
        with torch.no_grad():
            out = self.model(*self.inputs)
        self.outputs = list(out) if isinstance(out, tuple) else [out]

    def record(self, name, value):
        self.values[name] = tuple(value.shape)


built = LastBuilt(Built)
"""The spec's model and forward pass, the last one built only (:class:`conftest.LastBuilt`)."""
drop_built = built.drop


@pytest.fixture(scope="module", params=CASES)
def spec(request) -> str:
    """A spec's name.  The fixture is module-scoped, so pytest runs the tests that take it
    spec by spec; after a spec's tests its model is dropped."""
    yield request.param
    drop_built()


# ------------------------------------------------------------------ the handler table


def test_every_layer_class_is_handled_or_declared_unsupported():
    for cls in LAYER_CLASSES:
        assert cls in backend.HANDLERS or cls in backend.UNSUPPORTED, cls.__name__


# ------------------------------------------------------------------ every spec


def test_parameter_and_statistic_counts(spec):
    b = built(spec)
    a = b.net.analysis
    assert sum(p.numel() for p in b.model.parameters()) == a.trainable_params
    assert statistics(b.model) == a.non_trainable_params


def statistics(model) -> int:
    """The non-trainable values a model stores: its persistent buffers (batch-norm statistics,
    a normalization's mean, variance and count), without PyTorch's num_batches_tracked."""
    parameters = {name for name, _ in model.named_parameters()}
    return sum(
        t.numel()
        for k, t in model.state_dict().items()
        if k not in parameters and not k.endswith("num_batches_tracked")
    )


def test_every_node_has_the_ir_shape(spec):
    b = built(spec)
    a = b.net.analysis
    expected = {
        layer.name: nchw(a[layer.name].output_shape)
        for layer in b.net.layers
        if layer.kind != "input"
    }
    assert b.values == expected
    assert [tuple(o.shape) for o in b.outputs] == [nchw(s) for _, s in a.outputs]


# Runs generated sources alone, one spec at a time, as the fixture's methods ask (one line on
# stdin: the spec's name; one line back when its results are saved).  It loads the parent's
# weights memory-mapped into the model (assign=True): no third copy of VGG-16's 553 MB.
_FRESH = """
import gc, importlib.util, sys
import torch
torch.set_num_threads(2)
folder = sys.argv[1]
for line in sys.stdin:
    name = line.strip()
    spec = importlib.util.spec_from_file_location(name, f"{folder}/{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.build_model().eval()
    keys = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    saved = torch.load(f"{folder}/{name}.pt", mmap=True)
    model.load_state_dict(saved["state"], assign=True)
    with torch.no_grad():
        out = model(*saved["inputs"])
    out = list(out) if isinstance(out, tuple) else [out]
    torch.save({"keys": keys, "outputs": out}, f"{folder}/{name}.out.pt")
    assert not any(m.startswith("cnndsl") for m in sys.modules), "the source imports cnndsl"
    del module, model, saved, out
    gc.collect()
    print(name, flush=True)
"""


class FreshProcess:
    """A fresh process (it imports torch, never cnndsl) that runs each spec's generated source
    alone: its build_model() gets the live model's state_dict and inputs; the state_dict keys
    and outputs come back.  One process for the module (torch is imported once), started
    again after a spec that made it fail."""

    def __init__(self, folder):
        self.folder = folder
        self.proc = None

    def _start(self) -> None:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        self.log = open(self.folder / "stderr.txt", "w+")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _FRESH, str(self.folder)],
            cwd=self.folder,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )

    def save(self, name: str, b: Built) -> None:
        """Write the spec's source, its live model's weights and its inputs for :meth:`run`."""
        (self.folder / f"{name}.py").write_text(backend.to_source(b.net))
        torch.save({"state": b.model.state_dict(), "inputs": b.inputs}, self.folder / f"{name}.pt")

    def run(self, name: str, timeout: float = 600) -> dict:
        """The state_dict keys and outputs of the spec's source run alone (after :meth:`save`)."""
        if self.proc is None or self.proc.poll() is not None:
            self._start()
        self.proc.stdin.write(name + "\n")
        self.proc.stdin.flush()
        ready = select.select([self.proc.stdout], [], [], timeout)[0]
        done = self.proc.stdout.readline().strip() if ready else None
        if done != name:
            self.close()
            self.log.seek(0)
            pytest.fail(f"the fresh process failed on {name}:\n{self.log.read()[-3000:]}")
        (self.folder / f"{name}.pt").unlink()
        result = torch.load(self.folder / f"{name}.out.pt")
        (self.folder / f"{name}.out.pt").unlink()
        return result

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def fresh_process(tmp_path_factory):
    process = FreshProcess(tmp_path_factory.mktemp("torch_sources"))
    yield process
    process.close()


def test_generated_source_alone_builds_the_same_model(spec, fresh_process):
    b = built(spec)
    keys, outputs = {k: tuple(v.shape) for k, v in b.model.state_dict().items()}, b.outputs
    fresh_process.save(spec, b)
    del b
    drop_built()  # while the process holds the weights, this one does not (VGG-16: 553 MB)
    result = fresh_process.run(spec)
    assert result["keys"] == keys
    assert len(result["outputs"]) == len(outputs)
    for got, want in zip(result["outputs"], outputs):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", CASES)
def test_source_is_deterministic_and_formatted(name):
    net = load(name)
    text = backend.to_source(net)
    assert text == backend.to_source(load(name))
    compile(text, f"{name}.py", "exec")
    long = [line for line in text.splitlines() if len(line) > 100]
    assert not long
    assert "cnndsl" not in "".join(line for line in text.splitlines() if "import" in line)


def test_source_is_deterministic_across_processes():
    """Set and hash orders must not leak into the output (a fresh PYTHONHASHSEED)."""
    path = ROOT / "specs" / "googlenet_torchvision.cnn"
    if not path.exists():
        pytest.skip("no googlenet_torchvision spec")
    for seed in ("1", "2"):
        r = subprocess.run(
            [sys.executable, "-m", "cnndsl", "compile", str(path), "--target", "torch"],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
            timeout=120,
            env={**os.environ, "PYTHONHASHSEED": seed},
        )
        assert r.stdout == backend.to_source(cnndsl.load(path))


def test_to_source_imports_no_torch(tmp_path):
    """Generating text needs only the IR: the helper classes are copied from the text of
    runtime.py, never imported, so `to_source` and `cnndsl compile --target torch` run without
    torch (only `build` imports it, by running the source)."""
    code = textwrap.dedent("""
        import sys
        import cnndsl
        from cnndsl.backends.torch import module_paths, to_source
        from cnndsl.cli import main
        net = cnndsl.loads("input 16x16x4\\n3x3+2(S) sepconv 12\\n3x3+2(S) avgpool\\n")
        text = to_source(net)
        assert "class SeparableConv2d(nn.Module):" in text
        assert "class ExcludePadAvgPool2d(nn.Module):" in text
        module_paths(net)
        assert main(["compile", sys.argv[1], "--target", "torch", "-o", sys.argv[2]]) == 0
        loaded = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
        assert "torch" not in sys.modules and not loaded, loaded
        """)
    spec, target = ROOT / "specs" / "xception.cnn", tmp_path / "xception.py"
    subprocess.run(
        [sys.executable, "-c", code, str(spec), str(target)], check=True, cwd=ROOT, timeout=120
    )
    assert "class SeparableConv2d(nn.Module):" in target.read_text()
    assert target.read_text() == backend.to_source(cnndsl.load(spec))


def test_helper_classes_are_copied_from_the_runtime_module():
    from cnndsl.backends.torch import runtime

    text = backend.to_source(load("kinds")) + backend.to_source(load("modern"))
    for name in runtime.__all__:
        assert inspect.getsource(getattr(runtime, name)) in text
    x = torch.randn(2, 3, 7, 6)
    pool = runtime.ExcludePadAvgPool2d(3, 2, (0, 1, 0, 1))
    assert pool(x).shape == (2, 3, 3, 3)


WIDE = """\
network wide
input 8x8x4
block b(f) {
  add { 1x1 conv f | 1x1 conv f | 1x1 conv f | 1x1 conv f | 1x1 conv f | 1x1 conv f | identity }
}
b(4)
c = concat { 1x1 conv 2 | 1x1 conv 2 | 1x1 conv 2 | 1x1 conv 2 | 1x1 conv 2 | 1x1 conv 2 }
a_really_long_layer_name_to_make_the_lines_of_the_generated_code_long = 3x3+2(S) conv 4
multiply { identity | identity | identity | 1x1 conv 4 }
"""


def test_long_statements_are_wrapped():
    text = backend.to_source(cnndsl.loads(WIDE, "wide.cnn"))
    assert max(len(line) for line in text.splitlines()) <= 100
    assert "        return (\n            a_really_long" in text  # black's layout
    compile(text, "wide.py", "exec")


def test_source_is_black_formatted():
    black = pytest.importorskip("black")
    mode = black.Mode(line_length=100)
    for name in GOLDEN_CASES + ["googlenet_torchvision", "resnet50_torchvision", "unet"]:
        if name not in CASES:
            continue
        text = backend.to_source(load(name))
        assert black.format_str(text, mode=mode) == text, name
    text = backend.to_source(cnndsl.loads(WIDE, "wide.cnn"))
    assert black.format_str(text, mode=mode) == text


@pytest.mark.parametrize("name", GOLDEN_CASES)
def test_golden_source(name):
    """tests/golden/torch/<spec>.py; CNNDSL_UPDATE_GOLDEN=1 rewrites them."""
    text = backend.to_source(load(name))
    path = GOLDEN / f"{name}.py"
    if os.environ.get("CNNDSL_UPDATE_GOLDEN") == "1":
        GOLDEN.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.read_text() == text


def test_blocks_become_parameterized_classes():
    text = backend.to_source(load("blocks"))
    # one class per structure; what differs between calls is a parameter
    assert "class Unit(nn.Module):" in text
    assert "def __init__(self, in_channels, filters, slope):" in text
    assert "self.slope = slope" in text and "F.leaky_relu(x, self.slope)" in text
    assert "self.unit_2 = Unit(filters, filters * 2, slope)" in text
    # calls of one block that differ in structure: one class each, named by the parameter
    assert "class ResProject(nn.Module):" in text and "class Res(nn.Module):" in text
    assert "self.down_1 = Down(3, 8, 0.1)  # blocks.cnn:14" in text
    paths = backend.module_paths(load("blocks"))
    assert paths["down_1_unit_2_conv_1"] == "down_1.unit_2.conv_1"


def test_compile_command_writes_the_source(tmp_path):
    from cnndsl.cli import main

    out = tmp_path / "vgg16.py"
    assert (
        main(["compile", str(ROOT / "specs" / "vgg16.cnn"), "--target", "torch", "-o", str(out)])
        == 0
    )
    assert out.read_text() == backend.to_source(load("vgg16"))


# ------------------------------------------------------------------ in-place operations

IN_PLACE = """\
network in_place
input 8x8x4
block b() {
  add { 1x1 conv 4 -> bn -> relu | identity } -> relu
}
block pre() { relu -> 1x1 conv 4 }
relu
b()
t = bn
pre()
add(t)
c = 1x1 conv 4
relu
add(c)
1x1 conv 4
dropout 0.5
relu
1x1 conv 4
flatten
relu
"""


def test_in_place_operations_only_where_safe():
    text = backend.to_source(cnndsl.loads(IN_PLACE, "in_place.cnn"))
    # forward's arguments: the network's input, and pre's (its caller reads t again)
    assert text.count("def forward(self, x):\n        x = F.relu(x)  #") == 2
    assert "out = F.relu(out, inplace=True)" in text  # batch norm's output, read once
    assert "out = out + x" in text  # a ReLU's output (its gradient reads it), forward's argument
    assert "return F.relu(out, inplace=True)" in text  # a sum, read once
    assert "x = F.relu(c)" in text and "x = x + c" in text  # c is read twice
    assert "x = self.dropout_1(x)\n        x = F.relu(x)  #" in text  # eval dropout: its input
    assert "return F.relu(x)  #" in text  # a view of the convolution's output
    resnet = backend.to_source(load("resnet50_torchvision"))
    assert "out += x  # resnet50_torchvision.cnn:10" in resnet  # as torchvision's Bottleneck
    assert "x += branch1" in resnet and "out = F.relu(out, inplace=True)" in resnet
    tapped = backend.to_source(load("resnet50_torchvision"), taps=True)
    assert "inplace=True" not in tapped and "+=" not in tapped  # taps see values that stay


@pytest.mark.parametrize("name", ["in_place", *GOLDEN_CASES, "resnet34_torchvision", "googlenet"])
def test_in_place_operations_keep_values_gradients_and_inputs(name):
    """In training mode, the model written with in-place operations and the one without (built
    with taps) give the same outputs and gradients, and leave forward's arguments untouched."""
    net = cnndsl.loads(IN_PLACE, "in_place.cnn") if name == "in_place" else load(name)
    torch.manual_seed(0)
    fast = backend.build(net).train()
    plain = backend.build(net, tap=lambda node, value: None).train()
    plain.load_state_dict(fast.state_dict())
    inputs = [torch.randn(nchw(layer.shape), requires_grad=True) for layer in net.inputs]
    kept = [x.detach().clone() for x in inputs]
    results = []
    for model in (fast, plain):
        torch.manual_seed(1)  # the same dropout masks
        out = model(*inputs)
        out = list(out) if isinstance(out, tuple) else [out]
        weights = [torch.linspace(-1, 1, o.numel()).reshape(o.shape) for o in out]
        grads = torch.autograd.grad(
            sum((o * w).sum() for o, w in zip(out, weights)), [*inputs, *model.parameters()]
        )
        results.append((out, grads))
        for x, k in zip(inputs, kept):
            assert torch.equal(x.detach(), k)
    (out_fast, grad_fast), (out_plain, grad_plain) = results
    for got, want in zip(out_fast, out_plain):
        torch.testing.assert_close(got, want, rtol=0, atol=0)
    for got, want in zip(grad_fast, grad_plain):
        torch.testing.assert_close(got, want)


# ------------------------------------------------------------------ numerics


def one_layer(text: str, shape: tuple[int, ...], seed: int = 0):
    """A model of `input <shape>` then the given lines, its input (NCHW) and output (numpy,
    channels last)."""
    dims = "x".join(map(str, shape))
    net = cnndsl.loads(f"input {dims}\n{text}\n", "layer.cnn")
    torch.manual_seed(seed)
    model = backend.build(net).eval()
    for p in model.parameters():
        with torch.no_grad():
            p.uniform_(-1, 1)
    x = torch.randn(nchw(shape, 2))
    with torch.no_grad():
        y = model(x)
    return net, model, to_hwc(x), to_hwc(y)


def to_hwc(t):
    t = t.detach().numpy().astype(np.float64)
    return t.transpose(0, 2, 3, 1) if t.ndim == 4 else t


def tf_same(n: int, k: int, s: int) -> tuple[int, int, int]:
    """TensorFlow's SAME: output size and (before, after) padding (tf.nn docs)."""
    out = ceil(n / s)
    total = max((out - 1) * s + k - n, 0)
    return out, total // 2, total - total // 2


def np_conv(x, w, stride, pads, dilation=1, groups=1):
    """x (N, H, W, C); w as PyTorch's (out, in/groups, kh, kw); pads ((t, b), (l, r))."""
    x = np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
    n, h, wd, c = x.shape
    o, ig, kh, kw = w.shape
    oh = (h - dilation * (kh - 1) - 1) // stride + 1
    ow = (wd - dilation * (kw - 1) - 1) // stride + 1
    y = np.zeros((n, oh, ow, o))
    per = o // groups
    for i in range(oh):
        for j in range(ow):
            rows = i * stride + dilation * np.arange(kh)
            cols = j * stride + dilation * np.arange(kw)
            patch = x[:, rows][:, :, cols]  # N, kh, kw, C
            for g in range(groups):
                part = patch[..., g * ig : (g + 1) * ig]
                y[:, i, j, g * per : (g + 1) * per] = np.einsum(
                    "nabc,ocab->no", part, w[g * per : (g + 1) * per]
                )
    return y


def test_asymmetric_same_convolution_matches_tensorflow():
    net, model, x, y = one_layer("3x3+2(S) conv 5", (8, 9, 2))
    conv = model.conv_1
    ohw = [tf_same(n, 3, 2) for n in (8, 9)]
    assert [(b, a) for _, b, a in ohw] == [(0, 1), (1, 1)]  # rows asymmetric, columns not
    ref = np_conv(x, conv.weight.detach().double().numpy(), 2, [(b, a) for _, b, a in ohw])
    ref += conv.bias.detach().double().numpy()
    assert y.shape[1:3] == (ohw[0][0], ohw[1][0])
    np.testing.assert_allclose(y, ref, atol=1e-5)


def test_dilated_same_convolution_matches_tensorflow():
    net, model, x, y = one_layer("3x3(S) conv 3 dilation=2 nobias", (7, 6, 2))
    pads = [tf_same(n, 5, 1)[1:] for n in (7, 6)]  # effective kernel 5
    ref = np_conv(x, model.conv_1.weight.detach().double().numpy(), 1, pads, dilation=2)
    np.testing.assert_allclose(y, ref, atol=1e-5)


def test_separable_and_depthwise_convolutions():
    net, model, x, y = one_layer("3x3+2(S) sepconv 4 depth_multiplier=2", (6, 6, 3))
    sep = model.sepconv_1
    pads = [tf_same(6, 3, 2)[1:]] * 2
    mid = np_conv(x, sep.depthwise.weight.detach().double().numpy(), 2, pads, groups=3)
    ref = np_conv(mid, sep.pointwise.weight.detach().double().numpy(), 1, [(0, 0), (0, 0)])
    ref += sep.pointwise.bias.detach().double().numpy()
    np.testing.assert_allclose(y, ref, atol=1e-5)
    # Keras orders depthwise outputs channel-major: input c, multiplier m -> c * M + m
    assert sep.depthwise.weight.shape == (6, 1, 3, 3)


def test_same_average_pooling_does_not_count_padding():
    for text in ("3x3+2(S) avgpool", "3x3+1(S) avgpool", "2x2+2(S) avgpool"):
        k, s = int(text[0]), int(text[4])
        net, model, x, y = one_layer(text, (6, 5, 2))
        (oh, t, _), (ow, left, _) = tf_same(6, k, s), tf_same(5, k, s)
        ref = np.zeros((2, oh, ow, 2))
        for i in range(oh):
            for j in range(ow):
                r0, c0 = i * s - t, j * s - left
                rows = slice(max(r0, 0), min(r0 + k, 6))
                cols = slice(max(c0, 0), min(c0 + k, 5))
                ref[:, i, j] = x[:, rows, cols].mean(axis=(1, 2))  # real cells only
        np.testing.assert_allclose(y, ref, atol=1e-6, err_msg=text)


def test_same_max_pooling_never_picks_padding():
    net, model, x, y = one_layer("3x3+2(S) maxpool", (6, 6, 1))
    x = -np.abs(x) - 1  # all negative: a zero-padded pool would return 0
    with torch.no_grad():
        y = to_hwc(model(torch.tensor(x.transpose(0, 3, 1, 2), dtype=torch.float32)))
    _, t, _ = tf_same(6, 3, 2)
    ref = np.array(
        [
            [
                [
                    x[n, max(i * 2 - t, 0) : i * 2 - t + 3, max(j * 2 - t, 0) : j * 2 - t + 3].max()
                    for j in range(3)
                ]
                for i in range(3)
            ]
            for n in range(2)
        ]
    )
    np.testing.assert_allclose(y[..., 0], ref, atol=1e-6)


@pytest.mark.parametrize("kind", ["maxpool", "avgpool"])
def test_ceil_mode_pooling(kind):
    # 8 rows, window 3, stride 2: ceil((8 - 3) / 2) + 1 = 4 windows, the last one clipped
    net, model, x, y = one_layer(f"3x3+2(V) {kind} ceil", (8, 7, 2))
    assert y.shape[1:3] == (4, 3)
    reduce = np.max if kind == "maxpool" else np.mean
    ref = np.array(
        [
            [
                [reduce(x[n, 2 * i : 2 * i + 3, 2 * j : 2 * j + 3], axis=(0, 1)) for j in range(3)]
                for i in range(4)
            ]
            for n in range(2)
        ]
    )
    np.testing.assert_allclose(y, ref, atol=1e-6)


def test_lrn_matches_the_tensorflow_formula():
    net, model, x, y = one_layer("lrn radius=2 alpha=0.01 beta=0.75 bias=2", (3, 3, 7))
    ref = np.empty_like(x)
    for c in range(7):
        window = x[..., max(c - 2, 0) : c + 3] ** 2  # tf.nn.local_response_normalization
        ref[..., c] = x[..., c] / (2 + 0.01 * window.sum(axis=-1)) ** 0.75
    np.testing.assert_allclose(y, ref, rtol=1e-5)


def test_transposed_convolution_crops_as_keras():
    # Keras SAME, 3x3 stride 2: output 2n; the full (n-1)*2 + 3 is cropped 0 before, 1 after
    net, model, x, y = one_layer("3x3+2(S) convtranspose 2", (4, 3, 2))
    conv = model.convtranspose_1
    w = conv.weight.detach().double().numpy()  # (in, out, kh, kw)
    full = np.zeros((2, 9, 7, 2))
    for i in range(4):
        for j in range(3):
            full[:, 2 * i : 2 * i + 3, 2 * j : 2 * j + 3] += np.einsum(
                "nc,cokl->nklo", x[:, i, j], w
            )
    ref = full[:, :8, :6] + conv.bias.detach().double().numpy()
    np.testing.assert_allclose(y, ref, atol=1e-5)


def test_depthmaxpool_flatten_and_channel_broadcast():
    net, model, x, y = one_layer("depthmaxpool 3", (2, 2, 6))
    np.testing.assert_allclose(y, x.reshape(2, 2, 2, 2, 3).max(axis=-1), atol=0)
    net, model, x, y = one_layer("flatten", (2, 3, 4))
    np.testing.assert_allclose(y, x.reshape(2, -1), atol=0)  # Keras's (H, W, C) order
    spec = "input x 3x3x4\nv = globalavgpool\nx -> multiply(v)\n"  # a (C,) vector scales the map
    model = backend.build(cnndsl.loads(spec))
    t = torch.randn(2, 4, 3, 3)
    torch.testing.assert_close(model(t), t * t.mean((2, 3), keepdim=True))


def test_batchnorm_without_center_or_scale_is_exact():
    for options, weight, bias in (("center=off", True, False), ("scale=off", False, True)):
        net, model, x, y = one_layer(f"bn {options} epsilon=0.01 momentum=0.9", (2, 2, 3))
        bn = model.batchnorm_1
        assert (bn.weight is not None, bn.bias is not None) == (weight, bias)
        assert bn.eps == 0.01 and abs(bn.momentum - 0.1) < 1e-12
        with torch.no_grad():
            bn.running_mean.uniform_(-1, 1)
            bn.running_var.uniform_(0.5, 2)
            y = to_hwc(model(torch.tensor(x.transpose(0, 3, 1, 2), dtype=torch.float32)))
        mean, var = bn.running_mean.double().numpy(), bn.running_var.double().numpy()
        ref = (x - mean) / np.sqrt(var + 0.01)
        ref = ref * bn.weight.detach().double().numpy() if weight else ref
        ref = ref + bn.bias.detach().double().numpy() if bias else ref
        np.testing.assert_allclose(y, ref, atol=1e-5)


def test_split_shuffle_crop_and_reshape_follow_the_ir():
    """Channel split and shuffle as the IR numbers channels; crop and reshape on the
    channels-last values (H, W, C order, as Keras's Reshape)."""
    spec = """
        input x 4x6x12
        a = x -> split 3 part=1
        b = x -> shuffle 4
        c = x -> crop cropping=((1, 0), (2, 1))
        d = x -> reshape shape=(8, -1, 2)
        e = x -> reshape 288
        output a, b, c, d, e
    """
    net = cnndsl.loads(textwrap.dedent(spec), "moves.cnn")
    model = backend.build(net).eval()
    x = np.random.default_rng(3).standard_normal((2, 4, 6, 12)).astype("float32")
    outs = model(torch.from_numpy(x.transpose(0, 3, 1, 2)).contiguous())
    a, b, c, d, e = (to_hwc(o) for o in outs)
    np.testing.assert_array_equal(a, x[..., 4:8])
    np.testing.assert_array_equal(b, x[..., net["b"].permutation(12)])
    np.testing.assert_array_equal(c, x[:, 1:, 2:-1])
    np.testing.assert_array_equal(d, x.reshape(2, 8, -1, 2))
    np.testing.assert_array_equal(e, x.reshape(2, -1))


@pytest.mark.parametrize("mode", ["row", "batch"])
def test_stochastic_depth_is_torchvisions(mode):
    """The identity in eval mode; in training, the draws of torchvision.ops.StochasticDepth
    under one seed."""
    torchvision = pytest.importorskip("torchvision")
    net = cnndsl.loads(f"input 3x3x2\nstochasticdepth 0.3 {mode}\n", "sd.cnn")
    model = backend.build(net)
    reference = torchvision.ops.StochasticDepth(0.3, mode)
    x = torch.rand(16, 2, 3, 3) + 1
    for m in (model, reference):
        m.train()
    draws = []
    for seed in range(8):
        torch.manual_seed(seed)
        ours = model(x)
        torch.manual_seed(seed)
        torch.testing.assert_close(ours, reference(x), rtol=0, atol=0)
        draws.append(ours)
    draws = torch.stack(draws)
    assert (draws == 0).any() and (draws != 0).any()
    assert torch.equal(model.eval()(x), x)


AUX_HEADS = """\
network aux_heads
input 16x16x3
block head(n) { gap -> dense n }
x = 3x3(S) conv 8 bias=off -> bn -> relu
aux1 = head(3)
x -> 3x3(S) conv 8 relu
aux2 = 1x1 conv 2 -> flatten -> dense 4
x -> 3x3+2(S) conv 8 relu -> gap
logits = dense 5
output logits, aux2 (training), aux1 (training)
"""


def test_training_outputs_are_computed_and_returned_in_training_only():
    """In eval mode forward returns the inference output and computes none of the layers
    that only the training outputs need; in training mode it returns every output, in the
    spec's order.  torch.export (which traces one mode) and torch.compile take it whole."""
    net = cnndsl.loads(AUX_HEADS, "aux_heads.cnn")
    only = net.training_only()
    assert only and set(net.training_outputs) <= only
    nodes = {layer.name for layer in net.layers if layer.kind != "input"}
    seen: set[str] = set()
    model = backend.build(net, tap=lambda name, value: seen.add(name))
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        logits = model.eval()(x)
    assert isinstance(logits, torch.Tensor) and logits.shape == (2, 5)
    assert seen == nodes - only
    seen.clear()
    model.train()
    for m in model.children():  # batch norm as in eval: the same logits in both modes
        m.eval()
    with torch.no_grad():
        outs = model(x)
    assert seen == nodes
    assert [tuple(o.shape) for o in outs] == [(2, 5), (2, 4), (2, 3)]
    torch.testing.assert_close(outs[0], logits, rtol=0, atol=0)
    plain = backend.build(net)
    plain.load_state_dict(model.state_dict())
    plain.eval()
    with torch.no_grad():
        exported = torch.export.export(plain, (x,)).module()
        torch.testing.assert_close(exported(x), logits)
        compiled = torch.compile(plain, fullgraph=True, backend="eager")
        torch.testing.assert_close(compiled(x), logits)
        plain.train()
        for m in plain.children():
            m.eval()
        for got, want in zip(compiled(x), outs):
            torch.testing.assert_close(got, want)
    torch._dynamo.reset()


def test_unsupported_layer_is_a_located_error():
    # explicit asymmetric padding with ceil mode: the IR's last window starts in the right
    # padding, where PyTorch's rule for the pre-padded input keeps one
    spec = "input 3x3x1\n4x4+3 maxpool padding=((0, 2), (0, 2)) ceil\n"
    with pytest.raises(cnndsl.CnnDslError) as info:
        backend.to_source(cnndsl.loads(spec, "bad.cnn"))
    assert "PyTorch cannot express layer 'maxpool_1'" in str(info.value)
    assert "bad.cnn:2" in str(info.value)


def test_models_export_without_graph_breaks():
    """No data-dependent Python control flow: torch.export traces the model as it is."""
    for name in ("kinds", "two_heads", "modern"):
        b = built(name)
        model = backend.build(b.net).eval()  # without taps
        model.load_state_dict(b.model.state_dict())
        program = torch.export.export(model, tuple(b.inputs))
        with torch.no_grad():
            out = program.module()(*b.inputs)
        out = list(out) if isinstance(out, tuple) else [out]
        for got, want in zip(out, b.outputs):
            torch.testing.assert_close(got, want)


# ------------------------------------------------------------------ every kind's examples

from cnndsl.ir import ACTIVATIONS  # noqa: E402
from cnndsl.ir.examples import example_lines, example_spec  # noqa: E402

EXAMPLE_CASES = example_lines()


@pytest.mark.parametrize(
    "kind,shape,line", EXAMPLE_CASES, ids=[f"{k}:{l}" for k, _, l in EXAMPLE_CASES]
)
def test_every_example_builds_with_the_irs_shapes_or_is_refused(kind, shape, line):
    """Each example line of the registry builds a module whose every node has the IR's shape,
    with the IR's parameters, computing finite values; or a kind declared unsupported is
    refused with a located error naming the layer and PyTorch."""
    net = cnndsl.loads(example_spec(shape, line), "example.cnn")
    refused = [layer for layer in net.layers if type(layer) in backend.UNSUPPORTED]
    if refused:
        with pytest.raises(cnndsl.CnnDslError) as error:
            backend.build(net)
        assert f"PyTorch cannot express layer '{refused[0].name}'" in str(error.value)
        assert error.value.location.line == refused[0].position.line
        return
    values = {}
    model = backend.build(net, tap=lambda name, value: values.__setitem__(name, value)).eval()
    a = net.analysis
    assert sum(p.numel() for p in model.parameters()) == a.trainable_params
    assert statistics(model) == a.non_trainable_params
    with torch.no_grad():
        out = model(torch.randn(nchw(net.inputs[0].shape)))
    assert {n: tuple(v.shape) for n, v in values.items()} == {
        layer.name: nchw(a[layer.name].output_shape) for layer in net.layers if layer.kind != "input"
    }
    assert torch.isfinite(out).all()


def test_every_activation_resolves_in_torch():
    """The back end's table maps every IR activation to a function of torch.nn.functional
    (or torch)."""
    import torch.nn.functional as F

    from cnndsl.backends.torch.generator import ACTIVATIONS as TABLE

    for name in ACTIVATIONS:
        if TABLE[name] is None:
            assert name == "linear"
            continue
        module, _, function = TABLE[name][0].partition(".")
        assert callable(getattr({"F": F, "torch": torch}[module], function)), name


def test_reserved_attributes_cover_nn_module():
    """A layer's attribute never shadows nn.Module's: its public names are reserved, its
    private ones all start with an underscore, which an attribute never does."""
    from cnndsl.backends.codegen.names import attribute
    from cnndsl.backends.torch.generator import MODULE_ATTRIBUTES

    names = set(dir(torch.nn.Module)) | set(vars(torch.nn.Module()))
    assert {n for n in names if not n.startswith("_")} <= MODULE_ATTRIBUTES
    for name in names:
        assert attribute(name, MODULE_ATTRIBUTES) not in names, name


MAP_EXAMPLES = [case for case in EXAMPLE_CASES if case[1].count("x") == 2 and case[0] != "input"]


@pytest.mark.parametrize(
    "kind,shape,line", MAP_EXAMPLES, ids=[f"{k}:{l}" for k, _, l in MAP_EXAMPLES]
)
def test_every_example_computes_the_spec_at_other_input_sizes(kind, shape, line):
    """A model compiled for one input size, run at another, computes the spec evaluated at
    that size: the model compiled for it, with the same weights (SAME padding that depends on
    the size is computed from the input)."""
    net = cnndsl.loads(example_spec(shape, line), "example.cnn")
    if any(type(layer) in backend.UNSUPPORTED for layer in net.layers):
        pytest.skip("a kind PyTorch does not express")
    model = backend.build(net).eval()
    h, w, c = map(int, shape.split("x"))
    compared = 0
    for dh, dw in ((1, 1), (-1, 2), (3, -1), (2, 5)):
        try:
            other = cnndsl.loads(example_spec(f"{h + dh}x{w + dw}x{c}", line), "example.cnn")
            reference = backend.build(other).eval()
        except cnndsl.CnnDslError:  # the spec does not apply at that size: nor does the model
            if min(h + dh, w + dw) > 0:
                with pytest.raises(RuntimeError), torch.no_grad():
                    model(torch.randn(2, c, h + dh, w + dw))
            continue
        reference.load_state_dict(model.state_dict())
        x = torch.randn(2, c, h + dh, w + dw)
        with torch.no_grad():
            torch.testing.assert_close(model(x), reference(x), rtol=0, atol=0)
        compared += 1
    assert compared or kind == "reshape", "no other size applies"  # `reshape 16`: one size


# ------------------------------------------------------------------ every value the IR accepts

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from ir_strategies import networks  # noqa: E402

HANDLED = [cls for cls in LAYER_CLASSES if cls in backend.HANDLERS and cls.__name__ != "Input"]


@pytest.mark.parametrize("cls", HANDLED, ids=lambda cls: cls.__name__)
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_every_value_the_ir_accepts_builds_or_is_refused(cls, data):
    """Field values drawn within the IR's constraints: the module builds and runs, or the
    back end refuses the node with a located error naming it and PyTorch."""
    net = data.draw(networks(cls))
    try:
        model = backend.build(net).eval()
    except cnndsl.CnnDslError as error:
        assert "PyTorch cannot express layer 'node'" in str(error), str(error)
        assert error.location.line == 2
        return
    with torch.no_grad():
        out = model(torch.randn(nchw(net.inputs[0].shape)))
    assert tuple(out.shape) == nchw(net.shape("node"))


@pytest.mark.parametrize("base", ["blocks", "dag"])
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_any_provenance_computes_the_same_function(base, data):
    """Issue 10 §5: whatever block calls a JSON IR records on its nodes, the module builds and,
    with the same weights node by node, computes what the network's own module does."""
    from ir_strategies import scrambled

    net, other = data.draw(scrambled(base))
    ours, theirs = backend.build(net).eval(), backend.build(other).eval()
    paths, other_paths = backend.module_paths(net), backend.module_paths(other)
    assert set(paths) == set(other_paths)
    state = ours.state_dict()
    moved = {}
    for node, path in paths.items():
        for key, value in state.items():
            if key.startswith(path + "."):
                moved[other_paths[node] + key[len(path) :]] = value
    theirs.load_state_dict(moved)
    inputs = [torch.randn(nchw(layer.shape)) for layer in net.inputs]
    with torch.no_grad():
        torch.testing.assert_close(theirs(*inputs), ours(*inputs), rtol=0, atol=0)
