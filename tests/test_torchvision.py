"""cnndsl's PyTorch models of the torchvision specs compute what torchvision's models compute,
once :func:`cnndsl.backends.torchvision_map.load_torchvision` has copied the weights across."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

import cnndsl  # noqa: E402
from cnndsl.backends.torch import build  # noqa: E402
from cnndsl.backends.torchvision_map import load_torchvision  # noqa: E402
from conftest import SPECS  # noqa: E402

# Each test's models (VGG-16: 553 MB in each) are given back before the next is built.
pytestmark = [pytest.mark.torch, pytest.mark.reference, pytest.mark.usefixtures("freed")]


MODELS = {
    "alexnet_torchvision": lambda m: m.alexnet(weights=None),
    "vgg16": lambda m: m.vgg16(weights=None),
    # weights=None: transform_input is off; the auxiliary heads are left out
    "googlenet_torchvision": lambda m: m.googlenet(
        weights=None, aux_logits=False, init_weights=False, transform_input=False
    ),
    "resnet34_torchvision": lambda m: m.resnet34(weights=None),
    "resnet50_torchvision": lambda m: m.resnet50(weights=None),
    "mobilenet_v2_torchvision": lambda m: m.mobilenet_v2(weights=None),
}


def randomize_batchnorms(model) -> None:
    """Statistics and affine parameters far from the identity, so that a mismatch shows."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)


@pytest.mark.parametrize("spec", MODELS)
def test_same_outputs_as_torchvision(spec):
    path = SPECS / f"{spec}.cnn"
    if not path.exists():
        pytest.skip(f"no {path.name}")
    torch.manual_seed(0)
    net = cnndsl.load(path)
    with torch.device("meta"):  # no memory of its own: it takes torchvision's tensors
        ours = build(net).eval()
    theirs = MODELS[spec](torchvision.models).eval()
    randomize_batchnorms(theirs)
    # the outputs are compared below
    mapping = load_torchvision(ours, theirs, check=False, assign=True)
    assert set(mapping) == set(ours.state_dict())  # every tensor came from torchvision

    # compare logits: the last linear layer's output (a spec may end in a softmax)
    logits = {}
    last = [m for m in ours.modules() if isinstance(m, torch.nn.Linear)][-1]
    last.register_forward_hook(lambda module, args, out: logits.setdefault("ours", out))
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        ours(x)
        expected = theirs(x)
    assert logits["ours"].shape == expected.shape
    assert (logits["ours"] - expected).abs().max().item() < 1e-4


def test_assigned_tensors_are_torchvisions():
    """With assign, our tensors are torchvision's (shared memory, their requires_grad ours),
    but for the dense weight whose columns are permuted, which is new; torchvision's model is
    left as it was."""
    net = cnndsl.load(SPECS / "alexnet_torchvision.cnn")
    with torch.device("meta"):
        ours = build(net)
    ours.conv_1.weight.requires_grad_(False)
    theirs = torchvision.models.alexnet(weights=None)
    before = {k: v.clone() for k, v in theirs.state_dict().items()}
    mapping = load_torchvision(ours, theirs, check=False, assign=True)
    state, their_state = ours.state_dict(keep_vars=True), theirs.state_dict(keep_vars=True)
    first_dense = mapping_key(mapping, "classifier.1.weight")
    for key, their_key in mapping.items():
        shared = state[key].data_ptr() == their_state[their_key].data_ptr()
        assert shared == (key != first_dense), key
        assert isinstance(state[key], torch.nn.Parameter)
    assert not ours.conv_1.weight.requires_grad and ours.conv_2.weight.requires_grad
    w = theirs.classifier[1].weight.reshape(4096, 256, 6, 6)
    assert torch.equal(state[first_dense].reshape(4096, 6, 6, 256), w.permute(0, 2, 3, 1))
    assert all(torch.equal(before[k], v) for k, v in theirs.state_dict().items())
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():  # and it computes what torchvision's does
        assert torch.allclose(ours.eval()(x), theirs.eval()(x), atol=1e-5)

    # a state dict without batch norm's count (older PyTorch's): the count is ours, 0
    net = cnndsl.loads("input 32x32x3\n3x3 conv 8\nbn\ngap\ndense 10")
    with torch.device("meta"):
        partly = build(net)
    source = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8), torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(), torch.nn.Linear(8, 10),
    )
    state = {k: v for k, v in source.state_dict().items() if "num_batches" not in k}
    load_torchvision(partly, state, check=False, assign=True)
    assert not any(t.is_meta for t in partly.state_dict().values())
    assert partly.state_dict()["batchnorm_1.num_batches_tracked"].item() == 0


def test_state_dict_in_registration_order():
    """A state dict (no forward to watch) is matched in its registration order."""
    path = SPECS / "alexnet_torchvision.cnn"
    if not path.exists():
        pytest.skip("no alexnet_torchvision.cnn")
    torch.manual_seed(0)
    net = cnndsl.load(path)
    ours = build(net).eval()
    theirs = torchvision.models.alexnet(weights=None).eval()
    mapping = load_torchvision(ours, theirs.state_dict())
    assert mapping["conv_1.weight"] == "features.0.weight"
    # the first dense layer reads (H, W, C)-flattened features: its columns are permuted
    w = theirs.classifier[1].weight.reshape(4096, 256, 6, 6)
    first_dense = mapping_key(mapping, "classifier.1.weight")
    ours_w = ours.state_dict()[first_dense].reshape(4096, 6, 6, 256)
    # copied, so equal bit for bit (assert_close's float64 temporaries of these 38 million
    # weights took 1.3 GB)
    assert torch.equal(ours_w, w.permute(0, 2, 3, 1))


def mapping_key(mapping: dict[str, str], theirs: str) -> str:
    return next(k for k, v in mapping.items() if v == theirs)


def test_mismatched_architectures_are_refused():
    path = SPECS / "alexnet_torchvision.cnn"
    if not path.exists():
        pytest.skip("no alexnet_torchvision.cnn")
    net = cnndsl.load(path)
    ours = build(net)
    with pytest.raises(ValueError, match="the models diverge at layer 1 "):
        load_torchvision(ours, torchvision.models.resnet18(weights=None).state_dict())


# ------------------------------------------------------ the loader's checks and messages


class Small(torch.nn.Module):
    """A torchvision-style model: conv-bn-relu, two concatenated branches, a max pool, and a
    classifier reading the flattened (C, H, W) map."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn = torch.nn.BatchNorm2d(8)
        self.branch_a = torch.nn.Conv2d(8, 4, 1)
        self.branch_b = torch.nn.Conv2d(8, 4, 3, padding=1)
        self.pool = torch.nn.MaxPool2d(2)
        self.fc = torch.nn.Linear(8 * 4 * 4, 10)

    def forward(self, x):
        x = torch.relu(self.bn(self.conv(x)))
        x = torch.cat([self.branch_a(x), torch.relu(self.branch_b(x))], 1)
        return self.fc(torch.flatten(self.pool(x), 1))


SMALL = """\
network small
input 8x8x3
3x3(1) conv 8 bias=off -> bn epsilon=1e-5 momentum=0.9 -> relu
concat { 1x1 conv 4 | 3x3(1) conv 4 relu }
2x2 maxpool
flatten
dense 10
"""


def small_pair(spec: str = SMALL):
    torch.manual_seed(0)
    theirs = Small().eval()
    with torch.no_grad():
        theirs.bn.running_mean.normal_(0, 0.5)
        theirs.bn.running_var.uniform_(0.5, 1.5)
    return build(cnndsl.loads(spec)).eval(), theirs


def same_outputs(ours, theirs) -> bool:
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        return torch.allclose(ours(x), theirs(x), atol=1e-5)


def test_small_model_loads_and_computes_the_same():
    ours, theirs = small_pair()
    mapping = load_torchvision(ours, theirs)
    assert mapping["dense_1.weight"] == "fc.weight"  # the columns permuted from (C, H, W)
    assert same_outputs(ours, theirs)
    ours2, _ = small_pair()
    load_torchvision(ours2, theirs.state_dict())
    assert same_outputs(ours2, theirs)


DIVERGENCES = {
    # a setting that changes the function: batch norm's eps (Keras's default, 0.001) ...
    "eps": (
        "bn epsilon=1e-5 momentum=0.9",
        "bn momentum=0.9",
        r"diverge at layer 2 \(after 1 matching\): eps 0.001 against 1e-05\n"
        r"  cnndsl: +batchnorm_1 \(<string>:3\): BatchNorm2d\(8, eps=0.001, momentum=0.1.*\n"
        r"  torchvision: bn: BatchNorm2d\(8, eps=1e-05, momentum=0.1",
    ),
    # ... its momentum (Keras's default 0.99 is PyTorch's 0.01)
    "momentum": ("bn epsilon=1e-5 momentum=0.9", "bn epsilon=1e-5", r"momentum 0.01.* against 0.1"),
    # the branches of the concatenation in the other order
    "swapped branches": (
        "concat { 1x1 conv 4 | 3x3(1) conv 4 relu }",
        "concat { 3x3(1) conv 4 relu | 1x1 conv 4 }",
        r"layer 3 \(after 2 matching\): tensors weight \(4, 8, 3, 3\), bias \(4,\) against"
        r" weight \(4, 8, 1, 1\), bias \(4,\)",
    ),
    # a missing layer
    "missing pool": (
        "2x2 maxpool\n", "", r"layer 5 \(after 4 matching\): a linear against a max pooling"
    ),
    # the pool in ceil mode: the same shapes at 8x8, another function at other sizes
    "ceil mode": ("2x2 maxpool", "2x2 maxpool ceil", r"ceil_mode True against False"),
    # a convolution's padding
    "padding": ("3x3(1) conv 8", "3x3(2) conv 8", r"layer 1 .*: padding \(2, 2\) against \(1, 1\)"),
    "dilation": (
        "3x3(1) conv 8", "3x3(1) conv 8 dilation=2", r"dilation \(2, 2\) against \(1, 1\)"
    ),
    # what shapes cannot show: a missing activation, found by running both models
    "missing relu": (
        "3x3(1) conv 4 relu",
        "3x3(1) conv 4",
        r"different values before this layer, whose inputs differ .*\n"
        r"  cnndsl: +maxpool_1 \(<string>:5\): max_pool2d\(kernel_size=\(2, 2\)",
    ),
}


@pytest.mark.parametrize("case", DIVERGENCES)
def test_divergences_are_named(case):
    old, new, message = DIVERGENCES[case]
    assert old in SMALL
    ours, theirs = small_pair(SMALL.replace(old, new))
    with pytest.raises(ValueError, match=message):
        load_torchvision(ours, theirs)


def test_generated_file_loads_without_the_network(tmp_path):
    """The module `cnndsl compile --target torch` writes knows its input shape (its class's
    input_shape): the loader needs nothing else, from a module or from a state dict."""
    import importlib.util
    import subprocess
    import sys

    spec = tmp_path / "small.cnn"
    spec.write_text(SMALL)
    out = tmp_path / "small_model.py"
    subprocess.run(
        [sys.executable, "-m", "cnndsl", "compile", str(spec), "--target", "torch", "-o", str(out)],
        check=True,
    )
    loader = importlib.util.spec_from_file_location("small_model", out)
    module = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(module)
    _, theirs = small_pair()
    for source in (theirs, theirs.state_dict()):
        ours = module.build_model().eval()
        assert ours.input_shape == (3, 8, 8)
        mapping = load_torchvision(ours, source)
        assert set(mapping) == set(ours.state_dict())
        assert same_outputs(ours, theirs)


def test_a_model_of_unknown_input_shape_is_refused_with_advice():
    _, theirs = small_pair()
    with pytest.raises(ValueError, match=r"pass input_shape=\(C, H, W\) or net="):
        load_torchvision(Small(), theirs)
    mapping = load_torchvision(Small(), theirs, input_shape=(3, 8, 8))  # any model of its layers
    assert mapping["fc.weight"] == "fc.weight"


class WithAux(torch.nn.Module):
    """An auxiliary head registered last, run in the middle, and only in training (as
    GoogLeNet's aux1 and aux2)."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.head = torch.nn.Conv2d(8, 8, 1)
        self.fc = torch.nn.Linear(8, 10)
        self.aux = torch.nn.ModuleDict(
            {"conv": torch.nn.Conv2d(8, 4, 1), "fc": torch.nn.Linear(4, 10)}
        )

    def forward(self, x):
        x = self.conv(x)
        aux = self.aux["fc"](self.aux["conv"](x).mean((2, 3))) if self.training else None
        out = self.fc(self.head(x).mean((2, 3)))
        return (out, aux) if self.training else out


WITH_AUX = """\
network with_aux
input 8x8x3
output logits, aux
features = 3x3(1) conv 8
aux = 1x1 conv 4 -> globalavgpool -> dense 10
features -> 1x1 conv 8 -> globalavgpool
logits = dense 10
"""


def test_aux_head_found_from_a_module_and_from_a_state_dict():
    torch.manual_seed(0)
    theirs = WithAux()
    for source in (theirs, theirs.state_dict()):
        ours = build(cnndsl.loads(WITH_AUX)).eval()
        mapping = load_torchvision(ours, source)
        assert [v for v in mapping.values()] == [
            "conv.weight", "conv.bias", "aux.conv.weight", "aux.conv.bias", "aux.fc.weight",
            "aux.fc.bias", "head.weight", "head.bias", "fc.weight", "fc.bias",
        ]
        x = torch.randn(2, 3, 8, 8)
        with torch.no_grad():
            logits, aux = ours(x)
            expected, expected_aux = theirs.train()(x)
            theirs.eval()
        torch.testing.assert_close(logits, expected)
        torch.testing.assert_close(aux, expected_aux)


class ChannelsLast(torch.nn.Module):
    """ConvNeXt's way: layer norm and a linear layer on the channels of an (N, H, W, C) map."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.norm = torch.nn.LayerNorm(8, eps=1e-6)
        self.fc = torch.nn.Linear(8, 16)

    def forward(self, x):
        x = self.conv(x).permute(0, 2, 3, 1)
        return self.fc(self.norm(x)).permute(0, 3, 1, 2)


class ChannelsFirst(torch.nn.Module):
    """The same function on (N, C, H, W) maps: a layer norm over dimension 1, a 1x1 conv."""

    class LayerNorm2d(torch.nn.LayerNorm):
        def forward(self, x):
            return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.norm = self.LayerNorm2d(8, eps=1e-6)
        self.fc = torch.nn.Conv2d(8, 16, 1)

    def forward(self, x):
        return self.fc(self.norm(self.conv(x)))


def test_channels_last_layers_pair_with_channels_first_ones():
    """A linear layer on the channels pairs with a 1x1 convolution (its weight reshaped), and
    the values check compares maps held channels last with channels-first ones."""
    torch.manual_seed(0)
    theirs, ours = ChannelsLast(), ChannelsFirst()
    mapping = load_torchvision(ours, theirs, input_shape=(3, 6, 6))
    assert mapping["fc.weight"] == "fc.weight"
    x = torch.randn(2, 3, 6, 6)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x))
    ours.norm.eps = 1e-5
    with pytest.raises(ValueError, match=r"eps 1e-05 against 1e-06"):
        load_torchvision(ours, theirs, input_shape=(3, 6, 6))
