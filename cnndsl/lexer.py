"""A Pygments lexer for ``.cnn`` specs: ``pygmentize -l cnn``, and ``cnn`` code blocks in Sphinx
and MkDocs.

This is the highlighter, not the compiler's tokenizer (that is :mod:`cnndsl.parser`).  It is
registered as the entry point ``cnn`` of ``pygments.lexers`` (see ``pyproject.toml``), so
Pygments finds it once cnndsl is installed.  Nothing in it is a copied list that could drift
from the language: the keywords and the token patterns (sizes and the kernel notation, numbers,
strings, names) are read from the grammar's terminals, and the layer kinds, activations and
option values from the IR's layer classes, when the module is imported.

Token classes (standard Pygments types, so every style colours them):

=============================  =============================================================
``Keyword``                    network, input, output, block, repeat, for, in, if, else,
                               import, from, defaults
``Operator.Word``              and, or, not
``Keyword.Type``               layer kinds: conv, maxpool, bn, dense, add, concat, identity ...
``Name.Builtin``               activations: relu, softmax, leakyrelu ... (as layers or values)
``Name.Constant``              option values: same, valid, ceil, nobias, bilinear ...
``Keyword.Constant``           on, off, true, false, yes, no
``String.Symbol``              sizes and the kernel notation: 224x224x3, 3x3+2(S), 7x7+2(3)
``Number.Integer/Float``       64, 0.5, 1e-5
``String.Double/Escape``       "blocks/resnet.cnn", with escapes
``Comment.Single``             # ...
``Operator``                   -> = | + - * / // % == != < <= > >=
``Punctuation``                ( ) [ ] { } , ;
``Name.Function``              a block's name where it is defined or called
``Name.Class``                 the network's name
``Name.Variable``              a tensor named at the start of a line (``x = ...``)
``Name.Attribute``             an option's name (``stride=2``)
``Name``                       other names: parameters, tensors, loop variables
=============================  =============================================================
"""

from __future__ import annotations

import re
import typing
from functools import lru_cache

from pygments.lexer import RegexLexer, bygroups, words
from pygments.token import (
    Comment,
    Keyword,
    Name,
    Number,
    Operator,
    Punctuation,
    String,
    Whitespace,
)

__all__ = ["CnnLexer", "vocabulary"]

KERNEL = String.Symbol
"""The token class of sizes and the kernel notation (the grammar's ``SHAPE``, and ``OPEN_SHAPE``
for an input size with an open height or width, ``?x?x3``)."""
OPERATOR_WORDS = ("and", "or", "not")
"""The keywords that are operators of expressions."""


@lru_cache(maxsize=1)
def _grammar_terminals() -> tuple:
    """The grammar's terminal definitions (Lark's ``TerminalDef``), as Lark reads them."""
    from lark import Lark

    from .parser import GRAMMAR_PATH

    grammar = Lark(GRAMMAR_PATH.read_text(encoding="utf-8"), parser="lalr", lexer="basic")
    return tuple(grammar.terminals)


def _terminals() -> dict[str, str]:
    """The grammar's terminals as regular expressions, by name (``SHAPE``, ``NAME`` ...)."""
    return {t.name: t.pattern.to_regexp() for t in _grammar_terminals()}


def _keyword_terminals() -> frozenset[str]:
    """The words the grammar spells out as keywords: ``network``, ``block``, ``for`` ..."""
    return frozenset(
        t.pattern.value
        for t in _grammar_terminals()
        if t.pattern.type == "str" and re.fullmatch(r"[A-Za-z_]\w*", t.pattern.value)
    )


def _literal_words(annotation) -> set[str]:
    """The string values a field's type allows: ``Literal["same", "valid"] | ...``."""
    found = set()
    if typing.get_origin(annotation) is typing.Literal:
        found.update(a for a in typing.get_args(annotation) if isinstance(a, str))
    for arg in typing.get_args(annotation):
        if not isinstance(arg, (str, int, float, bool)):
            found |= _literal_words(arg)
    return found


@lru_cache(maxsize=1)
def vocabulary() -> dict[str, frozenset[str]]:
    """The words the lexer classifies, by role, derived from the grammar and the IR:

    ``keywords``, ``operators`` (and, or, not), ``kinds`` (every word that selects a layer kind,
    but activations, plus ``identity``), ``activations`` (the activation layers' words and the
    functions ``activation=`` takes), ``constants`` (flags such as ``same`` or ``nobias``, and
    the string values of the layers' fields) and ``booleans`` (``on``, ``off`` ...).
    """
    from .elaborate.options import KINDS, RESERVED
    from .elaborate.values import BOOL_WORDS
    from .ir import ACTIVATIONS, LAYER_CLASSES

    keywords = _keyword_terminals()
    kinds, activations, constants = set(), set(ACTIVATIONS), set()
    for word, (cls, _preset) in KINDS.items():
        (activations if cls.family == "activation" else kinds).add(word)
    kinds |= RESERVED - set(KINDS) - keywords  # identity: a kind the elaborator knows by name
    for cls in LAYER_CLASSES:
        constants.update(cls.flags)
        for field, info in cls.model_fields.items():
            if field != "kind":
                constants |= _literal_words(info.annotation)
    constants -= kinds | activations
    booleans = set(BOOL_WORDS) - kinds - activations - constants
    return {
        "keywords": frozenset(keywords - set(OPERATOR_WORDS)),
        "operators": frozenset(keywords & set(OPERATOR_WORDS)),
        "kinds": frozenset(kinds),
        "activations": frozenset(activations - kinds),
        "constants": frozenset(constants),
        "booleans": frozenset(booleans),
    }


def _string(lexer, match):
    """A whole string token (the grammar's ``STRING``), split into its escapes and the rest."""
    start, text = match.start(), match.group()
    pos = 0
    for escape in _ESCAPE.finditer(text, 1, len(text) - 1):
        if escape.start() > pos:
            yield start + pos, String.Double, text[pos : escape.start()]
        yield start + escape.start(), String.Escape, escape.group()
        pos = escape.end()
    yield start + pos, String.Double, text[pos:]


_ESCAPE = re.compile(
    r"\\(?:x[0-9A-Fa-f]{2}|u[0-9A-Fa-f]{4}|U[0-9A-Fa-f]{8}|N\{[^}\n]*\}|[0-7]{1,3}|.)"
)


def _tokens() -> dict:
    t = _terminals()
    v = vocabulary()
    name = t["NAME"]

    def vocab(key: str):
        return words(sorted(v[key], key=lambda w: (-len(w), w)), prefix=r"\b", suffix=r"\b")

    return {
        "root": [
            # a tensor named at the start of a line, indented or not (before whitespace)
            (rf"^([ \t]*)({name})([ \t]*)(=)(?!=)",
             bygroups(Whitespace, Name.Variable, Whitespace, Operator)),
            (r"[ \t\f\r]+", Whitespace),
            (r"\n", Whitespace),
            (t["COMMENT"], Comment.Single),
            (t["STRING"], _string),
            # sizes and the kernel notation before numbers, floats before integers; an input
            # size with an open height or width (`?x?x3`) first, as the grammar tries it
            (t["OPEN_SHAPE"], KERNEL),
            (t["FLOAT"], Number.Float),
            (t["SHAPE"], KERNEL),
            (t["INT"], Number.Integer),
            (rf"\b(block)(\s+)({name})", bygroups(Keyword, Whitespace, Name.Function)),
            (rf"\b(network)(\s+)({name})", bygroups(Keyword, Whitespace, Name.Class)),
            (rf"({name})([ \t]*)(=)(?!=)", bygroups(Name.Attribute, Whitespace, Operator)),
            (vocab("keywords"), Keyword),
            (vocab("operators"), Operator.Word),
            (vocab("kinds"), Keyword.Type),
            (vocab("activations"), Name.Builtin),
            (vocab("booleans"), Keyword.Constant),
            (vocab("constants"), Name.Constant),
            (rf"{name}(?=[ \t]*\()", Name.Function),
            (name, Name),
            (r"->", Operator),
            (r"==|!=|<=|>=|//|[-+*/%<>=|]", Operator),
            (r"[()\[\]{},;]", Punctuation),
        ]
    }


class CnnLexer(RegexLexer):
    """Highlights cnndsl's ``.cnn`` architecture specs."""

    name = "cnndsl"
    aliases = ["cnn", "cnndsl"]
    filenames = ["*.cnn"]
    mimetypes = ["text/x-cnndsl"]

    tokens = _tokens()
