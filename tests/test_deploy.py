"""Deployment: the models cnndsl emits go through the exporters the frameworks ship.

A zoo spec (the book's GoogLeNet: four-branch concatenations, LRN, TensorFlow SAME padding,
average pooling, dropout, dense) is compiled to a standalone module, as ``cnndsl compile``
writes it, and exported: PyTorch -> ONNX (``torch.onnx.export``) run by onnxruntime, PyTorch ->
``torch.export`` (saved and loaded), Keras -> SavedModel (``model.export``) reloaded by
TensorFlow, Keras -> TFLite (``model.export(format="litert")``) run by the TFLite interpreter.
Each runs random inputs and must give the framework model's output.  README's *Deployment*
section shows the same steps.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import cnndsl
from conftest import SPECS

SPEC = SPECS / "googlenet.cnn"


def _write_module(folder, target: str) -> str:
    """The spec compiled to a standalone module (``cnndsl compile --target TARGET``)."""
    path = folder / f"googlenet_{target}.py"
    path.write_text(cnndsl.load(SPEC).to_source(target), encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def torch_model(tmp_path_factory):
    torch = pytest.importorskip("torch")
    path = _write_module(tmp_path_factory.mktemp("torch"), "torch")
    spec = importlib.util.spec_from_file_location("googlenet_torch", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    torch.manual_seed(0)
    return module.build_model().eval()


@pytest.mark.torch
def test_pytorch_to_onnx_runs_in_onnxruntime(torch_model, tmp_path):
    import onnx
    import onnxruntime
    import torch

    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    path = tmp_path / "googlenet.onnx"
    torch.onnx.export(
        torch_model, (x,), path, input_names=["input"], output_names=["probs"],
        dynamic_shapes=({0: torch.export.Dim("batch")},),
    )
    onnx.checker.check_model(path, full_check=True)
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    assert [i.shape for i in session.get_inputs()] == [["batch", 3, 224, 224]]
    # the batch axis stays dynamic: another batch size runs too
    for batch in (x, torch.randn(3, 3, 224, 224, generator=torch.Generator().manual_seed(2))):
        with torch.no_grad():
            expected = torch_model(batch).numpy()
        (got,) = session.run(["probs"], {"input": batch.numpy()})
        assert got.shape == expected.shape == (batch.shape[0], 1000)
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-7)


@pytest.mark.torch
def test_pytorch_to_torch_export_saves_and_loads(torch_model, tmp_path):
    import torch

    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(3))
    program = torch.export.export(torch_model, (x,))
    torch.export.save(program, tmp_path / "googlenet.pt2")
    loaded = torch.export.load(tmp_path / "googlenet.pt2").module()
    with torch.no_grad():
        np.testing.assert_allclose(loaded(x).numpy(), torch_model(x).numpy(), rtol=1e-5, atol=1e-7)


# Keras runs in a process of its own: TensorFlow's converter is large, and this keeps its memory
# and the torch-before-TensorFlow import order out of the test process.
_KERAS_EXPORT = textwrap.dedent(
    """
    import importlib.util, json, os, sys, warnings
    import numpy as np
    import tensorflow as tf

    path, out = sys.argv[1], sys.argv[2]
    spec = importlib.util.spec_from_file_location("googlenet_keras", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.build_model()
    x = np.random.default_rng(0).standard_normal((2, 224, 224, 3)).astype("float32")
    expected = model(x, training=False).numpy()

    model.export(os.path.join(out, "saved_model"), format="tf_saved_model", verbose=False)
    reloaded = tf.saved_model.load(os.path.join(out, "saved_model"))  # keep it: it owns the weights
    saved = reloaded.serve(x).numpy()

    model.export(os.path.join(out, "googlenet.tflite"), format="litert", verbose=False)
    with warnings.catch_warnings():  # tf.lite.Interpreter's notice about ai_edge_litert
        warnings.simplefilter("ignore")
        interpreter = tf.lite.Interpreter(model_path=os.path.join(out, "googlenet.tflite"))
    (inp,), (outp,) = interpreter.get_input_details(), interpreter.get_output_details()
    interpreter.resize_tensor_input(inp["index"], x.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(inp["index"], x)
    interpreter.invoke()
    tflite = interpreter.get_tensor(outp["index"])

    result = {
        "expected": expected.tolist(), "saved_model": saved.tolist(), "tflite": tflite.tolist(),
        "tflite_signature": [int(d) for d in inp["shape_signature"]],
    }
    print("RESULT" + json.dumps(result))
    """
)


@pytest.mark.keras
def test_keras_to_saved_model_and_tflite(tmp_path):
    pytest.importorskip("tensorflow")
    path = _write_module(tmp_path, "keras")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run(
        [sys.executable, "-c", _KERAS_EXPORT, path, str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(line for line in proc.stdout.splitlines() if line.startswith("RESULT"))
    result = json.loads(line[len("RESULT") :])
    expected = np.array(result["expected"])
    assert expected.shape == (2, 1000)
    np.testing.assert_allclose(np.array(result["saved_model"]), expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(np.array(result["tflite"]), expected, rtol=1e-4, atol=1e-7)
    assert result["tflite_signature"] == [-1, 224, 224, 3]  # any batch size
    assert (tmp_path / "saved_model" / "saved_model.pb").is_file()
