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
