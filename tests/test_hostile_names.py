"""Generated modules run whatever the spec names things (issue 10 §2).

Every identifier a back end writes goes through one place (cnndsl/backends/codegen/names.py)
that knows every name the generated file reserves, per target: the modules it imports, the
helpers it copies in, Python's keywords and builtins, nn.Module's attributes.  Each spec below
names its network, blocks, block parameters and layers after those; its generated module is
written to a file, imported, built, and run on an input, in both frameworks.  Non-finite floats
from a JSON IR are written as Python reads them.
"""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

import cnndsl

HOSTILE = {
    # network and block names that shadow imports: `class F` would hide torch.nn.functional
    "F.cnn": """
        network F
        input 8x8x3
        block f(nn) { 3x3(S) conv nn relu }
        block F(self) { 1x1 conv self }
        f(4)
        f(8)
        F(4)
        F(6)
        gap
        dense 2
    """,
    "f.cnn": "network f\ninput 8x8x3\n3x3+2(S) maxpool\n",
    # a class name from a file name or a block that starts with a digit
    "123.cnn": "input 8x8x3\nblock _2x(super) { 1x1 conv super }\n_2x(4)\n_2x(5)\n",
    "one.cnn": "network _1\ninput 8x8x3\n1x1 conv 4\n",
    # block parameters that would shadow what __init__ and forward use
    "nn.cnn": """
        network nn
        input 8x8x3
        block torch(__class__, float) {
          1x1 conv __class__ -> 3x3+2(S) maxpool -> leakyrelu float
        }
        torch(4, 0.1)
        torch(5, 0.2)
    """,
    "keras.cnn": """
        network keras
        input 8x8x3
        block layers(keras, name, i, range, build_model) {
          1x1 conv keras -> 1x1 conv name -> 1x1 conv i -> 1x1 conv range -> 1x1 conv build_model
        }
        layers(1, 2, 3, 4, 5)
        layers(2, 3, 4, 5, 6)
        repeat 3 { 1x1 conv 4 }
    """,
    # layers named after nn.Module's internals and the generated code's own names
    "module.cnn": """
        network Module
        input 8x8x3
        _modules = 1x1 conv 4
        _parameters = 1x1 conv 4
        _version = 1x1 conv 4
        _buffers = 1x1 conv 4
        training = 1x1 conv 4
        forward = 1x1 conv 4
        self = 1x1 conv 4
        super = relu
        F = relu
        nn = relu
        torch = relu
        x = relu
        out = relu
        inputs = relu
        name = relu
        i = relu
        keras = relu
        layers = relu
        float = relu
    """,
    # blocks named after the helpers and custom layers the files copy in
    "helpers.cnn": """
        network SeparableConv2d
        input 8x8x3
        block NegInfPadding2D(x) { 3x3+2(S) sepconv x -> 3x3+2(S) avgpool }
        block ExcludePadAvgPool2d(leaky_relu) { 3x3+1(1) maxpool -> 1x1 conv leaky_relu leakyrelu }
        NegInfPadding2D(4)
        NegInfPadding2D(5)
        ExcludePadAvgPool2d(3)
        ExcludePadAvgPool2d(4)
    """,
}


def _nonfinite() -> cnndsl.Network:
    """A JSON IR whose floats are infinite or not a number (a spec cannot write them)."""
    net = cnndsl.loads("input 6x6x3\n1x1 conv 4\nleakyrelu 0.2\nbn\nlrn 1\nelu\n", "nonfinite.cnn")
    data = json.loads(net.to_json())
    data["layers"][2]["alpha"] = float("nan")
    data["layers"][3]["epsilon"] = float("inf")
    data["layers"][4]["beta"] = float("inf")
    data["layers"][5]["alpha"] = float("-inf")
    return cnndsl.Network.model_validate_json(json.dumps(data))


def _load(name: str) -> cnndsl.Network:
    if name == "nonfinite":
        return _nonfinite()
    import textwrap

    return cnndsl.loads(textwrap.dedent(HOSTILE[name]), name)


CASES = [*HOSTILE, "nonfinite"]


def _run(target: str, name: str, tmp_path) -> None:
    """Write the module, import it from its file, build the model, run it on an input."""
    net = _load(name)
    path = tmp_path / f"generated_{target}.py"
    path.write_text(net.to_source(target), encoding="utf-8")
    spec = importlib.util.spec_from_file_location(f"generated_{target}_{len(name)}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    x = np.random.default_rng(0).standard_normal((2, *net.inputs[0].shape)).astype("float32")
    for model in (module.build_model(), net.to_model(target)):
        if target == "torch":
            import torch

            out = model(torch.from_numpy(x.transpose(0, 3, 1, 2)))
            assert tuple(out.shape[2:] if out.ndim == 4 else out.shape[1:]) == tuple(
                net.shape(net.outputs[0])[:2] if out.ndim == 4 else net.shape(net.outputs[0])
            )
        else:
            out = model(x, training=False)
            assert tuple(out.shape[1:]) == net.shape(net.outputs[0])


@pytest.mark.torch
@pytest.mark.parametrize("name", CASES)
def test_torch_modules_run_whatever_the_names(name, tmp_path):
    pytest.importorskip("torch")
    _run("torch", name, tmp_path)


@pytest.mark.keras
@pytest.mark.parametrize("name", CASES)
def test_keras_modules_run_whatever_the_names(name, tmp_path):
    pytest.importorskip("keras")
    _run("keras", name, tmp_path)


def test_non_finite_floats_are_python_expressions():
    for target in ("keras", "torch"):
        text = _nonfinite().to_source(target)
        assert 'float("inf")' in text and 'float("nan")' in text, target
        compile(text, target, "exec")
