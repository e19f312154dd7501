"""The torchvision zoo: specs/torchvision/<name>.cnn for every convolutional classifier of
torchvision 0.29.1 (../shared/refs/torchvision.json, copied in tests/data/), each a short file
that imports its family's library from specs/torchvision/lib/.

- Numbers, for every model, in the fast part of the suite (no framework): trainable
  parameters = ``params``, non-trainable (batch-norm statistics) = ``float_buffers``, MACs =
  ``conv_linear_macs`` where the reference gives them, at the reference's input size.  A
  model without a spec (none today; torchvision may add one) is listed in MISSING with what
  the language lacks for it, and fails as expected (xfail, strict: a model that gains a spec
  must leave the list).
- Shapes (``torch``): the layers of cnndsl's model and of torchvision's, paired as
  :func:`cnndsl.backends.torchvision_map.match_modules` pairs them (modules owning tensors and
  pooling calls, in forward order), have the same input and output shapes, and the IR's
  analysis gives the same shape for each of ours.  Both models are built on the meta device:
  no memory, no arithmetic.
- Weights (``torch``, ``reference``): the compiled module with torchvision's weights (random
  init, batch-norm statistics randomised, loaded by ``load_torchvision``) gives torchvision's
  outputs within 1e-4 of their scale -- for WEIGHTS_IN_CI in CI, for every model under
  ``-m zoo_full``.  For one model of each family (the first of FAMILIES): train mode, with
  equal outputs, gradients and batch-norm statistics after the step; and
  ``torch.compile(fullgraph=True)`` and ``torch.export`` with no graph break.
- Keras (``keras``): every model compiles to Keras and builds with torchvision's counts --
  KERAS_IN_CI in CI, the others under ``-m zoo_full``.

The whole sweep, every check of every model: ``-m "torch or keras or zoo_full"`` (run it
alone: it builds every model with weights, one at a time).
"""

from __future__ import annotations

import json
import math
import re

import pytest

import cnndsl
from conftest import SPECS, shared_ref

ZOO = SPECS / "torchvision"
REFERENCE = json.loads(shared_ref("torchvision.json").read_text())["models"]
MODELS = sorted(REFERENCE)

# What each model without a spec still needs from the language (none now; the list keeps the
# gap visible when torchvision adds a model).
MISSING: dict[str, str] = {}

# Families: the first model of each is checked in train mode and under torch.compile/export.
FAMILIES = {
    "resnet": ["resnet18", "resnext50_32x4d", "resnet34", "resnet50", "resnet101", "resnet152",
               "resnext101_32x8d", "resnext101_64x4d", "wide_resnet50_2", "wide_resnet101_2"],
    "densenet": ["densenet121", "densenet161", "densenet169", "densenet201"],
    "inception": ["googlenet", "inception_v3"],
    "mobilenet_v2": ["mobilenet_v2"],
    "squeezenet": ["squeezenet1_1", "squeezenet1_0"],
    "alexnet": ["alexnet"],
    "vgg": ["vgg11_bn", "vgg11", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn"],
    "shufflenet_v2": ["shufflenet_v2_x0_5", "shufflenet_v2_x1_0", "shufflenet_v2_x1_5",
                      "shufflenet_v2_x2_0"],
    "convnext": ["convnext_tiny", "convnext_small", "convnext_base", "convnext_large"],
    "mnasnet": ["mnasnet0_5", "mnasnet0_75", "mnasnet1_0", "mnasnet1_3"],
    "mobilenet_v3": ["mobilenet_v3_small", "mobilenet_v3_large"],
    "efficientnet": [f"efficientnet_b{i}" for i in range(8)]
    + ["efficientnet_v2_s", "efficientnet_v2_m", "efficientnet_v2_l"],
    "regnet": [
        "regnet_y_400mf", "regnet_x_400mf", "regnet_x_800mf", "regnet_x_1_6gf", "regnet_x_3_2gf",
        "regnet_x_8gf", "regnet_x_16gf", "regnet_x_32gf", "regnet_y_800mf", "regnet_y_1_6gf",
        "regnet_y_3_2gf", "regnet_y_8gf", "regnet_y_16gf", "regnet_y_32gf", "regnet_y_128gf",
    ],
}
# Models whose outputs with weights are compared in CI (the rest: -m zoo_full).
WEIGHTS_IN_CI = {
    "resnet18", "resnext50_32x4d", "densenet121", "googlenet", "inception_v3", "mobilenet_v2",
    "squeezenet1_1", "alexnet", "shufflenet_v2_x0_5", "convnext_tiny", "mnasnet0_5",
    "mobilenet_v3_small", "efficientnet_b0", "regnet_x_400mf", "regnet_y_400mf",
}
# Train mode (gradients of two models): family heads in CI but the largest (memory).
TRAIN_NOT_IN_CI = {"alexnet", "vgg11_bn"}
# The loader's own layer-by-layer values check on real zoo models in CI (the others:
# zoo_full).
VALUES_CHECK_IN_CI = {"resnet18", "inception_v3"}
# torch.compile / torch.export: family heads in CI (the others: zoo_full).
COMPILE_IN_CI = {
    "resnet18", "squeezenet1_1", "mobilenet_v2", "shufflenet_v2_x0_5", "mobilenet_v3_small",
}
# Input sizes for train mode and compile/export (64 unless given): any size the model takes.
TRAIN_SIZE = {"inception_v3": 96}
# Too large for CI's time and memory even for shapes on the meta device: -m zoo_full.
HEAVY = {"regnet_y_128gf", "regnet_y_32gf", "regnet_x_32gf", "convnext_large",
         "efficientnet_v2_l", "efficientnet_b7", "wide_resnet101_2", "resnext101_32x8d"}

# Constructor arguments: the reference counts GoogLeNet and Inception-v3 without aux heads.
KWARGS = {
    "googlenet": {"aux_logits": False, "init_weights": False},
    "inception_v3": {"aux_logits": False, "init_weights": False},
}


def spec_path(model: str):
    return ZOO / f"{model}.cnn"


def written(model: str) -> bool:
    return spec_path(model).exists()


def numbers_params() -> list:
    return [
        pytest.param(
            model,
            id=model,
            marks=[pytest.mark.xfail(reason=MISSING[model], strict=True)]
            if model in MISSING
            else [],
        )
        for model in MODELS
    ]


def torch_marks(model: str, in_ci) -> list:
    return [] if in_ci(model) else [pytest.mark.zoo_full]


def torch_params(in_ci) -> list:
    return [
        pytest.param(model, id=model, marks=torch_marks(model, in_ci))
        for model in MODELS
        if written(model)
    ]


# ------------------------------------------------------------------------ the numbers (fast)


@pytest.mark.parametrize("model", numbers_params())
def test_numbers(model):
    ref = REFERENCE[model]
    net = cnndsl.load(spec_path(model))  # a missing spec fails here: expected, see MISSING
    assert net.inputs[0].shape == (ref["input"], ref["input"], 3)
    a = net.analysis
    assert a.trainable_params == ref["params"]
    assert a.non_trainable_params == ref["float_buffers"]
    if "conv_linear_macs" in ref:
        assert a.macs == ref["conv_linear_macs"]
    assert a.outputs[0][1] == (1000,)


def test_missing_lists_exactly_the_models_without_a_spec():
    assert set(MISSING) <= set(REFERENCE)
    assert {m for m in MODELS if not written(m)} == set(MISSING)


def test_every_spec_is_a_torchvision_model_written_as_a_variant_of_its_family():
    """A variant file names a torchvision model, imports its family's library and defines
    no block of its own: the architecture lives in the library."""
    libraries = {p.name for p in (ZOO / "lib").glob("*.cnn")}
    in_families = {m for models in FAMILIES.values() for m in models}
    for path in sorted(ZOO.glob("*.cnn")):
        assert path.stem in REFERENCE, f"{path.name} is not a torchvision model"
        assert path.stem in in_families, f"{path.stem} belongs to no family in FAMILIES"
        text = path.read_text()
        imports = re.findall(r'^(?:import|from) "lib/([\w.]+)"', text, re.M)
        assert imports and set(imports) <= libraries, path.name
        assert not re.search(r"^\s*block\s", text, re.M), f"{path.name} defines a block"
        net = cnndsl.load(path)
        assert net.name == path.stem


# --------------------------------------------------------------------- PyTorch: shapes


def torchvision_model(model: str):
    import torchvision

    return getattr(torchvision.models, model)(weights=None, **KWARGS.get(model, {}))


@pytest.mark.torch
@pytest.mark.parametrize("model", torch_params(lambda m: m not in HEAVY))
def test_layer_shapes_equal_torchvision(model):
    torch = pytest.importorskip("torch")
    from cnndsl.backends.torch.generator import channels_last_runs
    from cnndsl.backends.torchvision_map import match_modules

    net = cnndsl.load(spec_path(model))
    with torch.device("meta"):
        ours = net.to_torch()
    pairs = match_modules(ours, meta_torchvision_model(model), net)
    assert pairs
    a = net.analysis
    channels_last = channels_last_runs(net)  # ConvNeXt's block: LayerNorm, Linear on NHWC
    for pair in pairs:
        where = f"{pair.ours.describe()} / {pair.theirs.describe()}"
        assert same_shape(pair.ours.input_shape, pair.theirs.input_shape), where
        assert same_shape(pair.ours.output_shape, pair.theirs.output_shape), where
        if pair.node is not None:  # the analysis agrees with the module
            shape = a[pair.node].output_shape
            shape = shape if pair.node in channels_last else channels_first(shape)
            assert shape == pair.ours.output_shape[1:], where


def meta_torchvision_model(model: str):
    """torchvision's model with its tensors on the meta device: built there (no memory, no
    initialisation) when it can be; RegNet computes its widths with tensors while it is
    built, so it is built on the CPU and moved."""
    import torch

    try:
        with torch.device("meta"):
            return torchvision_model(model)
    except NotImplementedError:  # "Cannot copy out of meta tensor"
        return torchvision_model(model).to("meta")


def pooled(shape):
    """A shape with a 1 x 1 map as its vector: cnndsl's global pooling gives (N, C), where
    torchvision keeps (N, C, 1, 1) up to its flatten (ConvNeXt's last layer norm reads it)."""
    return shape[:2] if shape is not None and len(shape) == 4 and shape[2:] == (1, 1) else shape


def same_shape(ours, theirs) -> bool:
    """One shape, up to a 1 x 1 map against its vector, and a map held channels last
    (ConvNeXt's layer norm and linear layers) against channels first."""
    ours, theirs = pooled(ours), pooled(theirs)
    if ours == theirs:
        return True
    if ours is None or theirs is None or len(ours) != 4 or len(theirs) != 4:
        return False
    n, a, b, c = theirs
    return ours in ((n, c, a, b), (n, b, c, a))


def channels_first(shape):
    return (shape[2], shape[0], shape[1]) if len(shape) == 3 else shape


# -------------------------------------------------------------------- PyTorch: weights


def randomize_batchnorms(model) -> None:
    """Statistics and affine parameters far from the identity, so that a mismatch shows."""
    import torch

    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)


def loaded_pair(model: str, check: bool = False):
    """(cnndsl's model, torchvision's, the mapping), with torchvision's weights in ours."""
    import torch

    from cnndsl.backends.torchvision_map import load_torchvision

    torch.manual_seed(0)
    net = cnndsl.load(spec_path(model))
    ours = net.to_torch().eval()
    theirs = torchvision_model(model).eval()
    randomize_batchnorms(theirs)
    mapping = load_torchvision(ours, theirs, check=check)
    assert set(mapping) == set(ours.state_dict())  # every tensor came from torchvision
    return ours, theirs, mapping


def sample(model: str, batch: int = 1, size: int | None = None):
    import torch

    size = size or REFERENCE[model]["input"]
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(1))


def assert_close_to_scale(ours, theirs, tolerance=1e-4) -> tuple[float, float]:
    """Asserts that the largest difference is within ``tolerance`` of the largest value of
    ``theirs`` (the scale); returns (difference, scale)."""
    assert ours.shape == theirs.shape
    scale = max(theirs.abs().max().item(), 1e-6)
    difference = (ours - theirs).abs().max().item()
    assert difference <= tolerance * scale
    return difference, scale


@pytest.mark.torch
@pytest.mark.reference
@pytest.mark.parametrize("model", torch_params(lambda m: m in WEIGHTS_IN_CI))
def test_outputs_equal_torchvision_with_its_weights(model, freed, record_property):
    """The difference and the output's scale are recorded: the session's summary lists them
    and the worst (conftest.py), which README quotes after a sweep."""
    torch = pytest.importorskip("torch")
    ours, theirs, _ = loaded_pair(model)
    x = sample(model)
    with torch.no_grad():
        record_property("max_abs_diff", {"torch": assert_close_to_scale(ours(x), theirs(x))})


@pytest.mark.torch
@pytest.mark.reference
@pytest.mark.parametrize("model", torch_params(lambda m: m in VALUES_CHECK_IN_CI))
def test_loader_finds_every_layer_computing_what_torchvision_computes(model, freed):
    """load_torchvision's own check: every paired layer sees the same input and gives the same
    output as torchvision's, on the reference input size."""
    loaded_pair(model, check=True)


def family_heads(in_ci) -> list:
    return [
        pytest.param(models[0], id=models[0], marks=torch_marks(models[0], in_ci))
        for models in FAMILIES.values()
    ]


@pytest.mark.torch
@pytest.mark.reference
@pytest.mark.parametrize("model", family_heads(lambda m: m not in TRAIN_NOT_IN_CI))
def test_train_mode_outputs_gradients_and_statistics_equal(model, freed):
    """Training mode, on a small input (the models pool globally, so any size from
    TRAIN_SIZE up computes the same layers): outputs from batch statistics, the gradient of
    every parameter, and the batch-norm statistics after the step.  Dropout and stochastic
    depth stay off (they draw random numbers, which the two models need not draw in one
    order)."""
    torch = pytest.importorskip("torch")
    ours, theirs, mapping = loaded_pair(model)
    x = sample(model, batch=2, size=TRAIN_SIZE.get(model, 64))
    for m in (ours, theirs):
        m.train()
        for sub in m.modules():
            if not isinstance(sub, torch.nn.modules.batchnorm._BatchNorm) and not any(
                True for _ in sub.children()
            ):
                sub.eval()
    outputs = [m(x) for m in (ours, theirs)]
    outputs = [o[0] if isinstance(o, tuple) else o for o in outputs]
    assert_close_to_scale(outputs[0], outputs[1], 1e-3)
    weights = torch.randn(outputs[1].shape, generator=torch.Generator().manual_seed(2))
    for out in outputs:
        (out * weights).sum().backward()
    ours_params = dict(ours.named_parameters())
    ours_buffers = dict(ours.named_buffers())
    theirs_params = dict(theirs.named_parameters())
    theirs_buffers = dict(theirs.named_buffers())
    flattened = flattened_reads(ours, theirs)
    for ours_key, theirs_key in mapping.items():
        if ours_key in ours_params:
            ours_grad = ours_params[ours_key].grad
            theirs_grad = theirs_params[theirs_key].grad
            assert ours_grad is not None, ours_key
            if ours_key in flattened:  # its columns read (H, W, C), torchvision's (C, H, W)
                h, w, c = flattened[ours_key]
                theirs_grad = theirs_grad.reshape(-1, c, h, w).permute(0, 2, 3, 1)
            assert_close_to_scale(ours_grad.reshape(theirs_grad.shape), theirs_grad, 1e-3)
        elif not ours_key.endswith("num_batches_tracked"):
            assert_close_to_scale(ours_buffers[ours_key], theirs_buffers[theirs_key], 1e-4)


def flattened_reads(ours, theirs) -> dict[str, tuple[int, int, int]]:
    """{our weight's key: (H, W, C)} for the linear layers reading a flattened map larger than
    1x1 (AlexNet's and VGG's first classifier layer): the loader permuted their columns, from
    torchvision's (C, H, W) order to cnndsl's (H, W, C), and their gradients differ by the
    same permutation."""
    from cnndsl.backends.torchvision_map import match_modules

    return {
        f"{pair.ours.path}.weight": pair.ours.hwc
        for pair in match_modules(ours, theirs)
        if pair.ours.hwc is not None and pair.theirs.hwc is None
    }


@pytest.mark.torch
@pytest.mark.parametrize("model", family_heads(lambda m: m in COMPILE_IN_CI))
def test_compile_fullgraph_and_export(model, freed):
    """torch.compile(fullgraph=True) traces the whole model with no graph break (TorchDynamo:
    the eager backend, without Inductor's code generation) and torch.export exports it; both
    compute what the module computes."""
    torch = pytest.importorskip("torch")
    net = cnndsl.load(spec_path(model))
    ours = net.to_torch().eval()
    x = sample(model, size=TRAIN_SIZE.get(model, 64))
    with torch.no_grad():
        expected = ours(x)
        compiled = torch.compile(ours, fullgraph=True, backend="eager")
        assert_close_to_scale(compiled(x), expected, 1e-5)
        exported = torch.export.export(ours, (x,))
        assert_close_to_scale(exported.module()(x), expected, 1e-5)
    torch._dynamo.reset()


INCEPTION_V3_AUX = """\
network inception_v3_aux
input 299x299x3
import "lib/inception.cnn"
output logits, aux

inception_v3_stem()
inception_a(32) -> inception_a(64) -> inception_a(64)
inception_b()
inception_c(128) -> inception_c(160) -> inception_c(160)
Mixed_6e = inception_c(192)
aux = inception_v3_aux()
Mixed_6e -> inception_d() -> inception_e() -> inception_e()
logits = inception_v3_classifier()
"""


@pytest.mark.torch
@pytest.mark.reference
def test_aux_head_loads_from_a_module_and_from_a_state_dict(freed):
    """Inception v3 with its auxiliary classifier as a second output: torchvision runs the
    head only in training and registers it before Mixed_7a; the loader finds it from the
    module (it watches the branches that run in training) and from the state dict (it places
    each top-level child where it fits)."""
    torch = pytest.importorskip("torch")
    import torchvision

    from cnndsl.backends.torchvision_map import load_torchvision

    net = cnndsl.loads(INCEPTION_V3_AUX, filename=str(ZOO / "inception_v3_aux.cnn"))
    torch.manual_seed(0)
    theirs = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False)
    randomize_batchnorms(theirs.eval())
    x = sample("inception_v3")
    for source in (theirs, theirs.state_dict()):
        ours = net.to_torch().eval()
        mapping = load_torchvision(ours, source, check=False)
        assert set(mapping) == set(ours.state_dict())
        assert any(v.startswith("AuxLogits.") for v in mapping.values())
        with torch.no_grad():
            logits, aux = ours(x)
            theirs.train()  # the aux head runs in training mode only: keep the leaves in eval
            for m in theirs.modules():
                if not any(True for _ in m.children()):
                    m.eval()
            expected = theirs(x)
            theirs.eval()
        assert_close_to_scale(logits, expected.logits)
        assert_close_to_scale(aux, expected.aux_logits)


GOOGLENET_AUX = """\
network googlenet_aux
input 224x224x3
import "lib/inception.cnn"
output logits, aux2 (training), aux1 (training)

googlenet_stem()
inception(64, 96, 128, 16, 32, 32) -> inception(128, 128, 192, 32, 96, 64)
3x3+2(V) maxpool ceil
inception4a = inception(192, 96, 208, 16, 48, 64)
aux1 = googlenet_aux()
inception4a -> inception(160, 112, 224, 24, 64, 64) -> inception(128, 128, 256, 24, 64, 64)
inception4d = inception(112, 144, 288, 32, 64, 64)
aux2 = googlenet_aux()
inception4d -> inception(256, 160, 320, 32, 128, 128)
2x2+2(V) maxpool ceil
inception(256, 160, 320, 32, 128, 128) -> inception(384, 192, 384, 48, 128, 128)
logits = googlenet_classifier()
"""


AUX_SPECS = [
    (GOOGLENET_AUX, "googlenet"),
    (
        INCEPTION_V3_AUX.replace("output logits, aux", "output logits, aux (training)"),
        "inception_v3",
    ),
]


@pytest.mark.torch
@pytest.mark.parametrize("text,model", AUX_SPECS, ids=["googlenet", "inception_v3"])
def test_aux_heads_count_as_torchvision_counts_them(text, model):
    """The family libraries' auxiliary classifiers, as training outputs: the network's
    parameters are torchvision's with aux_logits=True (counted on the meta device)."""
    torch = pytest.importorskip("torch")
    import torchvision

    net = cnndsl.loads(text, filename=str(ZOO / f"{model}_aux.cnn"))
    with torch.device("meta"):
        theirs = getattr(torchvision.models, model)(
            weights=None, aux_logits=True, init_weights=False
        )
    params = sum(p.numel() for p in theirs.parameters())
    buffers = sum(
        b.numel() for n, b in theirs.named_buffers() if not n.endswith("num_batches_tracked")
    )
    assert net.analysis.trainable_params == params
    assert net.analysis.non_trainable_params == buffers
    assert len(net.training_outputs) == len(net.outputs) - 1  # all but the logits


@pytest.mark.parametrize(
    "text,model",
    [
        pytest.param(*AUX_SPECS[0], id="googlenet"),
        # the brute force's position sets of 323 nodes at 299 x 299 hold ~550 MB: not in CI
        pytest.param(*AUX_SPECS[1], id="inception_v3", marks=pytest.mark.zoo_full),
    ],
)
def test_receptive_fields_of_training_only_branches_match_brute_force(text, model):
    """The branches that run only in training (the aux heads: GoogLeNet's adaptive pooling of
    14 to 4, whose bins overlap, Inception-v3's 5x5+3 pooling then a global one) have the
    receptive fields of the brute-force dependency computation, at every position of every
    node, as every other layer (no framework)."""
    from test_analysis import check_fields_by_brute_force

    net = cnndsl.loads(text, filename=str(ZOO / f"{model}_aux.cnn"))
    training_only = net.training_only()
    assert training_only and {layer.name for layer in net.layers} >= training_only
    kinds = {layer.kind for layer in net.layers if layer.name in training_only}
    assert kinds >= {"conv", "dense"}
    check_fields_by_brute_force(net)


@pytest.mark.torch
@pytest.mark.reference
@pytest.mark.parametrize("text,model", AUX_SPECS, ids=["googlenet", "inception_v3"])
def test_training_outputs_are_torchvisions_aux_heads(text, model, freed):
    """With torchvision's weights (aux_logits=True): in eval mode the model returns the logits
    alone, torchvision's; in training mode (layers in eval mode, so that batch norm and
    dropout compute the same function) it returns torchvision's outputs in its order --
    GoogLeNet's (logits, aux2, aux1), Inception-v3's (logits, aux) -- as a tuple where
    torchvision returns a named tuple."""
    torch = pytest.importorskip("torch")
    import torchvision

    from cnndsl.backends.torchvision_map import load_torchvision

    net = cnndsl.loads(text, filename=str(ZOO / f"{model}_aux.cnn"))
    torch.manual_seed(0)
    theirs = getattr(torchvision.models, model)(weights=None, aux_logits=True, init_weights=False)
    randomize_batchnorms(theirs.eval())
    ours = net.to_torch().eval()
    load_torchvision(ours, theirs, check=False)
    x = sample(model)
    with torch.no_grad():
        logits = ours(x)
        assert isinstance(logits, torch.Tensor)
        assert_close_to_scale(logits, theirs(x))
        for m in (ours, theirs):
            m.train()
            for sub in m.modules():
                if sub is not m:
                    sub.eval()
        outputs, expected = ours(x), theirs(x)
    assert isinstance(outputs, tuple) and len(outputs) == len(expected) == len(net.outputs)
    for got, want in zip(outputs, expected):
        assert_close_to_scale(got, want)
    assert_close_to_scale(outputs[0], logits)


# ---------------------------------------------------------------------------------- Keras

# Keras models built in CI: one of each family, the small ones (building allocates every
# weight; the others: -m zoo_full).
KERAS_IN_CI = {
    "resnet18", "densenet121", "googlenet", "inception_v3", "mobilenet_v2", "squeezenet1_1",
    "shufflenet_v2_x0_5", "convnext_tiny", "mnasnet0_5", "mobilenet_v3_small",
    "efficientnet_b0", "regnet_x_400mf", "regnet_y_400mf",
}


@pytest.mark.keras
@pytest.mark.parametrize(
    "model",
    [
        pytest.param(model, id=model, marks=[] if model in KERAS_IN_CI else [pytest.mark.zoo_full])
        for model in MODELS
        if written(model)
    ],
)
def test_keras_model_has_torchvisions_counts(model, freed):
    """A torchvision spec compiled to Keras builds, with torchvision's parameters as trainable
    weights and its batch-norm statistics as non-trainable ones, and the analysis' output
    shape."""
    pytest.importorskip("keras")

    def count(weights) -> int:
        return sum(math.prod(w.shape) for w in weights)

    ref = REFERENCE[model]
    net = cnndsl.load(spec_path(model))
    keras_model = net.to_keras()
    assert count(keras_model.trainable_weights) == ref["params"]
    assert count(keras_model.non_trainable_weights) == ref["float_buffers"]
    assert tuple(keras_model.output_shape[1:]) == net.analysis.outputs[0][1]
