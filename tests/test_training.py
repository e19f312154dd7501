"""Training: models that return logits (``logits=True``, ``--logits``), and README's training
loops, run as README writes them on a few batches of random data."""

from __future__ import annotations

import contextlib
import io
import re
import subprocess
import sys

import numpy as np
import pytest

import cnndsl
from cnndsl import CnnDslError
from cnndsl.backends.logits import logits
from conftest import ROOT, SPECS

README = ROOT / "README.md"
TINY = ROOT / "docs" / "examples" / "tiny_resnet.cnn"


def readme_snippet(framework: str) -> str:
    """The code block README marks ``<!-- training loop: FRAMEWORK -->``."""
    text = README.read_text(encoding="utf-8")
    found = re.search(rf"<!-- training loop: {framework} -->\n```python\n(.*?)```", text, re.S)
    assert found, f"README has no training loop for {framework}"
    return found.group(1)


# ------------------------------------------------------------------------- logits (no framework)


def test_logits_leave_out_the_softmax_of_a_layer_and_nothing_else():
    net = cnndsl.load(SPECS / "classify_localize.cnn")
    head = logits(net)
    assert net["class_probs"].activation == "softmax" and head["class_probs"].activation == "linear"
    assert head["box"] == net["box"]  # a regression head: untouched
    assert [l.name for l in head.layers] == [l.name for l in net.layers]
    for a, b in zip(net.layers, head.layers):
        if a.name != "class_probs":
            assert a == b
    assert head.outputs == net.outputs and head.analysis.total_params == net.analysis.total_params
    source = head.to_source("torch")
    assert "softmax" not in source and source == net.to_source("torch", logits=True)
    assert 'layers.Dense(10, name="class_probs")' in net.to_source("keras", logits=True)


def test_logits_remove_a_softmax_layer_and_keep_training_outputs():
    net = cnndsl.loads(
        "input 16x16x3\nfeatures = 3x3(S) conv 8 relu\naux = globalavgpool -> dense 4 -> softmax\n"
        "features -> flatten -> dense 5\nprobs = softmax\noutput probs, aux (training)\n"
    )
    head = logits(net)
    assert "probs" not in head and "aux" not in head
    assert head.outputs == ["dense_2", "dense_1"] and head.training_outputs == ["dense_1"]
    assert len(head.layers) == len(net.layers) - 2


@pytest.mark.parametrize(
    "text, message",
    [
        ("input 4\ndense 3 relu\n", "no output of 'spec' ends in a softmax or a sigmoid ('dense_1')"),
        (
            "input 4\nscores = dense 3\nprobs = scores -> softmax\noutput probs, scores\n",
            "the logits of output 'probs' are 'scores', which is an output already",
        ),
        (
            "input 4\nprobs = dense 3 -> softmax\nother = probs -> dense 2\noutput probs, other\n",
            "output 'probs' is read by 'other' too",
        ),
    ],
)
def test_logits_that_cannot_be_had_are_located_errors(text, message):
    net = cnndsl.loads(text, "spec.cnn")
    with pytest.raises(CnnDslError) as e:
        logits(net)
    assert message in str(e.value) and str(e.value).startswith("spec.cnn:")


def test_compile_logits_on_the_command_line():
    done = subprocess.run(
        [sys.executable, "-m", "cnndsl", "compile", str(TINY), "--target", "torch", "--logits"],
        capture_output=True, text=True, cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == cnndsl.load(TINY).to_source("torch", logits=True)
    assert "return self.dense_1(x)" in done.stdout and "softmax" not in done.stdout
    done = subprocess.run(
        [sys.executable, "-m", "cnndsl", "compile", "specs/resnet50_torchvision.cnn", "--target",
         "keras", "--logits"],
        capture_output=True, text=True, cwd=ROOT,
    )
    assert done.returncode == 1 and "gives logits already" in done.stderr


# ------------------------------------------------------------------------------ the frameworks


@pytest.mark.torch
def test_torch_logits_are_the_scores_before_the_softmax():
    torch = pytest.importorskip("torch")
    net = cnndsl.load(SPECS / "classify_localize.cnn")
    torch.manual_seed(0)
    model, head = net.to_torch().eval(), net.to_torch(logits=True).eval()
    head.load_state_dict(model.state_dict())  # the same names and shapes
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        (probs, box), (scores, box2) = model(x), head(x)
    torch.testing.assert_close(torch.softmax(scores, 1), probs)
    torch.testing.assert_close(box2, box)


@pytest.mark.keras
def test_keras_logits_are_the_scores_before_the_softmax():
    keras = pytest.importorskip("keras")
    net = cnndsl.load(TINY)
    model, head = net.to_keras(), net.to_keras(logits=True)
    head.set_weights(model.get_weights())
    x = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(keras.activations.softmax(head(x))), model(x), rtol=1e-5, atol=1e-6
    )


def _falls(losses: list[float]) -> None:
    assert len(losses) >= 3 and all(np.isfinite(losses)), losses
    # falls at every epoch, by a twentieth of the first in all (it memorises random labels)
    assert all(b < a for a, b in zip(losses, losses[1:])) and losses[-1] < 0.95 * losses[0], losses


@pytest.mark.torch
def test_readme_training_loop_pytorch(monkeypatch):
    torch = pytest.importorskip("torch")
    monkeypatch.chdir(ROOT)
    torch.manual_seed(0)
    images, labels = torch.randn(64, 3, 32, 32), torch.randint(0, 10, (64,))
    data = torch.utils.data.TensorDataset(images, labels)
    loader = torch.utils.data.DataLoader(data, batch_size=16, shuffle=True)
    namespace = {"loader": loader}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(readme_snippet("torch"), "README.md", "exec"), namespace)
    losses = [float(v) for v in re.findall(r"loss ([0-9.]+)", printed.getvalue())]
    _falls(losses)
    assert namespace["probs"].shape == (16, 10)


@pytest.mark.keras
def test_readme_training_loop_keras(monkeypatch):
    keras = pytest.importorskip("keras")
    monkeypatch.chdir(ROOT)
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    images = rng.normal(size=(64, 32, 32, 3)).astype("float32")
    labels = rng.integers(0, 10, size=64)
    namespace = {"images": images, "labels": labels}
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile(readme_snippet("keras"), "README.md", "exec"), namespace)
    _falls(namespace["history"].history["loss"])
    assert tuple(namespace["probs"].shape) == (64, 10)
