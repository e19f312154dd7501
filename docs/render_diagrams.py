"""Render the diagram of every spec in specs/ (and docs/examples/) into docs/diagrams/.

    python docs/render_diagrams.py                  # every specs/*.cnn and docs/examples/*.cnn
    python docs/render_diagrams.py specs/vgg16.cnn  # some specs
    python docs/render_diagrams.py --format png --out /tmp/diagrams

Writes ``<name>.svg`` (every layer, block calls as clusters) and, for specs that call blocks,
``<name>_collapsed.svg`` (each top-level block call as one node).  Needs Graphviz's ``dot``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import cnndsl  # noqa: E402
from cnndsl.backends import graphviz  # noqa: E402


def render_spec(spec: Path, out: Path, fmt: str = "svg") -> list[Path]:
    """The diagram(s) of one spec; returns the files written."""
    net = cnndsl.load(spec, import_path=[ROOT / "specs"])  # docs/examples import from specs/
    variants = [("", {})]
    if any(layer.calls for layer in net.layers):
        variants.append(("_collapsed", {"collapse": True}))
    written = []
    for suffix, options in variants:
        path = out / f"{spec.stem}{suffix}.{fmt}"
        path.write_bytes(graphviz.render(net, fmt, **options))
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "specs", nargs="*", type=Path, help="specs (default: specs/*.cnn and docs/examples/*.cnn)"
    )
    parser.add_argument(
        "--out", type=Path, default=ROOT / "docs" / "diagrams", help="output folder"
    )
    parser.add_argument("--format", choices=graphviz.FORMATS, default="svg")
    args = parser.parse_args(argv)
    specs = args.specs or [
        *sorted((ROOT / "specs").glob("*.cnn")),
        *sorted((ROOT / "docs" / "examples").glob("*.cnn")),
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        for spec in specs:
            for path in render_spec(spec, args.out, args.format):
                print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
    except cnndsl.CnnDslError as e:
        print(e.format(), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
