"""The writer of generated source: lines, indentation, docstrings, and statements wrapped as
black wraps them at :data:`LINE_LENGTH` columns (as Jinja2's CodeGenerator writes, through
``line``/``indented``).  Every back end writes through it, so generated files of every target
have one layout, which ``black --line-length 100`` leaves as it is.
"""

from __future__ import annotations

import textwrap
from contextlib import contextmanager

from .expr import Call, Display, Expr, Operation, Render
from .names import comment_text, docstring_text

LINE_LENGTH = 100
INDENT = "    "


class Writer:
    """Collects lines with indentation; :meth:`getvalue` gives the text with one final
    newline."""

    def __init__(self) -> None:
        self._lines: list[str] = []
        self._level = 0

    @property
    def width(self) -> int:
        """The columns left at the current indentation."""
        return LINE_LENGTH - len(INDENT) * self._level

    def line(self, text: str = "") -> None:
        self._lines.append(f"{INDENT * self._level}{text}" if text else "")

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

    def docstring(self, text: str, *paragraphs: list[str]) -> None:
        """A docstring: ``text`` then paragraphs of lines (anything: each is escaped and
        wrapped to the line).  The closing quotes go on a line of their own when it has more
        than one line, as black leaves them."""
        lines = _wrap_escaped(docstring_text(text), self.width - 3)
        if len(lines) == 1 and not paragraphs:
            if len(lines[0]) + 6 <= self.width:
                self.line(f'"""{lines[0]}"""')
                return
            lines = _wrap_escaped(docstring_text(text), self.width - 6)  # black would join
        self.line(f'"""{lines[0]}')
        self.lines(*lines[1:])
        for paragraph in paragraphs:
            self.blank()
            for line in paragraph:
                self.lines(*_wrap_escaped(_escaped(line), self.width))
        self.line('"""')

    def statement(
        self, head: str, expr: Expr, r: Render, comment: str | None = None, tail: str = ""
    ) -> None:
        """``head + expr + tail``, wrapped to the line, with its comment at the end of its line
        (or on a line of its own above it when the statement does not fit on one line with
        it)."""
        lines = wrap(head, expr, tail, self.width, r)
        if comment:
            comment = comment_text(comment)
            inline = f"{lines[0]}  # {comment}"
            if len(lines) == 1 and len(inline) <= self.width:
                lines = [inline]
            else:
                self.line(f"# {comment}")
        self.lines(*lines)


def wrap(head: str, expr: Expr, tail: str, width: int, r: Render) -> list[str]:
    """``head + expr + tail`` laid out as black lays it out in ``width`` columns (lines
    unindented, continuation lines indented by four spaces): the last bracket is split first;
    when the line before it would still be too long, the one before it (``f(...)(x)`` splits
    inside ``f(...)``, keeping ``)(x)``); when none fits, the right-hand side is wrapped in
    parentheses."""
    line = f"{head}{expr.text(r)}{tail}"
    if len(line) <= width or not isinstance(expr, (Call, Display, Operation)):
        return [line]
    if isinstance(expr, Operation):  # black's invisible parentheses, then one operand a line
        body = INDENT + expr.text(r)
        if len(body) <= width:
            return [f"{head}(", body, f"){tail}"]
        operands = [o.text(r) for o in expr.operands]
        body = [INDENT + operands[0]] + [f"{INDENT}{expr.op} {o}" for o in operands[1:]]
        return [f"{head}(", *body, f"){tail}"]
    after = ""
    for bracket in _brackets(expr):
        opening, parts, closing = _split(bracket, r)
        if len(f"{head}{opening}") <= width:
            return [f"{head}{opening}", *_contents(parts, width, r), f"{closing}{after}{tail}"]
        after = _rest(bracket, r) + after
    if head:  # black wraps the right-hand side instead
        inner = wrap("", expr, "", width - len(INDENT), r)
        return [f"{head}(", *(INDENT + t for t in inner), f"){tail}"]
    opening, parts, closing = _split(expr, r)
    return [opening, *_contents(parts, width, r), f"{closing}{tail}"]


def _brackets(expr: Expr) -> list[Expr]:
    """The bracketed parts of an expression that black may split, last first: a call, the
    call whose result it calls (``f(...)(x)``), ..."""
    found = []
    while isinstance(expr, (Call, Display)):
        found.append(expr)
        if not isinstance(expr, Call) or not isinstance(expr.func, Call):
            break
        expr = expr.func
    return found


def _rest(bracket: Expr, r: Render) -> str:
    """A bracket's own text (what follows the bracket split before it)."""
    if isinstance(bracket, Call):
        return "(" + ", ".join(bracket.parts(r)) + ")"
    return bracket.text(r)


def _split(bracket: Expr, r: Render) -> tuple[str, list[tuple[str, Expr]], str]:
    """(the text up to and with the opening bracket, the parts inside as (prefix, expr),
    the closing bracket)."""
    if isinstance(bracket, Call):
        parts = [("", a) for a in bracket.args] + [(f"{k}=", v) for k, v in bracket.shown_kwargs()]
        return bracket.func.text(r) + "(", parts, ")"
    return "[", [("", item) for item in bracket.items], "]"


def _contents(parts: list[tuple[str, Expr]], width: int, r: Render) -> list[str]:
    """The inside of a split bracket: on one line if it fits, else one part a line, each with
    a trailing comma (black's magic trailing comma)."""
    hugged = INDENT + ", ".join(prefix + e.text(r) for prefix, e in parts)
    if len(hugged) <= width:
        return [hugged]
    lines = []
    for prefix, e in parts:
        lines += [INDENT + t for t in wrap(prefix, e, ",", width - len(INDENT), r)]
    return lines


class _EscapedWrapper(textwrap.TextWrapper):
    """Wraps docstring text that is already escaped: a word longer than a line is broken, but
    never between a backslash and the character it escapes (a line ending in a lone backslash
    would join the next line and escape its first character)."""

    def _handle_long_word(self, reversed_chunks, cur_line, cur_len, width):
        chunk = reversed_chunks[-1]
        end = 1 if width < 1 else width - cur_len
        head = chunk[:end]
        if (end > 1 or cur_line) and (len(head) - len(head.rstrip("\\"))) % 2:
            end -= 1  # leave the backslash to the next line, with what it escapes
        if end > 0:
            cur_line.append(chunk[:end])
            reversed_chunks[-1] = chunk[end:]


def _escaped(text: str) -> str:
    """One line of a docstring: no control characters, quotes and backslashes escaped."""
    text = "".join(c if c.isprintable() else " " for c in text)
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _wrap_escaped(text: str, width: int) -> list[str]:
    """``textwrap.wrap(text, width, break_on_hyphens=False)``, escapes kept whole."""
    return _EscapedWrapper(width, break_on_hyphens=False).wrap(text) or [""]
