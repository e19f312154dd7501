"""Property-based fuzzing, bounded: generated and mutated specs, with random and hostile names,
go through parse -> analysis -> code generation, and the only exception allowed out is
CnnDslError; a sample of the generated Keras and PyTorch modules is imported from its file,
built and run (issue 10 §2).  (The long run is ``python -m cnndsl.fuzz --count 100000``.)"""

from __future__ import annotations

import importlib.util
import keyword
import random

import pytest

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnndsl import CnnDslError, fuzz, loads
from conftest import free_memory


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
    rng = random.Random(seed)
    fuzz.check(fuzz.generate(rng, SEEDS), GENERATORS, rng.choice(fuzz.FILE_NAMES))


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


def test_names_include_every_name_the_back_ends_reserve():
    from cnndsl.backends.keras.generator import KerasGenerator
    from cnndsl.backends.torch.generator import TorchGenerator

    for reserved in (KerasGenerator.RESERVED, TorchGenerator.RESERVED):
        for name in reserved.module | reserved.locals | reserved.attributes:
            assert name in fuzz.NAMES or keyword.iskeyword(name), name
    assert {"F", "nn", "_modules", "__class__", "_1", "build_model"} <= set(fuzz.NAMES)


@pytest.fixture(autouse=True)
def _free_models(request):
    """The models the sampled modules built are given back after each test that builds them
    (the suite runs in one process)."""
    yield
    if request.node.get_closest_marker("torch") or request.node.get_closest_marker("keras"):
        free_memory()


def _sample(target: str, seeds: range) -> fuzz.Runner:
    """Random specs (hostile names, blocks calling blocks) whose generated modules are run."""
    runner = fuzz.Runner([target])
    try:
        gens = fuzz.generators([target])
        for seed in seeds:
            rng = random.Random(seed)
            fuzz.check(fuzz.random_spec(rng), gens, rng.choice(fuzz.FILE_NAMES), runner)
    finally:
        runner.close()
    return runner


@pytest.mark.torch
def test_generated_torch_modules_import_build_and_run():
    pytest.importorskip("torch")
    assert _sample("torch", range(120)).runs["torch"] >= 30


@pytest.mark.keras
def test_generated_keras_modules_import_build_and_run():
    pytest.importorskip("keras")
    assert _sample("keras", range(60)).runs["keras"] >= 15


@pytest.mark.torch
def test_the_sample_finds_modules_whose_names_shadow_their_own(monkeypatch):
    """Without the reserved names (what the file imports, nn.Module's attributes), hostile
    names break the generated modules, and running them finds it (compile() alone did not)."""
    pytest.importorskip("torch")
    from cnndsl.backends.codegen.names import Reserved
    from cnndsl.backends.torch.generator import TorchGenerator

    monkeypatch.setattr(TorchGenerator, "RESERVED", Reserved(frozenset()))
    with pytest.raises(fuzz.Finding, match="the generated torch module fails"):
        _sample("torch", range(120))


@pytest.mark.parametrize(
    "framework", [pytest.param("torch", marks=pytest.mark.torch), pytest.param("keras", marks=pytest.mark.keras)]
)
def test_every_example_layer_repeated_in_a_loop_imports_builds_and_runs(framework):
    """Every example line of every kind, twice in a `repeat` (the generators fold the two
    iterations into a loop): the module imports, builds and gives the analysis' shapes.  Found
    by the 100,000-input run of 2026-12-01 (seed 0, input #51998): in a loop, a transposed
    convolution's helper crop layer kept one name (`convtranspose_1_crop`) in every iteration,
    and Keras refused the model."""
    pytest.importorskip(framework)
    from cnndsl.ir.examples import example_lines

    runner = fuzz.Runner([framework])
    gens = fuzz.generators([framework])
    ran = 0
    try:
        for _, shape, line in example_lines():
            if line.startswith("input "):
                continue
            ran += fuzz.check(f"input {shape}\nrepeat 2 {{ {line} }}\n", gens, "loop.cnn", runner) > 0
    finally:
        runner.close()
    assert ran >= 60 and runner.runs[framework] >= 60, (ran, runner.runs)
