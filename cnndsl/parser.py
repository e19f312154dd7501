"""Front end: .cnn text -> syntax tree (:mod:`cnndsl.syntax`), with positions.

The grammar lives in ``cnndsl/grammars/cnn.lark`` (also reachable as ``grammars/`` at the top
of the repository) and is loaded relative to this module.  Parsing is Lark's LALR parser with
its basic lexer, through Lark's public API: a post-lexer (:class:`_PostLex`, the kind of
``lark.indenter.Indenter``) applies the grammar's newline and ``input`` rules and its limits to
the token stream, and an inline transformer (:class:`_ToSyntax`) builds syntax nodes as rules
are reduced, so no parse tree is built.  Only the analysed grammar is kept between runs, by
Lark's ``cache`` option (see :func:`_cache_file`).
"""

from __future__ import annotations

import hashlib
import keyword
import math
import os
import re
import threading
from functools import lru_cache
from pathlib import Path

import lark
from lark import (
    Lark,
    Token,
    Transformer,
    UnexpectedCharacters,
    UnexpectedEOF,
    UnexpectedInput,
    UnexpectedToken,
)

from . import syntax as S
from .errors import CnnDslError, Location, normalize_newlines, split_lines

__all__ = ["parse", "GRAMMAR_PATH", "MAX_NESTING", "MAX_OPERATORS", "MAX_DIGITS", "MAX_TOKENS"]

GRAMMAR_PATH = Path(__file__).with_name("grammars") / "cnn.lark"

MAX_NESTING = 32
"""How deep (), [] and {} may nest."""
MAX_OPERATORS = 256
"""How many operators one statement may hold."""
MAX_DIGITS = 30
"""How many digits an integer of a spec may have."""
MAX_TOKENS = 1_000_000
"""How many tokens (names, numbers, symbols, line ends) one file may hold: parsing takes some
microseconds and some hundred bytes a token, so this bounds it to seconds and megabytes."""

_ESCAPE = re.compile(r"\\([0-7]{1,3}|x[0-9A-Fa-f]{0,2}|u[0-9A-Fa-f]{0,4}|U[0-9A-Fa-f]{0,8}|.)")
_ESCAPES = {
    "n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'",
    "a": "\a", "b": "\b", "f": "\f", "v": "\v",
}
_HEX_DIGITS = {"x": 2, "u": 4, "U": 8}
ESCAPES = "\\n \\t \\r \\\\ \\\" \\' \\a \\b \\f \\v \\0 to \\377, \\xHH, \\uHHHH, \\UHHHHHHHH"
"""The escapes a string may hold: Python's, but for named characters (``\\N{...}``)."""

_KSPEC = re.compile(r"(\d+)x(\d+)(?:\+(\d+))?(?:\(([A-Za-z0-9]+|\d+ *, *\d+)\))?$")


class _Source:
    """A file's text, split into lines once, that turns positions into Locations."""

    def __init__(self, file: str, text: str) -> None:
        self.file = file
        self.text = text
        self.lines = split_lines(text)

    def line(self, line: int) -> str:
        return self.lines[line - 1] if 0 < line <= len(self.lines) else ""

    def loc(self, line: int, column: int, end_column: int | None = None) -> Location:
        return Location(self.file, line, column, end_column, self.line(line))

    def at_token(self, tok: Token) -> Location:
        return self.loc(tok.line, tok.column, tok.end_column)


# ------------------------------------------------------------------------------ post-lexer

_OPENERS = {"LPAR": "RPAR", "LSQB": "RSQB", "LBRACE": "RBRACE"}
_CLOSERS = frozenset(_OPENERS.values())
_OPERATORS = frozenset(["PLUS", "MINUS", "MUL_OP", "CMP_OP", "AND", "OR", "NOT"])


class _PostLex:
    """The token rewriting the grammar needs, between Lark's lexer and its parser (Lark's
    ``postlex`` option: an object with ``process(tokens)`` and ``always_accept``):

    * newlines end statements, except inside () and [], after ',' and around '->' (and
      before ``else``), and a run of them is one separator;
    * the keyword ``input`` that does not start an input declaration (``input -> ...``,
      ``concat(input)``) is the name of the default input tensor;
    * nesting and expression length (operators, and the ``x`` of sizes) are bounded, so that
      no spec can exhaust the parser's or the elaborator's stack, and so is the number of
      tokens.

    ``open`` lists the brackets not closed yet, which the syntax errors name.
    """

    always_accept = ()

    def __init__(self) -> None:
        self.src: _Source | None = None
        self.open: list[Token] = []

    def process(self, stream):
        self.open = []
        return self._rewrite(stream)

    def _rewrite(self, stream):
        opened = self.open
        operators = 0
        parens = 0  # depth of () and [] only: newlines inside them are not statement ends
        pending = None  # a newline, held until we know whether a '->' or 'else' follows
        held = None  # an `input`, held until we know whether a name or a shape follows
        prev = None  # the type of the last token passed on
        for count, tok in enumerate(stream, 1):
            if count > MAX_TOKENS:
                raise CnnDslError(
                    f"the spec holds more than {MAX_TOKENS:,} tokens", self.src.at_token(tok),
                    hint="use blocks, `repeat` and `for` rather than writing every layer out",
                )
            kind = tok.type
            if held is not None:
                # `input` followed by anything but a name or a shape names the default input
                if kind not in ("NAME", "SHAPE", "INT", "OPEN_SHAPE"):
                    held = Token.new_borrow_pos("NAME", held.value, held)
                if pending is not None:
                    yield pending
                    pending = None
                yield held
                prev = held.type
                held = None
            if kind == "_NL":
                if parens == 0 and prev not in ("_ARROW", "COMMA"):
                    pending = pending or tok
                    operators = 0
                continue
            if kind == "INPUT":
                held = tok
                continue
            if pending is not None:
                if kind not in ("_ARROW", "ELSE"):
                    yield pending
                pending = None
            if kind in _OPENERS:
                opened.append(tok)
                if len(opened) > MAX_NESTING:
                    raise CnnDslError(
                        f"brackets and braces nest more than {MAX_NESTING} deep here",
                        self.src.at_token(tok),
                    )
                if kind != "LBRACE":
                    parens += 1
            elif kind in _CLOSERS:
                if opened and _OPENERS[opened[-1].type] == kind:
                    opened.pop()
                if kind != "RBRACE" and parens > 0:
                    parens -= 1
            elif kind in _OPERATORS or kind in ("SHAPE", "OPEN_SHAPE"):
                operators += tok.count("x") if "SHAPE" in kind else 1  # `3x3`: one operator
                if operators > MAX_OPERATORS:
                    raise CnnDslError(
                        f"this statement has more than {MAX_OPERATORS} operators",
                        self.src.at_token(tok),
                    )
            elif kind == "SEMICOLON":
                operators = 0
            yield tok
            prev = kind
        if held is not None:  # the text ends on `input`: a name, as `x = input`
            if pending is not None:
                yield pending
            yield Token.new_borrow_pos("NAME", held.value, held)
        elif pending is not None:
            yield pending


# ----------------------------------------------------------------------------- transformer


def _edge(child, i: int) -> Token | Location | None:
    """The token, or the location of the node, that a rule's child starts with (i=0) or ends
    with (i=-1); None for a child without a position."""
    if isinstance(child, Token):
        return child
    if isinstance(child, list):  # its first (last) item that is not None
        for item in child if i == 0 else reversed(child):
            if item is not None:
                return _edge(item, i)
        return None
    if isinstance(child, S.LayerItem):
        return child.span
    return getattr(child, "loc", None)


def _names(target: S.Unpack) -> list[str]:
    """The names a loop target binds, in order."""
    return [n for t in target.targets for n in ([t] if isinstance(t, str) else _names(t))]


class _ToSyntax(Transformer):
    """Methods building the syntax tree, one per rule name or alias, which Lark's LALR parser
    calls as it reduces (no parse tree is built).  A rule's location spans its children: the
    first token or syntax node to the last one."""

    def __init__(self) -> None:
        super().__init__()
        self.src: _Source | None = None

    # -- helpers
    def _tok(self, tok: Token) -> Location:
        return self.src.at_token(tok)

    def _span(self, children) -> Location:
        """From the first child with a position to the last one when both are on one line,
        else the first one's location."""
        first = last = None
        for child in children:
            first = _edge(child, 0)
            if first is not None:
                break
        else:
            return self.src.loc(1, 1)
        for child in reversed(children):
            last = _edge(child, -1)
            if last is not None:
                break
        if isinstance(first, Token):
            first = self._tok(first)
        if last is not None and last.line == first.line and last.end_column:
            if last is first:
                return first
            return Location(first.file, first.line, first.column, last.end_column, first.source_line)
        return first

    def _int(self, digits: str, tok: Token, offset: int = 0) -> int:
        """The integer written ``digits`` at ``offset`` characters into ``tok``: every integer
        of a spec is read here, so none can exceed the digit limit (or Python's own)."""
        if len(digits) > MAX_DIGITS:
            column = tok.column + offset
            loc = self.src.loc(tok.line, column, column + len(digits))
            raise CnnDslError(f"the number {digits[:12]}... is too large", loc)
        return int(digits)

    def _ints(self, tok: Token, start: int, text: str) -> list[int]:
        """The integers of ``text`` (the ``x``-separated part of ``tok`` at ``start``)."""
        values = []
        for m in re.finditer(r"\d+", text):
            values.append(self._int(m.group(), tok, start + m.start()))
        return values

    # -- expressions
    def number(self, children):
        (tok,) = children
        if tok.type == "INT":
            return S.Num(self._int(str(tok), tok), self._tok(tok))
        value = float(tok)
        if not math.isfinite(value):
            raise CnnDslError(f"the number {tok} is too large", self._tok(tok))
        return S.Num(value, self._tok(tok))

    def name(self, children):
        (tok,) = children
        return S.Name(str(tok), self._tok(tok))

    def string(self, children):
        (tok,) = children
        return S.Str(self._string(tok), self._tok(tok))

    def _string(self, tok: Token) -> str:
        """The text of a STRING token, its escapes read as Python reads them."""

        def escape(m: re.Match) -> str:
            code = m.group(1)
            if code in _ESCAPES:
                return _ESCAPES[code]
            if code[0] in "01234567":
                return chr(int(code, 8))
            what = "an unknown escape"
            if code[0] in _HEX_DIGITS:
                if len(code) - 1 < _HEX_DIGITS[code[0]]:
                    what = f"not an escape: \\{code[0]} takes {_HEX_DIGITS[code[0]]} hexadecimal digits"
                elif int(code[1:], 16) > 0x10FFFF:
                    what = "beyond the last Unicode character"
                elif 0xD800 <= int(code[1:], 16) <= 0xDFFF:
                    what = "a surrogate, not a character"
                else:
                    return chr(int(code[1:], 16))
            column = tok.column + 1 + m.start()
            raise CnnDslError(
                f"'{m.group()}' in a string is {what}",
                self.src.loc(tok.line, column, column + len(m.group())),
                hint=f"the escapes are Python's: {ESCAPES}; a backslash is written \\\\",
            )

        return _ESCAPE.sub(escape, str(tok)[1:-1])

    def shape(self, children):
        (tok,) = children
        loc = self._tok(tok)
        text = str(tok)
        if not re.fullmatch(r"\d+(x\d+)+", text):
            raise CnnDslError(
                f"'{text}' is not a size here: write sizes like 3x3 (stride and padding go in"
                " front of a layer kind, as in `3x3+2(S) conv 64`)",
                loc,
            )
        return S.TupleExpr([S.Num(n, loc) for n in self._ints(tok, 0, text)], loc)

    def function_call(self, children):
        name, *args = children
        args = [a for a in args if a is not None and not isinstance(a, Token)]  # not the ')'
        return S.Call(str(name), args, self._span(children), self._tok(name))

    def index(self, children):
        value, index, _ = children
        return S.Index(value, index, self._span(children))

    def list(self, children):  # (the brackets are kept, so that `[]` has a place too)
        items = [c for c in children if c is not None and not isinstance(c, Token)]
        return S.ListExpr(items, self._span(children))

    def tuple(self, children):
        return S.TupleExpr([c for c in children if c is not None], self._span(children))

    def binop(self, children):
        left, op, right = children
        return S.BinOp(str(op), left, right, self._span(children))

    compare = binop

    def or_op(self, children):
        return S.BinOp("or", children[0], children[1], self._span(children))

    def and_op(self, children):
        return S.BinOp("and", children[0], children[1], self._span(children))

    def neg(self, children):
        return S.UnaryOp("-", children[-1], self._span(children))

    def not_op(self, children):
        return S.UnaryOp("not", children[-1], self._span(children))

    def kwarg(self, children):
        name, value = children
        return S.KwArg(str(name), value, self._span(children))

    def arg(self, children):
        return children[0]

    def call_args(self, children):
        # the closing parenthesis is kept (as RPAR) so that the layer's span ends on it
        return [c for c in children if c is not None]

    # -- items and statements
    def layer(self, children):
        kspec = None
        call_args = None
        words = []
        name_tok = None
        for child in children:
            if isinstance(child, Token):
                if child.type == "SHAPE":
                    kspec = self._kspec(child)
                else:
                    name_tok = child
            elif isinstance(child, list):
                call_args = [c for c in child if not isinstance(c, Token)]
            elif child is not None:
                words.append(child)
        loc = self._tok(name_tok)
        span = loc if len(children) == 1 else self._span(children)  # a bare name spans itself
        return S.LayerItem(str(name_tok), kspec, call_args, words, loc, span)

    def _kspec(self, tok: Token) -> S.KernelSpec:
        loc = self._tok(tok)
        text = str(tok)
        m = _KSPEC.match(text)
        if m is None:
            if re.match(r"\d+x\d+x\d+", text):
                raise CnnDslError(
                    f"the kernel notation takes two sizes (KHxKW), got '{text}'",
                    loc,
                    hint="write e.g. `3x3+1(S) conv 64`",
                )
            raise CnnDslError(f"cannot read the kernel notation '{text}'", loc)
        kh, kw, stride, pad = (
            None if part is None else self._int(part, tok, m.start(i)) if part.isdigit() else part
            for i, part in enumerate(m.groups(), 1)
        )
        padding: str | int | tuple[int, int] | None
        if pad is None or isinstance(pad, int):
            padding = pad
        elif "," in pad:  # `1x7(0,3)`: rows and columns, as Inception-v3 writes its 1x7 convolutions
            ph, pw = self._ints(tok, m.start(4), pad)
            padding = (ph, pw)
        elif pad.lower() in ("s", "same"):
            padding = "same"
        elif pad.lower() in ("v", "valid"):
            padding = "valid"
        else:
            raise CnnDslError(
                f"unknown padding '({pad})' in '{text}'",
                loc,
                hint="use (S) for SAME, (V) for VALID, or pixels such as (3) or (0,3)",
            )
        return S.KernelSpec((kh, kw), stride, padding, text, loc)

    def group(self, children):
        name, *bodies = children
        return S.Group(str(name), bodies, self._tok(name))

    def repeat(self, children):
        count, body = children
        return S.Repeat(count, body, self._span(children))

    def targets(self, children):
        """`k, c` or `(k, (c, s))`: names that each item of a loop unpacks into."""
        targets = [c for c in children if c is not None]
        unpack = S.Unpack([str(t) if isinstance(t, Token) else t for t in targets], self._span(targets))
        seen: set[str] = set()
        for target in targets:
            names = [(str(target), self._tok(target))] if isinstance(target, Token) else [
                (name, target.loc) for name in _names(target)
            ]
            for name, loc in names:
                if name in seen:
                    raise CnnDslError(f"'{name}' is named twice in this loop's target", loc)
                seen.add(name)
        return unpack

    def for_loop(self, children):
        var, iterable, body = children
        var = var if isinstance(var, S.Unpack) else str(var)
        return S.ForLoop(var, iterable, body, self._span(children))

    def if_else(self, children):
        cond, then, *rest = children
        orelse = rest[0] if rest else None
        if isinstance(orelse, S.IfElse):
            orelse = S.Body([S.Chain([orelse], orelse.loc)], orelse.loc)
        return S.IfElse(cond, then, orelse, self._span(children))

    def chain(self, children):
        return S.Chain(children, self._span(children))

    def _name(self, tok: Token, what: str) -> str:
        """A name that may reach generated Python: never a Python keyword."""
        if keyword.iskeyword(tok):
            raise CnnDslError(
                f"'{tok}' is a Python keyword and cannot name a {what}", self._tok(tok),
                hint=f"try '{tok}_'",
            )
        return str(tok)

    def assign(self, children):
        name, chain = children
        return S.Assign(self._name(name, "tensor"), chain, self._tok(name))

    def body(self, children):
        return S.Body(children, self._span(children))

    # -- declarations
    def network_decl(self, children):
        (name,) = children
        return ("network", self._name(name, "network"), self._tok(name))

    def input_decl(self, children):
        _, *name, dims = children
        if dims.type == "OPEN_SHAPE":
            sizes = self._open_sizes(dims)
        elif re.fullmatch(r"\d+(x\d+)*", str(dims)):
            sizes = tuple(self._ints(dims, 0, str(dims)))
        else:
            raise CnnDslError(
                f"an input shape is H x W x C, such as 224x224x3, not '{dims}'", self._tok(dims)
            )
        return S.InputDecl(
            self._name(name[0], "tensor") if name else None, sizes, self._span(children)
        )

    def _open_sizes(self, tok: Token) -> tuple[int | None, ...]:
        """``?x?x3`` -> (None, None, 3): only a map's height and width may be open."""
        parts = str(tok).split("x")
        if len(parts) != 3:
            raise CnnDslError(
                "only the height and width of an image input can be open: `input ?x?x3`"
                + (", not a vector's length" if len(parts) == 1 else f", not '{tok}'"),
                self._tok(tok),
                hint="a vector input has a fixed length: `input meta 10`" if len(parts) == 1
                else "an image input is H x W x C",
            )
        if parts[2] == "?":
            column = tok.column + len(tok) - 1
            raise CnnDslError(
                "an input's channels cannot be open: the layers' weights depend on them",
                self.src.loc(tok.line, column, column + 1),
                hint=f"write their number: `input {parts[0]}x{parts[1]}x3`",
            )
        sizes, offset = [], 0
        for part in parts:
            sizes.append(None if part == "?" else self._int(part, tok, offset))
            offset += len(part) + 1
        return tuple(sizes)

    def output_decl(self, children):
        names = [(str(n), self._tok(n), training) for n, training, _ in children]
        return ("output", names, self._span([children[0][0], children[-1][2]]))

    def output_name(self, children):
        """``logits`` -> (its token, False, its token); ``aux (training)`` -> (its token,
        True, the closing parenthesis)."""
        name, *mark = children
        if mark and str(mark[0]) != "training":
            raise CnnDslError(
                f"an output can be marked `(training)` only, not `({mark[0]})`",
                self._tok(mark[0]),
                hint="`output logits, aux (training)`: aux is computed and returned only in"
                " training",
            )
        return (name, bool(mark), children[-1])

    def defaults_decl(self, children):
        kind, *args = children
        return S.DefaultsDecl(str(kind), args, self._span(children), self._tok(kind))

    def param(self, children):
        name, *default = children
        return S.Param(self._name(name, "parameter"), default[0] if default else None, self._tok(name))

    def block_def(self, children):
        name, *params, body = children
        return S.BlockDef(
            self._name(name, "block"), [p for p in params if p is not None], body, self._tok(name)
        )

    def import_all(self, children):
        (path,) = children
        return S.Import(self._string(path), None, self._span(children))

    def import_from(self, children):
        path, *names = children
        return S.Import(self._string(path), [(str(n), self._tok(n)) for n in names], self._span(children))

    def start(self, children):
        mod = S.Module(self.src.file, self.src.text)
        for child in children:
            if isinstance(child, tuple) and child[0] == "network":
                if mod.network is not None:
                    raise CnnDslError("the network is named twice", child[2])
                mod.network = (child[1], child[2])
            elif isinstance(child, tuple) and child[0] == "output":
                if mod.outputs is not None:
                    raise CnnDslError(
                        "`output` is declared twice; list every output in one declaration",
                        child[2],
                    )
                mod.outputs = [(name, loc) for name, loc, _ in child[1]]
                mod.training_outputs = [name for name, _, training in child[1] if training]
                mod.output_loc = child[2]
            elif isinstance(child, S.InputDecl):
                mod.inputs.append(child)
                mod.program.append(child)
            elif isinstance(child, S.DefaultsDecl):
                mod.defaults.append(child)
            elif isinstance(child, S.BlockDef):
                if child.name in mod.blocks:
                    first = mod.blocks[child.name].loc
                    raise CnnDslError(
                        f"block '{child.name}' is defined twice",
                        child.loc,
                        notes=[("first defined", first)],
                    )
                child.file = mod.file
                mod.blocks[child.name] = child
            elif isinstance(child, S.Import):
                mod.imports.append(child)
            else:
                mod.program.append(child)
        return mod


# ---------------------------------------------------------------------------------- parser

_POSTLEX = _PostLex()
_TRANSFORMER = _ToSyntax()
_LOCK = threading.Lock()  # the post-lexer and the transformer hold the file being parsed


@lru_cache(maxsize=1)
def _grammar() -> str:
    return GRAMMAR_PATH.read_text(encoding="utf-8")


_OPTIONS = dict(parser="lalr", lexer="basic", maybe_placeholders=True)
"""Lark's options (besides the post-lexer, the transformer and the cache)."""


@lru_cache(maxsize=1)
def _parser() -> Lark:
    return Lark(
        _grammar(), postlex=_POSTLEX, transformer=_TRANSFORMER, cache=_cache_file(), **_OPTIONS
    )


def _cache_file() -> str | bool:
    """Where Lark keeps the analysed grammar between runs (it takes 70 ms to build, 5 ms to
    load): a private directory of the user's cache, never a shared temporary directory, since
    the cache is a pickle.  Without one, no cache."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    folder = os.path.join(base, "cnndsl")
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        if os.stat(folder).st_uid != os.getuid() or not os.access(folder, os.W_OK):
            return False
    except (OSError, AttributeError):  # read-only home, or no getuid (Windows)
        return False
    # Lark rebuilds a cache made with other options: name them, so that each setup keeps its own
    key = repr(sorted(_OPTIONS.items())) + _grammar()
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return os.path.join(folder, f"grammar-{lark.__version__}-{digest}.pickle")


def parse(text: str, file: str = "<string>") -> S.Module:
    """Parse .cnn source text into a :class:`cnndsl.syntax.Module`.

    A line ends at ``\\n``, ``\\r\\n`` or a lone ``\\r`` (:func:`cnndsl.errors.split_lines`): the
    module keeps the text with every line end written ``\\n``, so that its line numbers, its
    excerpts and Lark's, which counts ``\\n``, agree.  Raises :class:`CnnDslError` with the
    position of the first syntax error.
    """
    text = normalize_newlines(text)
    src = _Source(file, text)
    if not text.strip():
        raise CnnDslError(
            "the spec is empty", Location(file, 1, 1, None, ""),
            hint="a spec needs at least an `input` line and one layer",
        )
    with _LOCK:
        parser = _parser()
        _TRANSFORMER.src = _POSTLEX.src = src
        try:
            return parser.parse(text)
        except UnexpectedInput as e:
            raise _syntax_error(e, src) from None
        finally:
            _TRANSFORMER.src = _POSTLEX.src = None


# ------------------------------------------------------------------------- syntax errors

_TOKEN_WORDS = {
    "NAME": "a name",
    "INT": "an integer",
    "FLOAT": "a number",
    "SHAPE": "a size such as 3x3 or 224x224x3",
    "OPEN_SHAPE": "an input size with an open height and width, such as ?x?x3",
    "STRING": 'a string in "quotes"',
    "_NL": "a new line",
    "$END": "the end of the file",
    "_ARROW": "'->'",
}


def _describe_terminal(name: str) -> str:
    if name in _TOKEN_WORDS:
        return _TOKEN_WORDS[name]
    try:
        term = _parser().get_terminal(name)
    except KeyError:
        term = None
    if term is not None and term.pattern.type == "str":
        return f"'{term.pattern.value}'"
    return name.lower()


def _describe_token(tok: Token) -> str:
    """What a token is, after 'unexpected'."""
    if tok.type == "$END":
        return "end of file"
    if tok.type == "_NL":
        return "end of line"
    if tok.type == "NAME":
        return f"name '{tok}'"
    return f"'{tok}'"


def _expected(names) -> str:
    words = sorted({_describe_terminal(n) for n in names if not n.startswith("__")})
    if not words:
        return ""
    if len(words) > 6:
        words = words[:6] + ["..."]
    return "; expected " + (words[0] if len(words) == 1 else "one of: " + ", ".join(words))


def _syntax_error(e: UnexpectedInput, src: _Source) -> CnnDslError:
    opened = _POSTLEX.open
    if isinstance(e, UnexpectedCharacters):
        ch = src.text[e.pos_in_stream] if e.pos_in_stream < len(src.text) else ""
        hint = None
        if ch in "'`":
            hint = 'strings are written in double quotes: "file.cnn"'
        elif ch == ":":
            hint = "blocks are written `block name(params) { ... }`"
        return CnnDslError(f"unexpected character {ch!r}", src.loc(e.line, e.column), hint=hint)
    expected = _acceptable(e)
    if isinstance(e, UnexpectedEOF) or (
        isinstance(e, UnexpectedToken) and e.token.type == "$END"
    ):
        if opened:
            unclosed = opened[-1]
            closer = {"LBRACE": "}", "LPAR": ")", "LSQB": "]"}[unclosed.type]
            return CnnDslError(
                f"unexpected end of file: the '{unclosed}' is never closed",
                src.at_token(unclosed),
                hint=f"add the missing '{closer}'",
            )
        line = len(src.lines) or 1
        col = len(src.lines[-1]) + 1 if src.lines else 1
        return CnnDslError("unexpected end of file" + _expected(expected), src.loc(line, col))
    assert isinstance(e, UnexpectedToken)
    tok = e.token
    loc = src.at_token(tok) if tok.type != "_NL" else src.loc(tok.line, tok.column)
    if tok.type == "OPEN_SHAPE":
        return CnnDslError(
            f"'{tok}': a `?` leaves an input's height or width open, and stands nowhere else", loc,
            hint="`input ?x?x3` declares an input of any height and width",
        )
    if tok.type == "LPAR" and _KERNEL_BEFORE.search(src.line(tok.line)[: tok.column - 1]):
        # `1x7(0,3,1) conv`, `1x7(0,3.5)`: the kernel notation's token stopped before a padding
        # it does not take, and the '(' looked like the start of something else
        return CnnDslError(
            "the kernel notation's padding is (S), (V), (p) or (ph,pw): whole pixels", loc,
            hint="write other paddings as an option:"
            " `conv 8 kernel=(1, 7) padding=((0, 0), (3, 1))` ((top, bottom), (left, right))",
        )
    return CnnDslError(
        f"unexpected {_describe_token(tok)}" + _expected(expected),
        loc,
        hint=_hint(tok, expected, opened),
    )


def _acceptable(e: UnexpectedToken) -> set[str]:
    """The tokens the parser would have taken where it met the unexpected one: the parse
    table's state at the error lists every token of the states it merges (LALR), some of
    which the rest of the parse refuses; the interactive parser tries each."""
    parser = getattr(e, "interactive_parser", None)
    return (parser.accepts() if parser is not None else None) or e.expected


# A kernel notation (`1x7`, `3x3+2`) standing right before a '(' the notation did not take.
_KERNEL_BEFORE = re.compile(r"(?<![\w.])[0-9]+(x[0-9]+)+(\+[0-9]+)?$")


def _hint(tok: Token, expected, opened: list[Token]) -> str | None:
    """Advice for the syntax mistakes people make most."""
    if opened and opened[-1].start_pos == tok.start_pos:
        opened = opened[:-1]  # the unexpected token is a '(' itself: not the one left open
    if "RPAR" in expected and opened and opened[-1].type == "LPAR":
        return f"is a ')' missing? the '(' on line {opened[-1].line} is still open"
    if tok.type == "COMMA" and "VBAR" in expected:
        return "branches are separated by '|': `concat { a | b }`"
    if tok.value == ":" or (tok.type == "LBRACE" and "RPAR" in expected):
        return "blocks are written `block name(params) { ... }`"
    if tok.type == "EQUAL" and "NAME" not in expected:
        return "options are written `name=value` after the layer kind: `conv 64 stride=2`"
    if tok.type == "SHAPE" and "_ARROW" in expected:
        return "the kernel notation goes in front of the layer kind: `3x3+1(S) conv 64`"
    if tok.type == "LPAR" and "_ARROW" in expected:
        return "a layer's arguments follow its kind: `conv(64, kernel=3)` or `conv 64 kernel=3`"
    return None
