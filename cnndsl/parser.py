"""Front end: .cnn text -> syntax tree (:mod:`cnndsl.syntax`), with positions.

The grammar lives in ``cnndsl/grammars/cnn.lark`` (also reachable as ``grammars/`` at the top
of the repository) and is loaded relative to this module.  Parsing uses Lark's LALR parser with
its basic lexer and an inline transformer that builds syntax nodes as rules are reduced.
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
from lark import Lark, Token, Transformer
from lark.exceptions import (
    UnexpectedCharacters,
    UnexpectedEOF,
    UnexpectedInput,
    UnexpectedToken,
    VisitError,
)

from . import syntax as S
from .errors import CnnDslError, Location

__all__ = ["parse", "GRAMMAR_PATH"]

GRAMMAR_PATH = Path(__file__).with_name("grammars") / "cnn.lark"

_KSPEC = re.compile(r"(\d+)x(\d+)(?:\+(\d+))?(?:\(([A-Za-z0-9]+)\))?$")


class _Source:
    """A file's text, split into lines once, that turns positions into Locations."""

    def __init__(self, file: str, text: str) -> None:
        self.file = file
        self.text = text
        self.lines = text.splitlines()

    def loc(self, line: int, column: int, end_line: int | None = None, end_column: int | None = None):
        src = self.lines[line - 1] if 0 < line <= len(self.lines) else ""
        end = end_column if end_line in (None, line) else len(src) + 1
        return Location(self.file, line, column, end, src)

    def at_token(self, tok: Token) -> Location:
        return self.loc(tok.line, tok.column, tok.end_line, tok.end_column)


MAX_NESTING = 32
"""How deep (), [] and {} may nest."""
MAX_OPERATORS = 256
"""How many operators one statement may hold."""

_OPEN = {"LPAR": "RPAR", "LSQB": "RSQB", "LBRACE": "RBRACE"}
_CLOSE = set(_OPEN.values())
_OPERATORS = {"PLUS", "MINUS", "MUL_OP", "CMP_OP", "AND", "OR", "NOT"}


class _PostLex:
    """Newlines end statements, except inside () and [], after ',' and around '->'.

    Also: the keyword ``input`` that does not start an input declaration (``input -> ...``,
    ``concat(input)``) is the name of the default input tensor; and nesting and expression
    length are bounded, so that no spec can exhaust the parser's or the elaborator's stack.
    """

    always_accept = ()

    def __init__(self) -> None:
        self.src: _Source | None = None
        self.open: list[Token] = []

    def process(self, stream):
        """One pass over the tokens (this runs for every token: kept to a single loop)."""
        at = self.src.at_token
        self.open = opened = []  # the brackets not closed yet, for "missing '}'" messages
        operators = 0
        parens = 0  # depth of () and [] only: newlines inside them are not statement ends
        pending = None  # a newline, held until we know whether a '->' or 'else' follows
        prev_type = None
        for tok in self._lookahead_input(stream):
            kind = tok.type
            if kind == "_NL":
                if parens > 0 or prev_type in ("_ARROW", "COMMA"):
                    continue
                if pending is None:
                    pending = tok
                operators = 0
                continue
            if pending is not None:
                if kind not in ("_ARROW", "ELSE"):
                    yield pending
                pending = None
            if kind in _OPEN:
                opened.append(tok)
                if len(opened) > MAX_NESTING:
                    raise CnnDslError(
                        f"brackets and braces nest more than {MAX_NESTING} deep here", at(tok)
                    )
                if kind != "LBRACE":
                    parens += 1
            elif kind in _CLOSE:
                if opened and _OPEN[opened[-1].type] == kind:
                    opened.pop()
                if kind != "RBRACE" and parens > 0:
                    parens -= 1
            elif kind in _OPERATORS:
                operators += 1
                if operators > MAX_OPERATORS:
                    raise CnnDslError(
                        f"this statement has more than {MAX_OPERATORS} operators", at(tok)
                    )
            elif kind == "SEMICOLON":
                operators = 0
            yield tok
            prev_type = kind
        if pending is not None:
            yield pending

    @staticmethod
    def _lookahead_input(stream):
        """``input`` not followed by a name or a shape is the default input tensor's name."""
        held = None
        for tok in stream:
            if held is not None:
                if tok.type not in ("NAME", "SHAPE", "INT"):
                    held = Token.new_borrow_pos("NAME", held.value, held)
                yield held
                held = None
            if tok.type == "INPUT":
                held = tok
                continue
            yield tok
        if held is not None:
            yield held


class _ToSyntax(Transformer):
    """Lark callbacks building the syntax tree, run inline by the LALR parser as it reduces
    (no parse tree is built).  A rule's location spans its children: the first token or
    syntax node to the last one."""

    def __init__(self) -> None:
        super().__init__()
        self.src: _Source | None = None

    # -- helpers
    def _tok(self, tok: Token) -> Location:
        return self.src.at_token(tok)

    def _edge(self, child, last: bool) -> Location | None:
        if isinstance(child, Token):
            return self._tok(child)
        if isinstance(child, list):
            items = [c for c in child if c is not None]
            return self._edge(items[-1 if last else 0], last) if items else None
        if child is None:
            return None
        if isinstance(child, S.LayerItem):
            return child.span
        return getattr(child, "loc", None)

    def _span(self, children) -> Location:
        start = end = None
        for child in children:
            start = self._edge(child, False)
            if start is not None:
                break
        for child in reversed(children):
            end = self._edge(child, True)
            if end is not None:
                break
        if start is None:
            return self.src.loc(1, 1)
        if end is not None and end.line == start.line and end.end_column:
            return Location(start.file, start.line, start.column, end.end_column, start.source_line)
        return start

    # -- expressions
    def number(self, children):
        (tok,) = children
        if tok.type == "INT" and len(tok) > 30:
            raise CnnDslError(f"the number {tok[:12]}... is too large", self._tok(tok))
        value = int(tok) if tok.type == "INT" else float(tok)
        if not math.isfinite(value):
            raise CnnDslError(f"the number {tok} is too large", self._tok(tok))
        return S.Num(value, self._tok(tok))

    def name(self, children):
        (tok,) = children
        return S.Name(str(tok), self._tok(tok))

    def string(self, children):
        (tok,) = children
        raw = str(tok)[1:-1]
        value = re.sub(r"\\(.)", r"\1", raw)
        return S.Str(value, self._tok(tok))

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
        return S.TupleExpr([S.Num(int(p), loc) for p in text.split("x")], loc)

    def list(self, children):
        return S.ListExpr([c for c in children if c is not None], self._span(children))

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
        return S.LayerItem(
            str(name_tok), kspec, call_args, words, self._tok(name_tok), self._span(children)
        )

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
        kh, kw, stride, pad = m.groups()
        padding: str | int | None
        if pad is None:
            padding = None
        elif pad.lower() in ("s", "same"):
            padding = "same"
        elif pad.lower() in ("v", "valid"):
            padding = "valid"
        elif pad.isdigit():
            padding = int(pad)
        else:
            raise CnnDslError(
                f"unknown padding '({pad})' in '{text}'",
                loc,
                hint="use (S) for SAME, (V) for VALID, or a number of pixels such as (3)",
            )
        return S.KernelSpec(
            (int(kh), int(kw)), int(stride) if stride else None, padding, text, loc
        )

    def group(self, children):
        name, *bodies = children
        return S.Group(str(name), bodies, self._tok(name))

    def repeat(self, children):
        count, body = children
        return S.Repeat(count, body, self._span(children))

    def for_loop(self, children):
        var, iterable, body = children
        return S.ForLoop(str(var), iterable, body, self._span(children))

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
        if not re.fullmatch(r"\d+(x\d+)*", str(dims)):
            raise CnnDslError(
                f"an input shape is H x W x C, such as 224x224x3, not '{dims}'", self._tok(dims)
            )
        return S.InputDecl(
            self._name(name[0], "tensor") if name else None,
            tuple(int(d) for d in str(dims).split("x")),
            self._span(children),
        )

    def output_decl(self, children):
        return ("output", [(str(n), self._tok(n)) for n in children], self._span(children))

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
        return S.Import(str(path)[1:-1], None, self._span(children))

    def import_from(self, children):
        path, *names = children
        return S.Import(str(path)[1:-1], [(str(n), self._tok(n)) for n in names], self._span(children))

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
                mod.outputs = child[1]
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
                child.module = mod
                mod.blocks[child.name] = child
            elif isinstance(child, S.Import):
                mod.imports.append(child)
            else:
                mod.program.append(child)
        return mod


@lru_cache(maxsize=1)
def _grammar() -> str:
    return GRAMMAR_PATH.read_text(encoding="utf-8")


_PARSER: Lark | None = None
_TRANSFORMER = _ToSyntax()
_POSTLEX = _PostLex()
_LOCK = threading.Lock()  # the parser and its transformer are shared; parse one file at a time


def _parser() -> Lark:
    global _PARSER
    if _PARSER is None:
        _PARSER = Lark(
            _grammar(),
            parser="lalr",
            lexer="basic",
            postlex=_POSTLEX,
            maybe_placeholders=True,
            transformer=_TRANSFORMER,
            cache=_cache_file(),
        )
    return _PARSER


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
    digest = hashlib.sha256(_grammar().encode()).hexdigest()[:16]
    return os.path.join(folder, f"grammar-{lark.__version__}-{digest}.pickle")


def parse(text: str, file: str = "<string>") -> S.Module:
    """Parse .cnn source text into a :class:`cnndsl.syntax.Module`.

    Raises :class:`CnnDslError` with the position of the first syntax error.
    """
    src = _Source(file, text)
    if not text.strip():
        raise CnnDslError(
            "the spec is empty", Location(file, 1, 1, None, ""),
            hint="a spec needs at least an `input` line and one layer",
        )
    with _LOCK:
        _TRANSFORMER.src = _POSTLEX.src = src
        try:
            return _parser().parse(text)
        except UnexpectedInput as e:
            raise _syntax_error(e, src) from None
        except VisitError as e:  # an error raised inside a callback
            if isinstance(e.orig_exc, CnnDslError):
                raise e.orig_exc from None
            raise
        finally:
            _TRANSFORMER.src = _POSTLEX.src = None


# ------------------------------------------------------------------------- syntax errors

_TOKEN_WORDS = {
    "NAME": "a name",
    "INT": "an integer",
    "FLOAT": "a number",
    "SHAPE": "a size such as 3x3 or 224x224x3",
    "STRING": 'a string in "quotes"',
    "_NL": "a new line",
    "$END": "the end of the file",
    "_ARROW": "'->'",
}


def _describe_terminal(name: str) -> str:
    if name in _TOKEN_WORDS:
        return _TOKEN_WORDS[name]
    try:
        term = _PARSER.get_terminal(name) if _PARSER else None
    except KeyError:
        term = None
    if term is not None and term.pattern.type == "str":
        return f"'{term.pattern.value}'"
    return name.lower()


def _describe_token(tok: Token) -> str:
    if tok.type == "$END":
        return "the end of the file"
    if tok.type == "_NL":
        return "the end of the line"
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
    if isinstance(e, UnexpectedCharacters):
        ch = src.text[e.pos_in_stream] if e.pos_in_stream < len(src.text) else ""
        hint = None
        if ch in "'`":
            hint = 'strings are written in double quotes: "file.cnn"'
        elif ch == ":":
            hint = "blocks are written `block name(params) { ... }`"
        return CnnDslError(
            f"unexpected character {ch!r}", src.loc(e.line, e.column), hint=hint
        )
    if isinstance(e, UnexpectedEOF) or (
        isinstance(e, UnexpectedToken) and e.token.type == "$END"
    ):
        line = len(src.lines) or 1
        col = len(src.lines[-1]) + 1 if src.lines else 1
        unclosed = _POSTLEX.open[-1] if _POSTLEX.open else None
        if unclosed is not None:
            closer = {"LBRACE": "}", "LPAR": ")", "LSQB": "]"}[unclosed.type]
            return CnnDslError(
                f"unexpected end of file: the '{unclosed}' is never closed",
                src.at_token(unclosed),
                hint=f"add the missing '{closer}'",
            )
        return CnnDslError(
            "unexpected end of file" + _expected(e.expected), src.loc(line, col)
        )
    assert isinstance(e, UnexpectedToken)
    tok = e.token
    loc = src.at_token(tok) if tok.type != "_NL" else src.loc(tok.line, tok.column)
    return CnnDslError(
        f"unexpected {_describe_token(tok)}" + _expected(e.expected), loc, hint=_hint(tok, e.expected)
    )


def _hint(tok: Token, expected) -> str | None:
    """Advice for the syntax mistakes people make most."""
    if "RPAR" in expected and _POSTLEX.open and _POSTLEX.open[-1].type == "LPAR":
        return f"is a ')' missing? the '(' on line {_POSTLEX.open[-1].line} is still open"
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
