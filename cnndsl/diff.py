"""What changed between two networks: ``cnndsl diff a.cnn b.cnn``.

:func:`compare` lines up the rows of two networks -- the block calls ``depth`` levels deep and
the layers around them, as ``cnndsl summary --depth`` shows them (or every layer) -- by their
names and types, in order (``difflib``'s longest matching runs, so an inserted layer does not
shift the rest), and compares their output shapes, parameters, MACs, memory and receptive
fields; :func:`render` prints the comparison, with the totals of both networks, as a table,
markdown or JSON.  Reads only the IR and its analysis.
"""

from __future__ import annotations

import difflib
import html
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic_core import to_json

from .analysis import DTYPE_BYTES
from .display import grouped, human, json_safe
from .ir.base import fmt_shape
from .report import CONVENTIONS, Row, View, block_rows, layer_rows, layout

if TYPE_CHECKING:
    from .ir import Network

__all__ = ["FORMATS", "Comparison", "Pair", "compare", "render"]

FORMATS = ("table", "markdown", "json")
ARROW = " → "


@dataclass(frozen=True, slots=True)
class Pair:
    """One row of the comparison: a row of ``a``, of ``b``, or of both."""

    status: str  # "same", "changed", "added" (only in b), "removed" (only in a)
    a: Row | None
    b: Row | None


@dataclass(frozen=True, slots=True)
class Comparison:
    """Two networks side by side."""

    a: Network
    b: Network
    totals: list[tuple[str, Any, Any]]  # (what, in a, in b): numbers, or text
    pairs: list[Pair]
    view: View
    depth: int | None


def compare(
    a: Network,
    b: Network,
    batch_size: int = 1,
    dtype: str = "float32",
    *,
    depth: int | None = 1,
    convention: str = "keras",
) -> Comparison:
    """Compare ``a`` with ``b``: their totals, and their rows (block calls ``depth`` levels
    deep, or every layer with ``depth=None``)."""
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown convention {convention!r}; choose one of {', '.join(CONVENTIONS)}")
    view = View(convention, DTYPE_BYTES[dtype] * batch_size)
    rows = []
    for net in (a, b):
        rows.append(layer_rows(net.analysis) if depth is None else block_rows(net.analysis, depth))
    totals = _totals(a, b, batch_size, dtype, convention)
    return Comparison(a, b, totals, _align(*rows), view, depth)


def _totals(a: Network, b: Network, batch_size: int, dtype: str, convention: str) -> list:
    facts = []
    for net in (a, b):
        an = net.analysis
        m = an.memory(batch_size, dtype)
        params = an.trainable_params if convention == "torch" else an.total_params
        facts.append(
            {
                "Layers": len(net.layers),
                "Parameters": params,
                "Trainable parameters": an.trainable_params,
                ("Buffers" if convention == "torch" else "Non-trainable parameters"): an.non_trainable_params,
                "MACs": an.macs,
                "Parameter memory": m.params_bytes,
                "Inference peak memory": m.inference_peak_bytes,
                "Training memory": m.training_bytes,
                **{f"Output {name}": shape for name, shape in an.outputs},
                "Receptive field before the head": _last_local_field(an),
            }
        )
    fa, fb = facts
    keys = list(dict.fromkeys([*fa, *fb]))  # a's, then b's other outputs ...
    keys.remove("Receptive field before the head")  # ... then the field, last
    keys.append("Receptive field before the head")
    return [(k, fa.get(k), fb.get(k)) for k in keys]


def _last_local_field(analysis) -> str | None:
    """The receptive field of the last node whose field is not global: what a classifier's
    features see before global pooling or flatten (ResNet-50: 483/32/241)."""
    for info in reversed(list(analysis)):
        rf = info.receptive_field
        if rf is not None and not rf.is_global:
            return rf.short()
    return None


def _key(row: Row) -> tuple[str, str]:
    return row.name, row.type


def _facts(row: Row) -> tuple:
    rf = row.receptive_field
    return (row.type, row.output_shape, row.trainable, row.non_trainable, row.macs,
            row.output_elements, tuple(rf) if rf is not None else None, row.level)


def _align(rows_a: list[Row], rows_b: list[Row]) -> list[Pair]:
    """Rows of a and b lined up: by name and type where they match, in order; otherwise rows
    of one type in a replaced run are paired in order (a renamed or changed row), and the
    others are added or removed."""
    matcher = difflib.SequenceMatcher(None, [_key(r) for r in rows_a], [_key(r) for r in rows_b], autojunk=False)
    pairs: list[Pair] = []
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            for ra, rb in zip(rows_a[i1:i2], rows_b[j1:j2]):
                pairs.append(Pair("same" if _facts(ra) == _facts(rb) else "changed", ra, rb))
            continue
        left, right = rows_a[i1:i2], rows_b[j1:j2]
        i = j = 0
        while i < len(left) or j < len(right):
            if i < len(left) and j < len(right) and left[i].type == right[j].type:
                pairs.append(Pair("changed", left[i], right[j]))
                i += 1
                j += 1
            elif j < len(right) and (i >= len(left) or not any(r.type == right[j].type for r in left[i:])):
                pairs.append(Pair("added", None, right[j]))
                j += 1
            else:
                pairs.append(Pair("removed", left[i], None))
                i += 1
    return pairs


# ------------------------------------------------------------------------------ output


def render(
    a: Network,
    b: Network,
    batch_size: int = 1,
    dtype: str = "float32",
    format: str = "table",
    *,
    depth: int | None = 1,
    convention: str = "keras",
    every_row: bool = False,
    width: int | None = None,
) -> str:
    """The comparison as ``cnndsl diff`` prints it: ``table``, ``markdown`` or ``json``.
    Tables list the rows that differ (``every_row``: every row)."""
    if format not in FORMATS:
        raise ValueError(f"unknown format {format!r}; choose one of {', '.join(FORMATS)}")
    c = compare(a, b, batch_size, dtype, depth=depth, convention=convention)
    if format == "json":
        return to_json(json_safe(as_dict(c)), indent=2).decode() + "\n"
    headers, cells = _row_cells(c, every_row)
    counts = {s: sum(p.status == s for p in c.pairs) for s in ("changed", "added", "removed", "same")}
    what = "every layer" if depth is None else f"block calls {depth} level{'s' * (depth > 1)} deep"
    summary = (
        f"Rows ({what}): {counts['changed']} changed, {counts['added']} added,"
        f" {counts['removed']} removed, {counts['same']} the same"
        + ("" if every_row or not counts["same"] else " (not shown)")
    )
    sides = [f'a = "{a.name}" ({_file(a)})', f'b = "{b.name}" ({_file(b)})']
    total_cells = [[what, _text(va), _text(vb), _change(va, vb)] for what, va, vb in c.totals]
    total_headers = ["", "a", "b", "Change"]
    if format == "markdown":
        return _markdown(sides, total_headers, total_cells, headers, cells, summary)
    title = f"Diff: {sides[0]}\n      {sides[1]}"
    first = layout(title, total_headers, total_cells, [False, True, True, True], ["", "", "", ""], [], width)
    if not cells:
        return first + f" {summary}\n"
    second = layout(None, headers, cells, [False, False, True, True, True, False],
                    ["name", "arrow", "arrow", "arrow", "arrow", "arrow"], [summary], width)
    return first + second


def _file(net: Network) -> str:
    first = net.layers[0].position if net.layers else None
    return first.file if first is not None else "?"


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, int):
        return fmt_shape(value) if isinstance(value, tuple) else str(value)
    return grouped(value)


def _change(a: Any, b: Any) -> str:
    if a == b:
        return ""
    if isinstance(a, int) and isinstance(b, int) and not isinstance(a, bool):
        delta = b - a
        sign = "+" if delta > 0 else "-"
        text = f"{sign}{grouped(abs(delta))}"
        if a:
            percent = _percent(abs(delta), abs(a))
            text += f" ({sign}{percent})"
        return text
    return "changed"


def _percent(part: int, whole: int) -> str:
    """part / whole as a percentage with one decimal, in integers (any size)."""
    tenths = (part * 1000 * 2 + whole) // (2 * whole)
    return f"{grouped(tenths // 10)}.{tenths % 10}%"


_ROW_HEADERS = ["Row (type)", "Output shape", "Param #", "MACs", "Memory", "RF size/stride/pad"]


def _row_cells(c: Comparison, every_row: bool) -> tuple[list[str], list[list[str]]]:
    view = c.view
    cells = []
    for p in c.pairs:
        if p.status == "same" and not every_row:
            continue
        values = [_row_values(r, view) if r is not None else None for r in (p.a, p.b)]
        row = p.b if p.b is not None else p.a
        name = f"{row.name} ({row.type})"
        if p.status == "changed" and p.a.name != p.b.name:
            name = f"{p.a.name}{ARROW}{p.b.name} ({row.type})"
        mark = {"added": "+ ", "removed": "- ", "changed": "~ ", "same": "  "}[p.status]
        line = ["  " * row.level + mark + name]
        for k in range(len(_ROW_HEADERS) - 1):
            va, vb = (v[k] if v is not None else None for v in values)
            line.append(vb if va is None else va if vb is None or va == vb else f"{va}{ARROW}{vb}")
        cells.append(line)
    return _ROW_HEADERS, cells


def _row_values(r: Row, view: View) -> list[str]:
    params = r.trainable if view.convention == "torch" else r.trainable + r.non_trainable
    rf = r.receptive_field.short() if r.receptive_field is not None else "-"
    return [fmt_shape(r.output_shape), grouped(params), grouped(r.macs),
            human(r.output_elements * view.bytes_each, "B"), rf]


def _markdown(sides, total_headers, total_cells, headers, cells, summary) -> str:
    def esc(cell: str) -> str:
        return html.escape(cell, quote=False).replace("|", "\\|")

    def table(head, body, right) -> list[str]:
        out = ["| " + " | ".join(esc(h) for h in head) + " |"]
        out.append("|" + "|".join("---:" if r else "---" for r in right) + "|")
        for line in body:
            stripped = line[0].lstrip(" ")
            first = "&nbsp;" * (len(line[0]) - len(stripped)) + esc(stripped)
            out.append("| " + " | ".join([first, *map(esc, line[1:])]) + " |")
        return out

    out = ["### Diff", "", *(f"- {esc(side)}" for side in sides), ""]
    out += table(total_headers, total_cells, [False, True, True, True])
    out += ["", f"{esc(summary)}", ""]
    if cells:
        out += table(headers, cells, [False, False, True, True, True, False])
    return "\n".join(out) + "\n"


def as_dict(c: Comparison) -> dict:
    """The object ``cnndsl diff --format json`` prints."""
    view = c.view

    def side(row: Row | None) -> dict | None:
        if row is None:
            return None
        rf = row.receptive_field
        return {
            "name": row.name,
            "output_shape": list(row.output_shape),
            "params": row.trainable + row.non_trainable,
            "trainable_params": row.trainable,
            "non_trainable_params": row.non_trainable,
            "macs": row.macs,
            "output_bytes": row.output_elements * view.bytes_each,
            "receptive_field": rf.as_dict() if rf is not None else None,
        }

    def value(v: Any) -> Any:
        return list(v) if isinstance(v, tuple) else v

    return {
        "a": {"name": c.a.name, "file": _file(c.a)},
        "b": {"name": c.b.name, "file": _file(c.b)},
        "convention": view.convention,
        "depth": c.depth,
        "totals": [
            {"what": what, "a": value(va), "b": value(vb),
             "change": vb - va if isinstance(va, int) and isinstance(vb, int) else None}
            for what, va, vb in c.totals
        ],
        "rows": [
            {
                "status": p.status,
                "name": (p.b or p.a).name,
                "type": (p.b or p.a).type,
                "level": (p.b or p.a).level,
                "a": side(p.a),
                "b": side(p.b),
            }
            for p in c.pairs
        ],
    }

