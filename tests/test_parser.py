"""The parser: Lark's LALR parser through its public API, with a post-lexer and an inline
transformer (cnndsl.parser).

Pinned here: the post-lexer's rules (which newlines end a statement, `input` as a name, the
nesting and operator limits), the shape of the syntax tree (written as s-expressions, so that
precedence, placeholders and splicing show), the positions the tree carries, the syntax
errors and their hints, that parsing is linear in the text, that the parser uses nothing but
Lark's public API, and that the grammar cache changes nothing.
"""

from __future__ import annotations

import ast
import hashlib
import os
import random
import subprocess
import sys

import lark
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cnndsl
from cnndsl import CnnDslError, fuzz
from cnndsl import parser as P
from cnndsl import syntax as S
from cnndsl.errors import split_lines
from conftest import ROOT, SPEC_FILES
from scaling import assert_linear

LENIENT = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def tokens(text: str) -> list[tuple[str, str]]:
    """The tokens the parser reads (Lark's lexer, then the post-lexer), as (type, text)."""
    return [(t.type, t.value) for t in lexed(text)]


def lexed(text: str) -> list[lark.Token]:
    with P._LOCK:
        P._POSTLEX.src = P._Source("t.cnn", text)
        try:
            return list(P._parser().lex(text))
        finally:
            P._POSTLEX.src = None


def types(text: str) -> str:
    return " ".join(kind for kind, _ in tokens(text))


# ------------------------------------------------------------------------------ post-lexer


@pytest.mark.parametrize(
    "text,expected",
    [
        ("a\nb", "NAME _NL NAME"),
        ("a\n\n  \n# comment\n\nb\n", "NAME _NL NAME _NL"),  # a run of newlines is one end
        ("a; b", "NAME SEMICOLON NAME"),
        ("f(1,\n 2)", "NAME LPAR INT COMMA INT RPAR"),  # inside () ...
        ("[\n1\n]", "LSQB INT RSQB"),  # ... and [] newlines do not end statements
        ("a ->\n b", "NAME _ARROW NAME"),  # after '->'
        ("a\n  -> b", "NAME _ARROW NAME"),  # before '->'
        ("a,\n b", "NAME COMMA NAME"),  # after ','
        ("if x { a }\nelse { b }", "IF NAME LBRACE NAME RBRACE ELSE LBRACE NAME RBRACE"),
        ("{\na\n}", "LBRACE _NL NAME _NL RBRACE"),  # inside {} they do
        ("f(a\n) b\nc", "NAME LPAR NAME RPAR NAME _NL NAME"),  # closed: they do again
        (")\na", "RPAR _NL NAME"),  # a stray closer opens nothing
    ],
)
def test_which_newlines_end_a_statement(text, expected):
    assert types(text) == expected


@pytest.mark.parametrize(
    "text,expected",
    [
        ("input 3x3", "INPUT SHAPE"),
        ("input 10", "INPUT INT"),
        ("input x 3", "INPUT NAME INT"),
        ("input -> relu", "NAME _ARROW NAME"),  # the default input tensor
        ("conv(input)", "NAME LPAR NAME RPAR"),
        ("x = input\ny", "NAME EQUAL NAME _NL NAME"),
        ("input", "NAME"),  # and at the end of the text
        ("x = input", "NAME EQUAL NAME"),
        ("a\ninput", "NAME _NL NAME"),
        ("input\n-> a", "NAME _ARROW NAME"),
    ],
)
def test_input_starts_a_declaration_or_names_the_input(text, expected):
    assert types(text) == expected


def test_tokens_keep_their_positions():
    toks = lexed("input 8x8x3\n\n  conv 3 ->\n    relu # c\nx")
    got = [(t.type, t.line, t.column, t.end_column) for t in toks]
    assert got == [
        ("INPUT", 1, 1, 6), ("SHAPE", 1, 7, 12), ("_NL", 1, 12, 1),
        ("NAME", 3, 3, 7), ("INT", 3, 8, 9), ("_ARROW", 3, 10, 12),
        ("NAME", 4, 5, 9), ("_NL", 4, 13, 1), ("NAME", 5, 1, 2),
    ]
    # `input` turned into a name keeps its place
    (name, _, relu) = lexed("input -> relu")
    assert (name.type, name.line, name.column, name.end_column) == ("NAME", 1, 1, 6)


@pytest.mark.parametrize("opener,closer", [("(", ")"), ("[", "]"), ("{", "}")])
def test_nesting_limit(opener, closer):
    deep = opener * P.MAX_NESTING + closer * P.MAX_NESTING
    tokens(deep)  # at the limit: fine
    too_deep = "x = " + opener * (P.MAX_NESTING + 1) + closer * (P.MAX_NESTING + 1)
    with pytest.raises(CnnDslError) as e:
        tokens(too_deep)
    assert e.value.message == f"brackets and braces nest more than {P.MAX_NESTING} deep here"
    assert e.value.location.column == 5 + P.MAX_NESTING  # the first bracket too many
    # closing brackets make room again
    tokens(("(" * P.MAX_NESTING + ")" * P.MAX_NESTING) * 3)


def test_operator_limit_per_statement():
    def expression(n):
        return "conv " + "+".join(["1"] * (n + 1))

    tokens(expression(P.MAX_OPERATORS))
    with pytest.raises(CnnDslError) as e:
        tokens(expression(P.MAX_OPERATORS + 1))
    assert e.value.message == f"this statement has more than {P.MAX_OPERATORS} operators"
    assert e.value.location.column == len(expression(P.MAX_OPERATORS)) + 1
    half = expression(P.MAX_OPERATORS // 2 + 1)
    tokens(f"{half}\n{half}")  # each statement counts its own
    tokens(f"{half}; {half}")
    with pytest.raises(CnnDslError):  # a newline inside parentheses ends nothing
        tokens(f"f({half},\n{half[5:]})")
    with pytest.raises(CnnDslError):  # every operator counts, not only + and -
        tokens("x = " + " and ".join(["not a < b"] * 86))
    tokens("conv " + "x".join(["1"] * (P.MAX_OPERATORS + 1)))  # and each x of a size
    with pytest.raises(CnnDslError) as e:
        tokens("conv 1 + " + "x".join(["1"] * (P.MAX_OPERATORS + 1)))
    assert e.value.location.column == 10


# ------------------------------------------------------------------------------ tree shapes


def sexp(node) -> str:
    """A syntax node as an s-expression, without its positions."""
    t = type(node)
    if node is None:
        return "_"
    if t is S.Num:
        return repr(node.value)
    if t is S.Name:
        return node.id
    if t is S.Str:
        return f"(str {node.value!r})"
    if t is S.ListExpr:
        return "[" + " ".join(map(sexp, node.items)) + "]"
    if t is S.TupleExpr:
        return "(tuple " + " ".join(map(sexp, node.items)) + ")"
    if t is S.BinOp:
        return f"({node.op} {sexp(node.left)} {sexp(node.right)})"
    if t is S.UnaryOp:
        return f"({node.op} {sexp(node.operand)})"
    if t is S.KwArg:
        return f"{node.name}={sexp(node.value)}"
    if t is S.Call:
        return f"({node.func}() " + " ".join(map(sexp, node.args)) + ")"
    if t is S.Index:
        return f"([] {sexp(node.value)} {sexp(node.index)})"
    if t is S.Unpack:
        return "<" + " ".join(n if isinstance(n, str) else sexp(n) for n in node.targets) + ">"
    if t is S.LayerItem:
        parts = ["layer"]
        if node.kspec is not None:
            k = node.kspec
            parts.append(f"<{k.kernel} {k.stride} {k.padding}>")
        parts.append(node.name)
        if node.call_args is not None:
            parts.append("(call " + " ".join(map(sexp, node.call_args)) + ")")
        parts += map(sexp, node.words)
        return "(" + " ".join(parts) + ")"
    if t is S.Group:
        return f"({node.merge} " + " | ".join(map(sexp, node.branches)) + ")"
    if t is S.Repeat:
        return f"(repeat {sexp(node.count)} {sexp(node.body)})"
    if t is S.ForLoop:
        var = node.var if isinstance(node.var, str) else sexp(node.var)
        return f"(for {var} {sexp(node.iterable)} {sexp(node.body)})"
    if t is S.IfElse:
        return f"(if {sexp(node.cond)} {sexp(node.then)} {sexp(node.orelse)})"
    if t is S.Chain:
        return "(chain " + " ".join(map(sexp, node.items)) + ")"
    if t is S.Assign:
        return f"(= {node.target} {sexp(node.chain)})"
    if t is S.Body:
        return "{" + " ".join(map(sexp, node.stmts)) + "}"
    if t is S.InputDecl:
        return f"(input {node.name or '_'} {node.dims})"
    raise AssertionError(node)


def program(text: str) -> str:
    return " ".join(sexp(stmt) for stmt in P.parse(text).program)


@pytest.mark.parametrize(
    "text,expected",
    [
        ("input 32x32x3", "(input _ (32, 32, 3))"),
        ("input meta 10", "(input meta (10,))"),
        ("3x3+2(S) conv 64 relu", "(chain (layer <(3, 3) 2 same> conv 64 relu))"),
        ("7x7+2(3) conv 64", "(chain (layer <(7, 7) 2 3> conv 64))"),
        ("1x7(V) conv 8", "(chain (layer <(1, 7) None valid> conv 8))"),
        ("conv(64, relu, stride=2)", "(chain (layer conv (call 64 relu stride=2)))"),
        ("conv 2*(f+1) relu k=3", "(chain (layer conv (* 2 (+ f 1)) relu k=3))"),
        ("conv -f 1.5 \"s\" 3x3", "(chain (layer conv (- f) 1.5 (str 's') (tuple 3 3)))"),
        ("a = b -> conv 3 -> relu", "(= a (chain (layer b) (layer conv 3) (layer relu)))"),
        (
            "x = f(1 + 2 * 3 - -4 < 5 and not a or b)",
            "(= x (chain (layer f (call (or (and (< (- (+ 1 (* 2 3)) (- 4)) 5) (not a)) b)))))",
        ),
        ("f(a // b % c / d)", "(chain (layer f (call (/ (% (// a b) c) d))))"),
        ("f([1, 2,], (3,), [], (4, 5))", "(chain (layer f (call [1 2] (tuple 3) [] (tuple 4 5))))"),
        ("f()", "(chain (layer f (call )))"),
        ("concat { a | b -> c\n d }", "(chain (concat {(chain (layer a))} | {(chain (layer b) (layer c)) (chain (layer d))}))"),
        ("repeat 3 { a; b }", "(chain (repeat 3 {(chain (layer a)) (chain (layer b))}))"),
        ("for f in [1, 2] { conv f }", "(chain (for f [1 2] {(chain (layer conv f))}))"),
        (
            "if a { b } else if c { d } else { e }",
            "(chain (if a {(chain (layer b))} {(chain (if c {(chain (layer d))} {(chain (layer e))}))}))",
        ),
        ("if a == 1 { b }", "(chain (if (== a 1) {(chain (layer b))} _))"),
    ],
)
def test_tree_shapes(text, expected):
    assert program(text) == expected


def test_declarations():
    module = P.parse(
        'network n\ninput 8x8x3\nimport "a.cnn"\nfrom "b.cnn" import p, q\n'
        "defaults conv kernel=3 relu\nblock b(f, s=2*f,) { conv f stride=s }\nb(4)\noutput x, y\n",
        "m.cnn",
    )
    assert module.network[0] == "n"
    assert [(i.path, i.names and [n for n, _ in i.names]) for i in module.imports] == [
        ("a.cnn", None), ("b.cnn", ["p", "q"]),
    ]
    (d,) = module.defaults
    assert (d.kind, [sexp(a) for a in d.args]) == ("conv", ["kernel=3", "relu"])
    block = module.blocks["b"]
    assert [(p.name, sexp(p.default)) for p in block.params] == [("f", "_"), ("s", "(* 2 f)")]
    assert (sexp(block.body), block.file) == ("{(chain (layer conv f stride=s))}", "m.cnn")
    assert [n for n, _ in module.outputs] == ["x", "y"]
    assert " ".join(map(sexp, module.program)) == "(input _ (8, 8, 3)) (chain (layer b (call 4)))"
    assert P.parse("block b() { a }").blocks["b"].params == []


def test_positions():
    text = "input 8x8x3\n3x3+1(S) conv 64 relu\nx = f(a,\n  b) -> g\n"
    _, conv, assign = P.parse(text, "p.cnn").program
    (layer,) = conv.items
    assert (layer.loc.line, layer.loc.column, layer.loc.end_column) == (2, 10, 14)
    assert (layer.span.column, layer.span.end_column) == (1, 22)  # the whole item
    assert layer.kspec.loc.end_column == 9
    assert layer.span.source_line == "3x3+1(S) conv 64 relu" and layer.span.file == "p.cnn"
    assert (assign.loc.line, assign.loc.column) == (3, 1)
    f, g = assign.chain.items
    assert (f.span.line, f.span.column, f.span.end_column) == (3, 5, 6)  # spans lines: its name
    assert (g.loc.line, g.loc.column) == (4, 9)
    (_, b) = f.call_args
    assert (b.loc.line, b.loc.column) == (4, 3)


# ------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    "text,where,message,hint",
    [
        ("conv 3 )", (1, 8), "unexpected ')'", None),
        ("conv 3 €", (1, 8), "unexpected character '€'", None),
        ("a\nb\n  f(3", (3, 4), "unexpected end of file: the '(' is never closed", "add the missing ')'"),
        ("a {\n b", (1, 3), "unexpected end of file: the '{' is never closed", "add the missing '}'"),
        ("conv 3 ->", (1, 10), "unexpected end of file; expected", None),
        ("f(1, 2\nrelu", (2, 1), "unexpected name 'relu'", "is a ')' missing? the '(' on line 1 is still open"),
        ("concat { a, b }", (1, 11), "unexpected ','", "branches are separated by '|'"),
        ("concat { a | b } 3x3 conv", (1, 18), "unexpected '3x3'", "the kernel notation goes in front"),
        ("concat { a | b } (3)", (1, 18), "unexpected '('", "a layer's arguments follow its kind"),
        ("repeat 2 { a } = 3", (1, 16), "unexpected '='", "options are written `name=value`"),
        ("block b(x):\n", (1, 11), "unexpected character ':'", "blocks are written"),
        ("import 'x.cnn'", (1, 8), "unexpected character \"'\"", "strings are written in double quotes"),
    ],
)
def test_syntax_errors(text, where, message, hint):
    with pytest.raises(CnnDslError) as e:
        P.parse(text)
    assert (e.value.location.line, e.value.location.column) == where
    assert e.value.message.startswith(message)
    assert e.value.hint == hint if hint is None else e.value.hint.startswith(hint)


BIG = "1" + "0" * 5000  # beyond Python's own limit on converting digits (4,300)


@pytest.mark.parametrize(
    "text,column",
    [
        (f"conv {BIG}", 6),  # an integer
        (f"{BIG}x3(S) conv 4", 1),  # the kernel notation: each of its numbers
        (f"3x{BIG}(S) conv 4", 3),
        (f"3x3+{BIG}(S) conv 4", 5),
        (f"3x3+1({BIG}) conv 4", 7),
        (f"conv 4 kernel=3x{BIG}", 17),  # a size
        (f"input 8x{BIG}x3", 9),  # an input shape
        (f"input {BIG}", 7),
        (f"conv {'9' * (P.MAX_DIGITS + 1)}", 6),  # the limit is the same everywhere
        (f"3x{'9' * (P.MAX_DIGITS + 1)} conv 4", 3),
    ],
)
def test_every_integer_has_the_digit_limit(text, column):
    with pytest.raises(CnnDslError) as e:
        P.parse(text)
    assert e.value.message.endswith("... is too large")
    loc = e.value.location
    assert loc.column == column
    assert text[loc.column - 1 : loc.end_column - 1].isdigit()  # the caret under that number


def test_integers_up_to_the_limit():
    n = "9" * P.MAX_DIGITS
    _, conv = P.parse(f"input 8x8x3\n3x{n}+{n}({n}) conv {n} kernel={n}x1").program
    (layer,) = conv.items
    assert layer.kspec.kernel == (3, int(n)) and layer.kspec.stride == layer.kspec.padding == int(n)
    assert [sexp(w) for w in layer.words] == [n, f"kernel=(tuple {n} 1)"]


def test_the_parser_is_reusable_after_an_error():
    with pytest.raises(CnnDslError):
        P.parse("f((((")
    assert program("f(a)") == "(chain (layer f (call a)))"  # no bracket left open


FRAGMENTS = [
    " ", "\t", "\n", "\r\n", "\r", "\f", "#c", "input", "else", "if", "not", "and", "x", "a_1",
    "3", "3x3", "3x3+2(S)", "1.5", "2e3", '"s"', '"', "\\", ";", ",", "=", "->", "(", ")", "[", "]",
    "{", "}", "|", "+", "-", "*", "//", "<=", "!", "é", "\x00",
]


@LENIENT
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=40).map("".join))
def test_random_texts_parse_or_give_a_located_error(text):
    try:
        P.parse(text)
    except CnnDslError as e:
        loc = e.location
        assert loc is not None and loc.line >= 1 and loc.column >= 1


@LENIENT
@given(st.integers(0, 2**32 - 1))
def test_generated_and_mutated_specs(seed):
    rng = random.Random(seed)
    for text in fuzz.generate(rng, fuzz.zoo_sources()), fuzz.mutate(rng.choice(fuzz.zoo_sources()), rng):
        try:
            P.parse(text)
        except CnnDslError as e:
            assert e.location is not None and e.location.line >= 1


@pytest.mark.parametrize("path", SPEC_FILES, ids=lambda p: p.name)
def test_every_spec_parses(path):
    P.parse(path.read_text(encoding="utf-8"), str(path))


# ------------------------------------------------------------------------------ strings


@pytest.mark.parametrize(
    "literal",
    [
        r'"a\nb"', r'"\t\r\\\"\'"', r'"\a\b\f\v"', r'"\0\01\012\177\377"', r'"\x41\xff"',
        r'"\u00e9\u2028"', r'"\U0001F600"', r'"plain é"', r'""',
    ],
)
def test_string_escapes_are_pythons(literal):
    (stmt,) = P.parse(f"f({literal})").program
    (value,) = stmt.items[0].call_args
    assert value.value == ast.literal_eval(literal)


@pytest.mark.parametrize(
    "literal,column,message",
    [
        (r'"a\qb"', 3, r"'\q' in a string is an unknown escape"),
        (r'"\N{BULLET}"', 2, r"'\N' in a string is an unknown escape"),  # no named characters
        (r'"\x4"', 2, r"'\x4' in a string is not an escape: \x takes 2 hexadecimal digits"),
        (r'"ab\u12"', 4, r"'\u12' in a string is not an escape: \u takes 4 hexadecimal digits"),
        (r'"\ud800"', 2, r"'\ud800' in a string is a surrogate, not a character"),
        (r'"\U00110000"', 2, r"'\U00110000' in a string is beyond the last Unicode character"),
    ],
)
def test_bad_escapes_are_located_errors(literal, column, message):
    """(``column``: where the escape starts in the literal, its quote being column 1)"""
    for text in f"conv 4 name={literal}", f"import {literal}":
        with pytest.raises(CnnDslError) as e:
            P.parse(text)
        start = text.index(literal)
        assert e.value.message == message
        loc = e.value.location
        assert loc.column == start + column
        assert text[loc.column - 1 : loc.end_column - 1] == message.split("'")[1]


@LENIENT
@given(st.text(max_size=30))
def test_strings_written_back_read_the_same(value):
    """A string value as a call's signature writes it (values.written) is a literal that
    reads back as the same string."""
    from cnndsl.elaborate.values import written

    if any(0xD800 <= ord(c) <= 0xDFFF for c in value):
        return  # not text: a spec cannot hold it
    (stmt,) = P.parse(f"f({written(value)})").program
    assert stmt.items[0].call_args[0].value == value


# ------------------------------------------------------------------------------ lines

ODD = ["\f", "\v", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]
"""Characters str.splitlines() breaks lines at, and a spec does not."""
ENDS = ["\n", "\r\n", "\r"]


def test_what_a_line_is():
    assert split_lines("a\nb\r\nc\rd") == ["a", "b", "c", "d"]
    assert split_lines("a\r\n") == ["a"] and split_lines("") == [] and split_lines("\n") == [""]
    assert split_lines("a\r\rb") == ["a", "", "b"]  # two lone CRs: an empty line between
    odd = "a" + "".join(ODD) + "b"
    assert split_lines(odd) == [odd] != odd.splitlines()


def test_a_lone_cr_ends_a_statement():
    net = cnndsl.loads("input 8x8x3\r3x3 conv 4\r\rrelu\r")
    assert [(layer.name, layer.position.line) for layer in net.layers] == [
        ("input", 1), ("conv_1", 2), ("relu_1", 4),
    ]


@LENIENT
@given(
    st.lists(
        st.tuples(st.sampled_from(["relu", "\frelu", ""]), st.sampled_from(ODD), st.sampled_from(ENDS)),
        max_size=12,
    ),
    st.sampled_from(["conv 3 )", "7x7 conv 4"]),  # a syntax error; a shape error (analysis)
)
def test_excerpts_show_the_line_of_the_error(lines, bad):
    """Whatever characters the lines hold, the error names the line the text has there by the
    one definition (split_lines), and its excerpt shows that line."""
    text = "input 4x4x3\n"
    for code, odd, end in lines:  # the odd characters in comments, where they are allowed
        text += f"{code} # {odd} {odd}{end}"
    text += bad
    with pytest.raises(CnnDslError) as e:
        cnndsl.loads(text, "t.cnn")
    loc = e.value.location
    expected = split_lines(text)
    assert loc.line == len(expected) and loc.source_line == expected[-1] == bad
    assert f"{loc.line:>5} | {bad}\n" in str(e.value)


def test_a_vertical_tab_is_no_line_end_and_no_blank():
    with pytest.raises(CnnDslError) as e:
        P.parse("input 8x8x3\nconv 4 \v relu\nrelu")
    loc = e.value.location
    assert e.value.message == "unexpected character '\\x0b'" and (loc.line, loc.column) == (2, 8)


@LENIENT
@given(st.text(st.sampled_from("aé\u0301日本😀\uff21\u20dd\t"), max_size=12))
def test_the_caret_stands_under_the_error_whatever_comes_before(prefix):
    """A terminal shows wide characters (CJK, emoji, full-width forms) in two cells and
    combining marks in none: the caret is placed by cells, not by characters (it stood four
    cells left of `bogus` after `"日本語😀"`)."""
    import unicodedata

    def cells(text):
        return sum(0 if unicodedata.combining(c) or unicodedata.category(c) == "Me"
                   else 2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)

    text = f'input 8x8x3\nblock b(s) {{ relu }}\nb("{prefix}") -> 3x3 conv 4 bogus=1\n'
    with pytest.raises(CnnDslError) as e:
        cnndsl.loads(text, "t.cnn")
    shown, caret = str(e.value).splitlines()[1:3]
    assert caret.endswith("^" * len("bogus=1"))
    line = shown.split(" | ", 1)[1]
    before = line[: line.index("bogus=1")]
    assert cells(caret.split("| ", 1)[1].split("^")[0]) == cells(before)


# ------------------------------------------------------------------------------ the front end


def test_only_larks_public_api():
    """parser.py imports from the top of the `lark` package only, names Lark exports."""
    tree = ast.parse((ROOT / "cnndsl" / "parser.py").read_text(encoding="utf-8"))
    public = getattr(lark, "__all__", None) or [n for n in vars(lark) if not n.startswith("_")]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("lark"):
            assert node.module == "lark"
            assert {a.name for a in node.names} <= set(public)
        if isinstance(node, ast.Import):
            assert all(a.name == "lark" or not a.name.startswith("lark") for a in node.names)


def parsing(text: str):
    """The work of parsing ``text``, for tests/scaling.py (a syntax error is a parse too)."""

    def work():
        try:
            P.parse(text)
        except CnnDslError:
            pass

    return work


SHAPES = {  # text of about n tokens, in the shapes that stress a parser most
    "statements": lambda n: "input 32x32x3\n" + "3x3(S) conv 8 relu -> bn -> relu\n" * (n // 9),
    "one list": lambda n: "x = f([" + "1, " * (n // 2) + "])",
    "else if": lambda n: "if a { b }" + " else if a { b }" * (n // 6),
}


@pytest.mark.parametrize("shape", SHAPES)
def test_parsing_is_linear(shape):
    """100,000 tokens take about 10x what 10,000 take (at most 31.6x, tests/scaling.py's rule;
    quadratic is 100x); 50,000 and 5,000 for the other shapes, to save time."""
    make = SHAPES[shape]
    n = 100_000 if shape == "statements" else 50_000
    small, large = make(n // 10), make(n)
    assert len(lexed(large)) >= 0.99 * n
    assert_linear(parsing(small), parsing(large), 10)


@pytest.mark.parametrize(
    "make",
    [
        lambda n: "conv " + "1" * n,  # one token of every kind, as long as a file may be
        lambda n: 'conv name="' + "a" * n + '"',
        lambda n: 'conv name="' + 'a\\"' * (n // 3),  # never closed
        lambda n: "# " + "a" * n + "\nrelu",
        lambda n: "relu" + "\n" * n + "relu",
        lambda n: "relu" + " " * n + "relu",
    ],
)
def test_long_tokens_are_linear(make):
    assert_linear(parsing(make(1_000_000)), parsing(make(10_000_000)), 10)


def test_the_number_of_tokens_is_bounded(monkeypatch):
    monkeypatch.setattr(P, "MAX_TOKENS", 100)
    P.parse("relu\n" * 50)  # 100 tokens
    with pytest.raises(CnnDslError) as e:
        P.parse("relu\n" * 50 + "relu")
    assert e.value.message == "the spec holds more than 100 tokens"
    assert (e.value.location.line, e.value.location.column) == (51, 1)
    with pytest.raises(CnnDslError):  # separators count too
        P.parse("relu" + ";" * 100)


DIGEST = """
import hashlib, sys
from cnndsl.parser import parse
text = open(sys.argv[1], encoding="utf-8").read()
print(hashlib.sha256(repr(parse(text, sys.argv[1])).encode()).hexdigest())
"""


def test_same_parse_with_and_without_the_grammar_cache(tmp_path):
    spec = str(ROOT / "specs" / "resnet152_torchvision.cnn")
    expected = hashlib.sha256(repr(P.parse(open(spec).read(), spec)).encode()).hexdigest()
    no_cache = tmp_path / "a-file"  # a cache home that is a file: no cache at all
    no_cache.write_text("")
    digests = []
    for cache_home in (tmp_path, tmp_path, no_cache):  # built and saved, loaded, built
        env = {**os.environ, "XDG_CACHE_HOME": str(cache_home), "PYTHONPATH": str(ROOT)}
        command = [sys.executable, "-c", DIGEST, spec]
        run = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
        digests.append(run.stdout.strip())
    assert list((tmp_path / "cnndsl").glob("grammar-*.pickle"))
    assert digests == [expected] * 3
