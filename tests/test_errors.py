"""Bad specs get clear, located errors: golden messages for a corpus of mistakes.

Each tests/errors/NAME.cnn has its expected ``cnndsl check`` output in NAME.err.  Set
CNNDSL_UPDATE_GOLDEN=1 to rewrite the .err files after an intended change (and read the diff).
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import pytest

from cnndsl.cli import main
from conftest import ROOT

ERRORS = ROOT / "tests" / "errors"
CASES = sorted(ERRORS.glob("*.cnn"))
UPDATE = os.environ.get("CNNDSL_UPDATE_GOLDEN") == "1"


def check(path: Path) -> tuple[int, str]:
    """``cnndsl check`` of a corpus file, with the options its first line may give (``# check
    --input 16x16x3``: errors that only a size given on the command line can show)."""
    first = path.read_bytes().partition(b"\n")[0].decode("utf-8", "replace")
    options = first.split()[2:] if first.startswith("# check ") else []
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["check", str(path.relative_to(ROOT)), *options])
    return code, err.getvalue()


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_error_message(path, monkeypatch):
    monkeypatch.chdir(ROOT)
    code, message = check(path)
    assert code == 1
    assert "Traceback" not in message and "internal error" not in message
    assert message.startswith(f"tests/errors/{path.name}:") or message.startswith("tests/errors/")
    golden = path.with_suffix(".err")
    if UPDATE or not golden.exists():
        golden.write_text(message, encoding="utf-8")
    assert message == golden.read_text(encoding="utf-8")


def test_corpus_size():
    assert len(CASES) >= 40


def test_defaults_no_layer_uses_are_checked_in_imported_files_too(tmp_path, capsys):
    """A `defaults` line is checked where it is written, in the spec and in every file it
    imports, whether or not a layer asks for it (it was checked only when a layer of its kind
    came, so a typo in a library's conventions was silently ignored)."""
    (tmp_path / "lib.cnn").write_text("defaults conv kernel=true\nblock unused() { relu }\n")
    (tmp_path / "net.cnn").write_text('import "lib.cnn"\ninput 8x8x3\nrelu\n')
    assert main(["check", str(tmp_path / "net.cnn")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"{tmp_path / 'lib.cnn'}:1:22: error: conv kernel must be an integer, got true")
    (tmp_path / "lib.cnn").write_text("defaults conv kernel=3 padding=same\nblock unused() { relu }\n")
    assert main(["check", str(tmp_path / "net.cnn")]) == 0
