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
import sys
from pathlib import Path

EXIT_OK, EXIT_SPEC, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3

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

    summary = sub.add_parser("summary", help="print shapes, parameters, MACs, receptive fields, memory")
    summary.add_argument("spec", metavar="SPEC", help=".cnn file, or - for stdin")
    summary.add_argument("--batch", type=_positive, default=1, metavar="N", help="batch size for memory (default 1)")
    summary.add_argument("--dtype", choices=DTYPES, default="float32", help="element type for memory (default float32)")
    summary.add_argument("--format", choices=FORMATS, default="table", help="output format (default table)")

    compile_ = sub.add_parser("compile", help="emit a model (keras, torch), the IR (json) or a diagram")
    compile_.add_argument("spec", metavar="SPEC", help=".cnn file, or - for stdin")
    compile_.add_argument("--target", "-t", choices=_targets(), required=True)
    compile_.add_argument("-o", "--output", metavar="FILE", help="write here instead of standard output")
    compile_.add_argument("--collapse", action="store_true", help="diagrams: draw each block call as one node")
    compile_.add_argument("--rankdir", choices=("TB", "LR"), default="TB", help="diagrams: layout direction")
    compile_.add_argument("--no-shapes", action="store_true", help="diagrams: no shapes on edges")
    compile_.add_argument("--params", action="store_true", help="diagrams: show parameter counts")
    return parser


def _version() -> str:
    from . import __version__

    return __version__


def _load(spec: str):
    from . import load, loads

    if spec == "-":
        return loads(sys.stdin.read(), "<stdin>")
    return load(spec)


def _cmd_check(args) -> int:
    from .errors import CnnDslError

    status = EXIT_OK
    for spec in args.specs:
        try:
            net = _load(spec)
        except CnnDslError as e:
            print(e.format(), file=sys.stderr)
            status = EXIT_SPEC
            continue
        a = net.analysis
        outs = ", ".join("x".join(map(str, s)) for _, s in a.outputs)
        print(f"{spec}: ok ({len(net.layers)} layers, {a.total_params:,} parameters, output {outs})")
    return status


def _cmd_summary(args) -> int:
    net = _load(args.spec)
    sys.stdout.write(net.summary(batch_size=args.batch, dtype=args.dtype, format=args.format))
    return EXIT_OK


def _targets() -> tuple[str, ...]:
    from .backends import TARGETS

    return tuple(TARGETS)


def _cmd_compile(args) -> int:
    from .backends import TARGETS, emit

    net = _load(args.spec)
    target = TARGETS[args.target]
    options = {}
    if target.diagram:
        options = dict(
            collapse=args.collapse, rankdir=args.rankdir, shapes=not args.no_shapes, params=args.params
        )
    try:
        text = emit(net, target.name, **options)
    except ImportError as e:
        if target.framework is None:
            raise
        framework, extra = target.framework
        print(
            f"cnndsl: the {target.name} target needs {framework} ({e.name} is not installed):"
            f" pip install 'cnndsl[{extra}]'",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if args.output:
        path = Path(args.output)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8")
    elif isinstance(text, bytes):
        if sys.stdout.isatty():
            print(f"cnndsl: refusing to write {target.name.upper()} to a terminal; use -o FILE", file=sys.stderr)
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
