"""Fuzzing: random and mutated specs through parse -> analysis -> code generation.

    python -m cnndsl.fuzz --count 100000 [--seed 0] [--targets json,dot,keras,torch]

Inputs come from three sources: specs generated at random from the language (layers with
random options, blocks, branches, named tensors, repeats, outputs marked ``(training)``), the
example lines of every layer kind (:func:`cnndsl.ir.examples.example_lines`, alone, inside
generated specs, and followed by random layers), and mutations of both and of the zoo (tokens
deleted, duplicated, swapped or replaced by odd values; lines shuffled; bytes inserted).  Each
input goes through :func:`cnndsl.loads` and, when it compiles, through every requested code
generator.  The only exception allowed out is :class:`cnndsl.CnnDslError`; anything else, or an
input taking more than ``--slow`` seconds, is a finding.  The run prints what it tried and
exits 1 if it found anything.  ``tests/test_fuzz.py`` runs the same generators under
hypothesis, bounded in time.
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import time
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
# tensor names that generated code must not confuse with its own names, and Python keywords
TRICKY_NAMES = ["x", "F", "nn", "torch", "keras", "layers", "inputs", "self", "out", "branch1",
                "build_model", "model", "name", "super", "forward", "math", "print"]
ODD_VALUES = ["class", "def", "lambda", "None", "True",
"0", "-1", "1", "3", "99999999999999", "1e9", "0.5", '"s"', "x", "()", "[]", "same", "relu"]


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
    """A spec drawn at random from the language: often valid, sometimes not."""
    h, w = rng.choice([(32, 32), (64, 64), (33, 31), (224, 224), (7, 5), (1, 1)])
    lines = [f"network fuzz{rng.randint(0, 99)}", f"input {h}x{w}x{rng.choice([1, 3, 4])}"]
    if rng.random() < 0.3:
        lines.append("defaults conv kernel=3 padding=same activation=relu")
    if rng.random() < 0.4:
        lines.append(
            f"block unit(f, s=1) {{ conv f kernel=3 stride=s padding=same -> {_chain(rng, 2)} }}"
        )
        lines.append(f"u = unit({rng.choice([4, 8])})")
    names = []
    for i in range(rng.randint(1, 8)):
        chain = _chain(rng, 0)
        if rng.random() < 0.3:
            name = rng.choice(TRICKY_NAMES) if rng.random() < 0.3 else f"t{i}"
            names.append(name)
            lines.append(f"{name} = {chain}")
        elif names and rng.random() < 0.2:
            lines.append(f"{rng.choice(['concat', 'add'])}({rng.choice(names)})")
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


def check(text: str, gens: dict) -> bool:
    """Compile one input and generate code from it; only CnnDslError may escape.

    Returns whether the input compiled.
    """
    try:
        net = loads(text, "<fuzz>")
    except CnnDslError as e:
        str(e)  # formatting the message must not fail either
        return False
    for gen in gens.values():
        try:
            gen(net)
        except CnnDslError as e:  # a back end may refuse a layer, with a located error
            str(e)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cnndsl.fuzz", description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--slow", type=float, default=1.0, help="seconds above which an input is a finding")
    parser.add_argument("--targets", default="json,summary,dot,keras,torch",
                        help="code generators to run (json, summary, dot, keras, torch)")
    parser.add_argument("--save", type=Path, help="write failing inputs into this directory")
    args = parser.parse_args(argv)
    try:
        gens = generators([t for t in args.targets.split(",") if t])
    except ValueError as e:
        parser.error(str(e))
    rng = random.Random(args.seed)
    seeds = zoo_sources()
    compiled = crashes = slow = 0
    slowest = (0.0, "")
    start = time.perf_counter()
    for i in range(args.count):
        text = generate(rng, seeds)
        t0 = time.perf_counter()
        try:
            ok = check(text, gens)
        except Exception as e:  # a finding: anything but CnnDslError
            crashes += 1
            print(f"CRASH #{i}: {type(e).__name__}: {e}\n--- input ---\n{text}\n-------------", file=sys.stderr)
            if args.save:
                args.save.mkdir(parents=True, exist_ok=True)
                (args.save / f"crash_{args.seed}_{i}.cnn").write_text(text, encoding="utf-8", errors="replace")
            continue
        elapsed = time.perf_counter() - t0
        if elapsed > slowest[0]:
            slowest = (elapsed, text)
        if elapsed > args.slow:
            slow += 1
            print(f"SLOW #{i}: {elapsed:.2f}s\n--- input ---\n{text}\n-------------", file=sys.stderr)
        compiled += ok
        if (i + 1) % 1000 == 0:
            print(f"{i + 1:,} inputs, {compiled:,} compiled, {crashes} crashes, {slow} slow", file=sys.stderr)
    total = time.perf_counter() - start
    print(
        f"fuzz: {args.count:,} inputs (seed {args.seed}) in {total:.1f}s; {compiled:,} compiled and went"
        f" through {', '.join(gens)}; {args.count - compiled - crashes:,} rejected with CnnDslError;"
        f" {crashes} crashes; {slow} slower than {args.slow}s (slowest {slowest[0]:.3f}s)"
    )
    return 1 if crashes or slow else 0


if __name__ == "__main__":
    sys.exit(main())
