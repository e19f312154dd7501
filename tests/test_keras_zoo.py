"""The keras.applications zoo: specs/keras/<Name>.cnn for every model of keras.applications in
Keras 3.15.1 (../shared/refs/keras_applications.json, copied in tests/data/), families as
libraries in specs/keras/lib/.

- Numbers, for every model with a spec, in the fast part of the suite (no framework): total
  and trainable parameters equal the reference's, at its input size.  The models without a spec
  yet are listed in MISSING with what they wait for, and fail as expected (xfail, strict: a
  model that gains a spec must leave the list).
- Layers (``keras``): every layer of the spec (its IR and analysis: kind, settings, output
  shape, parameters) is paired with keras.applications' layer at the same place in the graph
  (:func:`cnndsl.backends.keras_applications_map.match_keras_applications`; names differ, and
  so do spellings such as SAME padding against ZeroPadding2D + VALID): for LAYERS_IN_CI in CI,
  for every model under ``-m zoo_full``.
- Weights (``keras``, ``torch``): the Keras model compiled from the spec, given keras.applications'
  weights (seeded random init; betas, gammas, biases and statistics randomised, batch-norm
  statistics fitted to a batch: see randomize, calibrate) by ``load_keras_applications``, gives
  keras.applications' outputs (max abs difference <= 1e-5 of their scale); the same weights
  carried to the PyTorch model by ``keras_to_torch`` give them too (<= 1e-4, plus 3 times the
  PyTorch model's own float32 error where float32 cannot do better) -- for WEIGHTS_IN_CI in CI,
  for every model under ``-m zoo_full``.
- The loader itself, on small models: branches of an add and a concat listed in the other order
  (where the shapes coincide, so that ``set_weights(get_weights())`` loads silently wrong
  weights) load right; a model that differs gets a message naming the first divergence; the
  generated file's ``build_model()`` loads as the live model does; and compiled models using
  every custom layer and activation the Keras back end can write (all that layers.py registers),
  saved with ``model.save``, load in a fresh process after one import, with the same outputs.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import cnndsl
from cnndsl.ir.examples import example_lines, example_spec
from conftest import SPECS, shared_ref

ZOO = SPECS / "keras"
REFERENCE = json.loads(shared_ref("keras_applications.json").read_text())["models"]
MODELS = sorted(REFERENCE)

# What each model without a spec still waits for.
MISSING: dict[str, str] = {}
# Layer-by-layer comparison in CI: one or two models of each family (the rest: -m zoo_full).
LAYERS_IN_CI = {
    "ResNet50",
    "ResNet50V2",
    "Xception",
    "InceptionV3",
    "InceptionResNetV2",
    "MobileNet",
    "MobileNetV2",
    "DenseNet121",
    "ConvNeXtTiny",
    "EfficientNetB0",
    "EfficientNetV2B0",
    "MobileNetV3Small",
    "NASNetMobile",
}
# Outputs with keras.applications' weights in CI (the rest: -m zoo_full).
WEIGHTS_IN_CI = {"ResNet50V2", "DenseNet121", "MobileNetV2"}


def _marks(name: str, in_ci: set[str]) -> list:
    marks = []
    if name in MISSING:
        marks.append(pytest.mark.xfail(reason=MISSING[name], strict=True))
    if name not in in_ci:
        marks.append(pytest.mark.zoo_full)
    return marks


def load(name: str) -> cnndsl.Network:
    return cnndsl.load(ZOO / f"{name}.cnn")


# ------------------------------------------------------------------ numbers (fast, no framework)


@pytest.mark.parametrize("name", [pytest.param(n, marks=_marks(n, set(MODELS))) for n in MODELS])
def test_counts(name):
    """Total and trainable parameters equal keras.applications' at its input size."""
    ref = REFERENCE[name]
    net = load(name)
    assert [tuple(i.shape) for i in net.inputs] == [tuple(ref["input"])]
    assert (net.analysis.total_params, net.analysis.trainable_params) == (
        ref["total"],
        ref["trainable"],
    )


def test_zoo_files_are_the_reference_models():
    """Every spec in specs/keras/ is a model of the reference, named as its file; every model
    is written or listed as missing."""
    files = {path.stem for path in ZOO.glob("*.cnn")}
    assert files <= set(MODELS), files - set(MODELS)
    assert not files & set(MISSING), f"written, but still listed as missing: {files & set(MISSING)}"
    assert files | set(MISSING) == set(MODELS), set(MODELS) - files - set(MISSING)
    for name in sorted(files):
        assert re.search(rf"^network {name}$", (ZOO / f"{name}.cnn").read_text(), re.M), name
    for listed in (LAYERS_IN_CI, WEIGHTS_IN_CI):
        assert set(listed) <= set(MODELS)


def test_every_layer_kind_has_a_unit():
    """The matcher reads every IR layer kind (a new kind needs a handler in
    cnndsl/backends/unitgraph/from_network.py)."""
    from cnndsl.backends.unitgraph import NETWORK_HANDLERS
    from cnndsl.ir import LAYER_CLASSES

    kinds = {cls.model_fields["kind"].default for cls in LAYER_CLASSES}
    assert kinds == set(NETWORK_HANDLERS)


EXAMPLE_CASES = example_lines()


@pytest.mark.parametrize(
    "kind, shape, line", EXAMPLE_CASES, ids=[f"{k}:{l}" for k, _, l in EXAMPLE_CASES]
)
def test_every_example_reads_as_units(kind, shape, line):
    """Every example line of every kind (cnndsl/ir/examples.py) becomes units with the
    analysis' shapes and parameter counts; each node with parameters is one."""
    from cnndsl.backends.unitgraph import network_graph

    net = cnndsl.loads(example_spec(shape, line), "example.cnn")
    analysis = net.analysis
    units = network_graph(net).units
    assert {layer.name for layer in net.layers if analysis[layer.name].params} <= {
        unit.name for unit in units if sum(unit.params)
    }
    for unit in units:
        info = analysis[unit.name]
        assert unit.shape == tuple(info.output_shape), unit.describe()
        assert sum(unit.params) in (0, info.params), unit.describe()


# ------------------------------------------------------------------------ with keras.applications


def reference(name: str):
    import keras

    return getattr(keras.applications, name)(
        weights=None, input_shape=tuple(REFERENCE[name]["input"])
    )


@pytest.mark.keras
@pytest.mark.parametrize("name", [pytest.param(n, marks=_marks(n, LAYERS_IN_CI)) for n in MODELS])
def test_layers(name, freed):
    """Every layer of the spec has keras.applications' kind, settings, output shape and
    parameters, at the same place in the graph."""
    from cnndsl.backends.keras_applications_map import match_keras_applications

    net = load(name)
    pairs = match_keras_applications(net, reference(name))
    analysis = net.analysis
    paired = {pair.ours.name for pair in pairs}
    assert {layer.name for layer in net.layers if analysis[layer.name].params} <= paired
    for pair in pairs:
        assert pair.ours.shape == pair.theirs.shape, (pair.ours.describe(), pair.theirs.describe())
        assert pair.ours.params == pair.theirs.params, (
            pair.ours.describe(),
            pair.theirs.describe(),
        )
        assert pair.ours.kind == pair.theirs.kind


def randomize(model, seed: int = 0) -> None:
    """Weights that make every tensor matter: batch-norm and normalization statistics, betas,
    gammas and biases drawn at random (keras.applications' initial ones are 0 and 1), kernels
    as initialised.  Then, as Keras's load_weights does, every layer's finalize_state(): a
    Normalization computes with copies of its mean and variance that only it refreshes (without
    it, the model keeps computing with 0 and 1 whatever its weights say)."""
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        shape, name = tuple(variable.shape), variable.name
        if name in ("moving_variance", "variance"):
            value = rng.uniform(0.5, 1.5, shape)
        elif name == "gamma" and len(shape) == 1:
            value = rng.uniform(0.5, 1.5, shape)
        elif name in ("moving_mean", "mean", "beta", "bias"):
            value = rng.normal(0.0, 0.1, shape)
        else:
            continue
        variable.assign(value.astype(variable.dtype))
    for layer in model.layers:
        if hasattr(layer, "finalize_state"):
            layer.finalize_state()


def calibrate(model, x: np.ndarray) -> None:
    """Batch-norm moving statistics set to the batch statistics of x (one pass in training
    mode, momentum 0, dropout off), keeping randomize()'s betas and gammas.  Random kernels
    with statistics that do not fit them make the activations of a deep network grow layer
    after layer, until float32 cannot compute its function (EfficientNetV2-B3 with
    randomize() alone: its squeeze-and-excitation sigmoids saturate, and two float32
    computations of one function give different classes); fitted, they stay of order 1."""
    import keras

    saved = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            saved.append((layer, "momentum", layer.momentum))
            layer.momentum = 0.0
        elif isinstance(layer, keras.layers.Dropout):
            saved.append((layer, "rate", layer.rate))
            layer.rate = 0.0
    try:
        model(x, training=True)
    finally:
        for layer, attribute, value in saved:
            setattr(layer, attribute, value)


def _close(got: np.ndarray, want: np.ndarray, tolerance: float) -> tuple[float, float]:
    scale = float(np.abs(want).max())
    diff = float(np.abs(got - want).max())
    assert diff <= tolerance * max(
        scale, 1e-12
    ), f"max abs difference {diff:.3g} at scale {scale:.3g}"
    return diff, scale


def _spread(values: np.ndarray, tolerance: float) -> None:
    """The outputs are not degenerate: they vary far more than the tolerance, and most are not
    negligible (a saturated softmax, one class at 1 and the others at 0, compares the argmax
    only)."""
    scale = float(np.abs(values).max())
    assert float(values.std()) > 100 * tolerance * scale
    negligible = float(np.mean(np.abs(values) <= tolerance * scale))
    assert negligible < 0.5, f"{negligible:.0%} of the outputs are within the tolerance of 0"


@pytest.mark.keras
@pytest.mark.torch
@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=_marks(n, WEIGHTS_IN_CI)) for n in MODELS]
)
def test_weights(name, freed, record_property):
    """The compiled Keras model with keras.applications' weights computes keras.applications'
    function, and so does the PyTorch model with the same weights."""
    torch = pytest.importorskip("torch")
    from cnndsl.backends.keras_applications_map import load_keras_applications
    from cnndsl.backends.transfer import keras_to_torch

    import keras

    keras.utils.set_random_seed(0)  # the kernels: the same models run after run
    net = load(name)
    ours = net.to_keras()
    theirs = reference(name)
    randomize(theirs)
    shape = (2, *REFERENCE[name]["input"])
    calibrate(theirs, np.random.default_rng(2).uniform(0, 255, shape).astype("float32"))
    load_keras_applications(ours, theirs)
    x = np.random.default_rng(1).uniform(0, 255, shape).astype("float32")
    want = np.asarray(theirs(x, training=False))
    _spread(want, 1e-5)
    figures = {"keras": _close(np.asarray(ours(x, training=False)), want, 1e-5)}
    record_property("max_abs_diff", figures)
    del theirs
    module = net.to_torch().eval()
    keras_to_torch(net, ours, module)
    del ours
    nchw = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()
    with torch.no_grad():
        got = module(nchw).numpy()
    scale = float(np.abs(want).max())
    diff = float(np.abs(got - want).max())
    figures["torch"] = (diff, scale)
    if diff > 1e-4 * scale:
        # Two float32 computations of a deep random network differ by their rounding, which
        # its layers amplify (ResNet101: both frameworks drift from float64 by 2e-4 of the
        # scale).  The PyTorch model's own float32 error (against its float64 run: no semantic
        # difference in it) measures that; the two models may differ by 1e-4 more than 3 of it.
        with torch.no_grad():
            exact = module.double()(nchw.double()).numpy()
        noise = float(np.abs(got - exact).max())
        figures["torch float32 error"] = (noise, scale)
        assert diff <= 1e-4 * scale + 3 * noise, (
            f"max abs difference {diff:.3g} at scale {scale:.3g}; float32 error of the PyTorch"
            f" model {noise:.3g}"
        )


# ------------------------------------------------------------------------------- the loader


# The examples, and spellings of the back end they do not reach: a transposed convolution's
# cropping after its fused activation.
COMPILED_CASES = EXAMPLE_CASES + [("convtranspose", "5x6x3", "4x4+2(1) convtranspose 4 relu")]


@pytest.mark.keras
@pytest.mark.parametrize(
    "kind, shape, line", COMPILED_CASES, ids=[f"{k}:{l}" for k, _, l in COMPILED_CASES]
)
def test_every_compiled_example_loads_from_another(kind, shape, line):
    """The Keras model compiled from each example line reads as the network it came from
    (every layer class the Keras back end writes has a unit, with the IR's settings), and
    load_keras_applications copies a second one's weights into it, every weight by its role:
    the same outputs.  (Tiny models: no clear_session, which costs more than they do.)"""
    from cnndsl.backends import keras as backend
    from cnndsl.backends.keras_applications_map import (
        load_keras_applications,
        match_keras_applications,
    )

    net = cnndsl.loads(example_spec(shape, line), "example.cnn")
    if any(type(layer) in backend.UNSUPPORTED for layer in net.layers):
        pytest.xfail("a kind without a Keras handler")
    ours, theirs = backend.build(net), backend.build(net)
    match_keras_applications(net, ours)
    randomize(theirs)
    mapping = load_keras_applications(ours, theirs)
    assert len(mapping) == sum(1 for layer in theirs.layers if layer.weights)
    x = np.random.default_rng(6).standard_normal((2, *net.inputs[0].shape)).astype("float32")
    want = np.asarray(theirs(x, training=False))
    np.testing.assert_allclose(np.asarray(ours(x, training=False)), want, rtol=1e-6, atol=1e-6)


# A small network whose add and concat have branches of equal shapes, listed in the other order
# than the reference's below: only their place in the graph tells which weights go where.
SWAPPED = """
network swapped
input 16x16x3
3x3(S) conv 8 bias=off -> bn -> relu
add {
    3x3(S) conv 8 bias=off -> bn
  | 3x3(S) conv 8 bias=off -> bn epsilon=1.001e-5 -> relu
}
concat {
    3x3(S) conv 6 -> bn
  | 3x3(S) conv 6 -> bn -> relu
  | 3x3+1(S) avgpool
}
1x1 conv 4 -> bn
globalavgpool
dense 5 softmax
"""


def swapped_reference():
    """The reference: the same function, spelled otherwise (ZeroPadding2D and VALID for SAME,
    Activation and ReLU layers), its merges' branches in the other order."""
    import keras
    from keras import layers

    inputs = keras.Input((16, 16, 3))
    x = layers.Conv2D(8, 3, padding="same", use_bias=False)(inputs)
    x = layers.ReLU()(layers.BatchNormalization()(x))
    r = layers.ZeroPadding2D(1)(x)
    r = layers.Conv2D(8, 3, use_bias=False)(r)
    r = layers.Activation("relu")(layers.BatchNormalization(epsilon=1.001e-5)(r))
    s = layers.BatchNormalization()(layers.Conv2D(8, 3, padding="same", use_bias=False)(x))
    x = layers.Add()([r, s])
    a = layers.ReLU()(layers.BatchNormalization()(layers.Conv2D(6, 3, padding="same")(x)))
    b = layers.BatchNormalization()(layers.Conv2D(6, 3, padding="same")(x))
    c = layers.AveragePooling2D(3, strides=1, padding="same")(x)
    x = layers.Concatenate()([c, a, b])
    x = layers.BatchNormalization()(layers.Conv2D(4, 1)(x))
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(5, activation="softmax")(x))


@pytest.mark.keras
def test_loader_pairs_swapped_branches(freed):
    """Branches listed in the other order load into their counterparts (the concatenation's
    channel order carried into the layers after it)."""
    from cnndsl.backends.keras_applications_map import load_keras_applications

    net = cnndsl.loads(SWAPPED)
    theirs = swapped_reference()
    randomize(theirs)
    x = np.random.default_rng(2).standard_normal((3, 16, 16, 3)).astype("float32")
    want = np.asarray(theirs(x, training=False))
    _spread(want, 1e-5)

    ours = net.to_keras()
    mapping = load_keras_applications(ours, theirs)
    assert len(mapping) == sum(1 for layer in theirs.layers if layer.weights) == 13
    _close(np.asarray(ours(x, training=False)), want, 1e-5)


@pytest.mark.keras
def test_loader_takes_a_layer_scale_whatever_its_variable_is_called(freed):
    """keras.applications' LayerScale (ConvNeXt's) leaves its variable unnamed, which Keras
    calls variable, variable_1, ... in the order a session makes them: it is the gamma."""
    import keras
    from keras.src.applications.convnext import LayerScale

    from cnndsl.backends.keras_applications_map import load_keras_applications

    def reference():
        inputs = keras.Input((4, 4, 3))
        x = keras.layers.Conv2D(4, 1)(inputs)
        return keras.Model(inputs, LayerScale(0.5, 4)(x))

    reference()  # the next one's variable is not the session's first
    theirs = reference()
    assert theirs.layers[-1].weights[0].name != "variable"
    theirs.layers[-1].weights[0].assign(np.array([1.0, -2.0, 3.0, 0.5], "float32"))
    ours = cnndsl.loads("input 4x4x3\n1x1 conv 4\nlayerscale 0.5\n").to_keras()
    load_keras_applications(ours, theirs)
    x = np.random.default_rng(3).standard_normal((2, 4, 4, 3)).astype("float32")
    _close(np.asarray(ours(x)), np.asarray(theirs(x)), 1e-6)


@pytest.mark.keras
@pytest.mark.parametrize(
    "change, new, expected",
    [
        ("bn epsilon=1.001e-5 -> relu", "bn -> relu", "epsilon 0.001 against 1.001e-05"),
        ("3x3+1(S) avgpool", "3x3+1(S) maxpool", "a maxpool against an avgpool"),
        ("1x1 conv 4 -> bn", "1x1 conv 4 -> bn momentum=0.9", "momentum 0.9 against 0.99"),
        ("3x3(S) conv 6 -> bn\n", "3x3(S) conv 6 bias=off -> bn\n", "bias False against True"),
        (
            "3x3(S) conv 6 -> bn -> relu",
            "3x3(S) conv 6 -> bn -> relu6",
            "function relu6 against relu",
        ),
        (
            "16x16x3\n3x3(S) conv 8",
            "16x16x3\n3x3(S) conv 8 dilation=2",
            "dilation (2, 2) against (1, 1)",
        ),
        (
            "3x3(S) conv 8 bias=off -> bn -> relu\nadd",
            "3x3(S) conv 8 bias=off -> bn\nadd",
            "has there",
        ),
        (
            "dense 5 softmax",
            "dense 5 softmax\ndense 5 softmax",
            "which has no counterpart in keras.applications' model\n"
            "  keras.applications' model has nothing after 'dense' (Dense activation) -> 5 (an"
            " output), the counterpart of 'dense_1'",
        ),
        (
            "dense 5 softmax",
            "dense 5",
            "cnndsl's model has nothing after 'dense_1' (Dense) -> 5, 25 parameters (an output),"
            " the counterpart of 'dense'",
        ),
        (
            "  | 3x3+1(S) avgpool\n",
            "",
            "at 'average_pooling2d' of keras.applications' model",
        ),
    ],
)
def test_loader_names_the_first_divergence(change, new, expected, freed):
    """A model that differs anywhere gets a ValueError naming the first layer without a
    counterpart (the reference's first, or cnndsl's where the reference's all have one) and
    what the other model has in its place -- a layer of each model, by name; nothing is
    loaded."""
    from cnndsl.backends.keras_applications_map import load_keras_applications

    assert change in SWAPPED
    net = cnndsl.loads(SWAPPED.replace(change, new, 1))
    ours, theirs = net.to_keras(), swapped_reference()
    before = [w.copy() for w in ours.get_weights()]
    with pytest.raises(ValueError, match="the models diverge") as error:
        load_keras_applications(ours, theirs)
    text = str(error.value)
    assert expected in text, text
    for model in (ours, theirs):  # names of the two models' layers differ: dense_1 / dense
        assert any(f"'{layer.name}' " in text for layer in model.layers), f"one side: {text}"
    assert all(np.array_equal(a, b) for a, b in zip(before, ours.get_weights()))


@pytest.mark.keras
def test_loader_names_both_outputs_where_they_differ(freed):
    """Every layer has a counterpart but the outputs come in another order: the message names
    the first output of each model."""
    import keras

    from cnndsl.backends.keras_applications_map import match_keras_applications

    net = cnndsl.loads(
        "input 8x8x3\nx = 3x3(S) conv 4\na = x -> gap -> dense 5\nb = x -> gmp\noutput a, b\n"
    )
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    a = keras.layers.Dense(5, name="head")(keras.layers.GlobalAveragePooling2D()(x))
    theirs = keras.Model(inputs, [keras.layers.GlobalMaxPooling2D(name="pooled")(x), a])
    with pytest.raises(ValueError, match="the models' outputs differ") as error:
        match_keras_applications(net, theirs)
    text = str(error.value)
    assert "the first output of one is 'a' of cnndsl's network 'network' (dense 5" in text, text
    assert "of the other 'pooled' of keras.applications' model (GlobalMaxPooling2D" in text, text
    match_keras_applications(net, keras.Model(inputs, [a, theirs.outputs[0]]))


# The Keras kinds, as built-in Keras layers write them.
KINDS_SPEC = """
network kinds
input 16x16x3
rescaling 1/255
normalization mean=(0.485, 0.456, 0.406) variance=(0.052, 0.05, 0.051)
3x3(S) conv 8
layernorm epsilon=1e-6
gelu
crop cropping=((0, 1), (0, 1))
1x1 conv 4 hardsigmoid
gap keepdims
reshape 4
dense 5
"""


def kinds_reference():
    import keras
    from keras import layers

    inputs = keras.Input((16, 16, 3))
    x = layers.Rescaling(1 / 255)(inputs)
    x = layers.Normalization(mean=[0.485, 0.456, 0.406], variance=[0.052, 0.05, 0.051])(x)
    x = layers.LayerNormalization(epsilon=1e-6)(layers.Conv2D(8, 3, padding="same")(x))
    x = layers.Cropping2D(((0, 1), (0, 1)))(layers.Activation("gelu")(x))
    x = layers.Conv2D(4, 1, activation="hard_sigmoid")(x)
    x = layers.Reshape((4,))(layers.GlobalAveragePooling2D(keepdims=True)(x))
    return keras.Model(inputs, layers.Dense(5)(x))


@pytest.mark.keras
@pytest.mark.parametrize(
    "change, new, expected",
    [
        (None, None, None),
        ("rescaling 1/255", "rescaling 1/127.5", "scale 0.00784313725490196 against 0.0039215"),
        ("variance=(0.052,", "variance=(0.05,", "variance (0.05, 0.05, 0.051) against (0.052,"),
        (
            "normalization mean=(0.485, 0.456, 0.406) variance=(0.052, 0.05, 0.051)",
            "normalization",
            "mean None against (0.485",
        ),
        ("layernorm epsilon=1e-6", "layernorm", "epsilon 0.001 against 1e-06"),
        ("gelu\n", "gelu_tanh\n", "function gelu_tanh against gelu"),
        (
            "((0, 1), (0, 1))",
            "((1, 0), (1, 0))",
            "cropping ((1, 0), (1, 0)) against ((0, 1), (0, 1))",
        ),
        ("conv 4 hardsigmoid", "conv 4 hardswish", "function hardswish against hardsigmoid"),
        ("3x3(S) conv 8", "3x3(S) conv 6", "output (16, 16, 6) against (16, 16, 8)"),
        ("reshape 4", "flatten", "a flatten against a reshape"),
    ],
)
def test_loader_names_the_divergence_of_a_keras_kind(change, new, expected, freed):
    """The Keras kinds (rescaling, normalization, layernorm, gelu, crop, hardsigmoid, reshape)
    against their built-in Keras layers: the spec matches; a spec that differs in a constant, an
    epsilon, the GELU, the cropped sides, the activation, a width or the kind gets the message
    naming the difference."""
    from cnndsl.backends.keras_applications_map import match_keras_applications

    if change is None:
        pairs = match_keras_applications(cnndsl.loads(KINDS_SPEC), kinds_reference())
        assert len(pairs) == 12
        return
    assert change in KINDS_SPEC
    net = cnndsl.loads(KINDS_SPEC.replace(change, new, 1))
    with pytest.raises(ValueError, match="the models diverge") as error:
        match_keras_applications(net, kinds_reference())
    assert expected in str(error.value), str(error.value)


@pytest.mark.keras
def test_loader_message_locates_a_zoo_difference(freed):
    """On a zoo model: the divergence names keras.applications' layer and cnndsl's, with the
    spec's line."""
    from cnndsl.backends.keras_applications_map import match_keras_applications

    text = (
        (ZOO / "ResNet50.cnn").read_text().replace("conv4 = stack(256, 6)", "conv4 = stack(256, 5)")
    )
    net = cnndsl.loads(text, filename=str(ZOO / "ResNet50.cnn"))
    with pytest.raises(ValueError) as error:
        match_keras_applications(net, reference("ResNet50"))
    text = str(error.value)
    assert "the models diverge at 'conv4_block6_1_conv' of keras.applications' model" in text, text
    assert "'conv5_bottleneck_1_conv_1' (1x1+2(V) conv 2048, resnet.cnn:32)" in text, text


@pytest.mark.keras
def test_loader_on_the_generated_file(tmp_path, freed):
    """build_model() of `cnndsl compile --target keras` loads as net.to_keras() does."""
    from cnndsl.backends.keras_applications_map import load_keras_applications

    net = cnndsl.loads(SWAPPED)
    path = tmp_path / "swapped_model.py"
    path.write_text(net.to_source("keras"))
    sys.path.insert(0, str(tmp_path))
    try:
        import swapped_model

        ours = swapped_model.build_model()
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("swapped_model", None)
    theirs = swapped_reference()
    randomize(theirs)
    load_keras_applications(ours, theirs)
    x = np.random.default_rng(3).standard_normal((2, 16, 16, 3)).astype("float32")
    _close(np.asarray(ours(x, training=False)), np.asarray(theirs(x, training=False)), 1e-5)


def registered_custom_objects() -> set[str]:
    """The names cnndsl's layers.py registers with Keras (package "cnndsl"): every custom
    layer and activation the Keras back end can write."""
    import keras

    import cnndsl.backends.keras.layers  # noqa: F401

    prefix = "cnndsl>"
    return {
        name[len(prefix) :] for name in keras.saving.get_custom_objects() if name.startswith(prefix)
    }


def custom_object_examples(names: set[str]) -> dict[str, list[str]]:
    """For each name, the specs of the example lines (cnndsl/ir/examples.py) whose generated
    Keras source defines it (the generator copies a custom layer's text only where it uses
    it): each layer with the settings its examples give."""
    found: dict[str, list[str]] = {name: [] for name in names}
    for _, shape, line in EXAMPLE_CASES:
        try:
            source = cnndsl.loads(example_spec(shape, line), "example.cnn").to_source("keras")
        except cnndsl.CnnDslError:  # a kind without a Keras handler
            continue
        for name in names:
            if re.search(rf"^(class|def) {name}\b", source, re.M):
                found[name].append(example_spec(shape, line))
    return found


@pytest.mark.keras
def test_saved_model_loads_in_a_fresh_process(tmp_path, freed):
    """Every custom layer and activation the Keras back end can write (all that layers.py
    registers with Keras, so a new one is covered without a change here): a compiled model that
    uses it, saved with model.save, loads with keras.saving.load_model in a new process after
    the one import README documents (`import cnndsl.backends.keras.layers`), and gives the same
    outputs."""
    import os
    from pathlib import Path

    from cnndsl.backends.keras.layers import CUSTOM_OBJECTS

    names = registered_custom_objects()
    assert names == set(CUSTOM_OBJECTS), names ^ set(CUSTOM_OBJECTS)
    specs = custom_object_examples(names)
    unused = {name for name, found in specs.items() if not found}
    assert not unused, f"no example line makes the Keras back end write {unused}"
    rng = np.random.default_rng(4)
    paths = []
    for i, spec in enumerate(sorted({spec for found in specs.values() for spec in found})):
        net = cnndsl.loads(spec, "example.cnn")
        model = net.to_keras()
        randomize(model, seed=i)
        x = rng.standard_normal((2, *net.inputs[0].shape)).astype("float32")
        np.save(tmp_path / f"{i}_x.npy", x)
        np.save(tmp_path / f"{i}_y.npy", np.asarray(model(x, training=False)))
        model.save(tmp_path / f"{i}.keras")
        paths.append((str(tmp_path / str(i)), spec))
    script = textwrap.dedent(f"""
        import json
        import numpy as np
        import keras
        import cnndsl.backends.keras.layers  # registers cnndsl's layers with Keras

        used = set()
        for path, spec in {paths!r}:
            model = keras.saving.load_model(path + ".keras")
            y = np.asarray(model(np.load(path + "_x.npy"), training=False))
            want = np.load(path + "_y.npy")
            assert np.abs(y - want).max() <= 1e-6 * max(np.abs(want).max(), 1.0), spec
            for layer in model.layers:
                used.add(type(layer).__name__)
                used.add(getattr(getattr(layer, "activation", None), "__name__", ""))
        print(json.dumps(sorted(used)))
        """)
    package = str(Path(cnndsl.__file__).resolve().parents[1])  # this checkout's cnndsl
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([package, os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=600, env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]
    used = set(json.loads(done.stdout.strip().splitlines()[-1]))
    assert names <= used, names - used


@pytest.mark.keras
@pytest.mark.parametrize(
    "before, padding_layer",
    [
        ("relu", "ZeroPadding2D"),
        ("3x3(S) conv 4 relu6", "ZeroPadding2D"),
        ("sigmoid", "ZeroPadding2D"),
        ("3x3(S) conv 4", "NegInfPadding2D"),
        ("leakyrelu", "NegInfPadding2D"),
    ],
)
def test_max_pool_padding_is_built_in_after_a_non_negative_layer(
    before, padding_layer, freed
):
    """A max pooling with explicit padding pads with zeros (Keras's ZeroPadding2D) where its
    input is never negative, with -inf (cnndsl's NegInfPadding2D) elsewhere; both give the
    padded max pooling."""
    net = cnndsl.loads(f"input 10x10x3\n3x3(S) conv 4\n{before}\n3x3+2(1) maxpool\n")
    source = net.to_source("keras")
    assert f"{padding_layer}(1, name=" in source
    assert ("NegInfPadding2D" in source) == (padding_layer == "NegInfPadding2D")
    model = net.to_keras()
    x = np.random.default_rng(5).standard_normal((2, 10, 10, 3)).astype("float32")
    got = np.asarray(model(x, training=False))
    inner = keras_model_until(model, net.layers[-1].inputs[0])
    y = np.pad(
        np.asarray(inner(x, training=False)),
        ((0, 0), (1, 1), (1, 1), (0, 0)),
        constant_values=-np.inf,
    )
    want = np.max([y[:, i : i + 9 : 2, j : j + 9 : 2] for i in range(3) for j in range(3)], axis=0)
    np.testing.assert_allclose(got, want, rtol=1e-6)


def keras_model_until(model, name: str):
    import keras

    return keras.Model(model.inputs, model.get_layer(name).output)
