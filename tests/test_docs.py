"""Documentation tools: the Pygments lexer for .cnn specs (``pygmentize -l cnn``) and the Sphinx
extension (``extensions = ["cnndsl.sphinx"]``)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from pygments.lexers import get_lexer_by_name, get_lexer_for_filename
from pygments.token import Comment, Error, Keyword, Name, Number, Operator, String

from cnndsl.ir import ACTIVATIONS, LAYER_CLASSES
from cnndsl.lexer import KERNEL, CnnLexer, vocabulary

ROOT = Path(__file__).resolve().parent.parent

# Every spec of the repository (outside hidden folders such as .venv) but the error corpus,
# where bad input is the point.
ZOO = sorted(
    p
    for folder in ROOT.iterdir()
    if folder.is_dir() and not folder.name.startswith(".")
    for p in folder.rglob("*.cnn")
    if "errors" not in p.relative_to(ROOT).parts[:-1]
)


def _tokens(text: str) -> list[tuple[object, str]]:
    lexer = CnnLexer(stripnl=False, ensurenl=False)
    return [(t, v) for t, v in lexer.get_tokens(text) if v]


def _types(text: str) -> dict[str, object]:
    """Each non-blank token's text -> its token type (the last one, for repeated words)."""
    return {v: t for t, v in _tokens(text) if v.strip()}


# ---------------------------------------------------------------------------- the lexer


def test_the_zoo_is_found():
    names = {p.name for p in ZOO}
    assert {"googlenet.cnn", "unet.cnn", "tiny_resnet.cnn", "mini_inception.cnn"} <= names
    assert not any("errors" in p.parts for p in ZOO)


@pytest.mark.parametrize("path", ZOO, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_spec_lexes_without_errors_and_round_trips(path):
    text = path.read_text(encoding="utf-8")
    tokens = _tokens(text)
    errors = [v for t, v in tokens if t in Error]
    assert not errors, f"{path.name}: error tokens {errors[:10]}"
    assert "".join(v for _, v in tokens) == text
    # no identifier-like word falls through as plain text
    assert not [v for t, v in tokens if t is String.Other or t is Name.Other]


def test_every_layer_kind_and_activation_is_highlighted():
    # From the IR's registry, so that a kind added there without the lexer knowing it fails.
    kind_words, activation_words = [], []
    for cls in LAYER_CLASSES:
        (activation_words if cls.family == "activation" else kind_words).extend(cls.spec_names)
    assert kind_words and activation_words
    for word in kind_words + ["identity"]:
        assert _types(f"{word} 8\n")[word] is Keyword.Type, word
    for word in activation_words + list(ACTIVATIONS):
        assert _types(f"conv 8 {word}\n")[word] is Name.Builtin, word
        assert _types(f"conv 8 activation={word}\n")[word] is Name.Builtin, word
    # every option value of the IR's fields is a constant: padding=same, interpolation=nearest
    for word in ("same", "valid", "ceil", "nobias", "keepdims", "bilinear", "nearest"):
        assert _types(f"x {word}\n")[word] is Name.Constant, word


def test_keywords_and_operators():
    for word in ["network", "input", "output", "block", "repeat", "for", "in", "if", "else",
                 "import", "from", "defaults"]:
        assert word in vocabulary()["keywords"], word
    text = (
        'from "lib.cnn" import a\nimport "b.cnn"\ndefaults conv kernel=3\n'
        "repeat 2 { if n > 1 and not k or m { identity } else { relu } }\n"
        "for f in [1, 2] { conv f }\n"
    )
    types = _types(text)
    for word in ["from", "import", "defaults", "repeat", "if", "else", "for", "in"]:
        assert types[word] is Keyword, word
    for word in ["and", "or", "not"]:
        assert types[word] is Operator.Word, word
    assert types["kernel"] is Name.Attribute
    assert types["f"] is Name and types["n"] is Name


def test_token_classes():
    text = (
        "network tiny  # a comment\n"
        "input 224x224x3\n"
        'block conv_bn(f, s=1) { 3x3+2(S) conv f stride=s bias=off -> bn -> relu }\n'
        "x = conv_bn(64)\n"
        "7x7+2(3) conv 64 -> dropout 0.5 -> bn epsilon=1e-5\n"
        'import "a \\"b\\".cnn"\n'
    )
    tokens = _tokens(text)
    types = _types(text)
    assert types["tiny"] is Name.Class
    assert ("224x224x3" in types) and types["224x224x3"] is KERNEL
    assert types["3x3+2(S)"] is KERNEL and types["7x7+2(3)"] is KERNEL  # one token each
    assert types["conv_bn"] is Name.Function
    assert types["x"] is Name.Variable
    indented = _types("block b(f) {\n  y = conv f\n  conv f stride=2\n}\n")
    assert indented["y"] is Name.Variable and indented["stride"] is Name.Attribute
    assert types["stride"] is Name.Attribute and types["bias"] is Name.Attribute
    assert types["off"] is Keyword.Constant
    assert types["->"] is Operator
    assert types["64"] is Number.Integer
    assert types["0.5"] is Number.Float and types["1e-5"] is Number.Float
    strings = [(t, v) for t, v in tokens if t in String and t is not KERNEL]
    assert strings == [
        (String.Double, '"a '), (String.Escape, '\\"'), (String.Double, "b"),
        (String.Escape, '\\"'), (String.Double, '.cnn"'),
    ]
    assert types["# a comment"] is Comment.Single


def test_bad_input_gives_error_tokens():
    # what the grammar refuses, the highlighter shows as an error
    assert [v for t, v in _tokens("conv 8 @ $\n") if t in Error] == ["@", "$"]
    assert Error in {t for t, _ in _tokens('import "unterminated\n')}


# ------------------------------------------------------------- the entry point, pygmentize


def _declared_entry_points() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return project["entry-points"]["pygments.lexers"]


def _dist_info(where: Path) -> Path:
    """A distribution's metadata with the entry points pyproject.toml declares, written as pip
    writes them (``entry_points.txt``): what ``pip install`` makes of the declaration."""
    info = where / "cnndsl_entry_points-0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: cnndsl-entry-points\nVersion: 0\n")
    lines = ["[pygments.lexers]", *(f"{k} = {v}" for k, v in _declared_entry_points().items())]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    return where


def test_pygmentize_finds_the_lexer_through_the_entry_point(tmp_path):
    assert _declared_entry_points() == {"cnn": "cnndsl.lexer:CnnLexer"}
    site = _dist_info(tmp_path / "site")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    spec = ROOT / "specs" / "googlenet.cnn"
    for args in (["-l", "cnn"], ["-l", "cnndsl"], []):  # by name, and by the file's extension
        out = subprocess.run(
            [sys.executable, "-m", "pygments", *args, "-f", "html", str(spec)],
            capture_output=True, text=True, env=env, timeout=60,
        )
        assert out.returncode == 0, out.stderr
        assert '<span class="kt">conv</span>' in out.stdout, args
        assert '<span class="ss">3x3+2(S)</span>' in out.stdout, args
        assert '<span class="err">' not in out.stdout
    # in a terminal
    out = subprocess.run(
        [sys.executable, "-m", "pygments", "-l", "cnn", "-f", "terminal", str(spec)],
        capture_output=True, text=True, env=env, timeout=60,
    )
    assert out.returncode == 0 and "\x1b[" in out.stdout and "inception_3a" in out.stdout


def test_the_installed_entry_point_matches_the_declaration():
    # Where cnndsl is installed from this checkout (CI: pip install -e '.[test]'), Pygments finds
    # the lexer by itself; an older install (without the entry point) is not this checkout's.
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        installed = distribution("cnndsl").entry_points.select(group="pygments.lexers")
    except PackageNotFoundError:
        pytest.skip("cnndsl is not installed")
    if not installed:
        pytest.skip("the installed cnndsl predates the entry point: pip install -e . again")
    assert {e.name: e.value for e in installed} == _declared_entry_points()
    assert get_lexer_by_name("cnn").__class__.__name__ == "CnnLexer"
    assert get_lexer_for_filename("googlenet.cnn").__class__.__name__ == "CnnLexer"


def test_the_lexer_class():
    assert {"cnn", "cnndsl"} <= set(CnnLexer.aliases) and CnnLexer.filenames == ["*.cnn"]


# ------------------------------------------------------------------- the Sphinx extension

SPEC = """\
network small
input 32x32x3
import "blocks.cnn"

stem = 3x3+1(S) conv 16 relu
unit(16)
globalavgpool
dense 10 softmax
"""

BLOCKS = """\
block unit(f) {
  add { 3x3(S) conv f bias=off -> bn -> relu | identity }
}
"""

INDEX = """\
Networks
========

.. cnn-diagram:: ../specs/small.cnn
   :collapse:
   :rankdir: LR
   :params:
   :summary:
   :caption: A *small* network
   :name: small-diagram

.. cnn-summary:: /../specs/small.cnn
   :batch: 8
   :dtype: float16

.. code-block:: cnn

   7x7+2(3) conv 64 bias=off -> bn -> relu  # the stem
"""


def _sphinx_build(src: Path, out: Path, builder: str = "html") -> str:
    """Builds the project in ``src`` into ``out`` as ``sphinx-build`` does (incrementally: the
    environment is kept between builds); returns what Sphinx warned."""
    from sphinx.cmd.build import build_main

    log = out / f"warnings-{builder}.txt"
    out.mkdir(exist_ok=True)
    args = ["-b", builder, "-d", str(out / "doctrees"), "-q", "-N", "-w", str(log)]
    status = build_main([*args, str(src), str(out / builder)])
    assert status == 0, log.read_text(encoding="utf-8")
    return log.read_text(encoding="utf-8")


def _project(tmp_path: Path, index: str = INDEX) -> tuple[Path, Path, Path]:
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "small.cnn").write_text(SPEC)
    (specs / "blocks.cnn").write_text(BLOCKS)
    src = tmp_path / "docs"
    src.mkdir()
    (src / "conf.py").write_text('extensions = ["cnndsl.sphinx"]\nproject = "test"\n')
    (src / "index.rst").write_text(index)
    return src, tmp_path / "_build", specs


def _rewrite(path: Path, text: str) -> None:
    """Rewrites a file after the last build: its modification time is then later than the time
    Sphinx read the page (a time in the future would keep the page outdated in every later
    build, and so hide whether the file itself was noted as a dependency)."""
    import time

    time.sleep(0.05)
    path.write_text(text)


def test_sphinx_directives_embed_the_diagram_and_the_summary(tmp_path):
    src, out, specs = _project(tmp_path)
    warnings = _sphinx_build(src, out)
    assert warnings == ""
    html = (out / "html" / "index.html").read_text(encoding="utf-8")

    import cnndsl

    net = cnndsl.load(specs / "small.cnn")
    # the diagram: inline SVG drawn from the spec, collapsed (the block call is one node)
    assert html.count("<svg") == 1
    svg = html[html.index("<svg") : html.index("</svg>")]
    assert 'aria-label="diagram of the network small' in svg
    assert "unit(16)" in svg and ">stem<" in svg
    assert 'id="cnn0-graph0"' in svg and 'id="graph0"' not in svg  # ids unique on the page
    assert "<?xml" not in html and "<!DOCTYPE svg" not in html
    assert f"{net.analysis.total_params:,}" in svg  # :params: writes the total under the title
    assert 'class="caption-text">A <em>small</em> network' in html
    assert 'id="small-diagram"' in html
    # the summary tables: one after the diagram, one from cnn-summary (batch 8, float16)
    assert html.count('<table class="cnn-summary') == 2
    for info in net.analysis:
        assert f"{info.layer.name} ({info.layer.type_name})" in html
    assert f"Total params: {net.analysis.total_params:,}" in html
    assert "Memory (batch 1, float32)" in html and "Memory (batch 8, float16)" in html
    assert "Connected to" in html  # a DAG
    # cnn code blocks are highlighted
    assert '<span class="kt">conv</span>' in html and '<span class="ss">7x7+2(3)</span>' in html


def test_sphinx_rebuilds_the_page_when_the_spec_or_an_import_changes(tmp_path):
    src, out, specs = _project(tmp_path)
    assert _sphinx_build(src, out) == ""
    page = out / "html" / "index.html"
    before = page.read_text(encoding="utf-8")
    assert _row(before, "dense_1 (dense)")[:3] == ["dense_1 (dense)", "10", "170"]  # 16*10 + 10

    _rewrite(specs / "small.cnn", SPEC.replace("dense 10 softmax", "dense 7 softmax"))
    assert _sphinx_build(src, out) == ""
    after = page.read_text(encoding="utf-8")
    assert _row(after, "dense_1 (dense)")[:3] == ["dense_1 (dense)", "7", "119"]

    _rewrite(specs / "blocks.cnn", BLOCKS.replace("3x3(S) conv f", "5x5(S) conv f"))
    assert _sphinx_build(src, out) == ""
    imported = page.read_text(encoding="utf-8")
    assert imported != after
    assert _row(imported, "unit_1_conv_1 (conv)")[2] == "6,400"  # 5*5*16*16, no bias


def _row(html: str, first_cell: str) -> list[str]:
    """The cells of the first summary row that starts with ``first_cell``."""
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", html, re.S):
        cells = [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        if cells and cells[0] == first_cell:
            return cells
    raise AssertionError(f"no row {first_cell!r}")


def test_sphinx_reports_a_bad_spec_with_its_location(tmp_path):
    src, out, specs = _project(tmp_path)
    (specs / "small.cnn").write_text(SPEC.replace("dense 10 softmax", "dense 10 sofmax"))
    warnings = _sphinx_build(src, out)
    assert "Traceback" not in warnings
    # Sphinx's location (the directive), then cnndsl's: file:line:col, the line, a caret, a hint
    assert "index.rst:4: ERROR: cnn-diagram ../specs/small.cnn:\n" in warnings
    assert f"{specs / 'small.cnn'}:8:10: error:" in warnings
    assert "    8 | dense 10 sofmax" in warnings and "^^^^^^" in warnings
    assert "did you mean 'softmax'?" in warnings
    assert "index.rst:12: ERROR: cnn-summary ../specs/small.cnn:\n" in warnings
    # the page is still written, without a diagram; fixing the spec rebuilds it
    assert "<svg" not in (out / "html" / "index.html").read_text(encoding="utf-8")
    _rewrite(specs / "small.cnn", SPEC)
    assert _sphinx_build(src, out) == ""
    assert "<svg" in (out / "html" / "index.html").read_text(encoding="utf-8")


def test_sphinx_reports_an_error_in_an_imported_file_and_bad_options(tmp_path):
    index = INDEX.replace(":rankdir: LR", ":rankdir: sideways")
    src, out, specs = _project(tmp_path, index)
    (specs / "blocks.cnn").write_text(BLOCKS.replace("bias=off", "bias=maybe"))
    warnings = _sphinx_build(src, out)
    assert "Traceback" not in warnings
    assert 'invalid option value: (option: "rankdir"; value: \'sideways\')' in warnings
    assert f"{specs / 'blocks.cnn'}:2:28: error: unknown name 'maybe' for bias" in warnings
    _rewrite(src / "index.rst", INDEX)
    warnings = _sphinx_build(src, out)
    assert "rankdir" not in warnings and warnings.count("unknown name 'maybe' for bias") == 2
    # fixing the imported file (the spec and the page are unchanged) rebuilds the page
    _rewrite(specs / "blocks.cnn", BLOCKS)
    assert _sphinx_build(src, out) == ""
    html = (out / "html" / "index.html").read_text(encoding="utf-8")
    assert html.count('<table class="cnn-summary') == 2


def test_sphinx_latex_and_text_builders(tmp_path):
    src, out, _ = _project(tmp_path)
    assert _sphinx_build(src, out, "latex") == ""
    tex = (out / "latex" / "test.tex").read_text(encoding="utf-8")
    found = re.findall(r"\\sphinxincludegraphics\[\]\{(cnn-[0-9a-f]{16}\.pdf)\}", tex)
    assert len(found) == 1
    assert (out / "latex" / found[0]).read_bytes().startswith(b"%PDF")
    assert _sphinx_build(src, out, "text") == ""
    text = (out / "text" / "index.txt").read_text(encoding="utf-8")
    assert "[diagram of the network small (../specs/small.cnn)]" in text
    assert "Total params:" in text


def test_sphinx_without_graphviz_says_how_to_install_it(tmp_path, monkeypatch):
    src, out, _ = _project(tmp_path)
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no `dot` to be found
    warnings = _sphinx_build(src, out)
    assert "Traceback" not in warnings
    assert "index.rst:4: ERROR: cnn-diagram ../specs/small.cnn:" in warnings
    assert "Graphviz" in warnings and "apt-get install graphviz" in warnings
    html = (out / "html" / "index.html").read_text(encoding="utf-8")
    assert "<svg" not in html and '<table class="cnn-summary' in html  # cnn-summary needs no dot
