"""The parser's front end: its lexer against Lark's, and its grammar cache.

cnndsl's lexer (cnndsl.parser._Lexer) does in one loop what Lark's basic lexer and a post-lexer
did one after the other.  Here the two-stage pipeline is kept as the reference: Lark's basic
lexer on the same grammar, then the grammar's token rewriting written plainly (newlines that do
not end a statement dropped, `input` as a name, the nesting and operator limits).  Both must give
the same tokens with the same positions, the same open brackets at every token (the parser's
"is a ')' missing?" hints read them), and the same error at the same place.

cnndsl's parsing loop (cnndsl.parser._LALR) runs Lark's parse table, and shapes each rule's
children itself rather than through the wrappers Lark builds around the transformer's methods.
Lark's own parser, with those wrappers and the same transformer, is the reference: both must
give the same syntax tree, or the same error with the same parser state.

The parser is the same whether Lark builds the grammar afresh, loads it from the cache, or has
no cache to use.
"""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
import sys
from functools import lru_cache

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lark import Lark, Token
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken
from lark.lexer import LexerState, TextSlice

from cnndsl import CnnDslError, fuzz
from cnndsl import parser as P
from conftest import ROOT, SPEC_FILES

ERROR_FILES = sorted((ROOT / "tests" / "errors").glob("*.cnn"))
OPENERS = {"LPAR": "RPAR", "LSQB": "RSQB", "LBRACE": "RBRACE"}
OPERATORS = {"PLUS", "MINUS", "MUL_OP", "CMP_OP", "AND", "OR", "NOT"}


@lru_cache(maxsize=1)
def lark_basic_lexer() -> Lark:
    return Lark(P._grammar(), parser="lalr", lexer="basic")


def lookahead_input(stream):
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


def rewrite(stream, src, opened):
    operators = parens = 0
    pending = prev = None
    for tok in stream:
        kind = tok.type
        if kind == "_NL":
            if parens > 0 or prev in ("_ARROW", "COMMA"):
                continue
            if pending is None:
                pending = tok
            operators = 0
            continue
        if pending is not None:
            if kind not in ("_ARROW", "ELSE"):
                yield pending
            pending = None
        if kind in OPENERS:
            opened.append(tok)
            if len(opened) > P.MAX_NESTING:
                raise CnnDslError(
                    f"brackets and braces nest more than {P.MAX_NESTING} deep here",
                    src.at_token(tok),
                )
            if kind != "LBRACE":
                parens += 1
        elif kind in OPENERS.values():
            if opened and OPENERS[opened[-1].type] == kind:
                opened.pop()
            if kind != "RBRACE" and parens > 0:
                parens -= 1
        elif kind in OPERATORS:
            operators += 1
            if operators > P.MAX_OPERATORS:
                raise CnnDslError(
                    f"this statement has more than {P.MAX_OPERATORS} operators", src.at_token(tok)
                )
        elif kind == "SEMICOLON":
            operators = 0
        yield tok
        prev = kind
    if pending is not None:
        yield pending


def collect(tokens, opened):
    """Each token with its position and the brackets open when it is handed over; then the
    error that stopped the stream, if any."""
    out = []
    try:
        for tok in tokens:
            where = (tok.line, tok.column, tok.end_line, tok.end_column, tok.start_pos, tok.end_pos)
            out.append((tok.type, tok.value, where, [t.start_pos for t in opened()]))
    except UnexpectedCharacters as e:
        return out, ("unexpected character", e.pos_in_stream, e.line, e.column)
    except CnnDslError as e:
        return out, str(e)
    return out, None


def reference(text: str):
    src = P._Source("t.cnn", text)
    opened = []
    stream = rewrite(lookahead_input(lark_basic_lexer().lex(text)), src, opened)
    return collect(stream, lambda: opened)


def ours(text: str):
    P._parser()  # builds the parser, and so its lexer
    lexer = P._LEXER
    lexer.src = P._Source("t.cnn", text)
    return collect(lexer.lex(LexerState(TextSlice.cast_from(text)), None), lambda: lexer.open)


TRICKY = [
    "", "input", "input\n", "input 3x3", "input x 3", "conv(input)", "input -> relu",
    "input input 3", "x = input\n", "a\r\nb\r\n", "a\rb\fc\x0bd", "a \\\n b", '"abc\\"d" "x',
    "conv 1e10 .5 3. 2e-3", "input 224x224x3\n\n\n# c\n\nconv 3\n  -> relu\n",
    "if x { a }\nelse { b }", "a ->\n b", "a,\n b", "a\n-> b", "x = (\n1,\n2)\n[\n]", "€",
    "a €", "a\n€", "x =\n input€", "3x3+2(S) conv", "(" * 40 + ")" * 40, "{" * 33,
    "conv " + "+".join(["1"] * 300), "a; " + "-" * 300,
    "conv " + "+".join(["1"] * 200) + "; conv " + "+".join(["1"] * 200),
    "not a and b or c == d != e <= f >= g < h > i // j % k",
]


@pytest.mark.parametrize("path", SPEC_FILES + ERROR_FILES, ids=lambda p: p.name)
def test_files(path):
    text = path.read_text(encoding="utf-8", errors="replace")
    assert ours(text) == reference(text)


@pytest.mark.parametrize("text", TRICKY)
def test_tricky_texts(text):
    assert ours(text) == reference(text)


LENIENT = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


FRAGMENTS = [
    " ", "\t", "\n", "\r\n", "\r", "\f", "#c", "input", "else", "if", "not", "and", "x", "a_1",
    "3", "3x3", "3x3+2(S)", "1.5", "2e3", '"s"', '"', "\\", ";", ",", "=", "->", "(", ")", "[", "]",
    "{", "}", "|", "+", "-", "*", "//", "<=", "!", "é", "\x00",
]


@LENIENT
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=40).map("".join))
def test_random_texts(text):
    assert ours(text) == reference(text)


@LENIENT
@given(st.integers(0, 2**32 - 1))
def test_generated_and_mutated_specs(seed):
    text = fuzz.generate(random.Random(seed), fuzz.zoo_sources())
    assert ours(text) == reference(text)


def parse_outcome(parse, text: str):
    """What ``parse(text)`` gives, with P.parse's setting up: the syntax tree, or the error
    raised (Lark's, with the state it left the parser in, and the message cnndsl makes of it)."""
    src = P._Source("t.cnn", text)
    with P._LOCK:
        P._parser()
        P._TRANSFORMER.src = P._LEXER.src = src
        try:
            return "tree", repr(parse(text))
        except UnexpectedInput as e:
            if isinstance(e, UnexpectedToken):
                tok = e.token
                where = (tok.type, tok.value, tok.line, tok.column, tok.end_line, tok.end_column,
                         tok.start_pos, tok.end_pos, sorted(e.expected))
            else:
                where = (e.pos_in_stream, e.line, e.column, sorted(e.allowed))
            resumable = e.interactive_parser.parser_state
            return (
                type(e).__name__, str(e), where, e.state.state_stack, len(e.state.value_stack),
                resumable.state_stack, str(P._syntax_error(e, src)),
            )
        except CnnDslError as e:
            return "error", str(e)
        finally:
            P._TRANSFORMER.src = P._LEXER.src = None


def lark_parse(text: str):
    return P._PARSER.parse(text)  # Lark's loop, its callbacks around the same transformer


def our_parse(text: str):
    return P._parser().run(P._LEXER, text)


def same_parse(text: str) -> None:
    assert parse_outcome(our_parse, text) == parse_outcome(lark_parse, text)


@pytest.mark.parametrize("path", SPEC_FILES + ERROR_FILES, ids=lambda p: p.name)
def test_parse_files_as_lark(path):
    same_parse(path.read_text(encoding="utf-8", errors="replace"))


@pytest.mark.parametrize("text", TRICKY + ["[]", "f(a=[1,], b=(2,), c=())", "block b() { a }"])
def test_parse_tricky_texts_as_lark(text):
    same_parse(text)


@LENIENT
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=40).map("".join))
def test_parse_random_texts_as_lark(text):
    same_parse(text)


@LENIENT
@given(st.integers(0, 2**32 - 1))
def test_parse_generated_and_mutated_specs_as_lark(seed):
    rng = random.Random(seed)
    same_parse(fuzz.generate(rng, fuzz.zoo_sources()))
    same_parse(fuzz.mutate(rng.choice(fuzz.zoo_sources()), rng))


def test_an_error_can_resume_the_parse():
    """The parser state an error holds is one Lark's interactive parser can go on with (the
    values on its stack are the ones its callbacks expect)."""
    text = "input 8x8x3\nconv 3 )\nrelu\n"
    with P._LOCK:
        P._parser()
        P._TRANSFORMER.src = P._LEXER.src = P._Source("t.cnn", text)
        try:
            tokens = list(P._LEXER.lex(LexerState(TextSlice.cast_from(text)), None))
            with pytest.raises(UnexpectedToken) as caught:
                our_parse(text)
            assert caught.value.token == ")"
            parser = caught.value.interactive_parser
            for tok in tokens[tokens.index(caught.value.token) + 1:]:  # all but the ')'
                parser.feed_token(tok)
            module = parser.feed_eof(tokens[-1])
        finally:
            P._TRANSFORMER.src = P._LEXER.src = None
    assert [item.name for stmt in module.program[1:] for item in stmt.items] == ["conv", "relu"]


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
