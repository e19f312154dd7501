"""Front end: .cnn text -> syntax tree (:mod:`cnndsl.syntax`), with positions.

The grammar lives in ``cnndsl/grammars/cnn.lark`` (also reachable as ``grammars/`` at the top
of the repository) and is loaded relative to this module.  Parsing uses Lark's LALR parser, fed
by a lexer of our own that matches the grammar's terminals exactly as Lark's basic lexer does and
applies the grammar's newline and ``input`` rules in the same pass, and an inline transformer
that builds syntax nodes as rules are reduced.  Each call lexes and parses its text afresh; only
the analysed grammar is cached (see :func:`_cache_file`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import keyword
import math
import os
import re
import threading
from functools import lru_cache
from operator import itemgetter
from pathlib import Path

import lark
from lark import Lark, Token, Transformer
from lark.common import LexerConf
from lark.exceptions import (
    UnexpectedCharacters,
    UnexpectedEOF,
    UnexpectedInput,
    UnexpectedToken,
    VisitError,
)
from lark.grammar import Rule
from lark.lexer import BasicLexer, Lexer, UnlessCallback
from lark.parse_tree_builder import ExpandSingleChild

from . import syntax as S
from .errors import CnnDslError, Location

__all__ = ["parse", "GRAMMAR_PATH"]

GRAMMAR_PATH = Path(__file__).with_name("grammars") / "cnn.lark"

_KSPEC = re.compile(r"(\d+)x(\d+)(?:\+(\d+))?(?:\(([A-Za-z0-9]+)\))?$")


# Location(...) is a frozen dataclass: its __init__ sets each field through object.__setattr__.
# The parser makes a Location for most tokens and rules, so it sets the slots directly.
assert [f.name for f in dataclasses.fields(Location)] == [
    "file", "line", "column", "end_column", "source_line"
]
_new_location = Location.__new__
_set_file = Location.file.__set__
_set_line = Location.line.__set__
_set_column = Location.column.__set__
_set_end_column = Location.end_column.__set__
_set_source_line = Location.source_line.__set__


def _location(
    file: str, line: int, column: int, end_column: int | None, source_line: str
) -> Location:
    """``Location(file, line, column, end_column, source_line)`` in half the time."""
    loc = _new_location(Location)
    _set_file(loc, file)
    _set_line(loc, line)
    _set_column(loc, column)
    _set_end_column(loc, end_column)
    _set_source_line(loc, source_line)
    return loc


class _Source:
    """A file's text, split into lines once, that turns positions into Locations."""

    def __init__(self, file: str, text: str) -> None:
        self.file = file
        self.text = text
        self.lines = text.splitlines()

    def line(self, line: int) -> str:
        return self.lines[line - 1] if 0 < line <= len(self.lines) else ""

    def loc(self, line: int, column: int, end_line: int | None = None, end_column: int | None = None):
        src = self.line(line)
        end = end_column if end_line in (None, line) else len(src) + 1
        return _location(self.file, line, column, end, src)

    def at_token(self, tok: Token) -> Location:
        """loc(tok.line, tok.column, tok.end_line, tok.end_column), for the parser's hot path."""
        line = tok.line
        src = self.lines[line - 1] if 0 < line <= len(self.lines) else ""
        end = tok.end_column if tok.end_line in (None, line) else len(src) + 1
        return _location(self.file, line, tok.column, end, src)


MAX_NESTING = 32
"""How deep (), [] and {} may nest."""
MAX_OPERATORS = 256
"""How many operators one statement may hold."""

# what the lexer does with a token besides passing it on, by token type
_INPUT, _NEWLINE, _OPENER, _CLOSER, _OPERATOR, _SEMICOLON = range(6)
_ROLES = {
    "INPUT": _INPUT,
    "_NL": _NEWLINE,
    **dict.fromkeys(["LPAR", "LSQB", "LBRACE"], _OPENER),
    **dict.fromkeys(["RPAR", "RSQB", "RBRACE"], _CLOSER),
    **dict.fromkeys(["PLUS", "MINUS", "MUL_OP", "CMP_OP", "AND", "OR", "NOT"], _OPERATOR),
    "SEMICOLON": _SEMICOLON,
}
_CLOSER_OF = {"LPAR": "RPAR", "LSQB": "RSQB", "LBRACE": "RBRACE"}

_new_str = str.__new__


class _Lexer(Lexer):
    """Lark's basic lexer and the token rewriting the grammar needs, in one loop.

    The tokens are the ones Lark's basic lexer makes: the text is matched against one regular
    expression with a group per terminal, in the order Lark's lexer tries them, and a NAME that
    spells a keyword (``block``, ``input``...) takes the keyword's type, as Lark does it.  Then:

    * newlines end statements, except inside () and [], after ',' and around '->';
    * the keyword ``input`` that does not start an input declaration (``input -> ...``,
      ``concat(input)``) is the name of the default input tensor;
    * nesting and expression length are bounded, so that no spec can exhaust the parser's or
      the elaborator's stack.

    Tokens are made as the parser asks for them, so an error comes from the lexer or from the
    parser according to which of them meets it first in the text.
    """

    __future_interface__ = 2  # lex() takes Lark's lexer state and parser state

    def __init__(self, conf: LexerConf) -> None:
        basic = BasicLexer(conf)  # Lark's: it checks the terminals and sorts them
        scanner = basic.scanner  # the terminals once keywords are set apart
        # the expression Lark's scanner matches with: an alternation takes its first
        # alternative that matches, so the order of the terminals decides, as in Lark
        self._regex = conf.re_module.compile(
            "|".join(f"(?P<{t.name}>{t.pattern.to_regexp()})" for t in scanner.terminals),
            conf.g_regex_flags,
        )
        # terminal -> {its text: keyword}: Lark looks a keyword up once it has matched a NAME
        self._keywords: dict[str, dict[str, str]] = {}
        for kind, callback in basic.callback.items():
            assert isinstance(callback, UnlessCallback), callback
            words = callback.scanner.terminals
            assert all(w.pattern.type == "str" and not w.pattern.flags for w in words), words
            self._keywords[kind] = {w.pattern.value: w.name for w in words}
        self._ignore = basic.ignore_types
        self._multiline = basic.newline_types  # the terminals that may span lines
        self._allowed = scanner.allowed_types - basic.ignore_types  # for UnexpectedCharacters
        self._terminals_by_name = basic.terminals_by_name
        self.src: _Source | None = None
        self.open: list[Token] = []

    def lex(self, lexer_state, parser_state):
        """The tokens of the text, one by one (this runs for every token: kept to one loop)."""
        text = lexer_state.text.text  # parse() gives Lark whole texts, never slices
        keywords = self._keywords
        ignore = self._ignore
        multiline = self._multiline
        blanks = ignore - multiline  # ignored, and no line to count: skipped at once
        roles = _ROLES
        self.open = opened = []  # the brackets not closed yet, for "missing '}'" messages
        line, line_start = 1, 0  # the current line, and where it starts in the text
        pos = 0  # where the next token must start
        operators = 0
        parens = 0  # depth of () and [] only: newlines inside them are not statement ends
        pending = None  # a newline, held until we know whether a '->' or 'else' follows
        held = None  # an `input`, held until we know whether a name or a shape follows
        prev = None  # the type of the last token passed on
        for m in self._regex.finditer(text):
            start, end = m.span()
            if start != pos:  # nothing matches at pos: finditer searched further
                break
            pos = end
            kind = m.lastgroup
            if kind in blanks:
                continue
            value = m.group()
            first_line, column = line, start - line_start + 1
            if kind in multiline and "\n" in value:
                line += value.count("\n")
                line_start = start + value.rindex("\n") + 1
            if kind in ignore:
                continue
            if kind in keywords:
                kind = keywords[kind].get(value, kind)
            tok = _new_str(Token, value)  # what Token(...) does, without its argument checks
            tok.type = kind
            tok.value = value
            tok.start_pos = start
            tok.line = first_line
            tok.column = column
            tok.end_line = line
            tok.end_column = end - line_start + 1
            tok.end_pos = end

            if held is not None:
                # `input` followed by anything but a name or a shape names the default input
                if kind not in ("NAME", "SHAPE", "INT"):
                    held.type = "NAME"
                if pending is not None:
                    yield pending
                    pending = None
                yield held
                prev = held.type
                held = None
            role = roles.get(kind)
            if role == _NEWLINE:
                if parens > 0 or prev in ("_ARROW", "COMMA"):
                    continue
                if pending is None:
                    pending = tok
                operators = 0
                continue
            if role == _INPUT:
                held = tok
                continue
            if pending is not None:
                if kind not in ("_ARROW", "ELSE"):
                    yield pending
                pending = None
            if role is not None:
                if role == _OPENER:
                    opened.append(tok)
                    if len(opened) > MAX_NESTING:
                        raise CnnDslError(
                            f"brackets and braces nest more than {MAX_NESTING} deep here",
                            self.src.at_token(tok),
                        )
                    if kind != "LBRACE":
                        parens += 1
                elif role == _CLOSER:
                    if opened and _CLOSER_OF[opened[-1].type] == kind:
                        opened.pop()
                    if kind != "RBRACE" and parens > 0:
                        parens -= 1
                elif role == _OPERATOR:
                    operators += 1
                    if operators > MAX_OPERATORS:
                        raise CnnDslError(
                            f"this statement has more than {MAX_OPERATORS} operators",
                            self.src.at_token(tok),
                        )
                else:  # a semicolon
                    operators = 0
            yield tok
            prev = kind
        if pos < len(text):
            raise UnexpectedCharacters(
                text, pos, line, pos - line_start + 1, allowed=self._allowed,
                state=parser_state, terminals_by_name=self._terminals_by_name,
            )
        if pending is not None:
            yield pending
        if held is not None:
            yield held


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

    def _span(self, children) -> Location:
        """From the first child with a position to the last one when both are on one line,
        else the first one's location.  (A hot path: tokens, the commonest children, are
        taken as they are, and become a Location only if one is the span.)"""
        for child in children:
            if child is not None:
                first = child if isinstance(child, Token) else _edge(child, 0)
                if first is not None:
                    break
        else:
            return self.src.loc(1, 1)
        last = None
        for child in reversed(children):
            if child is not None:
                last = child if isinstance(child, Token) else _edge(child, -1)
                if last is not None:
                    break
        if last is first and type(first) is Location:
            return first  # a node alone: its location (a Location cannot change)
        src = self.src
        if last is not None and last.line == first.line:
            end = last.end_column
            if type(last) is Token and last.end_line not in (None, last.line):
                end = len(src.line(last.line)) + 1  # as at_token(last) ends
            if end:
                if type(first) is Location:
                    return _location(first.file, first.line, first.column, end, first.source_line)
                return _location(src.file, first.line, first.column, end, src.line(first.line))
        return first if type(first) is Location else src.at_token(first)

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
_LEXER: _Lexer | None = None  # the parser's lexer, which Lark makes from the class
_TRANSFORMER = _ToSyntax()
_LOCK = threading.Lock()  # the parser, lexer and transformer are shared; one file at a time


def _parser() -> Lark:
    global _PARSER, _LEXER
    if _PARSER is None:
        _PARSER = Lark(
            _grammar(),
            parser="lalr",
            lexer=_Lexer,
            maybe_placeholders=True,
            transformer=_TRANSFORMER,
            cache=_cache_file(),
        )
        _LEXER = _PARSER.parser.lexer
        assert isinstance(_LEXER, _Lexer)
        _streamline_callbacks(_PARSER)
    return _PARSER


class _Rule(Rule):
    """A grammar rule that is equal only to itself, with object's hash and equality (in C)."""

    __slots__ = ()
    __hash__ = object.__hash__
    __eq__ = object.__eq__
    __ne__ = object.__ne__


def _streamline_callbacks(parser: Lark) -> None:
    """Two shortcuts in what Lark's LALR loop does for each reduction (620 of them for
    ResNet-152), the same results sooner:

    * it looks the rule's callback up in a dict keyed by rules, and asserts that the rule is not
      the end state, which calls Rule.__hash__ and Rule.__eq__, Python methods that compare
      rules by content.  The parse table holds the very rules that key the dict, one object per
      rule, so identity is equality here: the rules become _Rule, and the dict (which Lark's
      parser shares) is filled again under their new hashes;
    * a ``?rule`` reduced from a single symbol (``?atom: number``) passes its one child up,
      through Lark's ExpandSingleChild in Python; itemgetter(0) does it in C.
    """
    callbacks = parser._callbacks
    entries = list(callbacks.items())
    callbacks.clear()
    for rule, callback in entries:
        if type(rule) is Rule:
            rule.__class__ = _Rule
        if type(callback) is ExpandSingleChild and len(rule.expansion) == 1:
            callback = itemgetter(0)
        callbacks[rule] = callback


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
        parser = _parser()
        _TRANSFORMER.src = _LEXER.src = src
        try:
            return parser.parse(text)
        except UnexpectedInput as e:
            raise _syntax_error(e, src) from None
        except VisitError as e:  # an error raised inside a callback
            if isinstance(e.orig_exc, CnnDslError):
                raise e.orig_exc from None
            raise
        finally:
            _TRANSFORMER.src = _LEXER.src = None


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
        unclosed = _LEXER.open[-1] if _LEXER.open else None
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
    if "RPAR" in expected and _LEXER.open and _LEXER.open[-1].type == "LPAR":
        return f"is a ')' missing? the '(' on line {_LEXER.open[-1].line} is still open"
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
