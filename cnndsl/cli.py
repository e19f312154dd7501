"""The ``cnndsl`` command.

    cnndsl check SPEC...                       validate specs
    cnndsl summary SPEC [--batch N] [--dtype D] [--format table|json|markdown|csv]
    cnndsl compile SPEC --target T [-o FILE]   T: keras, torch, json, dot, svg, png, pdf

Exit codes: 0 success, 1 errors in a spec, 2 usage errors (bad options, or a target whose
framework is not installed), 3 an internal error (a bug in cnndsl: please report it).  ``check`` and ``summary`` import neither TensorFlow nor PyTorch;
``compile`` imports only the back end its target needs.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

EXIT_OK, EXIT_SPEC, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3

TARGETS = ("keras", "torch", "json", "dot", "svg", "png", "pdf")
DTYPES = ("float32", "float16", "bfloat16")
FORMATS = ("table", "json", "markdown", "csv")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # usage errors exit with 2, as argparse does
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _directory(text: str) -> str:
    if not Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"not a directory: {text!r}")
    return text


def _input_size(text: str) -> tuple[str | None, tuple[int, ...]]:
    """``512x512x3`` or ``NAME=512x512x3`` (``10`` for a vector)."""
    name, _, size = text.rpartition("=")
    parts = size.lower().split("x")
    if not all(p.isdigit() and len(p) <= 30 for p in parts) or (name and not name.isidentifier()):
        raise argparse.ArgumentTypeError(
            f"not an input size: {text!r} (write HxWxC or N, e.g. 512x512x3, or NAME=HxWxC)"
        )
    return name or None, tuple(int(p) for p in parts)


def _spec_options(command: argparse.ArgumentParser) -> None:
    """Options of every command that loads a spec."""
    command.add_argument(
        "--import-path", action="append", default=[], type=_directory, metavar="DIR",
        help="also look up imports in DIR, and let them read .cnn files under it (repeatable)",
    )
    command.add_argument(
        "--input", action="append", default=[], type=_input_size, metavar="[NAME=]SIZE",
        help="analyse at another input size: 512x512x3, or NAME=SIZE for one of several inputs"
        " (repeatable)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="cnndsl",
        description="Compile .cnn architecture specs: check them, summarize their shapes,"
        " parameters, MACs, receptive fields and memory, and emit Keras, PyTorch or"
        " Graphviz.",
        epilog="Exit codes: 0 ok, 1 errors in the spec, 2 usage errors, 3 internal error.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    check = sub.add_parser("check", help="validate specs (exit 1 with located errors)")
    check.add_argument("specs", nargs="+", metavar="SPEC", help=".cnn file(s), or - for stdin")
    _spec_options(check)

    summary = sub.add_parser("summary", help="print shapes, parameters, MACs, receptive fields, memory")
    summary.add_argument("spec", metavar="SPEC", help=".cnn file, or - for stdin")
    _spec_options(summary)
    summary.add_argument("--batch", type=_positive, default=1, metavar="N", help="batch size for memory (default 1)")
    summary.add_argument("--dtype", choices=DTYPES, default="float32", help="element type for memory (default float32)")
    summary.add_argument("--format", choices=FORMATS, default="table", help="output format (default table)")

    compile_ = sub.add_parser("compile", help="emit a model (keras, torch), the IR (json) or a diagram")
    compile_.add_argument("spec", metavar="SPEC", help=".cnn file, or - for stdin")
    _spec_options(compile_)
    compile_.add_argument("--target", "-t", choices=TARGETS, required=True)
    compile_.add_argument("-o", "--output", metavar="FILE", help="write here instead of standard output")
    compile_.add_argument("--collapse", action="store_true", help="diagrams: draw each block call as one node")
    compile_.add_argument("--rankdir", choices=("TB", "LR"), default="TB", help="diagrams: layout direction")
    compile_.add_argument("--no-shapes", action="store_true", help="diagrams: no shapes on edges")
    compile_.add_argument("--params", action="store_true", help="diagrams: show parameter counts")
    return parser


def _version() -> str:
    from . import __version__

    return __version__


def _load(spec: str, args):
    from . import load, loads

    options = dict(import_path=args.import_path, input=_input_sizes(args.input))
    if spec == "-":
        from .elaborate.sources import read_stdin

        return loads(read_stdin(), "<stdin>", **options)
    return load(spec, **options)


def _input_sizes(given: list[tuple[str | None, tuple[int, ...]]]):
    """--input options as load() takes them: one size, or sizes by name."""
    if not given:
        return None
    if len(given) == 1 and given[0][0] is None:
        return given[0][1]
    if any(name is None for name, _ in given):
        raise _UsageError("name every input when you give several: --input NAME=SIZE")
    sizes = dict(given)
    if len(sizes) != len(given):
        raise _UsageError("an input is given two sizes")
    return sizes


class _UsageError(Exception):
    """A command line that cannot run (exit 2)."""


def _cmd_check(args) -> int:
    from .errors import CnnDslError

    status = EXIT_OK
    for spec in args.specs:
        try:
            net = _load(spec, args)
        except CnnDslError as e:
            print(e.format(), file=sys.stderr)
            status = EXIT_SPEC
            continue
        a = net.analysis
        outs = ", ".join("x".join(map(str, s)) for _, s in a.outputs)
        print(f"{spec}: ok ({len(net.layers)} layers, {a.total_params:,} parameters, output {outs})")
    return status


def _cmd_summary(args) -> int:
    net = _load(args.spec, args)
    sys.stdout.write(net.summary(batch_size=args.batch, dtype=args.dtype, format=args.format))
    return EXIT_OK


_FRAMEWORKS = {"keras": ("TensorFlow and Keras", "keras"), "torch": ("PyTorch", "torch")}


def _cmd_compile(args) -> int:
    net = _load(args.spec, args)
    target = args.target
    if target == "json":
        text: str | bytes = net.to_json() + "\n"
    elif target in ("keras", "torch"):
        try:
            backend = importlib.import_module(f".backends.{target}", __package__)
        except ImportError as e:
            framework, extra = _FRAMEWORKS[target]
            print(
                f"cnndsl: the {target} target needs {framework} ({e.name} is not installed):"
                f" pip install 'cnndsl[{extra}]'",
                file=sys.stderr,
            )
            return EXIT_USAGE
        text = backend.to_source(net)
    else:
        from .backends import graphviz as backend  # type: ignore[no-redef]

        options = dict(
            collapse=args.collapse, rankdir=args.rankdir, shapes=not args.no_shapes, params=args.params
        )
        text = backend.to_dot(net, **options) if target == "dot" else backend.render(net, target, **options)
    if args.output:
        path = Path(args.output)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8")
    elif isinstance(text, bytes):
        if sys.stdout.isatty():
            print(f"cnndsl: refusing to write {target.upper()} to a terminal; use -o FILE", file=sys.stderr)
            return EXIT_USAGE
        sys.stdout.buffer.write(text)
    else:
        sys.stdout.write(text)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from .errors import CnnDslError

    try:
        return {"check": _cmd_check, "summary": _cmd_summary, "compile": _cmd_compile}[args.command](args)
    except CnnDslError as e:
        print(e.format(), file=sys.stderr)
        return EXIT_SPEC
    except _UsageError as e:
        print(f"cnndsl: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except Exception as e:  # a bug in cnndsl: say so in one line, never a traceback
        print(
            f"cnndsl: internal error: {type(e).__name__}: {e}\n"
            "This is a bug in cnndsl; please report it with the spec that caused it.",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
