"""Front end: .cnn text -> syntax tree (:mod:`cnndsl.syntax`), with positions.

The grammar lives in ``cnndsl/grammars/cnn.lark`` (also reachable as ``grammars/`` at the top
of the repository) and is loaded relative to this module.  Lark analyses it; parsing runs Lark's
LALR parse table in a loop of our own (:class:`_LALR`), which shapes each rule's children as
Lark's tree builder would, fed by a lexer of our own that matches the grammar's terminals
exactly as Lark's basic lexer does and applies the grammar's newline and ``input`` rules in the
same pass; an inline transformer builds syntax nodes as rules are reduced.  Each call lexes and
parses its text afresh; only the analysed grammar is cached (see :func:`_cache_file`).
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
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken
from lark.grammar import Rule
from lark.lexer import BasicLexer, Lexer, LexerThread, UnlessCallback
from lark.parsers.lalr_analysis import Reduce, Shift
from lark.parsers.lalr_interactive_parser import InteractiveParser
from lark.parsers.lalr_parser_state import ParseConf, ParserState

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
    """Methods building the syntax tree, one per rule name or alias, run inline by the LALR
    parser as it reduces (no parse tree is built).  A rule's location spans its children: the
    first token or syntax node to the last one.  (A Lark Transformer, so that Lark's own
    parser, which the tests compare with ours, can run it too.)"""

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


@lru_cache(maxsize=1)
def _grammar() -> str:
    return GRAMMAR_PATH.read_text(encoding="utf-8")


def _ending(tokens):
    """The tokens, then the end of the text ($END, placed on the last token as Lark does)."""
    token = None
    for token in tokens:
        yield token
    yield Token.new_borrow_pos("$END", "", token) if token else Token("$END", "", 0, 1, 1)


class _LALR:
    """Lark's LALR(1) parser, rewritten as one loop (:meth:`run`) over Lark's own parse table.

    Lark's loop (lark.parsers.lalr_parser) feeds the tokens one by one to a method, and for
    each reduction calls a chain of wrappers (lark.parse_tree_builder) that shape the rule's
    children before the transformer sees them: tokens the grammar filters out (``"("``) are
    dropped, the children of ``_rules`` are spliced into their parent, the ``None`` of an
    absent ``[optional]`` is inserted, and a ``?rule`` with one child is that child.  Here that
    shaping is decided once per rule, from Lark's rule objects, and compiled into one small
    function per rule; the tokens, reductions, results and errors are Lark's.
    """

    def __init__(self, lark_parser: Lark, transformer: _ToSyntax) -> None:
        self._lark_parser = lark_parser.parser.parser.parser  # the _Parser of its LALR_Parser
        # Lark would pass a token through a callback named after its type: there is none
        assert not any(isinstance(key, str) for key in self._lark_parser.callbacks)
        table = self._lark_parser.parse_table
        self._table = table
        self._start = table.start_states["start"]
        self._end = table.end_states["start"]

        states = table.states  # state -> {symbol: (Shift, state) or (Reduce, rule)}
        gotos: dict[str, dict] = {}  # nonterminal -> {state: where it goes on the nonterminal}
        builds = {}  # rule -> its _reducer
        for state, actions in states.items():
            for symbol, (action, arg) in actions.items():
                if action is Shift and not symbol.isupper():
                    gotos.setdefault(symbol, {})[state] = arg
                elif action is Reduce and arg not in builds:
                    builds[arg] = _reducer(arg, transformer)
        # Lark's callbacks for the same values, for the parser state that errors carry
        # (an InteractiveParser resumes the parse with them)
        callbacks = {rule: build or _only_child for rule, build in builds.items()}
        self._conf = ParseConf(table, callbacks, "start")

        # (state, lookahead) -> the nonterminal of the rule reduced there, for the rules
        # whose value is their one symbol's
        passes = {
            (state, symbol): arg.origin.name
            for state, actions in states.items()
            for symbol, (action, arg) in actions.items()
            if action is Reduce and builds[arg] is None
        }

        def settle(below, state, lookahead):
            """The state reached from ``state`` (on top of ``below``) once the lookahead has
            reduced there every rule whose value is its one symbol's: each only changes
            the top state, to a goto from ``below``."""
            while (state, lookahead) in passes:
                state = gotos[passes[state, lookahead]][below]
            return state

        # The reductions, as (size, goto, build): how many symbols the rule pops; the state
        # each state goes to on its nonterminal; the function that makes its value from the
        # stack of values, None where its value is its one symbol's (``?expr: or_expr``):
        # then its goto goes on through all such reductions the same lookahead calls for
        # next (about half of all reductions: ``expr`` over ``or_expr`` over ... ``number``).
        self._reductions: list[tuple[int, dict, object]] = []
        index: dict = {}  # a rule, or (nonterminal, lookahead) -> its place in self._reductions

        def reduction(rule: Rule, lookahead: str) -> int:
            build = builds[rule]
            key = rule if build is not None else (rule.origin.name, lookahead)
            if key not in index:
                goto = gotos[rule.origin.name]
                if build is None:
                    goto = {below: settle(below, top, lookahead) for below, top in goto.items()}
                index[key] = len(self._reductions)
                self._reductions.append((len(rule.expansion), goto, build))
            return index[key]

        # Each state's actions: a shift is the state shifted to (>= 0), a reduction ~ its
        # index in self._reductions (< 0).  (Lark's table keeps the gotos on nonterminals
        # there too, as shifts: harmless, since no token is named like a rule.)
        self._actions = {
            state: {
                symbol: arg if action is Shift else ~reduction(arg, symbol)
                for symbol, (action, arg) in actions.items()
            }
            for state, actions in states.items()
        }

    def run(self, lexer: _Lexer, text: str):
        """What ``Lark.parse(text)`` returns or raises, the start rule's value."""
        lexer_thread = LexerThread.from_text(lexer, text)
        parser_state = ParserState(self._conf, lexer_thread, [self._start])
        try:
            return self._run(lexer_thread.lex(parser_state), parser_state)
        except UnexpectedInput as e:  # as Lark's parser does it
            e.interactive_parser = InteractiveParser(self._lark_parser, parser_state, lexer_thread)
            raise

    def _run(self, tokens, parser_state: ParserState):
        # The stacks are the parser state's lists, so that an error holds the state it met.
        states = parser_state.state_stack
        values = parser_state.value_stack
        actions = self._actions
        reductions = self._reductions
        end_state = self._end
        state = states[-1]
        for token in _ending(tokens):
            kind = token.type
            while True:  # reduce as long as the token calls for it, then shift it
                try:
                    action = actions[state][kind]
                except KeyError:
                    raise self._unexpected(token, parser_state) from None
                if action >= 0:  # (the end of the text is never shifted)
                    states.append(action)
                    values.append(token)
                    state = action
                    break
                size, goto, build = reductions[~action]
                if build is None:  # one symbol, whose value is the rule's: only the state changes
                    state = states[-1] = goto[states[-2]]
                    continue
                value = build(values)
                if size:
                    del states[-size:]
                    del values[-size:]
                state = goto[states[-1]]
                states.append(state)
                values.append(value)
                if state == end_state and kind == "$END":  # the start rule is complete
                    return value
        raise AssertionError("the parse table ends every text with the start rule")

    def _unexpected(self, token: Token, parser_state: ParserState) -> UnexpectedToken:
        """The error Lark's parser raises for a token its state has no action for."""
        expected = {s for s in self._table.states[parser_state.position] if s.isupper()}
        return UnexpectedToken(token, expected, state=parser_state, interactive_parser=None)


_only_child = itemgetter(0)  # as a Lark callback, the value of a rule that None builds


def _reducer(rule: Rule, transformer: _ToSyntax):
    """The function that makes a rule's value from the parser's stack of values (the rule's
    symbols on top), as Lark's callback for the rule does (lark.parse_tree_builder), or None
    where that value is the value of the rule's one symbol.

    The rule's children are its symbols but the tokens the grammar filters out (anonymous
    ones like ``"("`` and ``_NAMES``), with the children of a ``_rule`` in place of its value,
    and a None where an ``[optional]`` part is absent (Lark's ``maybe_placeholders``).  A
    ``_rule``'s value is the list of its children, which its parent splices in; a ``?rule``
    with one child is that child; any other rule's value is what the transformer's method of
    the rule's name (or alias) makes of the children.  The function is compiled from Python
    source written here, one expression per child, e.g. for ``kwarg: NAME "=" expr``::

        def build(v): return f([v[-3], v[-1]])
    """
    options = rule.options
    size = len(rule.expansion)
    # how many Nones go before each symbol, and after the last one (as Lark counts them)
    nones = [0] * (size + 1)
    if options.empty_indices:
        flags = "".join("1" if empty else "0" for empty in options.empty_indices)
        nones = [len(ones) for ones in flags.split("0")]
    children = []  # an expression per child: "v[-2]", "*v[-2]" (spliced) or "None"
    pending = 0
    for i, symbol in enumerate(rule.expansion):
        pending += nones[i]
        if symbol.is_term and symbol.filter_out and not options.keep_all_tokens:
            continue  # its Nones go before the next child kept, as in Lark
        children += ["None"] * pending
        pending = 0
        spliced = not symbol.is_term and symbol.name.startswith("_")
        children.append(f"{'*' if spliced else ''}v[{i - size}]")
    children += ["None"] * (pending + nones[size])

    name = rule.alias or options.template_source or rule.origin.name
    single = options.expand1 and not rule.alias  # a ?rule: with one child, that child
    # (a spliced child would make the number of children known only when parsing)
    assert not (single and any(c.startswith("*") for c in children)), rule
    if rule.origin.name.startswith("_"):  # spliced into its parent: the list of its children
        assert not hasattr(transformer, name), f"the rule {name} is spliced, not transformed"
        if children == ["*v[-1]"] and size == 1:  # `_a: _b`: the same list
            return None
        if children[:1] == ["*v[-%d]" % size]:
            # The first child is spliced: extend its list, which belongs to nobody else, rather
            # than copy it (a left-recursive rule, ``_items: _items item``, grows one list).
            body = f"c = v[-{size}]; c += [{', '.join(children[1:])}]; return c"
        else:
            body = f"return [{', '.join(children)}]"
        method = None
    elif single and len(children) == 1:
        if children == ["v[-1]"] and size == 1:
            return None
        body = f"return {children[0]}"
        method = None
    else:
        method = getattr(transformer, name)
        assert not hasattr(method, "visit_wrapper"), name  # Lark would call it otherwise
        body = f"return f([{', '.join(children)}])"
    namespace = {"f": method}
    exec(f"def build(v): {body}", namespace)
    return namespace["build"]


_PARSER: Lark | None = None
_LEXER: _Lexer | None = None  # the parser's lexer, which Lark makes from the class
_LALR_PARSER: _LALR | None = None
_TRANSFORMER = _ToSyntax()
_LOCK = threading.Lock()  # the parser, lexer and transformer are shared; one file at a time


def _parser() -> _LALR:
    global _PARSER, _LEXER, _LALR_PARSER
    if _LALR_PARSER is None:
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
        _LALR_PARSER = _LALR(_PARSER, _TRANSFORMER)
    return _LALR_PARSER


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
            return parser.run(_LEXER, text)
        except UnexpectedInput as e:
            raise _syntax_error(e, src) from None
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
