"""The code-generation core shared by the Keras and PyTorch back ends, without their frameworks.

Generating source imports no framework, so these tests run in the fast part of the suite: one
anti-unification for both targets (a block's expressions survive in both), the layout (black
leaves every generated file as it is), the handler tables, the call tree on any provenance.
"""

from __future__ import annotations

import json
import textwrap

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cnndsl
from cnndsl.backends.codegen import call_tree
from cnndsl.backends.keras import KerasGenerator
from cnndsl.backends.keras import to_source as keras_source
from cnndsl.backends.torch import TorchGenerator
from cnndsl.backends.torch import to_source as torch_source
from cnndsl.ir import ACTIVATIONS, LAYER_CLASSES
from cnndsl.ir.examples import EXAMPLES
from conftest import SPEC_FILES
from ir_strategies import scrambled
from scaling import assert_linear

GENERATORS = [KerasGenerator, TorchGenerator]
SOURCES = {"keras": keras_source, "torch": torch_source}


def spec(text: str, name: str = "spec.cnn") -> cnndsl.Network:
    return cnndsl.loads(textwrap.dedent(text), name)


@pytest.mark.parametrize("target", SOURCES)
def test_block_expressions_are_kept_in_both_targets(target):
    """``conv f*e`` in a block called with different f and e is written ``f * e``, and
    ``dense c/r`` ``c // r``, by both back ends (one anti-unifier)."""
    net = spec("""
        input 8x8x4
        block b(f, e) { 1x1 conv f*e relu -> 3x3(S) conv f }
        block se(c, r) { multiply { identity | gap -> dense c/r relu -> dense c sigmoid } }
        b(4, 2)
        b(8, 3)
        se(8, 2)
        se(8, 4)
    """)
    text = SOURCES[target](net)
    assert "f * e" in text
    assert "c // r" in text


@pytest.mark.parametrize("target", SOURCES)
def test_calls_of_one_structure_share_a_function(target):
    net = spec("""
        input 8x8x4
        block b(f) { 3x3(S) conv f relu }
        b(4)
        b(8)
        b(16)
    """)
    text = SOURCES[target](net)
    defined = "def b(x, f, name):" if target == "keras" else "class B(nn.Module):"
    assert text.count(defined) == 1


def test_loops_are_the_spec_s_loops_not_alike_names():
    """Keras writes the alike iterations of a repeat as a loop (the IR records them: LoopSite),
    and layers the spec writes one by one as written, however alike their names and values;
    without loop records (a JSON IR of another tool), nothing is a loop."""
    net = spec("""
        input 8x8x4
        repeat 3 { 3x3(S) conv 8 relu }
        3x3(S) conv 8 relu -> 3x3(S) conv 8 relu
    """)
    text = keras_source(net)
    assert text.count("for i in range(1, 4):") == 1
    assert text.count("layers.Conv2D(") == 3  # the loop's, conv_4 and conv_5
    data = json.loads(net.to_json())
    for layer in data["layers"]:
        layer["loops"] = []
    assert "for i in" not in keras_source(cnndsl.Network.model_validate_json(json.dumps(data)))


def test_written_out_layers_that_happen_to_match_do_not_split_a_block():
    """InceptionV3's mixed7: a block whose written-out layers are alike for one call's values
    (1x1 conv 8 -> 1x1 conv 8 when c = 8) shares the function of the other calls (it was a
    variant of its own, with a loop, when loops were guessed from names)."""
    net = spec("""
        input 8x8x4
        block b(c) { 1x1 conv c -> 1x1 conv 8 }
        b(4)
        b(8)
    """)
    text = keras_source(net)
    assert "def b(x, c, name):" in text and "def b_2" not in text and "for i in" not in text


def test_one_level_of_loop_is_written():
    """Nested loops: the outermost whose iterations compute alike is the loop (its inner loop
    written out in its body); where it is not, its inner loops are."""
    both = keras_source(spec("input 8x8x4\nrepeat 2 { repeat 3 { 1x1 conv 4 } -> bn }\n"))
    assert both.count("for i in range(2):") == 1 and both.count("layers.Conv2D(") == 3
    inner = keras_source(spec("input 8x8x4\nfor c in [4, 8] { repeat 3 { 1x1 conv c } }\n"))
    assert "for i in range(1, 4):" in inner and "for i in range(4, 7):" in inner


def _zoo() -> list[cnndsl.Network]:
    return [cnndsl.load(path) for path in SPEC_FILES]


@pytest.mark.parametrize("target", SOURCES)
def test_sources_are_black_formatted(target):
    """Every line within 100 columns, laid out as black lays it out."""
    black = pytest.importorskip("black")
    mode = black.Mode(line_length=100)
    for net in _zoo():
        text = SOURCES[target](net)
        assert black.format_str(text, mode=mode) == text, net.name
        assert max(len(line) for line in text.splitlines()) <= 100, net.name


@pytest.mark.parametrize("generator", GENERATORS, ids=lambda g: g.TARGET)
def test_every_kind_has_examples_and_a_handler_or_is_declared_unsupported(generator):
    """Adding a kind is its IR class, example lines (cnndsl/ir/examples.py), and in each back
    end a handler or an explicit entry in UNSUPPORTED: a kind that misses one fails here."""
    for cls in LAYER_CLASSES:
        kind = cls.model_fields["kind"].default
        assert EXAMPLES.get(kind), f"no example line of {kind} in cnndsl/ir/examples.py"
        assert (cls in generator.HANDLERS) != (cls in generator.UNSUPPORTED), cls.__name__


@pytest.mark.parametrize("generator", GENERATORS, ids=lambda g: g.TARGET)
def test_every_activation_is_mapped(generator):
    """Each back end maps every activation of the IR through its one table."""
    assert set(generator.ACTIVATIONS) == set(ACTIVATIONS)


def test_call_tree_groups_nodes_by_block_call():
    net = spec("""
        input 8x8x4
        block inner(f) { 1x1 conv f -> relu }
        block outer(f) { inner(f) -> inner(2*f) }
        a = outer(4)
        outer(8)
    """)
    root = call_tree(net)
    calls = list(root.scopes())
    assert [c.site.instance for c in calls] == [
        "a",
        "a_inner_1",
        "a_inner_2",
        "outer_1",
        "outer_1_inner_1",
        "outer_1_inner_2",
    ]
    assert [c.height for c in calls] == [1, 0, 0, 1, 0, 0]
    assert calls[0].inputs == ["input"] and calls[0].outputs == ["a_inner_2_relu_1"]
    assert [c.local for c in calls[:3]] == ["a", "inner_1", "inner_2"]


@pytest.mark.parametrize("target", SOURCES)
def test_generation_is_linear_in_the_number_of_layers(target):
    """Issue 10 §3: 8,000 layers take about 4 times as long as 2,000, for a residual DAG of
    block calls and for a stack that becomes one loop (at most 8, tests/scaling.py's rule; a
    quadratic writer takes 16 times as long)."""
    for text in (
        "input 8x8x4\nblock b() {{ add {{ 1x1 conv 4 relu | identity }} }}\nrepeat {n} {{ b() }}\n",
        "input 8x8x4\nrepeat {n} {{ 1x1 conv 4 }}\n",
    ):
        small, large = (spec(text.format(n=n // 2 if "block" in text else n)) for n in (2000, 8000))
        assert len(large.layers) >= 4 * len(small.layers) - 4
        generate = SOURCES[target]
        assert_linear(
            lambda g=generate, n=small: g(n), lambda g=generate, n=large: g(n), 4, f": {text.splitlines()[-1]}"
        )


@pytest.mark.parametrize("base", ["blocks", "dag"])
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_any_provenance_the_ir_accepts_gives_code(base, data):
    """Issue 10 §5: the block calls a node records (a JSON IR may say anything there) only
    shape the code; whatever they are, both back ends write a module that compiles."""
    _, net = data.draw(scrambled(base))
    for target, source in SOURCES.items():
        compile(source(net), f"{target}.py", "exec")
