"""Property-based fuzzing, bounded: generated and mutated specs go through parse -> analysis ->
code generation, and the only exception allowed out is CnnDslError.  (The long run is
``python -m cnndsl.fuzz --count 100000``.)"""

from __future__ import annotations

import importlib.util
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnndsl import CnnDslError, fuzz, loads
from cnndsl.ir import Layer


def _available(target: str, framework: str | None) -> bool:
    return importlib.util.find_spec(f"cnndsl.backends.{target}") is not None and (
        framework is None or importlib.util.find_spec(framework) is not None
    )


# code generation for every back end that is installed (generating source needs no framework
# at run time, but the back-end modules may import theirs)
TARGETS = [t for t, fw in (("graphviz", None), ("keras", "keras"), ("torch", "torch")) if _available(t, fw)]
GENERATORS = fuzz.generators([{"graphviz": "dot"}.get(t, t) for t in TARGETS])
SEEDS = fuzz.zoo_sources()
FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.integers(0, 2**32 - 1))
def test_generated_and_mutated_specs(seed):
    fuzz.check(fuzz.generate(random.Random(seed), SEEDS), GENERATORS)


@FUZZ
@given(st.integers(0, 2**32 - 1))
def test_mutated_zoo_specs(seed):
    rng = random.Random(seed)
    fuzz.check(fuzz.mutate(rng.choice(SEEDS), rng), GENERATORS)


def test_the_fuzzer_runs_the_registry_targets():
    assert set(fuzz.generators(["dot", "keras"])) == {"json", "summary", "dot", "keras"}
    with pytest.raises(ValueError, match="unknown target 'java'"):
        fuzz.generators(["java"])


@FUZZ
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=200))
def test_arbitrary_text(text):
    try:
        loads(text)
    except CnnDslError as e:
        assert str(e)


def test_fuzz_command_runs():
    assert fuzz.main(["--count", "50", "--seed", "7", "--targets", "json,summary"]) == 0


def test_generated_specs_draw_every_layer_kind_and_training_outputs():
    """The generators reach every kind of the registry (its example lines are among what they
    draw) and outputs marked (training), in specs that compile."""
    from cnndsl.ir import Layer

    rng, kinds, training = random.Random(0), set(), 0
    for _ in range(1500):
        try:
            net = loads(fuzz.generate(rng, SEEDS))
        except CnnDslError:
            continue
        kinds |= {layer.kind for layer in net.layers}
        training += bool(net.training_outputs)
    assert set(Layer.registry()) - kinds == set()
    assert training
