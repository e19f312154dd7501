"""Expressions: built-in functions (one registry), indexing, tuple unpacking in `for`, and the
kernel notation's asymmetric padding.  Each value is checked against what Python (or
torchvision) computes."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cnndsl
from cnndsl import CnnDslError
from cnndsl.elaborate import functions
from cnndsl.elaborate.values import Scope, written


def value(expr: str):
    """What an expression evaluates to, as the argument of a block call (lists for tuples)."""
    net = cnndsl.loads(f"input 4x4x1\nblock b(v) {{ conv 1 kernel=1 }}\nb({expr})")
    (conv,) = [layer for layer in net.layers if layer.kind == "conv"]
    return conv.calls[0].args["v"]


def filters(spec_lines: str) -> list[int]:
    net = cnndsl.loads("input 8x8x3\n" + spec_lines)
    return [layer.filters for layer in net.layers if layer.kind == "conv"]


def error(spec_lines: str) -> CnnDslError:
    with pytest.raises(CnnDslError) as e:
        cnndsl.loads("input 8x8x3\n" + spec_lines)
    return e.value


def torchvision_make_divisible(v, divisor, min_value=None):
    """A copy of torchvision.models._utils._make_divisible (torchvision 0.29)."""
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    # Make sure that round down does not go down by more than 10%.
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


# ------------------------------------------------------------------------------ functions


@pytest.mark.parametrize(
    "expr,expected",
    [
        ("min(3, 1, 2)", 1), ("max(3, 1.5)", 3), ("min([4, 2, 8])", 2), ("max((1, 7))", 7),
        ("abs(-3)", 3), ("abs(-2.5)", 2.5), ("int(3.9)", 3), ("int(-3.9)", -3), ("int(7)", 7),
        ("ceil(2.1)", 3), ("ceil(-2.1)", -2), ("floor(2.9)", 2), ("floor(-2.1)", -3),
        ("ceil(4)", 4), ("len([1, 2, 3])", 3), ("len((1,))", 1), ('len("abc")', 3), ("len([])", 0),
        ("round(2.5)", 2), ("round(3.5)", 4), ("round(-2.5)", -2), ("round(2.675, 2)", 2.67),
        ("round(7)", 7), ("round(1234, ndigits=-2)", 1200),
        ("log(1)", 0.0), ("log(8, 2)", 3.0), ("log(100, base=10)", 2.0), ("pow(2, 10)", 1024),
        ("pow(2, -1)", 0.5), ("pow(9, 0.5)", 3.0), ("pow(-2, 3)", -8),
        # near the largest float, 1.8e308: finite results are results
        ("pow(2, 1023.9999)", 2**1023.9999), ("pow(3, 646)", 3**646), ("pow(-2, 1023)", -(2**1023)),
        ("pow(10, 308)", 10**308), ("pow(0.5, -1023.5)", 0.5**-1023.5),
        ("range(3)", [0, 1, 2]), ("range(1, 7, 2)", [1, 3, 5]), ("range(3, 0, -1)", [3, 2, 1]),
        ("make_divisible(30, 8)", 32), ("make_divisible(18, 8)", 24), ("make_divisible(3, 8)", 8),
        ("make_divisible(3, 8, min_value=4)", 4), ("make_divisible(32 * 0.75, 8)", 24),
        ("max(16, 100 // 4) + min(1, 2) * 2", 27),  # inside arithmetic
        ("round(ceil(2.5) * 1.5)", 4),  # nested
    ],
)
def test_functions(expr, expected):
    got = value(expr)
    assert got == expected and type(got) is type(expected)


def test_round_is_pythons_half_to_even():
    """Python's round(), as torchvision's code uses it: halves go to the even neighbour."""
    for x in [0.5, 1.5, 2.5, -0.5, -1.5, 2.675, 1e15 + 0.5, 7.0, 12.5]:
        assert value(f"round({x!r})") == round(x)
        assert value(f"round({x!r}, 1)") == round(x, 1)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(st.integers(1, 5000), st.floats(0.01, 5000, allow_nan=False)),
    st.sampled_from([1, 2, 3, 4, 8, 16, 32]),
    st.one_of(st.none(), st.integers(1, 64)),
)
def test_make_divisible_is_torchvisions(v, divisor, min_value):
    args = f"{v!r}, {divisor}" + ("" if min_value is None else f", {min_value}")
    expected = torchvision_make_divisible(v, divisor, min_value)
    got = value(f"make_divisible({args})")
    assert got == expected and type(got) is type(expected)


def test_make_divisible_on_the_channels_torchvision_rounds():
    """Every width MobileNetV2/V3 and EfficientNet compute: channels times their multipliers."""
    for channels in [16, 24, 32, 40, 48, 64, 72, 80, 96, 112, 120, 160, 192, 240, 320, 576, 960, 1280]:
        for mult in [0.25, 0.35, 0.5, 0.75, 1.0, 1.1, 1.2, 1.4, 1.6, 1.8, 2.0, 2.2, 3.1]:
            for divisor in (8, 4):
                expr = f"make_divisible({channels} * {mult}, {divisor})"
                assert value(expr) == torchvision_make_divisible(channels * mult, divisor)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(-10**6, 10**6), min_size=1, max_size=6), st.floats(-1e6, 1e6))
def test_functions_agree_with_python(items, x):
    listed = "[" + ", ".join(map(str, items)) + "]"
    assert value(f"min({listed})") == min(items) and value(f"max({listed})") == max(items)
    assert value(f"len({listed})") == len(items)
    if len(items) > 1:
        assert value(f"max({', '.join(map(str, items))})") == max(items)
    for name, python in [("abs", abs), ("int", int), ("ceil", math.ceil), ("floor", math.floor), ("round", round)]:
        assert value(f"{name}({x!r})") == python(x)
    if x > 0:
        assert value(f"log({x!r})") == math.log(x) and value(f"log({x!r}, 3)") == math.log(x, 3)
    assert value(f"pow({x!r}, 2)") == pow(x, 2)


def test_functions_in_word_position():
    assert filters("block b(c) { conv max(16, c // 4) kernel=1 }\nb(128)\nb(32)") == [32, 16]
    assert filters("conv(max(4, 8), kernel=1)") == [8]  # the layer's call takes them too
    assert filters("conv(4, kernel=1) -> conv 2*max(1, 3) kernel=1") == [4, 6]



_WORD_ATOMS = st.sampled_from(["1", "2", "3", "7", "max(1, 2)", "min(9, 4)", "c"])


def _word_terms(children):
    return st.one_of(
        st.tuples(children, st.sampled_from(["+", "-", "*", "//"]), children).map(" ".join),
        children.map(lambda e: f"({e})"),
    )


@settings(max_examples=300, deadline=None)
@given(st.recursive(_WORD_ATOMS, _word_terms, max_leaves=6))
def test_words_after_a_kind_compute_as_the_same_expression_elsewhere(expr):
    """`conv 1 + 2 * 3` is 7, as `filters=1 + 2 * 3` is: in word position the operators keep
    their precedence (`*` after `+` failed to parse, `conv 1 + max(1, 2) * 3` too)."""
    if expr.startswith("("):  # a parenthesis right after the kind is the layer's call
        expr = "0 + " + expr
    text = "block b(c) {{ 1x1 conv {} }}\nb(3)"
    try:
        expected = filters(text.format(f"filters={expr}"))
    except CnnDslError:  # not a valid number of filters (0, negative): refused both ways
        with pytest.raises(CnnDslError):
            filters(text.format(expr))
        return
    assert filters(text.format(expr)) == expected

@pytest.mark.parametrize(
    "expr,message,hint",
    [
        ("flor(2.5)", "unknown function 'flor'", "did you mean 'floor'?"),
        ("sqrt(4)", "unknown function 'sqrt'", "the functions are abs, "),
        ("abs(1, 2)", "abs() takes 1 value, got 2", "it is abs(x)"),
        ("round()", "round() takes 1 to 2 values, got 0", "it is round(x, ndigits=None)"),
        ("make_divisible(3)", "make_divisible() takes 2 to 3 values, got 1", "it is make_divisible("),
        ("min()", "min() takes 1 or more values, got 0", "it is min(values, ...)"),
        ("round(2.5, digits=1)", "round() has no parameter 'digits'", "it is round("),
        ("round(2.5, 1, ndigits=1)", "round() gets 'ndigits' twice", None),
        ("abs(true)", "abs(): expected a number, got true", "it is abs(x)"),
        ('int("3")', "int(): expected a number, got '3'", "it is int(x)"),
        ("min([1, relu])", "min(): expected numbers in the list, got 'relu'", None),
        ("make_divisible(10, 0)", "make_divisible(): the divisor must be at least 1, got 0", None),
        ("range(0, 10, 0)", "range(): the step must not be zero", None),
        ("range(1000000)", "range(): a list longer than 100,000 items", None),
        ("log(0)", "log(): the logarithm of 0 is not a number", None),
        ("log(8, 1)", "log(): a logarithm's base is positive and not 1, got 1", None),
        ("pow(0, -1)", "pow(): 0 to a negative power is not a number", None),
        ("pow(-8, 0.5)", "pow(): -8 to the power 0.5 is not a real number", None),
        ("pow(2, 1000000000)", "pow(): 2 to the power 1000000000 is out of range", None),
        ("pow(1e-300, -2)", "pow(): 1e-300 to the power -2 is out of range", None),
        ("pow(2, 1024)", "pow(): 2 to the power 1024 is out of range", None),
        ("pow(2.0, 1024)", "pow(): 2.0 to the power 1024 is out of range", None),
        ("pow(3, 647)", "pow(): 3 to the power 647 is out of range", None),
        ("pow(-2, 1025)", "pow(): -2 to the power 1025 is out of range", None),
        ("pow(10, 308.5)", "pow(): 10 to the power 308.5 is out of range", None),
        ("range(10000000000000000000000)", "range(): a list longer than 100,000 items", None),
        ("range(5, 10000000000000000000000, -1)", None, None),  # empty
        ("round(7, -100000000000000000000)", "round(): ndigits must be between -100 and 100,"
         " got -100000000000000000000", None),
    ],
)
def test_function_errors(expr, message, hint):
    if message is None:  # not an error
        value(expr)
        return
    e = error(f"block b(v) {{ identity }}\nb({expr})")
    assert e.message == message
    if hint is not None:
        assert e.hint.startswith(hint)
    assert e.location.line == 3 and e.location.source_line == f"b({expr})"


def test_argument_errors_point_at_the_argument():
    e = error("conv make_divisible(30, 8, min_value=relu) kernel=1")
    assert e.message == "make_divisible(): expected a number, got 'relu'"
    assert (e.location.column, e.location.end_column) == (38, 42)


def test_one_registry_and_functions_of_the_scope(monkeypatch):
    """A function is one entry; one that declares ``scope=True`` gets the evaluation scope."""
    seen = []

    def depth(scope, offset=0):
        seen.append(scope)
        return len(scope.all_vars()) + offset

    monkeypatch.setitem(
        functions.FUNCTIONS, "nvars",
        functions.Function("nvars", depth, ("offset",), 0, False, "variables in scope", scope=True),
    )
    assert filters("block b(x, y) { conv nvars(1) kernel=1 }\nb(1, 2)") == [3]
    assert isinstance(seen[0], Scope) and seen[0].lookup_var("y") == (True, 2)
    assert functions.FUNCTIONS["make_divisible"].signature == "make_divisible(v, divisor, min_value=None)"
    assert all(f.doc for f in functions.FUNCTIONS.values())


# ------------------------------------------------------------------------------ indexing


@pytest.mark.parametrize(
    "expr,expected",
    [
        ("[10, 20, 30][0]", 10), ("[10, 20, 30][-1]", 30), ("[10, 20, 30][-3]", 10),
        ("[(3, 16), (5, 24)][1][0]", 5), ("[(3, 16), (5, 24)][-1][-1]", 24), ('"abc"[1]', "b"),
        ("(1, 2)[1 + 0]", 2), ("[[1, 2], [3, 4]][len([0])][0]", 3), ("-[4][0]", -4),
    ],
)
def test_indexing(expr, expected):
    assert value(expr) == expected


def test_indexing_block_parameters_and_loop_variables():
    spec = """
block stage(cfg) {
  for i in range(len(cfg)) { conv cfg[i][1] kernel=cfg[i][0] padding=same }
}
stage([(3, 16), (1, 24), (5, 40)])
conv([(3, 16), (1, 24), (5, 40)][-1][1], kernel=1)
"""
    assert filters(spec) == [16, 24, 40, 40]


@pytest.mark.parametrize(
    "expr,message,where",
    [
        ("[1, 2, 3][3]", "index 3 is out of range for a list of 3 items", "3"),
        ("[1, 2, 3][-4]", "index -4 is out of range for a list of 3 items", "-4"),
        ("[][0]", "index 0 is out of range for a list of 0 items", "0"),
        ("(1, 2)[2]", "index 2 is out of range for a tuple of 2 items", "2"),
        ("[1, 2][1.0]", "an index is an integer, got 1.0", "1.0"),
        ("[1, 2][true]", "an index is an integer, got true", "true"),
        ("7[0]", "only lists, tuples and strings have items, not 7", "7"),
    ],
)
def test_index_errors(expr, message, where):
    e = error(f"block b(v) {{ identity }}\nb({expr})")
    assert e.message == message
    loc = e.location
    assert loc.source_line[loc.column - 1 : loc.end_column - 1] == where


# ------------------------------------------------------------------------------ unpacking


CONFIG = "[(3, 16, 1), (5, 24, 2), (3, 40, 2)]"


@pytest.mark.parametrize(
    "loop",
    [
        f"for (k, c, s) in {CONFIG} {{ conv c kernel=k stride=s padding=same }}",
        f"for k, c, s in {CONFIG} {{ conv c kernel=k stride=s padding=same }}",
        "for (k, (c, s)) in [(3, (16, 1)), (5, (24, 2)), (3, (40, 2))] {\n"
        "  conv c kernel=k stride=s padding=same\n}",
    ],
)
def test_tuple_unpacking_in_for(loop):
    net = cnndsl.loads("input 16x16x3\n" + loop)
    convs = [layer for layer in net.layers if layer.kind == "conv"]
    assert [(c.kernel, c.filters, c.stride) for c in convs] == [
        ((3, 3), 16, (1, 1)), ((5, 5), 24, (2, 2)), ((3, 3), 40, (2, 2)),
    ]


@pytest.mark.parametrize(
    "loop,message",
    [
        ("for (k, c) in [(3, 16, 1)] { conv c }", "cannot unpack (3, 16, 1) into 2 names: it has 3 items"),
        ("for k, c in [(3, 16), 4] { conv c kernel=k }", "cannot unpack 4 into 2 names: it is not a list or tuple"),
        ("for (k, (c, s)) in [(3, (16,))] { conv c }", "cannot unpack (16) into 2 names: it has 1 item"),
    ],
)
def test_unpacking_errors(loop, message):
    e = error(loop)
    assert e.message == message
    assert e.location.line == 2
    assert e.diagnostics[0].notes[0][0] == "iterating over the list"


def test_a_name_twice_in_a_target():
    e = error("for (k, c, k) in [(1, 2, 3)] { conv c }")
    assert e.message == "'k' is named twice in this loop's target"
    assert e.location.column == 12


# ------------------------------------------------------------------------------ kernel notation


@pytest.mark.parametrize("written", ["1x7(0,3)", "1x7(0, 3)", "1x7+1(0 ,3)"])
def test_asymmetric_padding_in_the_kernel_notation(written):
    """Inception-v3 writes its 1x7 convolutions `1x7(0,3) conv 192`: padding (0, 3)."""
    (conv,) = [layer for layer in cnndsl.loads(f"input 17x17x8\n{written} conv 192").layers if layer.kind == "conv"]
    (same,) = [layer for layer in cnndsl.loads("input 17x17x8\nconv 192 kernel=(1, 7) padding=(0, 3)").layers
               if layer.kind == "conv"]
    assert conv.padding == same.padding == ((0, 0), (3, 3))
    assert conv.kernel == (1, 7)
    assert cnndsl.loads(f"input 17x17x8\n{written} conv 192").shape("conv_1") == (17, 17, 192)


def test_strings_written_back_keep_their_escapes():
    net = cnndsl.loads('input 4x4x1\nblock b(v) { conv 1 kernel=1 }\nb("a\\nb\\"c")')
    (call,) = net.layers[-1].calls
    assert call.args["v"] == 'a\nb"c'
    assert call.signature() == 'b("a\\nb\\"c")'
    assert written('a\nb"c') == '"a\\nb\\"c"'


# ------------------------------------------------------------------------------ no crash

ATOMS = st.sampled_from([
    "0", "1", "-1", "3", "2.5", "-0.5", "1e300", "1e-300", "100000000000000000000000", "true",
    "relu", '"s"', "[]", "[1, 2]", "(3, 4)", "[(1, 2), (3, 4)]", "v",
])


def _calls(children):
    name = st.sampled_from([*functions.FUNCTIONS, "nope"])
    args = st.lists(children, max_size=3).map(", ".join)
    keyword = st.sampled_from(["", ", ndigits=2", ", min_value=4", ", x=1"])
    return st.one_of(
        st.tuples(name, args, keyword).map(lambda t: f"{t[0]}({t[1]}{t[2] if t[1] else ''})"),
        st.tuples(children, children).map(lambda t: f"({t[0]})[{t[1]}]"),
        st.tuples(children, st.sampled_from(["+", "-", "*", "//", "%", "/", "<"]), children).map(" ".join),
        st.lists(children, max_size=3).map(lambda items: "[" + ", ".join(items) + "]"),
    )


EXPRESSIONS = st.recursive(ATOMS, _calls, max_leaves=8)


@settings(max_examples=400, deadline=None)
@given(EXPRESSIONS)
def test_any_expression_computes_or_is_a_located_error(expr):
    """Functions, indexing and arithmetic on any values, huge and odd ones too: a value or a
    CnnDslError with a location, never another exception (exit 3) or a hang."""
    text = f"input 4x4x1\nblock b(v) {{ conv 1 kernel=1 }}\nblock c(v) {{ b({expr}) }}\nc([1, 2.5])"
    try:
        net = cnndsl.loads(text)
        net.to_json()
    except CnnDslError as e:
        assert e.location is not None
