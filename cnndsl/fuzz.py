"""Fuzzing: random and mutated specs through parse -> analysis -> code generation -> the models.

    python -m cnndsl.fuzz --count 100000 [--seed 0] [--targets json,summary,dot,keras,torch]
                          [--run-every 50] [--run keras,torch]

Inputs come from three sources: specs generated at random from the language (layers with
random options, blocks calling blocks with several argument lists, branches, named tensors,
repeats, outputs marked ``(training)``), named with random and hostile names (the modules and
helpers generated files import, ``nn.Module``'s attributes, Python's builtins, names starting
with a digit or an underscore); the example lines of every layer kind
(:func:`cnndsl.ir.examples.example_lines`, alone, inside generated specs, and followed by
random layers); and mutations of both and of the zoo (tokens deleted, duplicated, swapped or
replaced by odd values; lines shuffled; bytes inserted).  Each input goes through
:func:`cnndsl.loads` and, when it compiles, through every requested code generator; the Python
it generates must compile.  Every ``--run-every`` compiled input (when small enough to run in a
moment), the generated Keras and PyTorch modules are written to files, imported from there,
built with ``build_model()`` and run on a random batch, and every output must have the shape
the analysis gives.  The only exception allowed out of cnndsl is :class:`cnndsl.CnnDslError`;
anything else, a generated module that fails to import, build or run, a wrong shape, or an
input taking more than ``--slow`` processor seconds in cnndsl (running the models aside) -- in
all, or per 1,000 layers for a network of more (cnndsl's work grows linearly with the layers)
-- is a finding.  The run prints what it tried and exits 1 if it found anything.
``tests/test_fuzz.py`` runs the same generators under hypothesis, bounded in time, and a sample
of generated modules in both frameworks.
"""

from __future__ import annotations

import argparse
import importlib.util
import keyword
import os
import random
import re
import sys
import tempfile
import time
import warnings
from pathlib import Path

from . import CnnDslError, loads
from .ir.examples import example_lines, example_spec

# layers that keep a feature map a feature map (the head comes at the end)
LAYERS = [
    "{k}x{k}+{s}({p}) conv {f}",
    "{k}x{k}+{s}({p}) conv {f} {act}",
    "conv {f} kernel={k} stride={s} padding={pad} dilation={d} bias={onoff}",
    "{k}x{k}+{s}({p}) dwconv",
    "{k}x{k}+{s}({p}) sepconv {f}",
    "{k}x{k}+{s}({p}) convtranspose {f}",
    "{k}x{k}+{s}({p}) maxpool",
    "{k}x{k}+{s}({p}) avgpool",
    "{k}x{k}+{s}(V) maxpool ceil",
    "globalmaxpool keepdims",
    "depthmaxpool {small}",
    "lrn radius={small} alpha=0.0001 beta=0.75 bias=1",
    "bn",
    "bn epsilon=1e-5 momentum=0.9",
    "dropout 0.{d}",
    "{act}",
    "leakyrelu 0.{d}",
    "zeropad {small}",
    "upsample {small}",
    "upsample 2 bilinear",
    "identity",
    "layernorm",
    "layernorm epsilon=1e-6 scale={onoff} center={onoff}",
    "pointwise {f} {act}",
    "pointwise {f} bias={onoff}",
    "layerscale",
    "layerscale 0.{d}",
    "stochasticdepth 0.{d}",
    "stochasticdepth 0.{d} batch",
    "adaptiveavgpool {small}",
    "adaptiveavgpool {small}x{k}",
    "rescaling 1/255",
    "rescaling 0.5 offset=-{d}",
    "normalization",
    "normalization mean=0.5 variance=0.{d}",
    "crop {small}",
    "crop cropping=((1, 0), (0, {small}))",
    "split {small} part={part}",
    "shuffle {small}",
]
SAME_SHAPE = [
    "1x1+1(S) conv {f}", "3x3+1(S) conv {f} {act}", "3x3+1(1) maxpool", "bn", "{act}", "identity",
    "layernorm", "layerscale", "stochasticdepth 0.{d}", "rescaling 0.5", "normalization",
]
HEADS = ["globalavgpool -> dense {f} {act}", "flatten -> dense {f}", "globalmaxpool", "1x1 conv {f} softmax", "",
         "reshape shape=(-1,) -> dense {f}", "adaptiveavgpool 1 -> reshape shape=(-1,)"]
ACTS = ["relu", "relu6", "tanh", "sigmoid", "softmax", "elu", "selu", "linear", "silu", "gelu",
        "gelu_tanh", "hardsigmoid", "hardswish", "hard_sigmoid", "swish"]
# every example line of the layer kinds' registry that reads a map: drawn inside generated specs
MAP_EXAMPLES = [line for kind, shape, line in example_lines() if shape.count("x") == 2 and kind != "input"]
# names that generated code must not confuse with its own: what the files import and define,
# nn.Module's attributes, builtins, names that start with a digit or underscores, dunders
HOSTILE_NAMES = [
    "x", "F", "nn", "torch", "keras", "layers", "ops", "np", "tf", "math", "inputs", "outputs",
    "input", "self", "out", "branch1", "build_model", "model", "name", "i", "super", "forward",
    "training", "print", "range", "float", "int", "len", "type", "object", "Module",
    "Sequential", "Model", "Tensor", "functional", "_modules", "_parameters", "_buffers",
    "_version", "apply", "eval", "train", "to", "cuda", "half", "state_dict", "parameters",
    "children", "add_module", "register_buffer", "__class__", "__init__", "__dict__",
    "__name__", "__module__", "_", "_1", "_2x", "__", "pad_same", "NegInfPadding2D",
    "ExcludePadAvgPool2d", "LocalResponseNormalization", "leaky_relu", "input_shape",
    "input_shapes",
]
# file names: a network without a `network` line is named after its file
FILE_NAMES = ["fuzz.cnn", "123.cnn", "F.cnn", "my-net.cnn", "\u00e9t\u00e9.cnn", "_.cnn", "__init__.cnn",
              "a b.cnn", "nn.cnn", "9lives.cnn"]
ODD_VALUES = ["class", "def", "lambda", "None", "True",
"0", "-1", "1", "3", "99999999999999", "1e9", "0.5", '"s"', "x", "()", "[]", "same", "relu"]


def hostile_names() -> list[str]:
    """:data:`HOSTILE_NAMES`, and every name the back ends' generated files reserve (their
    modules, locals and attributes), without Python's keywords (the language refuses them)."""
    names = set(HOSTILE_NAMES)
    try:
        from .backends.keras.generator import KerasGenerator
        from .backends.torch.generator import TorchGenerator
    except ImportError:  # pragma: no cover - the back ends import no framework
        pass
    else:
        for reserved in (KerasGenerator.RESERVED, TorchGenerator.RESERVED):
            names |= reserved.module | reserved.locals | reserved.attributes
    return sorted(n for n in names if n.isidentifier() and n.isascii() and not keyword.iskeyword(n))


NAMES = hostile_names()


def _name(rng: random.Random, plain: str) -> str:
    """A hostile name one time in three, else ``plain``."""
    return rng.choice(NAMES) if rng.random() < 0.35 else plain


def _layer(rng: random.Random, templates: list[str] = LAYERS) -> str:
    template = rng.choice(templates)
    return template.format(
        k=rng.choice([1, 1, 2, 3, 3, 5, 7]),
        s=rng.choice([1, 1, 2, 3]),
        p=rng.choice(["S", "V", "1", "S"]),
        pad=rng.choice(["same", "valid", "1", "(0, 1)"]),
        f=rng.choice([1, 2, 4, 8, 16, 3]),
        d=rng.choice([1, 1, 2]),
        act=rng.choice(ACTS),
        onoff=rng.choice(["on", "off"]),
        small=rng.choice([1, 2, 3]),
        part=rng.choice([0, 1, 2]),
    )


def _chain(rng: random.Random, depth: int) -> str:
    parts = []
    for _ in range(rng.randint(1, 3)):
        roll = rng.random()
        if roll < 0.12 and depth < 3:
            merge = rng.choice(["add", "concat", "concat", "multiply"])
            # mostly shape-preserving branches, so that the merge usually works
            branches = [
                _chain(rng, depth + 1) if rng.random() < 0.25 else _layer(rng, SAME_SHAPE)
                for _ in range(rng.randint(2, 3))
            ]
            parts.append(f"{merge} {{ " + " | ".join(branches) + " }")
        elif roll < 0.18 and depth < 3:
            parts.append(f"repeat {rng.randint(0, 3)} {{ {_chain(rng, depth + 1)} }}")
        elif roll < 0.26:
            parts.append(rng.choice(MAP_EXAMPLES))
        else:
            parts.append(_layer(rng))
    return " -> ".join(parts)


def random_spec(rng: random.Random) -> str:
    """A spec drawn at random from the language: often valid, sometimes not.  Its network,
    blocks, block parameters, tensors and layers are often named with hostile names."""
    h, w = rng.choice([(32, 32), (64, 64), (33, 31), (224, 224), (7, 5), (1, 1)])
    lines = [f"input {h}x{w}x{rng.choice([1, 3, 4])}"]
    if rng.random() < 0.8:  # else the network is named after the file
        lines.insert(0, f"network {_name(rng, f'fuzz{rng.randint(0, 99)}')}")
    if rng.random() < 0.3:
        lines.append("defaults conv kernel=3 padding=same activation=relu")
    calls = []
    if rng.random() < 0.5:
        unit, f, s = _name(rng, "unit"), _name(rng, "f"), _name(rng, "s")
        lines.append(
            f"block {unit}({f}, {s}=1) {{ conv {f} kernel=3 stride={s} padding=same -> {_chain(rng, 2)} }}"
        )
        calls = [f"{unit}({rng.choice([4, 8])})", f"{unit}({rng.choice([2, 4])}, {s}=2)"]
        if rng.random() < 0.4:  # a block calling a block
            outer, g = _name(rng, "outer"), _name(rng, "g")
            lines.append(f"block {outer}({g}) {{ {unit}({g}) -> {unit}(2 * {g}) }}")
            calls.append(f"{outer}({rng.choice([2, 4])})")
    names = []
    for i in range(rng.randint(1, 8)):
        chain = rng.choice(calls) if calls and rng.random() < 0.3 else _chain(rng, 0)
        if rng.random() < 0.3:
            name = _name(rng, f"t{i}")
            names.append(name)
            lines.append(f"{name} = {chain}")
        elif names and rng.random() < 0.2:
            lines.append(f"{rng.choice(['concat', 'add'])}({rng.choice(names)})")
        elif rng.random() < 0.15 and not chain.endswith(("}", ")")):
            lines.append(f"{chain} name={_name(rng, f'layer{i}')}")
        else:
            lines.append(chain)
    head = _layer(rng, HEADS)
    if head:
        lines.append(head)
    if names and rng.random() < 0.25:  # an auxiliary output, computed only in training
        lines[-1] = f"logits = {lines[-1]}"
        lines.append(f"output logits, {rng.choice(names)} (training)")
    return "\n".join(lines) + "\n"


def example_with_layers(rng: random.Random) -> str:
    """An example line of the layer kinds' registry, on its input, then (mostly) random layers
    and a head."""
    _, shape, line = rng.choice(example_lines())
    text = example_spec(shape, line)
    if shape.count("x") == 2 and rng.random() < 0.7:
        text += _chain(rng, 1) + "\n" + _layer(rng, HEADS) + "\n"
    return text


def _tokens(text: str) -> list[str]:
    return re.findall(r"\s+|[A-Za-z_][A-Za-z0-9_]*|\d+(?:x\d+)*(?:\+\d+)?(?:\([A-Za-z0-9]+\))?|->|.", text)


def mutate(text: str, rng: random.Random) -> str:
    """Apply one to three random edits to a spec."""
    for _ in range(rng.randint(1, 3)):
        tokens = _tokens(text)
        if not tokens:
            return text
        i = rng.randrange(len(tokens))
        op = rng.randrange(8)
        if op == 0:
            del tokens[i]
        elif op == 1:
            tokens.insert(i, tokens[rng.randrange(len(tokens))])
        elif op == 2:
            j = rng.randrange(len(tokens))
            tokens[i], tokens[j] = tokens[j], tokens[i]
        elif op == 3:
            tokens[i] = rng.choice(ODD_VALUES)
        elif op == 4:
            tokens.insert(i, rng.choice(["{", "}", "(", ")", "|", "->", "\n", "=", ",", "#", '"', "\\", "\x00", "é", "ℓ"]))
        elif op == 5:
            lines = "".join(tokens).split("\n")
            rng.shuffle(lines)
            tokens = ["\n".join(lines)]
        elif op == 6:
            cut = rng.randrange(len(tokens))
            tokens = tokens[:cut]
        else:
            tokens[i] = str(rng.choice([0, 1, 2, 10**6, 10**12, -3]))
        text = "".join(tokens)
    return text


def zoo_sources() -> list[str]:
    specs = Path(__file__).resolve().parent.parent / "specs"
    return [p.read_text(encoding="utf-8") for p in sorted(specs.glob("*.cnn"))]


def generate(rng: random.Random, seeds: list[str]) -> str:
    roll = rng.random()
    if roll < 0.35 or not seeds:
        return random_spec(rng)
    if roll < 0.45:
        return example_with_layers(rng)
    if roll < 0.5:
        return mutate(example_with_layers(rng), rng)
    if roll < 0.75:
        return mutate(random_spec(rng), rng)
    return mutate(rng.choice(seeds), rng)


def generators(targets: list[str]):
    """Code generators to run on specs that compile: name -> function(net).  ``json`` reads the
    IR back from its JSON, ``summary`` writes every summary format; any other name is a target
    of :data:`cnndsl.backends.TARGETS`, and a model target's source must also compile."""
    from .backends import TARGETS, emit, source

    found = {
        "json": lambda net: type(net).from_json(net.to_json()),
        "summary": lambda net: [net.summary(format=f) for f in ("table", "json", "csv", "markdown")],
    }
    for name in targets:
        if name in found:
            continue
        if name not in TARGETS:
            raise ValueError(f"unknown target {name!r}: choose json, summary or one of {', '.join(TARGETS)}")
        found[name] = _compiled(name, source) if TARGETS[name].build else _written(name, emit)
    return found


def _compiled(name: str, source):
    """A model target's source, which must also be valid Python."""

    def generate(net):
        text = source(net, name)
        compile(text, f"<{net.name}>", "exec")
        return text

    return generate


def _written(name: str, emit):
    return lambda net: emit(net, name)


class Runner:
    """Runs generated modules as a user would: the file a target writes is saved in a temporary
    directory, imported from there, ``build_model()`` builds the model, and the model runs on
    a random batch of two; every output must have the shape the analysis gives.  Anything
    that goes wrong raises :class:`Finding`.  Networks too large to run in a moment are
    skipped (:meth:`fits`)."""

    MAX_PARAMS = 2_000_000
    MAX_BYTES = 64_000_000  # the activations of a training step, for the batch of two

    def __init__(self, targets: list[str]) -> None:
        order = [t for t in ("torch", "keras") if t in targets]  # torch before TensorFlow
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up notices
        for target in order:
            __import__(target)  # a missing framework fails here, not in the first run
        self.targets = order
        self.directory = tempfile.TemporaryDirectory(prefix="cnndsl-fuzz-")
        self.runs = {t: 0 for t in order}
        self.seconds = 0.0

    def close(self) -> None:
        self.directory.cleanup()

    def fits(self, net) -> bool:
        a = net.analysis
        small = a.total_params <= self.MAX_PARAMS
        return small and a.memory(batch_size=2).training_bytes <= self.MAX_BYTES

    def __call__(self, net, target: str, source: str) -> None:
        start = time.process_time()
        number = sum(self.runs.values())
        path = Path(self.directory.name) / f"generated_{target}_{number}.py"
        path.write_text(source, encoding="utf-8")
        try:
            spec = importlib.util.spec_from_file_location(f"cnndsl_fuzz_{target}_{number}", path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            model = module.build_model()
            shapes = getattr(self, f"_run_{target}")(net, model)
        except Exception as e:
            raise Finding(f"the generated {target} module fails: {type(e).__name__}: {e}") from e
        finally:
            path.unlink()
        # both models run for inference (PyTorch in eval mode, Keras's build_model() is the
        # inference model): outputs marked (training) are not among theirs
        expected = [(2, *net.shape(o)) for o in net.inference_outputs]
        if shapes != expected:
            raise Finding(
                f"the generated {target} model gives shapes {shapes}, the analysis {expected}"
            )
        self.runs[target] += 1
        self.seconds += time.process_time() - start

    @staticmethod
    def _run_torch(net, model) -> list[tuple[int, ...]]:
        import torch

        def batch(shape):  # NCHW
            return torch.randn(2, shape[2], *shape[:2]) if len(shape) == 3 else torch.randn(2, *shape)

        with torch.no_grad():
            out = model.eval()(*[batch(i.shape) for i in net.inputs])
        out = out if isinstance(out, (tuple, list)) else (out,)
        # NCHW back to the analysis' (N, H, W, C)
        return [(t.shape[0], *t.shape[2:], t.shape[1]) if t.ndim == 4 else tuple(t.shape) for t in out]

    @staticmethod
    def _run_keras(net, model) -> list[tuple[int, ...]]:
        import keras
        import numpy as np

        rng = np.random.default_rng(0)
        xs = [rng.standard_normal((2, *i.shape)).astype("float32") for i in net.inputs]
        with warnings.catch_warnings():  # Keras warns of a softmax over one channel
            warnings.simplefilter("ignore", UserWarning)
            out = model(xs[0] if len(xs) == 1 else xs, training=False)
        out = out if isinstance(out, (tuple, list)) else [out]
        keras.backend.clear_session()  # the models of a long run would pile up
        return [tuple(int(d) for d in t.shape) for t in out]


class Finding(Exception):
    """Something a fuzzed input did that it must not."""


def check(text: str, gens: dict, filename: str = "fuzz.cnn", runner: Runner | None = None) -> int:
    """Compile one input and generate code from it; only CnnDslError may escape.  With a
    runner, the generated modules of its targets are also imported, built and run.

    Returns the number of layers of the network (0 when the input is rejected).
    """
    try:
        net = loads(text, filename)
    except CnnDslError as e:
        str(e)  # formatting the message must not fail either
        return 0
    sources = {}
    for target, gen in gens.items():
        try:
            sources[target] = gen(net)
        except CnnDslError as e:  # a back end may refuse a layer, with a located error
            str(e)
    if runner is not None and runner.fits(net):
        for target in runner.targets:
            if target in sources:
                runner(net, target, sources[target])
    return len(net.layers)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cnndsl.fuzz", description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--slow", type=float, default=1.0,
                        help="processor seconds in cnndsl (running the models aside) per 1,000 layers made"
                        " (at least 1,000) above which an input is a finding")
    parser.add_argument("--targets", default="json,summary,dot,keras,torch",
                        help="code generators to run (json, summary, dot, keras, torch)")
    parser.add_argument("--run", default="keras,torch",
                        help="frameworks whose generated modules are imported, built and run (keras, torch;"
                        " empty: none)")
    parser.add_argument("--run-every", type=int, default=50, metavar="N",
                        help="run the generated modules of every N-th input that compiles (0: never)")
    parser.add_argument("--save", type=Path,
                        help="write failing inputs, and the input that took longest, into this directory")
    args = parser.parse_args(argv)
    targets = [t for t in args.targets.split(",") if t]
    try:
        gens = generators(targets)
    except ValueError as e:
        parser.error(str(e))
    run = [t for t in args.run.split(",") if t in targets] if args.run_every > 0 else []
    for framework in [t for t in run if importlib.util.find_spec(t) is None]:
        print(f"fuzz: {framework} is not installed: its generated modules are not run", file=sys.stderr)
        run.remove(framework)
    runner = Runner(run) if run else None
    rng = random.Random(args.seed)
    seeds = zoo_sources()
    compiled = crashes = slow = 0
    slowest = (0.0, "")
    longest = (0.0, 0, "")  # the most processor seconds one input took in cnndsl, its layers, it
    start = time.perf_counter()
    try:
        for i in range(args.count):
            text = generate(rng, seeds)
            filename = rng.choice(FILE_NAMES)
            sample = runner if runner is not None and compiled % args.run_every == 0 else None
            t0 = time.process_time()
            ran = runner.seconds if runner is not None else 0.0
            try:
                layers = check(text, gens, filename, sample)
            except Exception as e:  # a finding: anything but CnnDslError
                crashes += 1
                print(f"CRASH #{i} ({filename}): {type(e).__name__}: {e}\n--- input ---\n{text}\n-------------",
                      file=sys.stderr)
                if args.save:
                    args.save.mkdir(parents=True, exist_ok=True)
                    (args.save / f"crash_{args.seed}_{i}.cnn").write_text(text, encoding="utf-8", errors="replace")
                continue
            elapsed = time.process_time() - t0 - ((runner.seconds - ran) if runner is not None else 0.0)
            per = elapsed / max(1, layers / 1000)  # seconds per 1,000 layers, or for the input
            if elapsed > longest[0]:
                longest = (elapsed, layers, text)
            if per > slowest[0]:
                slowest = (per, text)
            if per > args.slow:
                slow += 1
                print(f"SLOW #{i}: {elapsed:.2f}s for {layers:,} layers\n--- input ---\n{text}\n-------------",
                      file=sys.stderr)
            compiled += layers > 0
            if (i + 1) % 1000 == 0:
                print(f"{i + 1:,} inputs, {compiled:,} compiled, {crashes} crashes, {slow} slow", file=sys.stderr)
    finally:
        if runner is not None:
            runner.close()
    total = time.perf_counter() - start
    if args.save and longest[2]:
        args.save.mkdir(parents=True, exist_ok=True)
        (args.save / f"longest_{args.seed}.cnn").write_text(longest[2], encoding="utf-8", errors="replace")
    runs = ""
    if runner is not None:
        runs = "; generated modules imported, built and run: " + ", ".join(
            f"{n:,} {t}" for t, n in runner.runs.items()) + f" ({runner.seconds:.0f} s of processor time)"
    print(
        f"fuzz: {args.count:,} inputs (seed {args.seed}) in {total:.1f}s; {compiled:,} compiled and went"
        f" through {', '.join(gens)}; {args.count - compiled - crashes:,} rejected with CnnDslError;"
        f" {crashes} crashes; {slow} slower than {args.slow}s per 1,000 layers (slowest {slowest[0]:.3f}s;"
        f" longest input {longest[0]:.3f}s, {longest[1]:,} layers){runs}"
    )
    return 1 if crashes or slow else 0


if __name__ == "__main__":
    sys.exit(main())
