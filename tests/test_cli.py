"""The command line, run as a user runs it: in a fresh process."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import ROOT


def cnndsl(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cnndsl", *args],
        cwd=ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_ok():
    r = cnndsl("check", "specs/vgg16.cnn", "specs/lenet5.cnn")
    assert r.returncode == 0, r.stderr
    assert "specs/vgg16.cnn: ok (" in r.stdout and "138,357,544 parameters" in r.stdout


def test_check_error_is_located_with_caret(tmp_path):
    bad = tmp_path / "bad.cnn"
    bad.write_text("input 3x3x64\n5x5+1(V) conv 32\n")
    r = cnndsl("check", str(bad))
    assert r.returncode == 1
    assert r.stderr.splitlines() == [
        f"{bad}:2:1: error: 5x5+1(V) conv 32 on a 3x3x64 map gives -1 rows: the 5x5 window"
        " does not fit (try SAME padding)",
        "    2 | 5x5+1(V) conv 32",
        "      | ^^^^^^^^^^^^^^^^",
    ]
    assert "Traceback" not in r.stderr


def test_summary_table():
    r = cnndsl("summary", "specs/vgg16.cnn")
    assert r.returncode == 0
    out = r.stdout
    assert 'Network: "vgg16"' in out
    assert "block5_pool (maxpool)" in out and "7x7x512" in out and "212/32/90" in out
    assert "Total params: 138,357,544" in out
    assert "MACs: 15,470,264,320" in out


def test_summary_json_contract():
    r = cnndsl("summary", "specs/memory_example.cnn", "--batch", "100", "--format", "json")
    assert r.returncode == 0
    d = json.loads(r.stdout)
    assert d["name"] == "memory_example"
    assert d["inputs"] == [{"name": "input", "shape": [150, 100, 3]}]
    assert d["outputs"] == [{"name": "conv_1", "shape": [150, 100, 200]}]
    assert d["params"] == {"trainable": 15200, "non_trainable": 0, "total": 15200}
    assert d["macs"] == 225_000_000
    mem = d["memory"]
    assert mem["batch_size"] == 100 and mem["dtype"] == "float32"
    assert mem["params_bytes"] == 60_800
    assert {"inference_peak_bytes", "training_bytes"} <= set(mem)
    conv = d["layers"][1]
    assert conv["output_bytes"] == 1_200_000_000  # the book's 1.2 GB for 100 instances
    assert conv["name"] == "conv_1" and conv["kind"] == "conv" and conv["line"] == 8
    assert conv["output_shape"] == [150, 100, 200]
    assert conv["receptive_field"] == {"size": [5, 5], "stride": [1, 1], "padding": [2, 2], "global": False}


@pytest.mark.parametrize("fmt", ["markdown", "csv"])
def test_summary_other_formats(fmt):
    r = cnndsl("summary", "specs/lenet5.cnn", "--format", fmt, "--dtype", "float16")
    assert r.returncode == 0
    assert "C1" in r.stdout


def test_stdin():
    r = cnndsl("summary", "-", stdin="input 8x8x1\n3x3 conv 2\n")
    assert r.returncode == 0 and "6x6x2" in r.stdout


def test_compile_json_round_trips(monkeypatch):
    r = cnndsl("compile", "specs/resnet34.cnn", "--target", "json")
    assert r.returncode == 0
    import cnndsl as lib

    monkeypatch.chdir(ROOT)  # positions keep the path as given on the command line
    assert lib.Network.from_json(r.stdout) == lib.load("specs/resnet34.cnn")


@pytest.mark.parametrize(
    "args",
    [[], ["summary"], ["summary", "x.cnn", "--batch", "0"], ["summary", "x.cnn", "--dtype", "int8"],
     ["compile", "specs/vgg16.cnn", "--target", "onnx"], ["frobnicate"]],
)
def test_usage_errors_exit_2(args):
    r = cnndsl(*args)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr


def test_missing_file_exits_1():
    r = cnndsl("check", "no/such/file.cnn")
    assert r.returncode == 1
    assert "no such file: no/such/file.cnn" in r.stderr


def test_check_and_summary_import_no_framework():
    code = (
        "import sys\n"
        "from cnndsl.cli import main\n"
        "main(['check', 'specs/googlenet.cnn'])\n"
        "main(['summary', 'specs/resnet50_keras.cnn', '--format', 'json'])\n"
        "bad = [m for m in ('tensorflow', 'keras', 'torch', 'torchvision') if m in sys.modules]\n"
        "print('IMPORTED', bad, file=sys.stderr)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert "IMPORTED []" in r.stderr, r.stderr


def test_help():
    r = cnndsl("--help")
    assert r.returncode == 0 and "summary" in r.stdout


def test_missing_framework_says_how_to_install(monkeypatch, capsys):
    from cnndsl import cli

    def no_keras(name, package=None):
        raise ImportError("No module named 'keras'", name="keras")

    monkeypatch.setattr(cli.importlib, "import_module", no_keras)
    monkeypatch.chdir(ROOT)
    assert cli.main(["compile", "specs/lenet5.cnn", "--target", "keras"]) == 2
    err = capsys.readouterr().err
    assert "needs TensorFlow and Keras" in err and "pip install 'cnndsl[keras]'" in err


@pytest.mark.parametrize("target", ["keras", "torch"])
def test_compile_models_to_files(target, tmp_path):
    out = tmp_path / f"lenet5_{target}.py"
    r = cnndsl("compile", "specs/lenet5.cnn", "--target", target, "-o", str(out))
    assert r.returncode == 0, r.stderr
    source = out.read_text()
    compile(source, str(out), "exec")
    assert "def build_model" in source and "cnndsl" not in source.split('"""', 2)[2]
