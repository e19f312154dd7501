"""Specs that leave their input's height and width open (``input ?x?x3``): the syntax, the
analysis at a size given with ``--input`` / ``load(..., input=)``, the located errors where a
layer would tie a model to one size, and the Keras and PyTorch models that take any size."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import cnndsl
from cnndsl import CnnDslError
from conftest import ROOT, SPECS

UNET = (SPECS / "unet.cnn").read_text(encoding="utf-8")
OPEN_UNET = UNET.replace("\ninput 256x256x1\n", "\ninput ?x?x1\n")
assert OPEN_UNET != UNET  # specs/unet.cnn with its height and width left open
SIZES = [(256, 256), (320, 480)]


def open_unet(size=None, **options):
    return cnndsl.loads(OPEN_UNET, str(SPECS / "unet_open.cnn"), input=size, **options)


def cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "cnndsl", *args], capture_output=True, text=True, cwd=ROOT
    )


# ------------------------------------------------------------------------------- the language


@pytest.mark.parametrize(
    "written, shape, opened",
    [("?x?x3", (None, None, 3), (True, True)), ("?x224x3", (None, 224, 3), (True, False)),
     ("224x?x3", (224, None, 3), (False, True)), ("224x224x3", (224, 224, 3), (False, False))],
)
def test_an_input_leaves_its_height_or_width_open(written, shape, opened):
    net = cnndsl.loads(f"input {written}\n3x3(S) conv 8\n", analyze=False)
    (layer,) = net.inputs
    assert (layer.shape, layer.open, layer.notation()) == (shape, opened, f"input {written}")
    assert cnndsl.Network.from_json(net.to_json()) == net
    assert ('"open"' in net.to_json()) == any(opened)  # a fixed input's JSON is as it was
    sized = cnndsl.loads(f"input {written}\n3x3(S) conv 8\n", input=(64, 48, 3))
    assert sized.inputs[0].shape == (64, 48, 3) and sized.inputs[0].open == opened
    assert sized.shape("conv_1") == (64, 48, 8)


def test_an_open_spec_is_analysed_at_the_size_given_as_the_fixed_spec_is():
    for size in SIZES:
        fixed = cnndsl.loads(UNET, "unet.cnn", input=(*size, 1)).analysis
        opened = open_unet((*size, 1)).analysis
        assert [repr(info) for info in opened] == [repr(info) for info in fixed]
        assert opened.outputs == [("scores", (*size, 2))]
        assert opened.memory(4).training_bytes == fixed.memory(4).training_bytes


def test_an_open_spec_without_a_size_cannot_be_analysed():
    with pytest.raises(CnnDslError) as e:
        open_unet()
    message = str(e.value)
    assert "the height and width of the input are open (?x?x1): the analysis needs a size" in message
    assert "--input 256x256x1" in message and "input=(256, 256, 1)" in message
    assert open_unet(analyze=False).inputs[0].shape == (None, None, 1)  # the IR, unanalysed


def test_sizes_that_follow_the_open_input():
    from cnndsl.analysis import open_sizes

    net = cnndsl.loads(
        "input ?x?x3\n"
        "x = 3x3+2(S) conv 8 relu\n"
        "pooled = adaptiveavgpool 4 -> conv channels() kernel=1 -> conv height() kernel=1\n"
        "scores = x -> globalavgpool -> dense 3\n"
        "output pooled, scores\n",
        input=(40, 30, 3),
    )
    a = net.analysis
    follow = dict(zip([l.name for l in net.layers], open_sizes(net, a._input_ids, a._facts)))
    assert follow["input"] == (True, True, False) and follow["x"] == (True, True, False)
    assert follow["adaptiveavgpool_1"] == (False, False, False)
    assert follow["pooled"] == (False, False, False)
    assert net["pooled"].filters == 4  # height() after the adaptive pooling: a fixed size
    assert follow["globalavgpool_1"] == (False,) and follow["scores"] == (False,)


@pytest.mark.parametrize(
    "body, message",
    [
        ("flatten -> dense 3", "the parameters of this dense layer depend on the size of its input"),
        ("flatten -> bn", "the parameters of this batchnorm layer depend on the size of its input"),
        ("flatten -> reshape 512", "this reshape layer applies only at this input size"),
        ("y = adaptiveavgpool 8\nx -> add(y)", "it joins a map whose size follows"),
        ("conv width() kernel=1", "width(): the width of this map follows the open height and width"),
        ("flatten -> dense channels()", "channels(): the length of this vector follows"),
    ],
)
def test_a_layer_that_would_tie_the_model_to_one_size_is_a_located_error(body, message):
    text = f"input ?x?x3\nx = 3x3+2(S) conv 8 relu\n{body}\n"
    with pytest.raises(CnnDslError) as e:
        cnndsl.loads(text, "open.cnn", input=(16, 16, 3))
    assert message in str(e.value) and str(e.value).startswith(("open.cnn:3:", "open.cnn:4:"))
    # the same layers on an input of a fixed size are fine
    cnndsl.loads(text.replace("?x?x3", "16x16x3"), "fixed.cnn")


def test_the_summary_says_which_sizes_are_open(tmp_path):
    path = tmp_path / "unet_open.cnn"
    path.write_text(OPEN_UNET, encoding="utf-8")
    done = cli("summary", str(path), "--input", "320x480x1", "--format", "json")
    assert done.returncode == 0, done.stderr
    d = json.loads(done.stdout)
    assert d["inputs"] == [{"name": "input", "shape": [320, 480, 1], "open": [True, True]}]
    assert d["outputs"] == [{"name": "scores", "shape": [320, 480, 2]}]
    table = cli("summary", str(path), "--input", "320x480x1").stdout
    assert " Input ?x?x1, analysed at 320x480x1: the models take any height and width" in table
    fixed = json.loads(cli("summary", "specs/unet.cnn", "--format", "json").stdout)
    assert "open" not in fixed["inputs"][0]
    done = cli("summary", str(path))
    assert done.returncode == 1 and "the analysis needs a size" in done.stderr


def test_the_lexer_highlights_an_open_size_as_a_size():
    from cnndsl.lexer import KERNEL, CnnLexer

    tokens = [(t, v) for t, v in CnnLexer().get_tokens("input ?x?x3\ninput b 12x?x3\n") if v.strip()]
    assert (KERNEL, "?x?x3") in tokens and (KERNEL, "12x?x3") in tokens


# ------------------------------------------------------------------ models that take any size


def _example_specs():
    from cnndsl.ir.examples import EXAMPLES

    for kind, examples in EXAMPLES.items():
        for i, (shape, line) in enumerate(examples):
            dims = [int(d) for d in shape.split("x")]
            if len(dims) == 3 and not line.startswith("input"):
                yield pytest.param(dims, line, id=f"{kind}-{i}")


def _source(net, target):
    try:
        return net.to_source(target)
    except CnnDslError as e:  # a value the target cannot build: the same at every size
        return f"refused: {e}"


@pytest.mark.parametrize("target", ["keras", "torch"])
@pytest.mark.parametrize("dims, line", list(_example_specs()))
def test_the_model_of_an_open_spec_does_not_depend_on_the_size_it_is_analysed_at(dims, line, target):
    """Every example line of every layer kind, after an input of open height and width,
    compiles to the same file at two sizes of other parities: nothing of the size it was
    checked at is written into the model (where the analysis accepts the line at both)."""
    h, w, c = dims
    text = f"input ?x?x{c}\n{line}\n"
    try:
        nets = [cnndsl.loads(text, "open.cnn", input=size) for size in ((h, w, c), (h + 5, w + 8, c))]
    except CnnDslError:
        pytest.skip("not a layer for an open input size, or not at both sizes")
    first, second = (_source(net, target) for net in nets)
    assert first == second


@pytest.mark.parametrize("target", ["keras", "torch"])
def test_open_unet_compiles_to_one_model_for_every_size(target):
    sources = {open_unet((*size, 1)).to_source(target) for size in SIZES}
    assert len(sources) == 1
    (source,) = sources
    if target == "keras":
        assert 'keras.Input(shape=(None, None, 1), name="input")' in source
    else:
        assert "input_shape = (1, None, None)  # (C, H, W), without the batch axis; None: any size" in source
        assert "Input: (N, 1, ?, ?), channels first; ? is any size its layers take.  Output: (N, 2, ?, ?)." in source


@pytest.mark.keras
@pytest.mark.torch
def test_open_unet_runs_at_any_size_in_keras_and_pytorch_with_equal_outputs():
    """The Done-when of issue 14: U-Net with an open height and width, compiled once, runs at
    256x256 and 320x480 in both frameworks (weights copied from Keras to PyTorch), with equal
    outputs, and every node's shape in PyTorch is the analysis's at that size."""
    import numpy as np

    torch = pytest.importorskip("torch")
    keras = pytest.importorskip("keras")
    from cnndsl.backends import torch as torch_backend
    from cnndsl.backends.transfer import keras_to_torch

    net = open_unet((256, 256, 1))  # the size it is checked at; the models take any
    shapes: dict[str, tuple] = {}
    keras.utils.set_random_seed(0)
    k_model = net.to_keras()
    t_model = torch_backend.build(net, tap=lambda name, value: shapes.__setitem__(name, value.shape))
    keras_to_torch(net, k_model, t_model.eval())
    assert k_model.input_shape == (None, None, None, 1)
    rng = np.random.default_rng(0)
    for h, w in SIZES:
        analysis = open_unet((h, w, 1)).analysis
        x = rng.normal(size=(1, h, w, 1)).astype("float32")
        expected = keras.ops.convert_to_numpy(k_model(x, training=False))
        with torch.no_grad():
            got = t_model(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy().transpose(0, 2, 3, 1)
        assert expected.shape == got.shape == (1, h, w, 2)
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
        for info in analysis:  # every node, NCHW in PyTorch
            if info.layer.kind != "input":
                s = info.output_shape
                assert tuple(shapes[info.layer.name])[1:] == (s[2], s[0], s[1]), info.layer.name


def _bilinear(line: str) -> bool:
    """Keras 3.15's UpSampling2D(interpolation="bilinear") cannot run in a tf.function on a map
    of unknown size: keras.ops.image.resize tests `size[0] <= 0` on a tensor."""
    return "upsample" in line and "bilinear" in line


@pytest.mark.keras
@pytest.mark.torch
def test_every_kind_after_an_open_input_runs_at_any_size_in_both_frameworks():
    """Every example line of every layer kind after an open input, compiled once (at the
    example's size), runs in Keras and PyTorch at that size and at two others of other
    parities, with the analysis's output shape at each and the same outputs in both (weights
    copied from Keras to PyTorch).  Keras runs each model eagerly, and in a tf.function
    (``predict``) retraced for a map of unknown size, where its custom layers compute their
    padding from tensors."""
    import numpy as np

    torch = pytest.importorskip("torch")
    keras = pytest.importorskip("keras")
    from cnndsl.backends.transfer import keras_to_torch

    rng = np.random.default_rng(0)
    ran = 0
    for param in _example_specs():
        (h, w, c), line = param.values
        text = f"input ?x?x{c}\n{line}\n"
        sizes = [(h, w, c), (h + 5, w + 8, c), (h + 2, w + 1, c)]
        try:
            nets = [cnndsl.loads(text, "open.cnn", input=size) for size in sizes]
            keras.utils.set_random_seed(0)
            k_model, t_model = nets[0].to_keras(), nets[0].to_torch().eval()
        except CnnDslError:
            continue  # not for an open input, or a value a framework cannot build
        keras_to_torch(nets[0], k_model, t_model)
        for i, (net, size) in enumerate(zip(nets, sizes)):
            x = rng.normal(size=(2, *size)).astype("float32")
            expected = keras.ops.convert_to_numpy(k_model(x, training=False))
            with torch.no_grad():
                got = t_model(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy()
            if got.ndim == 4:
                got = got.transpose(0, 2, 3, 1)
            assert expected.shape[1:] == got.shape[1:] == net.shape(net.outputs[0]), (line, size)
            np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5, err_msg=f"{line} at {size}")
            if i and not _bilinear(line):  # the second size retraces predict for any size
                traced = k_model.predict(x, verbose=0)
                np.testing.assert_allclose(traced, expected, rtol=1e-5, atol=1e-6, err_msg=line)
        ran += 1
    assert ran >= 80


@pytest.mark.keras
@pytest.mark.xfail(strict=True, reason="Keras 3.15: UpSampling2D bilinear in a tf.function on a map of unknown size")
def test_keras_bilinear_upsampling_of_an_open_size_in_a_tf_function():
    import numpy as np

    net = cnndsl.loads("input ?x?x2\nupsample 2 bilinear\n", input=(4, 6, 2))
    model = net.to_keras()
    for size in [(4, 6), (5, 7)]:  # the second call retraces for a map of unknown size
        assert model.predict(np.zeros((1, *size, 2), "float32"), verbose=0).shape == (1, 2 * size[0], 2 * size[1], 2)


def test_keras_refuses_adaptive_pooling_of_an_open_size_with_a_located_error():
    """Keras's AdaptiveAveragePooling2D needs static sizes: after an open input the Keras back
    end names the layer and the target (it built a model that failed when called); PyTorch's
    nn.AdaptiveAvgPool2d takes any size."""
    from cnndsl.backends import source

    text = "input ?x?x3\n3x3(S) conv 8 relu\nadaptiveavgpool 2\nflatten\ndense 4\n"
    net = cnndsl.loads(text, "adaptive.cnn", input=(32, 32, 3))
    with pytest.raises(CnnDslError) as err:
        source(net, "keras")
    assert "adaptive.cnn:3:1" in str(err.value) and "Keras cannot express" in str(err.value)
    assert "AdaptiveAvgPool2d" in source(net, "torch")
    fixed = cnndsl.loads(text.replace("?x?x3", "32x32x3"), "adaptive.cnn")
    assert "AdaptiveAveragePooling2D" in source(fixed, "keras")
