"""Text from a network, made safe for DOT.

Every piece of text a diagram takes from the network (names, notations, call signatures)
goes through :func:`html` (inside HTML-like labels) or :func:`quoted` (quoted strings, for
tooltips); the markup and attributes around them are the diagram's own.
"""

from __future__ import annotations

import re
import unicodedata

_WHITESPACE = re.compile(r"\s+")


def clean(text: object) -> str:
    """One line of printable text: whitespace runs (newlines too) become one space, other
    control characters and lone surrogates become U+FFFD."""
    text = _WHITESPACE.sub(" ", str(text))
    text = "".join("\ufffd" if unicodedata.category(c) in ("Cc", "Cs") else c for c in text)
    return text.strip()


def html(text: object) -> str:
    """Text for an HTML-like label (the markup there is ours, never the network's).

    Graphviz expands ``\\N``, ``\\G`` ... in labels, even HTML-like ones and after decoding
    entities, and reads ``\\\\`` as one backslash: so backslashes are doubled, here only.
    """
    return (
        clean(text)
        .replace("\\", "\\\\")
        .replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("'", "&#39;")
    )


def quoted(*lines: object) -> str:
    """A DOT quoted string (a tooltip) of one or more lines joined by ``\\n``.

    A backslash is written as four: the DOT scanner makes two of them one, and the label
    expansion (``\\N`` ...) the two one again; a quote is ``\\"`` (after an even run of
    backslashes, so it never ends the string); ``&`` is ``&amp;``, as Graphviz decodes
    entities in strings too.
    """
    parts = [
        clean(line).replace("\\", "\\\\\\\\").replace('"', '\\"').replace("&", "&amp;")
        for line in lines
    ]
    return '"' + "\\n".join(parts) + '"'


def attrs(**values: str | int | float) -> str:
    """``[a=1, b="x"]`` from values that are already DOT (quoted strings, <HTML>, numbers)."""
    return "[" + ", ".join(f"{k}={v}" for k, v in values.items()) + "]"


def html_label(*lines: str) -> str:
    """An HTML-like label of lines that are already label text (empty ones left out)."""
    return "<" + "<BR/>".join(line for line in lines if line) + ">"
