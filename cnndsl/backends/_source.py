"""A tiny writer for generated Python source (as Jinja2's CodeGenerator writes)."""

from __future__ import annotations

import keyword
import re
from contextlib import contextmanager


class SourceWriter:
    """Collects lines with indentation; ``getvalue()`` gives the text with one final newline."""

    def __init__(self, indent: str = "    ") -> None:
        self._lines: list[str] = []
        self._level = 0
        self._unit = indent

    def line(self, text: str = "") -> None:
        self._lines.append(f"{self._unit * self._level}{text}" if text else "")

    def lines(self, *texts: str) -> None:
        for text in texts:
            self.line(text)

    def blank(self, count: int = 1) -> None:
        """Blank lines, never more than ``count`` in a row and none at the start."""
        if not self._lines:
            return
        trailing = 0
        for existing in reversed(self._lines):
            if existing:
                break
            trailing += 1
        self._lines.extend([""] * max(0, count - trailing))

    @contextmanager
    def indented(self):
        self._level += 1
        try:
            yield
        finally:
            self._level -= 1

    def getvalue(self) -> str:
        while self._lines and not self._lines[-1]:
            self._lines.pop()
        return "\n".join(self._lines) + "\n"


_NOT_IDENT = re.compile(r"[^0-9A-Za-z_]")


def py_identifier(name: str) -> str:
    """A safe Python identifier for any name (IR names already are; this is a last guard)."""
    ident = _NOT_IDENT.sub("_", name)
    if not ident or ident[0].isdigit():
        ident = "_" + ident
    if keyword.iskeyword(ident) or keyword.issoftkeyword(ident):
        ident += "_"
    return ident


def comment_text(text: str) -> str:
    """Text made safe for a single-line ``#`` comment: one line, no control characters."""
    return " ".join("".join(c if c.isprintable() else " " for c in str(text)).split())


def docstring_text(text: str) -> str:
    """Text made safe inside a triple-quoted docstring: one line, quotes and backslashes
    escaped, so that nothing in it can end the string."""
    return comment_text(text).replace("\\", "\\\\").replace('"', '\\"')
