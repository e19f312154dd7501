"""The ``cnndsl`` command.

    cnndsl check SPEC...                       validate specs
    cnndsl summary SPEC [--batch N] [--dtype D] [--format table|json|markdown|csv]
                        [--columns LIST] [--depth N] [--width N] [--convention keras|torch]
    cnndsl diff A B [--format table|markdown|json] [--depth N | --layers] [--all]
    cnndsl compile SPEC --target T [-o FILE] [--logits]   T: keras, torch, json, dot, svg, png, pdf

Exit codes: 0 success, 1 errors in a spec, 2 usage errors (bad options, an output that cannot
be written, or a target whose framework is not installed), 3 an internal error (a bug in
cnndsl: please report it).  ``check``, ``summary`` and ``diff`` import neither TensorFlow nor
PyTorch; ``compile`` imports only the back end its target needs.
"""

from __future__ import annotations

import argparse
import io
import os
import re
import secrets
import shutil
import stat
import sys
from pathlib import Path

from . import report
from .diff import FORMATS as DIFF_FORMATS
from .display import grouped, printable

EXIT_OK, EXIT_SPEC, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3


# A value quoted in a usage error longer than this is shown by its two ends.
_SHOWN_VALUE = 100
_QUOTED = re.compile(r"'[^'\n]*'|\"[^\"\n]*\"")


def _shortened(message: str) -> str:
    """``message`` with each quoted value of more than _SHOWN_VALUE characters cut to its first
    60 and last 30 (an option's value of 5,000 characters was echoed whole, by argparse and by
    the checks of this module alike)."""

    def cut(match: re.Match) -> str:
        quote, text = match[0][0], match[0][1:-1]
        if len(text) <= _SHOWN_VALUE:
            return match[0]
        return f"{quote}{text[:60]}...{text[-30:]}{quote} ({len(text):,} characters)"

    return _QUOTED.sub(cut, message)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # usage errors exit with 2, as argparse does
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {_shortened(message)}\n")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:  # also past Python's 4,300 digits: no batch is that large
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _natural(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must be at least 0")
    return value


def _columns(text: str) -> list[str]:
    keys = [k.strip() for k in text.split(",") if k.strip()]
    known = [c.key for c in report.COLUMNS]
    for k in keys:
        if k not in known:
            raise argparse.ArgumentTypeError(f"unknown column {k!r}; choose from {','.join(known)}")
    if not keys:
        raise argparse.ArgumentTypeError("name at least one column")
    return keys


def _directory(text: str) -> str:
    if not os.path.isdir(text):  # (False for a name too long, where Path.is_dir raises)
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
    summary.add_argument("--dtype", choices=report.DTYPES, default="float32", help="element type for memory (default float32)")
    summary.add_argument("--format", choices=report.FORMATS, default="table", help="output format (default table)")
    summary.add_argument(
        "--columns", type=_columns, metavar="LIST",
        help="columns of the table, markdown and csv, comma-separated, from "
        + ",".join(c.key for c in report.COLUMNS),
    )
    summary.add_argument(
        "--depth", type=_positive, metavar="N",
        help="table and markdown: show block calls nested deeper than N as one row with their totals",
    )
    summary.add_argument(
        "--width", type=_natural, metavar="N",
        help="wrap the table to N columns (default: $COLUMNS, or the terminal's width; 0: no limit)",
    )
    summary.add_argument(
        "--convention", choices=report.CONVENTIONS, default="keras",
        help="keras: batch-norm statistics are non-trainable parameters; torch: they are buffers,"
        " and parameters are what model.parameters() holds (as torchinfo)",
    )

    diff = sub.add_parser(
        "diff", help="what changed between two specs: parameters, MACs, memory, receptive fields, shapes"
    )
    diff.add_argument("spec", metavar="A", help=".cnn file, or - for stdin")
    diff.add_argument("other", metavar="B", help=".cnn file, or - for stdin")
    _spec_options(diff)
    diff.add_argument("--batch", type=_positive, default=1, metavar="N", help="batch size for memory (default 1)")
    diff.add_argument("--dtype", choices=report.DTYPES, default="float32", help="element type for memory (default float32)")
    diff.add_argument("--format", choices=DIFF_FORMATS, default="table", help="output format (default table)")
    diff.add_argument(
        "--depth", type=_positive, default=1, metavar="N",
        help="compare block calls N levels deep as one row each (default 1: the network's own)",
    )
    diff.add_argument("--layers", action="store_true", help="compare every layer instead of block calls")
    diff.add_argument("--all", action="store_true", help="list the rows that did not change too")
    diff.add_argument("--width", type=_natural, metavar="N", help="as for summary")
    diff.add_argument("--convention", choices=report.CONVENTIONS, default="keras", help="as for summary")

    compile_ = sub.add_parser("compile", help="emit a model (keras, torch), the IR (json) or a diagram")
    compile_.add_argument("spec", metavar="SPEC", help=".cnn file, or - for stdin")
    _spec_options(compile_)
    compile_.add_argument("--target", "-t", choices=_targets(), required=True)
    compile_.add_argument("-o", "--output", metavar="FILE", help="write here instead of standard output")
    compile_.add_argument(
        "--logits", action="store_true",
        help="leave out the softmax (or sigmoid) the outputs end in: the model returns logits",
    )
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
    from .ir.base import fmt_shape

    status = EXIT_OK
    for spec in args.specs:
        try:
            net = _load(spec, args)
        except CnnDslError as e:
            print(e.format(), file=sys.stderr)
            status = EXIT_SPEC
            continue
        a = net.analysis
        outs = ", ".join(fmt_shape(s) for _, s in a.outputs)
        print(
            f"{printable(spec)}: ok ({grouped(len(net.layers))} layers,"
            f" {grouped(a.total_params)} parameters, output {outs})"
        )
    return status


def _cmd_summary(args) -> int:
    net = _load(args.spec, args)
    text = net.summary(
        args.batch, args.dtype, args.format, columns=args.columns, depth=args.depth,
        width=terminal_width(args.width), convention=args.convention,
    )
    sys.stdout.write(text)
    return EXIT_OK


def _cmd_diff(args) -> int:
    from .diff import render

    if args.spec == "-" and args.other == "-":
        raise _UsageError("only one of A and B can be standard input")
    a, b = _load(args.spec, args), _load(args.other, args)
    text = render(
        a, b, args.batch, args.dtype, args.format, depth=None if args.layers else args.depth,
        convention=args.convention, every_row=args.all, width=terminal_width(args.width),
    )
    sys.stdout.write(text)
    return EXIT_OK


def terminal_width(width: int | None) -> int | None:
    """The width to fit: ``--width`` (0: no limit), else ``$COLUMNS``, else the terminal's
    width when standard output is one; None (no limit) for a file or a pipe."""
    if width is not None:
        return width or None
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    if sys.stdout.isatty():
        return shutil.get_terminal_size().columns
    return None


def _targets() -> tuple[str, ...]:
    from .backends import TARGETS

    return tuple(TARGETS)


def _cmd_compile(args) -> int:
    from .backends import TARGETS, emit

    net = _load(args.spec, args)
    target = TARGETS[args.target]
    options = {}
    if target.diagram:
        options = dict(
            collapse=args.collapse, rankdir=args.rankdir, shapes=not args.no_shapes, params=args.params
        )
    try:
        text = emit(net, target.name, logits=args.logits, **options)
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
        problem = write_file(args.output, text.encode("utf-8") if isinstance(text, str) else text)
        if problem:
            print(f"cnndsl: {problem}", file=sys.stderr)
            return EXIT_USAGE
    elif isinstance(text, bytes):
        if sys.stdout.isatty():
            print(f"cnndsl: refusing to write {target.name.upper()} to a terminal; use -o FILE", file=sys.stderr)
            return EXIT_USAGE
        sys.stdout.buffer.write(text)
    else:
        sys.stdout.write(text)
    return EXIT_OK


def write_file(name: str, data: bytes) -> str | None:
    """Write ``data`` to the file ``name``, whole or not at all; None, or what went wrong.

    A regular file is written as a temporary file beside it, then renamed over it, so that a
    failure (a full disk) never leaves it half-written; it keeps the mode of the file it
    replaces.  A device or a pipe (``/dev/stdout``) is written as it is."""
    path = Path(name)
    shown = printable(name)
    try:
        if path.is_dir():
            return f"cannot write {shown}: it is a directory"
        if path.exists() and not path.is_file():
            with open(path, "wb") as f:
                f.write(data)
            return None
        target = path.resolve()  # through a symbolic link: replace the file it points to
        if not target.parent.is_dir():
            return f"cannot write {shown}: the directory {printable(str(path.parent))} does not exist"
        temporary = target.parent / f".{target.name}.{secrets.token_hex(4)}.tmp"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # mode: the umask's
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            if target.exists():
                os.chmod(temporary, stat.S_IMODE(target.stat().st_mode))
            os.replace(temporary, target)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
    except OSError as e:
        return f"cannot write {shown}: {e.strerror or e}"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from .errors import CnnDslError

    # Names with undecodable bytes reach standard output as they reach standard error.
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(errors="backslashreplace")
    try:
        status = {"check": _cmd_check, "summary": _cmd_summary, "diff": _cmd_diff, "compile": _cmd_compile}[args.command](args)
        sys.stdout.flush()  # here, where a full disk can still be reported
        return status
    except CnnDslError as e:
        print(e.format(), file=sys.stderr)
        return EXIT_SPEC
    except _UsageError as e:
        print(f"cnndsl: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_OK
    except OSError as e:
        if e.filename is not None:  # not standard output: a bug, as below
            return _internal(e)
        _silence_stdout()
        print(f"cnndsl: cannot write the output: {e.strerror or e}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as e:  # a bug in cnndsl: say so in one line, never a traceback
        return _internal(e)


def _internal(e: Exception) -> int:
    print(
        f"cnndsl: internal error: {type(e).__name__}: {e}\n"
        "This is a bug in cnndsl; please report it with the spec that caused it.",
        file=sys.stderr,
    )
    return EXIT_INTERNAL


def _silence_stdout() -> None:
    """Point standard output at /dev/null, so that the interpreter's last flush of what could
    not be written fails no more (Python's documented recipe for a closed pipe)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
