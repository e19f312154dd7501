"""The one error type of cnndsl.

Every stage (lexer, parser, elaboration, pydantic validation, shape inference) reports a
problem in a spec as a :class:`CnnDslError`.  It holds one or more :class:`Diagnostic`, each
with a source position, the source line, a caret under the offending span, an optional hint and
notes (for example the block call through which a layer was reached).  ``str(error)`` is the
text the command line prints::

    specs/bad.cnn:3:10: error: unknown layer kind 'maxpol'
        3 | 3x3+2(S) maxpol
          |          ^^^^^^
      hint: did you mean 'maxpool'?
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = [
    "CnnDslError", "Diagnostic", "Location", "did_you_mean", "normalize_newlines", "split_lines"
]

_LINE_END = re.compile(r"\r\n?|\n")


def normalize_newlines(text: str) -> str:
    """The text with every line end written ``\\n`` (see :func:`split_lines`)."""
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


def split_lines(text: str) -> list[str]:
    """The lines of a spec, without their ends.

    This is the one definition of a line in cnndsl, used for line numbers, excerpts and
    locations alike: a line ends at ``\\n``, ``\\r\\n`` or a lone ``\\r``, and at nothing else
    (form feeds, vertical tabs, U+0085, U+2028 and U+2029 are characters of the line, unlike
    in :meth:`str.splitlines`).  As with :meth:`str.splitlines`, a line end at the end of the
    text starts no new line.
    """
    lines = _LINE_END.split(text)
    if lines[-1] == "":
        lines.pop()
    return lines


@dataclass(frozen=True, slots=True)
class Location:
    """A span in a source file: 1-based line and column of its start, optional end column."""

    file: str
    line: int
    column: int
    end_column: int | None = None
    source_line: str | None = None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One message about one place in a spec."""

    message: str
    location: Location | None = None
    hint: str | None = None
    notes: tuple[tuple[str, Location | None], ...] = field(default=())

    def format(self) -> str:
        loc = self.location
        head = f"{loc}: error: {self.message}" if loc else f"error: {self.message}"
        lines = [head]
        if loc is not None:
            lines.extend(_excerpt(loc))
        if self.hint:
            lines.append(f"  hint: {self.hint}")
        for text, where in self.notes:
            lines.append(f"  note: {text}" + (f" at {where}" if where else ""))
            if where is not None:
                lines.extend(_excerpt(where))
        return "\n".join(lines)


def _visible(char: str) -> str:
    """A character of a source line as an excerpt shows it, in one column: a control or
    format character (a form feed, a vertical tab, ESC, U+0085, U+2028, a bidirectional
    override) would move the terminal's cursor, act on the terminal, or reorder the line,
    so it is shown as its control picture (C0 and DEL: \u240c for a form feed) or as
    U+FFFD."""
    code = ord(char)
    if code < 0x20:
        return chr(0x2400 + code)
    if code == 0x7F:
        return "\u2421"
    return "\ufffd" if unicodedata.category(char) in _INVISIBLE else char


_INVISIBLE = ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")


def _excerpt(loc: Location) -> list[str]:
    if loc.source_line is None:
        return []
    text = loc.source_line.rstrip("\r\n").expandtabs(1)
    if not text.isprintable():
        text = "".join(map(_visible, text))
    if len(text) > 200:  # very long lines are cut around the column
        start = max(0, loc.column - 100)
        text = ("..." if start else "") + text[start : start + 200] + "..."
        shift = start - (3 if start else 0)
    else:
        shift = 0
    gutter = f"{loc.line:>5} | "
    col = max(loc.column - 1 - shift, 0)
    end = loc.end_column - 1 - shift if loc.end_column else col + 1
    width = max(1, min(end, len(text) + 1) - col)
    # columns count characters; a terminal shows East Asian wide characters (and emoji) in two
    # cells and combining marks in none, so the caret is placed by the cells they take
    pad = _cells(text[:col]) + max(0, col - len(text))
    width = max(1, _cells(text[col : col + width]) + max(0, col + width - max(len(text), col)))
    return [gutter + text, " " * (len(gutter) - 2) + "| " + " " * pad + "^" * width]


def _cells(text: str) -> int:
    """How many terminal cells ``text`` takes: 2 for a wide or full-width character, 0 for a
    combining mark, 1 otherwise (what wcwidth gives for the characters an excerpt shows)."""
    if text.isascii():
        return len(text)
    return sum(
        0 if unicodedata.combining(c) or unicodedata.category(c) == "Me"
        else 2 if unicodedata.east_asian_width(c) in "WF" else 1
        for c in text
    )


class CnnDslError(Exception):
    """A problem in a spec, with its location(s).  ``.diagnostics`` lists each one."""

    def __init__(
        self,
        message: str | Iterable[Diagnostic],
        location: Location | None = None,
        *,
        hint: str | None = None,
        notes: Iterable[tuple[str, Location | None]] = (),
    ) -> None:
        if isinstance(message, str):
            self.diagnostics: tuple[Diagnostic, ...] = (
                Diagnostic(message, location, hint, tuple(notes)),
            )
        else:
            self.diagnostics = tuple(message)
        super().__init__(self.format())

    @property
    def message(self) -> str:
        return self.diagnostics[0].message

    @property
    def location(self) -> Location | None:
        return self.diagnostics[0].location

    @property
    def hint(self) -> str | None:
        return self.diagnostics[0].hint

    def format(self) -> str:
        return "\n".join(d.format() for d in self.diagnostics)

    def __str__(self) -> str:
        return self.format()


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    """A hint naming the closest candidate to a misspelt word, or None."""
    close = difflib.get_close_matches(word.lower(), sorted(set(candidates)), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None
