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

pytestmark = [pytest.mark.torch, pytest.mark.reference]

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
    ours = build(net).eval()
    theirs = MODELS[spec](torchvision.models).eval()
    randomize_batchnorms(theirs)
    mapping = load_torchvision(ours, theirs)
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
    torch.testing.assert_close(ours_w, w.permute(0, 2, 3, 1))


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
