"""The command line, run as a user runs it: in a fresh process."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import ROOT, SPEC_FILES


def cnndsl(*args: str, stdin: str | None = None, **env: str) -> subprocess.CompletedProcess:
    # an explicit environment: a test runner's terminal code may leave COLUMNS in the process's
    # own environment, where os.environ does not show it
    environment = {k: v for k, v in os.environ.items() if k != "COLUMNS"} | env
    return subprocess.run(
        [sys.executable, "-m", "cnndsl", *args],
        cwd=ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env=environment,
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


def cnndsl_bytes(*args: str, stdin: bytes) -> subprocess.CompletedProcess:
    run = subprocess.run(
        [sys.executable, "-m", "cnndsl", *args], cwd=ROOT, input=stdin, capture_output=True,
        timeout=120,
    )
    run.stderr = run.stderr.decode("utf-8")
    return run


@pytest.mark.parametrize(
    "data,error",
    [
        (b"input 8x8x1\n\x00conv 2\n", "<stdin>:2:1: error: <stdin> is a binary file, not a .cnn spec"),
        (b'input 8x8x1\nconv 2 name="\xff"\n', "<stdin>:2:14: error: <stdin> is not UTF-8 text (byte 0xff)"),
        (b"input 8x8x1\r3x3 conv 2\r\xfe", "<stdin>:3:1: error: <stdin> is not UTF-8 text (byte 0xfe)"),
    ],
)
def test_stdin_is_checked_as_a_file_is(data, error):
    """Standard input gets the checks files get: no binary or non-UTF-8 text goes further (it
    became surrogates that crashed the JSON output, exit 3)."""
    for command in ("check", "summary", "compile"):
        extra = ("--target", "json") if command == "compile" else ()
        r = cnndsl_bytes(command, "-", *extra, stdin=data)
        assert r.returncode == 1 and r.stderr.startswith(error), r.stderr


def test_stdin_has_the_size_limit():
    from cnndsl.elaborate import MAX_SOURCE_BYTES

    data = b"input 8x8x1\nconv 2\n" + b"#" * MAX_SOURCE_BYTES
    r = cnndsl_bytes("check", "-", stdin=data)
    assert r.returncode == 1
    assert r.stderr.startswith(f"<stdin>:1:1: error: <stdin> is larger than {MAX_SOURCE_BYTES:,} bytes")


def test_stdin_like_a_file_bom_and_line_ends(tmp_path):
    text = "\ufeffinput 8x8x1\r\n3x3 conv 2\r7x7 conv 4\n"
    path = tmp_path / "s.cnn"
    path.write_bytes(text.encode("utf-8"))
    from_file = cnndsl("summary", str(path), "--format", "json")
    from_stdin = cnndsl_bytes("summary", "-", "--format", "json", stdin=text.encode("utf-8"))
    assert from_file.returncode == from_stdin.returncode == 1  # 7x7 does not fit: same error
    assert from_stdin.stderr == from_file.stderr.replace(str(path), "<stdin>")
    assert from_stdin.stderr.startswith("<stdin>:3:1: error: 7x7+1(V) conv 4 on a 6x6x2 map")
    assert "    3 | 7x7 conv 4\n" in from_stdin.stderr


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
    from cnndsl import backends, cli

    def no_keras(name, package=None):
        raise ImportError("No module named 'keras'", name="keras")

    monkeypatch.setattr(backends.importlib, "import_module", no_keras)
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


# ------------------------------------------------------- user errors, never internal errors


def test_huge_sizes_in_every_format(tmp_path):
    # issue 10 §5: huge sizes overflowed the human-readable units (float division).  A spec's
    # integers have at most 30 digits, but a batch may have 4,000: the memory then has more
    # digits than Python's str(int) gives (4,300)
    spec = tmp_path / "huge.cnn"
    side = "1" + "0" * 29
    spec.write_text(f"input {side}x{side}x3\n3x3(S) conv 4\n")
    batch = "1" + "0" * 4290
    for fmt in ("table", "markdown", "csv", "json"):
        r = cnndsl("summary", str(spec), "--format", fmt, "--batch", batch)
        assert r.returncode == 0, (fmt, r.stderr)
    # JSON and CSV give every digit
    training = 10**4290 * 10**58 * (3 + 4) * 4 + 112 * 4  # every output and the input, and the 112 parameters, 4 bytes each
    from cnndsl.display import int_text

    d = json.loads(r.stdout, parse_int=str)
    assert d["memory"]["training_bytes"] == int_text(training) and d["memory"]["batch_size"] == batch
    table = cnndsl("summary", str(spec), "--batch", batch).stdout
    assert "training 2.80e4349 B" in table, table


def test_batch_must_be_an_integer():
    r = cnndsl("summary", "specs/lenet5.cnn", "--batch", "1e400")
    assert r.returncode == 2 and "--batch: not an integer: '1e400'" in r.stderr
    r = cnndsl("summary", "specs/lenet5.cnn", "--batch", "9" * 5000)
    assert r.returncode == 2 and "not an integer: '999" in r.stderr and len(r.stderr) < 1000


@pytest.mark.parametrize(
    "where,message",
    [("missing/lenet5.py", "the directory {d}/missing does not exist"), (".", "it is a directory"),
     ("/dev/full", "No space left on device")],
)
def test_output_file_that_cannot_be_written(tmp_path, where, message):
    target = where if where.startswith("/") else str(tmp_path / where)
    r = cnndsl("compile", "specs/lenet5.cnn", "--target", "torch", "-o", target)
    assert r.returncode == 2, r.stderr
    assert r.stderr == f"cnndsl: cannot write {target}: {message.format(d=tmp_path)}\n"
    assert list(tmp_path.iterdir()) == []


def test_output_file_is_never_left_half_written(tmp_path):
    # a file-size limit makes the write fail midway, as a full disk does
    import resource
    import signal

    out = tmp_path / "model.py"
    out.write_text("previous\n")

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (100, 100))

    r = subprocess.run(
        [sys.executable, "-m", "cnndsl", "compile", "specs/vgg16.cnn", "-t", "torch", "-o", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, preexec_fn=limit,
    )
    assert r.returncode == 2 and r.stderr == f"cnndsl: cannot write {out}: File too large\n"
    assert out.read_text() == "previous\n" and list(tmp_path.iterdir()) == [out]
    # and when it succeeds, the file keeps its mode
    out.chmod(0o640)
    assert cnndsl("compile", "specs/lenet5.cnn", "-t", "torch", "-o", str(out)).returncode == 0
    assert "class Lenet5" in out.read_text() and out.stat().st_mode & 0o777 == 0o640


def test_standard_output_on_a_full_device():
    with open("/dev/full", "w") as full:
        r = subprocess.run(
            [sys.executable, "-m", "cnndsl", "summary", "specs/vgg16.cnn"],
            cwd=ROOT, stdout=full, stderr=subprocess.PIPE, text=True, timeout=120,
        )
    assert r.returncode == 2 and r.stderr == "cnndsl: cannot write the output: No space left on device\n"


def test_file_named_with_undecodable_bytes(tmp_path):
    # issue 10 §5: PydanticSerializationError in the JSON IR; check crashed on a strict stdout
    name = os.fsdecode(b"b\xffad.cnn")  # what sys.argv holds for such a name
    (tmp_path / name).write_text("input 8x8x3\n3x3(S) conv 4\n")
    env = dict(os.environ, PYTHONIOENCODING="utf-8:strict")
    run = lambda *args: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "cnndsl", *args, os.fsencode(name)], cwd=tmp_path,
        capture_output=True, timeout=120, env=env,
    )
    r = run("check")
    assert r.returncode == 0 and r.stdout.startswith(b"b\\udcffad.cnn: ok (2 layers")
    for args in (("summary", "--format", "json"), ("compile", "--target", "json")):
        r = run(*args)
        assert r.returncode == 0, r.stderr
        text = r.stdout.decode("utf-8")  # valid UTF-8 JSON, the name escaped as in errors
        assert '"file": "b\\\\udcffad.cnn"' in text and json.loads(text)


@settings(max_examples=300, deadline=None)
@given(st.integers(-(10**40), 10**40) | st.integers(0, 10**5000))
def test_number_formats_are_exact_and_total(n):
    from cnndsl.display import grouped, human, int_text

    if n.bit_length() < 14000:  # where str() works, the same digits
        assert int_text(n) == str(n) and grouped(n) == f"{n:,}"
    assert grouped(n).replace(",", "") == int_text(n)
    text = human(abs(n), "B")
    if abs(n) >= 1000:  # two decimals of a decimal prefix, or of a power of ten
        mantissa, _, rest = text.partition(" ")[0].partition("e")
        scale = 10 ** int(rest) if rest else 1000 ** ("KMGTPEZYRQ".index(text[-2]) + 1)
        assert abs(Fraction(mantissa) * scale - abs(n)) * 200 <= scale


# ------------------------------------------------------------ the summary: columns and views


# every spec of the zoo (specs/*.cnn, specs/torchvision/*.cnn, specs/keras/*.cnn), not the
# libraries of blocks (lib/)
ZOO = [p for p in sorted((ROOT / "specs").rglob("*.cnn")) if "lib" not in p.relative_to(ROOT).parts]


def test_the_zoo_of_the_width_test_is_whole():
    folders = {p.parent.name for p in ZOO}
    assert folders == {"specs", "torchvision", "keras"} and len(ZOO) > len(SPEC_FILES)


@pytest.mark.parametrize("path", ZOO, ids=lambda p: str(p.relative_to(ROOT / "specs")))
def test_every_spec_fits_100_columns(path, monkeypatch, capsys):
    from cnndsl.cli import main

    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("COLUMNS", "100")
    for options in ([], ["--depth", "1"], ["--depth", "2"]):
        assert main(["summary", str(path.relative_to(ROOT)), *options]) == 0
        out = capsys.readouterr().out
        widest = max(out.splitlines(), key=len)
        assert len(widest) <= 100, (options, widest)


def test_width_comes_from_columns_or_the_option():
    wide = cnndsl("summary", "specs/googlenet.cnn").stdout  # a pipe: the whole table
    assert max(map(len, wide.splitlines())) > 170
    fitted = cnndsl("summary", "specs/googlenet.cnn", COLUMNS="100").stdout
    assert max(map(len, fitted.splitlines())) <= 100
    assert cnndsl("summary", "specs/googlenet.cnn", "--width", "0", COLUMNS="100").stdout == wide
    narrow = cnndsl("summary", "specs/googlenet.cnn", "--width", "80", COLUMNS="100").stdout
    assert max(map(len, narrow.splitlines())) <= 80
    # the same rows, shortened as documented: a name after its call's first row, an input
    # from the row's own call
    assert " inception_3a_conv_1 (conv) " in fitted and " …conv_3 (conv) " in fitted
    assert "…conv_1, …conv_3," in " ".join(fitted.split())  # inception_3a_concat_1's inputs


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_json_and_csv_are_never_shortened(fmt):
    full = cnndsl("summary", "specs/mobilenet_v2_keras.cnn", "--format", fmt).stdout
    assert cnndsl("summary", "specs/mobilenet_v2_keras.cnn", "--format", fmt, COLUMNS="40").stdout == full
    assert "inverted_residual_1_expand_filter_project_1_batchnorm_1" in full and "…" not in full


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.from_regex(r"[a-z]{1,9}(_[a-z0-9]{1,6}){0,5}", fullmatch=True), min_size=1, max_size=6),
    st.integers(1, 40), st.sampled_from(["name", "list"]), st.integers(0, 3),
)
def test_wrapped_cells_keep_every_character(names, width, wrap, level):
    from cnndsl.report import _wrap

    text = "  " * level + (", ".join(names) if wrap == "list" else f"{names[0]} ({names[-1]})")
    lines = _wrap(text, width, wrap)
    if len(text) > width:
        assert all(len(line) <= max(width, 2 * level + 3) for line in lines)
    assert "".join(lines).replace(" ", "") == text.replace(" ", "")


def test_columns_option(tmp_path):
    r = cnndsl("summary", "specs/memory_example.cnn", "--batch", "100", "--columns", "name,memory,params")
    assert r.returncode == 0
    header = r.stdout.splitlines()[2]
    assert header.split() == ["Layer", "(type)", "Memory", "Param", "#"]
    row = next(line for line in r.stdout.splitlines() if line.startswith(" conv_1 "))
    assert row.split() == ["conv_1", "(conv)", "1.20", "GB", "15,200"]  # the book's 1.2 GB for 100
    r = cnndsl("summary", "specs/memory_example.cnn", "--format", "csv", "--columns", "name,memory")
    assert r.stdout.splitlines()[0] == "name,kind,type,notation,output_bytes"
    assert r.stdout.splitlines()[2] == "conv_1,conv,conv,5x5+1(S) conv 200,12000000"
    r = cnndsl("summary", "specs/lenet5.cnn", "--columns", "name,flops")
    assert r.returncode == 2 and "unknown column 'flops'" in r.stderr


def test_every_column_reaches_every_format():
    # one table of columns: each gives a header, a cell, JSON fields and CSV fields
    import cnndsl as lib
    from cnndsl.report import COLUMNS, View

    net = lib.load(ROOT / "specs" / "googlenet.cnn")
    keys = [c.key for c in COLUMNS]
    table = net.summary(columns=keys)
    csv_header = net.summary(format="csv").splitlines()[0].split(",")
    layer = json.loads(net.summary(format="json"))["layers"][0]
    for c in COLUMNS:
        assert c.title(View()) in table
    assert list(layer) == [k for c in COLUMNS for k in c.data(*_any_row(net))]
    assert len(csv_header) == len(set(csv_header)) and {"rf_global", "output_bytes", "block"} <= set(csv_header)


def _any_row(net):
    from cnndsl.report import View, layer_rows

    return layer_rows(net.analysis)[0], View()


def test_depth_shows_block_calls_with_their_totals():
    import cnndsl as lib
    from cnndsl.report import block_rows

    for path in SPEC_FILES:
        a = lib.load(path).analysis
        for depth in (1, 2, 3):
            rows = block_rows(a, depth)
            top = [r for r in rows if r.level == 0]
            assert sum(r.trainable + r.non_trainable for r in top) == a.total_params, path.name
            assert sum(r.macs for r in top) == a.macs
            for i, r in enumerate(rows):  # an expanded call holds what follows it, one level deeper
                if r.kind == "block" and i + 1 < len(rows) and rows[i + 1].level > r.level:
                    inside = []
                    for s in rows[i + 1 :]:
                        if s.level <= r.level:
                            break
                        if s.level == r.level + 1:
                            inside.append(s)
                    assert sum(s.macs for s in inside) == r.macs
    out = cnndsl("summary", "specs/googlenet.cnn", "--depth", "1").stdout
    row = next(line for line in out.splitlines() if line.startswith(" inception_3a (inception)"))
    assert row.split()[2:] == ["28x28x256", "163,696", "128,049,152", "59/8/22", "26"]  # line: the call


def test_torch_convention_counts_as_torchinfo(refs):
    ref = refs["torchvision"]["resnet50"]
    torch = cnndsl("summary", "specs/resnet50_torchvision.cnn", "--convention", "torch").stdout
    keras = cnndsl("summary", "specs/resnet50_torchvision.cnn").stdout
    assert f"Total params: {ref['params']:,} (102.23 MB)" in torch  # 25,557,032: torchinfo's
    assert "Buffers (batch-norm running mean and variance, and other non-trainable values): 53,120" in torch
    assert "Total params: 25,610,152" in keras and "Non-trainable params: 53,120" in keras
    bn = [line for line in torch.splitlines() if line.startswith(" batchnorm_1 (batchnorm)")]
    assert bn[0].split()[3] == "128"  # weight and bias; the Keras convention counts 256
    assert "1 MB = 10^6 bytes" in torch


def test_summary_object_prints_as_the_table_and_shows_as_html():
    import cnndsl as lib

    net = lib.load(ROOT / "specs" / "googlenet.cnn")
    s = net.summary()
    assert isinstance(s, str) and s == lib.report.render(net) and s.startswith('Network: "googlenet"')
    page = s._repr_html_()
    assert page.count("<tr>") == len(net.layers) + 1 and "<th style=\"text-align: right\">Param #</th>" in page
    assert net.summary(format="json")._repr_html_() is None
    assert repr(net.analysis) == "<Analysis of 'googlenet': 86 nodes, 6,998,552 params, 1.58G MACs>"
    assert repr(net.analysis["conv_1"]) == (
        "<LayerInfo conv_1 (conv): 112x112x64, 9,472 params, 118,013,952 MACs, RF 7/2/2>"
    )


def test_jupyter_shows_the_summary_as_a_table(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(f"import cnndsl\nnet = cnndsl.load({str(ROOT / 'specs' / 'lenet5.cnn')!r})"),
        nbformat.v4.new_code_cell("net.summary()"),
        nbformat.v4.new_code_cell("net.analysis"),
    ]
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    (summary,) = nb.cells[1].outputs
    assert "<table>" in summary["data"]["text/html"] and "C1 (conv)" in summary["data"]["text/html"]
    assert summary["data"]["text/plain"].startswith('Network: "lenet5"')  # not a quoted string
    assert nb.cells[2].outputs[0]["data"]["text/plain"].startswith("<Analysis of 'lenet5'")


# --------------------------------------------------------------------------------------- diff


def test_diff_resnet34_with_resnet50(refs):
    r = cnndsl("diff", "specs/resnet34_torchvision.cnn", "specs/resnet50_torchvision.cnn", COLUMNS="100")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert max(map(len, out.splitlines())) <= 100
    lines = {line.split("  ")[0].strip(): line.split() for line in out.splitlines() if "  " in line}
    r34, r50 = refs["torchvision"]["resnet34"]["params"], refs["torchvision"]["resnet50"]["params"]
    assert lines["Trainable parameters"][2:] == [f"{r34:,}", f"{r50:,}", f"+{r50 - r34:,}", "(+17.2%)"]
    assert lines["Receptive field before the head"][-3:] == ["899/32/449", "427/32/213", "changed"]
    assert "~ layer1 (stage)" in out and "+ " not in out  # the same rows, changed
    assert "Rows (block calls 1 level deep): 6 changed, 0 added, 0 removed, 5 the same (not shown)" in out


def test_diff_lines_up_an_inserted_layer(tmp_path):
    a, b = tmp_path / "a.cnn", tmp_path / "b.cnn"
    a.write_text("input 8x8x3\n3x3(S) conv 4\n3x3(S) conv 4\nflatten\ndense 10\n")
    b.write_text("input 8x8x3\n3x3(S) conv 4\nbn\n3x3+2(S) conv 4\nflatten\ndense 10\n")
    r = cnndsl("diff", str(a), str(b), "--layers", "--format", "json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert [(row["status"], row["name"]) for row in d["rows"]] == [
        ("same", "input"), ("same", "conv_1"), ("added", "batchnorm_1"), ("changed", "conv_2"),
        ("changed", "flatten_1"), ("changed", "dense_1"),
    ]
    conv = d["rows"][3]
    assert conv["a"]["output_shape"] == [8, 8, 4] and conv["b"]["output_shape"] == [4, 4, 4]
    assert conv["a"]["receptive_field"]["size"] == [5, 5] and conv["b"]["receptive_field"]["size"] == [5, 5]
    dense = d["rows"][5]
    assert (dense["a"]["params"], dense["b"]["params"]) == (256 * 10 + 10, 64 * 10 + 10)
    totals = {t["what"]: t for t in d["totals"]}
    assert totals["Layers"] == {"what": "Layers", "a": 5, "b": 6, "change": 1}
    assert totals["Parameters"]["change"] == 16 - 192 * 10
    table = cnndsl("diff", str(a), str(b), "--layers").stdout
    assert "+ batchnorm_1 (batchnorm)" in table and "~ conv_2 (conv)" in table
    assert "8x8x4 → 4x4x4" in table and "conv_1" not in table  # the same rows are counted
    assert "1 changed" not in table and "3 changed, 1 added, 0 removed, 2 the same (not shown)" in table
    every = cnndsl("diff", str(a), str(b), "--layers", "--all").stdout
    assert "  conv_1 (conv)" in every
    md = cnndsl("diff", str(a), str(b), "--layers", "--format", "markdown").stdout
    assert "| + batchnorm_1 (batchnorm) | 8x8x4 | 16 | 0 | 1.02 KB | 3/1/1 |" in md


def test_diff_of_a_spec_with_itself_and_with_stdin():
    r = cnndsl("diff", "specs/googlenet.cnn", "-", stdin=(ROOT / "specs" / "googlenet.cnn").read_text())
    assert r.returncode == 0, r.stderr
    assert "0 changed, 0 added, 0 removed, 23 the same (not shown)" in r.stdout
    assert "→" not in r.stdout and '      b = "googlenet" (<stdin>)' in r.stdout
    r = cnndsl("diff", "-", "-", stdin="input 8x8x1\n")
    assert r.returncode == 2 and "only one of A and B can be standard input" in r.stderr


def _options_with_checked_values():
    """(command, option) for every option whose value the parser checks (a type or choices)."""
    from cnndsl.cli import build_parser

    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for command, parser in commands.choices.items():
        for action in parser._actions:
            if action.option_strings and action.nargs != 0 and (action.type or action.choices):
                yield command, action.option_strings[-1]


@pytest.mark.parametrize("command,option", sorted(set(_options_with_checked_values())))
def test_a_long_bad_value_is_shown_by_its_ends(command, option, capsys):
    """A usage error shows a long value by its two ends and its length, whichever check (our
    type functions or argparse's choices) refused it."""
    from cnndsl.cli import build_parser

    value = "v" * 2_500 + "@" * 2_500
    with pytest.raises(SystemExit) as exit:
        build_parser().parse_args([command, "a.cnn", "b.cnn", f"{option}={value}"])
    error = capsys.readouterr().err.splitlines()[-1]
    assert exit.value.code == 2
    assert "'" + "v" * 60 + "..." + "@" * 30 + "' (5,000 characters)" in error, error
    assert len(error) < 400


@pytest.mark.parametrize(
    "args,code",
    [
        (["summary", "{long}.cnn"], 1),
        (["check", "{importer}"], 1),
        (["check", "specs/lenet5.cnn", "--import-path", "{long}"], 2),
        (["compile", "specs/lenet5.cnn", "--target", "torch", "-o", "{long}.py"], 2),
    ],
    ids=["spec", "import", "import-path", "output"],
)
def test_a_file_name_too_long_for_the_system_is_an_error_not_a_crash(args, code, tmp_path):
    """Python 3.11's Path.is_file and is_dir raise on a name over the system's limit (255
    bytes) where os.path's return False: every path the user gives goes through one."""
    long = str(tmp_path / ("a" * 300))
    importer = tmp_path / "importer.cnn"
    importer.write_text(f'import "{"a" * 300}.cnn"\ninput 8x8x1\n')
    r = cnndsl(*(a.format(long=long, importer=importer) for a in args))
    assert r.returncode == code, r.stderr[-800:]
    assert "internal error" not in r.stderr and "Traceback" not in r.stderr
