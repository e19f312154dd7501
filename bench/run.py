"""Benchmarks: cnndsl against the tools that build a model and run it, measured side by side.

    python bench/run.py                  # every section
    python bench/run.py cold warm scale  # some of them: startup scale targets warm large cold torch keras

Prints one table per section with the ratios the README quotes.  Nothing here asserts a time:
the test suite checks behaviour only.  Section `large` runs torchinfo on ResNet-152 at
1024x1024 with batch 32 (minutes of CPU, several GB of memory); it is skipped unless asked for.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PY = sys.executable
SPEC152 = ROOT / "specs" / "resnet152_torchvision.cnn"
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONWARNINGS": "ignore"}


def wall(cmd: list[str], repeat: int) -> float:
    """Median wall time of a command, in seconds."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run(cmd, cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def timed(fn, repeat: int, number: int = 1, clock=time.perf_counter) -> float:
    """Median time of one call of fn, in seconds (wall time, or another clock)."""
    times = []
    for _ in range(repeat):
        t0 = clock()
        for _ in range(number):
            fn()
        times.append((clock() - t0) / number)
    return statistics.median(times)


def cpu(fn, repeat: int) -> float:
    """The least processor time of one call of fn over ``repeat`` calls, in seconds: on a
    shared machine, the measure least moved by the other processes."""
    times = []
    for _ in range(repeat):
        t0 = time.process_time()
        fn()
        times.append(time.process_time() - t0)
    return min(times)


def table(title: str, rows: list[tuple[str, ...]], header: tuple[str, ...]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    print(f"\n## {title}\n")
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print("| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |")
    sys.stdout.flush()


# ------------------------------------------------------------------------------ sections


def cold(repeat: int) -> None:
    """Whole process, cold: what a user waits for at the shell."""
    ours = wall([PY, "-m", "cnndsl", "summary", str(SPEC152)], repeat)
    torchinfo = wall(
        [PY, "-c", "import torch, torchvision, torchinfo\n"
         "torchinfo.summary(torchvision.models.resnet152(), (1, 3, 224, 224))"],
        repeat,
    )
    keras = wall(
        [PY, "-c", "import keras\nkeras.applications.ResNet152(weights=None).summary()"], repeat
    )
    table(
        "Whole process, cold: ResNet-152 summary",
        [
            ("cnndsl summary specs/resnet152_torchvision.cnn", f"{ours:.2f} s", "1"),
            ("torch + torchvision + torchinfo.summary(resnet152(), (1, 3, 224, 224))", f"{torchinfo:.2f} s", f"{ours / torchinfo:.3f}"),
            ("keras.applications.ResNet152(weights=None).summary()", f"{keras:.2f} s", f"{ours / keras:.3f}"),
        ],
        ("command", "median wall time", "cnndsl / this"),
    )


def warm(repeat: int, large: bool) -> None:
    """In process, warm: the question asked again of an already loaded tool."""
    import torch
    import torchinfo
    import torchvision

    import cnndsl

    text = SPEC152.read_text()
    torch.set_num_threads(2)
    model = torchvision.models.resnet152().eval()
    rows = []
    cases = [("224x224, batch 1", 224, 1, repeat)]
    if large:
        cases.append(("1024x1024, batch 32", 1024, 32, 1))
    for label, size, batch, reps in cases:
        spec = text.replace("input 224x224x3", f"input {size}x{size}x3")

        def ours():
            net = cnndsl.loads(spec)
            net.analysis.memory(batch_size=batch)

        def info():
            with torch.no_grad():
                torchinfo.summary(model, (batch, 3, size, size), verbose=0, device="cpu")

        # Each is called once first (loading, caches; not the minutes-long large torchinfo
        # run), and cnndsl is timed after a pause: PyTorch's worker threads spin for a while
        # after a call and would share its core.
        ours()
        time.sleep(1)
        t_ours = timed(ours, 10 * repeat, number=5)
        if reps > 1:
            info()
        t_info = timed(info, reps)
        rows.append((label, f"{t_ours * 1000:.1f} ms", f"{t_info * 1000:.0f} ms", f"{t_info / t_ours:.0f}x"))
    table(
        "In process, warm: ResNet-152, parse + analysis against torchinfo.summary on the built model",
        rows,
        ("input", "cnndsl loads + analysis", "torchinfo.summary", "cnndsl faster by"),
    )


def synthetic(layers: int, residual: bool) -> str:
    lines = ["network synthetic", "input 64x64x16"]
    if residual:
        lines.append("block unit() { add { 3x3+1(S) conv 16 -> bn -> relu | identity } }")
        lines += ["unit()"] * (layers // 4)
    else:
        lines += ["3x3+1(S) conv 16 relu"] * layers
    return "\n".join(lines) + "\n"


def scale(repeat: int) -> None:
    """Parse + analysis must grow linearly with the number of layers.  Measured in CPU time
    (cnndsl runs on one thread): on a machine that other work shares, wall time measures the
    others too, and a ratio of two wall times can say anything."""
    import cnndsl

    rows = []
    for residual in (False, True):
        times = {}
        for n in (100, 1000, 10000):
            text = synthetic(n, residual)
            layers = len(cnndsl.loads(text).layers)
            times[n] = timed(lambda: cnndsl.loads(text), repeat, clock=time.process_time)
            rows.append(
                ("residual DAG" if residual else "plain stack", f"{layers:,}", f"{times[n] * 1000:.1f} ms",
                 f"{times[n] / times[1000]:.2f}" if n == 10000 else "")
            )
    table("Scaling: parse + analysis of synthetic specs (CPU time)", rows, ("spec", "layers", "time", "10k / 1k"))


SHAPES = {
    "plain stack": lambda n: "input 32x32x8\n" + "3x3+1(S) conv 8 relu\n" * n,
    "residual DAG": lambda n: "input 32x32x8\nblock unit() { add { 3x3+1(S) conv 8 -> bn -> relu | identity } }\n"
    + "unit()\n" * (n // 4),
    # the case, a 400-way concat after a long stack (quadratic in DOT, once), with the
    # concat's share of the layers kept (2%: 20 ways at 1,000 layers, 400 at 20,000) so that
    # both sizes are the same mix of layers and the ratio measures the growth alone
    "stack + n/50-way concat": lambda n: "input 32x32x8\n" + "3x3+1(S) conv 8 relu\n" * (n - n // 50)
    + "concat { " + " | ".join(["relu"] * (n // 50)) + " }\n",
}
COMMANDS = {
    "check": ["check"],
    "summary": ["summary"],
    "compile json": ["compile", "--target", "json"],
    "compile dot": ["compile", "--target", "dot"],
    "compile keras": ["compile", "--target", "keras"],
    "compile torch": ["compile", "--target", "torch"],
}


def targets(repeat: int) -> None:
    """Every command, from 1,000 to 20,000 layers: each must grow linearly (20x the layers, at
    most 25x the time).  The command line's own code, run in process on a spec file (parse,
    elaboration, analysis, then the output written to a string), timed in processor time (the
    least of ``repeat`` runs).  The targets svg, png and pdf are the DOT text drawn by Graphviz:
    the ``compile dot`` row is cnndsl's part of them; Graphviz's layout is not measured."""
    import contextlib
    import io
    import tempfile

    import cnndsl
    from cnndsl.cli import main as cli

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for shape, make in SHAPES.items():
            paths = {}
            for n in (1000, 20000):
                paths[n] = Path(tmp) / f"s{n}.cnn"
                paths[n].write_text(make(n))
            layers = {n: len(cnndsl.load(str(path)).layers) for n, path in paths.items()}
            for command, args in COMMANDS.items():
                def run(path):
                    with contextlib.redirect_stdout(io.StringIO()):
                        assert cli([*args[:1], str(path), *args[1:]]) == 0

                times = {n: cpu(lambda: run(path), repeat) for n, path in paths.items()}
                ratio = times[20000] / times[1000]
                rows.append((shape if command == "check" else "", command, f"{layers[1000]:,}",
                             f"{times[1000] * 1000:.0f} ms", f"{layers[20000]:,}", f"{times[20000]:.2f} s",
                             f"{ratio:.1f}" + ("" if ratio <= 25 else " (over 25)")))
    table("Scaling: every command, 1,000 to 20,000 layers", rows,
          ("spec", "command", "layers", "time", "layers", "time", "ratio"))


def startup(repeat: int) -> None:
    t = wall([PY, "-m", "cnndsl", "--help"], repeat)
    t_script = wall([str(Path(PY).with_name("cnndsl")), "--help"], repeat)
    table("Start-up", [("python -m cnndsl --help", f"{t:.3f} s"), ("cnndsl --help", f"{t_script:.3f} s")],
          ("command", "median wall time"))


def _load_module(source: str, name: str):
    """Execute generated source as a module, as a user running the compiled file would."""
    import types

    module = types.ModuleType(name)
    exec(compile(source, f"<{name}>", "exec"), module.__dict__)
    return module


def _interleaved(fns: dict, repeat: int, number: int) -> dict:
    """Median seconds per call of each function, measured in alternation so that drifts in
    machine load hit every contender alike."""
    times: dict = {k: [] for k in fns}
    for _ in range(repeat):
        for key, fn in fns.items():
            t0 = time.perf_counter()
            for _ in range(number):
                fn()
            times[key].append((time.perf_counter() - t0) / number)
    return {k: statistics.median(v) for k, v in times.items()}


def models_torch(repeat: int) -> None:
    """The emitted PyTorch ResNet-50 against torchvision's, forward pass in eval mode."""
    import torch
    import torchvision

    import cnndsl
    from cnndsl.backends.torchvision_map import load_torchvision

    torch.set_num_threads(os.cpu_count() or 1)
    net = cnndsl.load(ROOT / "specs" / "resnet50_torchvision.cnn")
    ours = _load_module(net.to_source("torch"), "resnet50_cnndsl").build_model().eval()
    reference = torchvision.models.resnet50().eval()
    ours._cnndsl_network = net
    load_torchvision(ours, reference)
    x = torch.randn(8, 3, 224, 224)
    with torch.inference_mode():
        assert torch.allclose(ours(x), reference(x), atol=1e-4)
        for m in (ours, reference):  # warm up
            m(x)
        t = _interleaved({"ours": lambda: ours(x), "ref": lambda: reference(x)}, repeat, 2)
    rows = [
        ("torchvision.models.resnet50", f"{t['ref'] * 1000:.0f} ms", "1.000"),
        ("cnndsl compile specs/resnet50_torchvision.cnn --target torch", f"{t['ours'] * 1000:.0f} ms",
         f"{t['ours'] / t['ref']:.3f}"),
    ]
    table("Emitted PyTorch model: ResNet-50 forward, eval, CPU, batch 8, 224x224", rows,
          ("model", "median time", "ratio to torchvision"))
    for label, make in (("torch.compile(fullgraph=True)", lambda: torch.compile(ours, fullgraph=True)),
                        ("torch.export.export", None)):
        try:
            if make is None:
                torch.export.export(ours, (x[:1],))
            else:
                with torch.inference_mode():
                    make()(x[:1])
            print(f"- {label}: works, no graph break")
        except Exception as e:  # noqa: BLE001 - report, do not crash the benchmark
            print(f"- {label}: FAILED ({type(e).__name__}: {str(e).splitlines()[0][:120]})")


def models_keras(repeat: int) -> None:
    """The emitted Keras ResNet-50 against keras.applications.ResNet50: build and forward."""
    import keras
    import numpy as np

    import cnndsl

    import gc

    net = cnndsl.load(ROOT / "specs" / "resnet50_keras.cnn")
    module = _load_module(net.to_source("keras"), "resnet50_keras_cnndsl")

    def fresh(build):  # each build in a clean Keras session, as a new process would
        def run():
            keras.backend.clear_session()
            gc.collect()
            t0 = time.perf_counter()
            build()
            return time.perf_counter() - t0

        return run

    contenders = {"ours": fresh(module.build_model),
                  "ref": fresh(lambda: keras.applications.ResNet50(weights=None))}
    for run in contenders.values():  # warm up both: the first build pays for TF's start
        run()
    times: dict = {"ours": [], "ref": []}
    for i in range(max(7, repeat)):  # alternate who goes first
        for key in (("ours", "ref") if i % 2 == 0 else ("ref", "ours")):
            times[key].append(contenders[key]())
    builds = {k: statistics.median(v) for k, v in times.items()}
    keras.backend.clear_session()
    ours, reference = module.build_model(), keras.applications.ResNet50(weights=None)
    x = np.random.default_rng(0).standard_normal((8, 224, 224, 3)).astype("float32")
    for m in (ours, reference):
        m.predict_on_batch(x)  # trace once
    t = _interleaved({"ours": lambda: ours(x, training=False), "ref": lambda: reference(x, training=False)},
                     repeat, 2)
    rows = [
        ("build: keras.applications.ResNet50(weights=None)", f"{builds['ref'] * 1000:.0f} ms", "1.000"),
        ("build: generated build_model()", f"{builds['ours'] * 1000:.0f} ms", f"{builds['ours'] / builds['ref']:.3f}"),
        ("forward: keras.applications.ResNet50", f"{t['ref'] * 1000:.0f} ms", "1.000"),
        ("forward: generated resnet50_keras", f"{t['ours'] * 1000:.0f} ms", f"{t['ours'] / t['ref']:.3f}"),
    ]
    table("Emitted Keras model: ResNet-50, CPU, batch 8, 224x224", rows,
          ("what", "median time", "ratio to keras.applications"))


SECTIONS = ("cold", "warm", "large", "scale", "targets", "startup", "torch", "keras")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # (choices= with nargs="*" refuses no argument at all in Python 3.11: checked here)
    parser.add_argument("sections", nargs="*", metavar="SECTION", help=", ".join(SECTIONS))
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    unknown = [s for s in args.sections if s not in SECTIONS]
    if unknown:
        parser.error(f"unknown section {unknown[0]!r}: choose from {', '.join(SECTIONS)}")
    chosen = args.sections or [s for s in SECTIONS if s != "large"]
    print(f"# cnndsl benchmarks ({os.cpu_count()} CPUs, Python {sys.version.split()[0]})")
    if "startup" in chosen:
        startup(args.repeat)
    if "scale" in chosen:
        scale(args.repeat)
    if "targets" in chosen:
        targets(max(3, args.repeat // 2))
    if "warm" in chosen or "large" in chosen:
        warm(args.repeat, "large" in chosen)
    if "cold" in chosen:
        cold(max(3, args.repeat // 2))
    if "torch" in chosen:
        models_torch(args.repeat)
    if "keras" in chosen:  # TensorFlow after torch and torchvision: the import-order hazard
        models_keras(args.repeat)


if __name__ == "__main__":
    main()
