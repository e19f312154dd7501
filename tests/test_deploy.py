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


# The exports run in a process of their own, PyTorch's as Keras's: the exporters are large
# (onnx, onnxscript, onnxruntime, torch.export's tracing, TensorFlow's converter) and what they
# import stays; in the test process it took 250 MB from every test after.  The child prints
# what the parent checks.
_TORCH_EXPORT = textwrap.dedent(
    """
    import importlib.util, json, sys
    import numpy as np
    import torch

    path, out, what = sys.argv[1], sys.argv[2], sys.argv[3]
    spec = importlib.util.spec_from_file_location("googlenet_torch", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    torch.manual_seed(0)
    model = module.build_model().eval()
    result = {}
    if what == "onnx":
        import onnx
        import onnxruntime

        x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
        onnx_path = out + "/googlenet.onnx"
        torch.onnx.export(
            model, (x,), onnx_path, input_names=["input"], output_names=["probs"],
            dynamic_shapes=({0: torch.export.Dim("batch")},),
        )
        onnx.checker.check_model(onnx_path, full_check=True)
        session = onnxruntime.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
        result["input_shapes"] = [i.shape for i in session.get_inputs()]
        # the batch axis stays dynamic: another batch size runs too
        y = torch.randn(3, 3, 224, 224, generator=torch.Generator().manual_seed(2))
        for batch in (x, y):
            with torch.no_grad():
                expected = model(batch).numpy()
            (got,) = session.run(["probs"], {"input": batch.numpy()})
            result.setdefault("pairs", []).append([expected.tolist(), got.tolist()])
    else:
        x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(3))
        program = torch.export.export(model, (x,))
        torch.export.save(program, out + "/googlenet.pt2")
        loaded = torch.export.load(out + "/googlenet.pt2").module()
        with torch.no_grad():
            result["pairs"] = [[model(x).numpy().tolist(), loaded(x).numpy().tolist()]]
    print("RESULT" + json.dumps(result))
    """
)


def _run_export(script: str, *args: str) -> dict:
    """What ``python -c script args`` printed after ``RESULT``, as JSON."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, env=env, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(line for line in proc.stdout.splitlines() if line.startswith("RESULT"))
    return json.loads(line[len("RESULT") :])


@pytest.mark.torch
def test_pytorch_to_onnx_runs_in_onnxruntime(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    result = _run_export(_TORCH_EXPORT, _write_module(tmp_path, "torch"), str(tmp_path), "onnx")
    assert result["input_shapes"] == [["batch", 3, 224, 224]]
    assert (tmp_path / "googlenet.onnx").is_file()
    for size, (expected, got) in zip((2, 3), result["pairs"], strict=True):
        expected, got = np.array(expected, dtype=np.float32), np.array(got, dtype=np.float32)
        assert got.shape == expected.shape == (size, 1000)
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-7)


@pytest.mark.torch
def test_pytorch_to_torch_export_saves_and_loads(tmp_path):
    pytest.importorskip("torch")
    result = _run_export(_TORCH_EXPORT, _write_module(tmp_path, "torch"), str(tmp_path), "export")
    assert (tmp_path / "googlenet.pt2").is_file()
    ((expected, got),) = result["pairs"]
    np.testing.assert_allclose(np.array(got), np.array(expected), rtol=1e-5, atol=1e-7)


# (And the torch-before-TensorFlow import order is no matter in a process of its own.)
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
    result = _run_export(_KERAS_EXPORT, path, str(tmp_path))
    expected = np.array(result["expected"])
    assert expected.shape == (2, 1000)
    np.testing.assert_allclose(np.array(result["saved_model"]), expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(np.array(result["tflite"]), expected, rtol=1e-4, atol=1e-7)
    assert result["tflite_signature"] == [-1, 224, 224, 3]  # any batch size
    assert (tmp_path / "saved_model" / "saved_model.pb").is_file()
