"""Summaries of an analysed network: table (like Keras's ``model.summary()``), markdown, csv,
json, and HTML for notebooks.  Reads only the IR and its analysis.

Every per-layer figure is a :class:`Column` of :data:`COLUMNS` -- its name for ``columns=``, its
header, its alignment, the text of its cells and the fields it gives to JSON and CSV -- and
every formatter reads that one table: adding a column is adding an entry.

Rows are the network's nodes or, with ``depth=N``, block calls shown as one row with their
totals (:func:`block_rows`).  The table fits a width by wrapping the cells that can wrap (names
at ``_``, input lists after commas, headers at spaces); CSV and JSON always give everything.
"""

from __future__ import annotations

import csv
import html
import io
import textwrap
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from pydantic_core import to_json

from .analysis import DTYPE_BYTES, Analysis, ReceptiveField
from .analysis.memory import Memory
from .display import grouped, human, int_text, json_safe
from .ir.base import Shape, fmt_shape

if TYPE_CHECKING:
    from .ir import Network

__all__ = ["COLUMNS", "CONVENTIONS", "DTYPES", "FORMATS", "Column", "Row", "Summary", "render"]

FORMATS = ("table", "markdown", "csv", "json")
CONVENTIONS = ("keras", "torch")
"""How tables count parameters: ``keras`` counts batch norm's moving mean and variance as
non-trainable parameters; ``torch`` counts only parameters (all trainable) and shows the
statistics as buffers, as torchinfo and ``model.parameters()`` do."""
DTYPES = tuple(DTYPE_BYTES)
UNITS = "Units are decimal: K = 10^3, M = 10^6, G = 10^9; 1 MB = 10^6 bytes (as torchinfo's)"


# -------------------------------------------------------------------------------- rows


@dataclass(frozen=True, slots=True)
class Row:
    """One row of a summary: a node, or a block call shown as one row (``depth``)."""

    name: str
    type: str
    kind: str  # the layer kind, or "block"
    notation: str  # the layer in the spec's notation, or the call as written
    output_shape: Shape
    trainable: int
    non_trainable: int
    macs: int
    output_elements: int  # of the node's output; of every node of a call
    receptive_field: ReceptiveField | None
    file: str | None
    line: int | None
    inputs: tuple[str, ...]  # the rows it reads
    blocks: tuple[str, ...]  # the block calls it is in, outermost first
    level: int = 0  # how deep it is nested among the rows shown


@dataclass(frozen=True, slots=True)
class View:
    """What cells depend on besides their row."""

    convention: str = "keras"
    bytes_each: int = 4  # bytes of one element, for the whole batch


def _row(info, inputs: tuple[str, ...], level: int = 0) -> Row:
    layer = info.layer
    pos = layer.position
    return Row(
        layer.name, layer.type_name, layer.kind, layer.notation(), info.output_shape,
        info.trainable_params, info.non_trainable_params, info.macs, info.output_elements,
        info.receptive_field, pos.file if pos else None, pos.line if pos else None, inputs,
        tuple(c.instance for c in layer.calls), level,
    )


def layer_rows(analysis: Analysis) -> list[Row]:
    """One row per node, in order."""
    return [_row(info, info.layer.inputs) for info in analysis]


@dataclass
class _Call:
    site: Any  # the CallSite
    level: int
    outer: tuple[str, ...]
    trainable: int = 0
    non_trainable: int = 0
    macs: int = 0
    elements: int = 0
    last: Any = None  # the LayerInfo of its last node: its result
    nodes: set[str] = field(default_factory=set)
    reads: list[str] = field(default_factory=list)


def block_rows(analysis: Analysis, depth: int) -> list[Row]:
    """Rows nested at most ``depth`` levels deep (``depth`` >= 1).

    A block call at level ``depth`` (1: the calls the network itself makes) is one row with its
    totals: parameters, MACs, the memory of all its nodes, and the output shape and receptive
    field of its result (its last node).  A call above that level is such a row too, followed
    by what it contains, one level deeper.  A row's inputs are the rows that show them."""
    if depth < 1:
        raise ValueError("the depth must be at least 1")
    shown: dict[str, str] = {}  # node -> the row showing it
    calls: dict[str, _Call] = {}
    order: list[Any] = []  # LayerInfo (a node's own row) or _Call
    for info in analysis:
        layer = info.layer
        for level, site in enumerate(layer.calls[:depth]):
            call = calls.get(site.instance)
            if call is None:
                outer = tuple(c.instance for c in layer.calls[:level])
                call = calls[site.instance] = _Call(site, level, outer)
                order.append(call)
            call.trainable += info.trainable_params
            call.non_trainable += info.non_trainable_params
            call.macs += info.macs
            call.elements += info.output_elements
            call.last = info
            call.nodes.add(layer.name)
            call.reads.extend(layer.inputs)
        if len(layer.calls) >= depth:
            shown[layer.name] = layer.calls[depth - 1].instance
        else:
            shown[layer.name] = layer.name
            order.append(info)
    rows = []
    for item in order:
        if isinstance(item, _Call):
            site, last = item.site, item.last
            pos = site.position
            inputs = _distinct(shown[n] for n in item.reads if n not in item.nodes)
            rows.append(
                Row(
                    site.instance, site.block, "block", site.signature(), last.output_shape,
                    item.trainable, item.non_trainable, item.macs, item.elements,
                    last.receptive_field, pos.file if pos else None, pos.line if pos else None,
                    inputs, item.outer, item.level,
                )
            )
        else:
            inputs = _distinct(shown[n] for n in item.layer.inputs)
            rows.append(_row(item, inputs, len(item.layer.calls)))
    return rows


def _distinct(names: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(names))


# ----------------------------------------------------------------------------- columns


class Column(NamedTuple):
    """One per-row figure of a summary.

    key: its name in ``columns=`` (``--columns``)
    header: its table and markdown header (``{convention: header}`` where they differ)
    numeric: right-aligned (numbers)
    cell: its text in tables, for a row
    data: the fields it gives to each layer's JSON object, for a row
    csv: its CSV fields, when they are not ``data`` flattened (see :func:`_csv_value`)
    default: shown in tables unless ``columns=`` says otherwise ("dag": only when some node
        does not read the one before it)
    wrap: how a long cell wraps in a table: "name", "list" (see :data:`_WRAPS`), "" (never)
    """

    key: str
    header: str | dict[str, str]
    numeric: bool
    cell: Callable[[Row, View], str]
    data: Callable[[Row, View], dict[str, Any]]
    csv: Callable[[Row, View], dict[str, str]] | None = None
    default: bool | str = True
    wrap: str = ""

    def title(self, view: View) -> str:
        h = self.header
        return h if isinstance(h, str) else h[view.convention]


def _params(row: Row, view: View) -> int:
    return row.trainable if view.convention == "torch" else row.trainable + row.non_trainable


def _rf_csv(row: Row, view: View) -> dict[str, str]:
    d = row.receptive_field.as_dict() if row.receptive_field else None
    return {
        f"rf_{k}": _csv_value(d[k]) if d else ""
        for k in ("size", "stride", "padding", "global")
    }


COLUMNS: tuple[Column, ...] = (
    Column(
        "name", "Layer (type)", False,
        lambda r, v: f"{r.name} ({r.type})",
        lambda r, v: {"name": r.name, "kind": r.kind, "type": r.type, "notation": r.notation},
        wrap="name",
    ),
    Column(
        "shape", "Output shape", False,
        lambda r, v: fmt_shape(r.output_shape),
        lambda r, v: {"output_shape": list(r.output_shape)},
    ),
    Column(
        "params", "Param #", True,
        lambda r, v: grouped(_params(r, v)),
        lambda r, v: {"params": r.trainable + r.non_trainable},
    ),
    Column(
        "trainable", "Trainable", True,
        lambda r, v: grouped(r.trainable),
        lambda r, v: {"trainable_params": r.trainable},
        default=False,
    ),
    Column(
        "nontrainable", {"keras": "Non-trainable", "torch": "Buffers"}, True,
        lambda r, v: grouped(r.non_trainable),
        lambda r, v: {"non_trainable_params": r.non_trainable},
        default=False,
    ),
    Column(
        "macs", "MACs", True,
        lambda r, v: grouped(r.macs),
        lambda r, v: {"macs": r.macs},
    ),
    Column(
        "memory", "Memory", True,
        lambda r, v: human(r.output_elements * v.bytes_each, "B"),
        lambda r, v: {"output_bytes": r.output_elements * v.bytes_each},
        default=False,
    ),
    Column(
        "rf", "RF size/stride/pad", False,
        lambda r, v: r.receptive_field.short() if r.receptive_field else "-",
        lambda r, v: {"receptive_field": r.receptive_field.as_dict() if r.receptive_field else None},
        csv=_rf_csv,
    ),
    Column(
        "line", "Line", True,
        lambda r, v: str(r.line) if r.line is not None else "",
        lambda r, v: {"file": r.file, "line": r.line},
    ),
    Column(
        "connected", "Connected to", False,
        lambda r, v: ", ".join(r.inputs) or "-",
        lambda r, v: {"inputs": list(r.inputs)},
        default="dag",
        wrap="list",
    ),
    Column(
        "block", "Block", False,
        lambda r, v: r.blocks[-1] if r.blocks else "-",
        lambda r, v: {"block": list(r.blocks)},
        csv=lambda r, v: {"block": "/".join(r.blocks)},
        default=False,
        wrap="name",
    ),
)
"""Every column, in the order of tables, CSV and each layer's JSON object."""

_BY_KEY = {c.key: c for c in COLUMNS}


def choose_columns(keys: Iterable[str] | None, rows: list[Row]) -> list[Column]:
    """The columns a table shows: ``keys`` in their order, or the default ones."""
    if keys is not None:
        keys = list(keys)
        unknown = [k for k in keys if k not in _BY_KEY]
        if unknown:
            raise ValueError(
                f"unknown column {unknown[0]!r}; choose from {', '.join(_BY_KEY)}"
            )
        return [_BY_KEY[k] for k in keys]
    chain = all(
        r.inputs == ((prev.name,) if prev is not None else ())
        for prev, r in zip([None, *rows[:-1]], rows)
    )
    return [c for c in COLUMNS if c.default is True or (c.default == "dag" and not chain)]


def _csv_value(value: Any) -> str:
    """A JSON value as one CSV cell: shapes and pairs ``224x224x3``, lists of names
    space-separated, booleans ``true``/``false``."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return int_text(value)
    if isinstance(value, list):
        if all(isinstance(v, str) for v in value):
            return " ".join(value)
        return "x".join(_csv_value(v) for v in value)
    return str(value)


# ------------------------------------------------------------------------------ render


def render(
    net: Network,
    batch_size: int = 1,
    dtype: str = "float32",
    format: str = "table",
    *,
    columns: Iterable[str] | None = None,
    depth: int | None = None,
    width: int | None = None,
    convention: str = "keras",
) -> str:
    """The summary as text; see :meth:`cnndsl.Network.summary`."""
    if format not in FORMATS:
        raise ValueError(f"unknown format {format!r}; choose one of {', '.join(FORMATS)}")
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown convention {convention!r}; choose one of {', '.join(CONVENTIONS)}")
    analysis = net.analysis
    memory = analysis.memory(batch_size, dtype)
    view = View(convention, DTYPE_BYTES[dtype] * batch_size)
    if format == "json":
        # pydantic-core writes integers of any size, where json.dumps stops at 4,300 digits
        return to_json(json_safe(as_dict(net, analysis, memory)), indent=2).decode() + "\n"
    rows = layer_rows(analysis) if depth is None or format == "csv" else block_rows(analysis, depth)
    shown = choose_columns(columns, rows)
    if format == "csv":
        return _csv(rows, shown if columns is not None else COLUMNS, view)
    totals = _totals(analysis, memory, convention)
    if format == "markdown":
        return _markdown(net.name, rows, shown, view, totals)
    return _table(net.name, rows, shown, view, totals, width)


def cells(
    net: Network,
    batch_size: int = 1,
    dtype: str = "float32",
    *,
    columns: Iterable[str] | None = None,
    depth: int | None = None,
    convention: str = "keras",
) -> tuple[list[str], list[list[str]], list[str]]:
    """The summary as text cells, for other renderers (the Sphinx directive): the headers,
    one list of cells per row (nested rows indented with spaces), and the totals lines."""
    analysis = net.analysis
    memory = analysis.memory(batch_size, dtype)
    view = View(convention, DTYPE_BYTES[dtype] * batch_size)
    rows = layer_rows(analysis) if depth is None else block_rows(analysis, depth)
    shown = choose_columns(columns, rows)
    headers = [c.title(view) for c in shown]
    return headers, _cells(rows, shown, view), _totals(analysis, memory, convention)


def as_dict(net: Network, analysis: Analysis, memory: Memory) -> dict:
    """The object ``cnndsl summary --format json`` prints."""
    view = View("keras", DTYPE_BYTES[memory.dtype] * memory.batch_size)
    return {
        "name": net.name,
        "inputs": [_input_dict(x) for x in net.inputs],
        "outputs": [{"name": name, "shape": list(shape)} for name, shape in analysis.outputs],
        "params": {
            "trainable": analysis.trainable_params,
            "non_trainable": analysis.non_trainable_params,
            "total": analysis.total_params,
        },
        "macs": analysis.macs,
        "memory": memory.as_dict(),
        **_inference_dict(net, analysis),
        "layers": [_fields(row, view) for row in layer_rows(analysis)],
    }


def _input_dict(layer) -> dict:
    """An input's name and shape, and which of its height and width the spec leaves open."""
    d = {"name": layer.name, "shape": list(layer.shape)}
    if any(layer.open):
        d["open"] = list(layer.open)
    return d


def _inference_dict(net: Network, analysis: Analysis) -> dict:
    """For a network with training outputs: what inference holds and computes without them."""
    if not net.training_outputs:
        return {}
    inference = analysis.inference
    return {
        "training_outputs": list(net.training_outputs),
        "inference": {
            "params": {
                "trainable": inference.trainable_params,
                "non_trainable": inference.non_trainable_params,
                "total": inference.total_params,
            },
            "macs": inference.macs,
        },
    }


def _fields(row: Row, view: View) -> dict[str, Any]:
    d: dict[str, Any] = {}
    for c in COLUMNS:
        d.update(c.data(row, view))
    return d


def _totals(analysis: Analysis, memory: Memory, convention: str) -> list[str]:
    if convention == "torch":
        # PyTorch: batch norm's running statistics are buffers, not parameters
        params = analysis.trainable_params
        lines = [
            f"Total params: {grouped(params)} ({human(params * DTYPE_BYTES[memory.dtype], 'B')})",
            f"Trainable params: {grouped(params)}",
            "Non-trainable params: 0",
            f"Buffers (batch-norm running mean and variance, and other non-trainable values):"
            f" {grouped(analysis.non_trainable_params)}",
        ]
        stored = "parameters and buffers"
    else:
        lines = [
            f"Total params: {grouped(analysis.total_params)} ({human(memory.params_bytes, 'B')})",
            f"Trainable params: {grouped(analysis.trainable_params)}",
            f"Non-trainable params: {grouped(analysis.non_trainable_params)}",
        ]
        stored = "parameters"
    lines.append(f"MACs: {grouped(analysis.macs)} ({human(analysis.macs)})")
    if analysis.training_only:
        inference = analysis.inference
        params = inference.trainable_params if convention == "torch" else inference.total_params
        lines.append(
            f"Without the training-only outputs: params {grouped(params)}"
            f" (trainable {grouped(inference.trainable_params)}), MACs {grouped(inference.macs)}"
            f" ({human(inference.macs)})"
        )
    for layer in analysis.inputs:
        if any(layer.open):
            name = "" if layer.name == "input" else f" {layer.name}"
            lines.append(
                f"Input{name} {layer.written()}, analysed at {fmt_shape(layer.shape)}: the models"
                f" take any {'height and width' if all(layer.open) else ('height', 'width')[layer.open[1]]}"
            )
    lines += [
        f"Memory (batch {grouped(memory.batch_size)}, {memory.dtype}):"
        f" {stored} {human(memory.params_bytes, 'B')},"
        f" inference peak {human(memory.inference_peak_bytes, 'B')},"
        f" training {human(memory.training_bytes, 'B')}",
        UNITS,
    ]
    return lines


# ------------------------------------------------------------------------------ formats


def _cells(rows: list[Row], shown: list[Column], view: View) -> list[list[str]]:
    cells = []
    for r in rows:
        line = [c.cell(r, view) for c in shown]
        if r.level and shown and shown[0].key == "name":
            line[0] = "  " * r.level + line[0]
        cells.append(line)
    return cells


def _markdown(name: str, rows, shown, view, totals) -> str:
    def esc(cell: str) -> str:
        return html.escape(cell, quote=False).replace("|", "\\|")

    out = [f"### {esc(name)}", "", "| " + " | ".join(esc(c.title(view)) for c in shown) + " |"]
    out.append("|" + "|".join("---:" if c.numeric else "---" for c in shown) + "|")
    for line in _cells(rows, shown, view):
        if line and line[0].startswith(" "):  # nesting: markdown collapses spaces
            stripped = line[0].lstrip(" ")
            line[0] = "&nbsp;" * (len(line[0]) - len(stripped)) + esc(stripped)
            out.append("| " + " | ".join([line[0], *map(esc, line[1:])]) + " |")
        else:
            out.append("| " + " | ".join(esc(c) for c in line) + " |")
    out.append("")
    out.extend(f"- {esc(t)}" for t in totals)
    return "\n".join(out) + "\n"


def _csv(rows: list[Row], shown: Iterable[Column], view: View) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    header_done = False
    for r in rows:
        fields: dict[str, str] = {}
        for c in shown:
            if c.csv is not None:
                fields.update(c.csv(r, view))
            else:
                fields.update({k: _csv_value(v) for k, v in c.data(r, view).items()})
        if not header_done:
            writer.writerow(fields)
            header_done = True
        writer.writerow(fields.values())
    return buf.getvalue()


# -------------------------------------------------------------------------------- table

GAP = 2  # spaces between columns (1 where the table is still too wide)
MIN_WRAPPED = 12  # narrowest a wrapping column is made
WHOLE = 16  # a name of at most this many characters wraps whole, where the width allows


def _table(name: str, rows, shown, view, totals, width: int | None) -> str:
    cells = _cells(rows, shown, view)
    headers = [c.title(view) for c in shown]
    numeric, wraps = [c.numeric for c in shown], [c.wrap for c in shown]
    if width and _width([len(h) for h in headers], cells, GAP) > width:
        _relative_names(rows, shown, cells)
    return layout(f'Network: "{name}"', headers, cells, numeric, wraps, totals, width)


def layout(
    title: str | None,
    headers: list[str],
    cells: list[list[str]],
    numeric: list[bool],
    wraps: list[str],
    footer: list[str],
    width: int | None,
) -> str:
    """A table as ``cnndsl summary`` prints it: a title, ruled header and rows, footer lines;
    fitted to ``width`` (None: no limit) as :func:`_fit` says.  ``numeric`` columns are
    right-aligned; ``wraps`` say how each column's cells wrap (:data:`_WRAPS`, or "")."""
    natural = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    widths, gap = _fit(wraps, headers, cells, natural, width)
    rule_width = sum(widths) + gap * (len(widths) - 1) + 2
    out = []
    for line in title.splitlines() if title is not None else ():
        out.extend(_wrap_total(line, max(rule_width, width or 0) if width else None))
    out.append("─" * rule_width)
    out.extend(_lines(_wrap_header(headers, widths), widths, numeric, gap))
    out.append("═" * rule_width)
    for r in cells:
        parts = [_wrap(text, w, wrap) for text, w, wrap in zip(r, widths, wraps)]
        out.extend(_lines(parts, widths, numeric, gap))
    out.append("─" * rule_width)
    if footer:
        limit = max(rule_width, width or 0) - 1
        for t in footer:
            out.extend(" " + line for line in _wrap_total(t, limit if width else None))
        out.append("─" * rule_width)
    return "\n".join(out) + "\n"


def _width(widths: list[int], cells: list[list[str]], gap: int) -> int:
    natural = [max([w] + [len(r[i]) for r in cells]) for i, w in enumerate(widths)]
    return sum(natural) + gap * (len(natural) - 1) + 2


def _relative_names(rows: list[Row], shown: list[Column], cells: list[list[str]]) -> None:
    """Shorter names for a table too wide: a name made in the same block call as the row
    above, and an input made in the same block call as the row reading it, drop the call's
    prefix after an ellipsis (``…conv_2`` below ``inception_3a_conv_1``)."""
    keys = [c.key for c in shown]
    call_of = {r.name: r.blocks[-1] if r.blocks else None for r in rows}  # the call it is in
    above: tuple = ()  # the calls the row above is in, or opens (an expanded block row)
    for r, line in zip(rows, cells):
        call = call_of[r.name]
        if call is not None:
            prefix = call + "_"
            if "name" in keys and call in above and r.name.startswith(prefix):
                k = keys.index("name")
                line[k] = line[k].replace(r.name, "…" + r.name[len(prefix) :], 1)
            if "connected" in keys:
                line[keys.index("connected")] = ", ".join(
                    "…" + n[len(prefix) :] if n.startswith(prefix) and call_of.get(n) == call else n
                    for n in r.inputs
                ) or "-"
        above = (call, r.name) if r.kind == "block" else (call,)


def _fit(wraps, headers, cells, natural, width) -> tuple[list[int], int]:
    """Column widths and the gap between columns: the natural ones, or, when they make the
    table wider than ``width``, headers on two lines (where that saves most first), then
    narrower wrapping columns (inputs first, then names, the widest first, a character at a
    time) down to their longest piece (:func:`_wrap`) or WHOLE-character token, then one
    space between columns, then to MIN_WRAPPED.  The table stays wider than ``width`` only
    when nothing else can wrap."""
    widths = list(natural)
    n = len(widths)
    gap = GAP

    def total() -> int:
        return sum(widths) + gap * (n - 1) + 2

    if not width or total() <= width:
        return widths, gap
    cell = [max((len(r[i]) for r in cells), default=0) for i in range(n)]
    narrow = [max(cell[i], _two_lines(headers[i])) for i in range(n)]
    for i in sorted(range(n), key=lambda i: narrow[i] - natural[i]):
        if total() <= width:
            break
        widths[i] = min(widths[i], narrow[i])
    wrapping = [i for i, wrap in enumerate(wraps) if wrap]
    floor = {  # the longest piece, and the longest short token (globalavgpool_1 stays whole)
        i: max(
            [MIN_WRAPPED]
            + [len(p) for r in cells for p in _pieces(r[i], wraps[i])]
            + [len(t) for r in cells for t in _tokens(r[i].lstrip(" "), wraps[i]) if len(t) <= WHOLE]
        )
        for i in wrapping
    }
    # lists (and comparisons) first, then names, down to their longest piece; one space
    # between columns; then pieces cut, down to MIN_WRAPPED
    lists, every = ("list", "arrow"), tuple(_WRAPS)
    for kinds, low in ((lists, floor), (every, floor), ((), None), (every, None)):
        if not kinds and total() > width:
            gap = 1
        while total() > width:
            candidates = [
                i for i in wrapping
                if wraps[i] in kinds and widths[i] > (floor[i] if low else MIN_WRAPPED)
            ]
            if not candidates:
                break
            widths[max(candidates, key=lambda i: widths[i])] -= 1
    return widths, gap


# How cells wrap: the separator between their tokens (a name and its type; the names of a
# list), the characters a token longer than a line breaks after, and the indentation of
# continuation lines.
_WRAPS = {
    "name": (" ", "_", "  "),
    "list": (", ", "_", ""),
    "header": (" ", "/", ""),
    "arrow": (" → ", "", ""),  # "a → b" in a comparison: numbers never break
}


def _tokens(text: str, wrap: str) -> list[str]:
    sep = _WRAPS[wrap][0]
    parts = text.split(sep)
    return [p + sep.rstrip() for p in parts[:-1]] + parts[-1:]


def _pieces(text: str, wrap: str) -> list[str]:
    """The smallest parts a cell breaks into: its tokens, cut after ``_`` (``/`` in headers)."""
    breaks = _WRAPS[wrap][1]
    pieces = []
    for token in _tokens(text.lstrip(" "), wrap):
        if not breaks:
            pieces.append(token)
            continue
        start = 0
        for i, ch in enumerate(token[:-1]):
            if ch == breaks:
                pieces.append(token[start : i + 1])
                start = i + 1
        pieces.append(token[start:])
    return pieces


def _two_lines(header: str) -> int:
    """The narrowest width that puts a header on at most two lines."""
    pieces = _pieces(header, "header")
    best = len(header)
    for k in range(1, len(pieces)):
        first, second = "".join(pieces[:k]), "".join(pieces[k:])
        best = min(best, max(len(first.rstrip()), len(second.lstrip())))
    return best


def _wrap(text: str, width: int, wrap: str) -> list[str]:
    """A cell on lines of at most ``width``: whole tokens where they fit, else a token cut
    after ``_`` (a piece longer than a line is cut anywhere).  Never loses a character."""
    if len(text) <= width or not wrap:
        return [text]
    _, _, more = _WRAPS[wrap]
    body = text.lstrip(" ")
    follow = text[: len(text) - len(body)] + more  # a nested row's indentation, and more
    lines: list[str] = []
    current = text[: len(text) - len(body)]

    def new_line() -> str:
        lines.append(current.rstrip())
        return follow

    for token in _tokens(body, wrap):
        sep = " " if current.strip() else ""
        if len(current) + len(sep) + len(token) <= width:
            current += sep + token
            continue
        if current.strip():
            current = new_line()
        if len(current) + len(token) <= width:
            current += token
            continue
        for piece in _pieces(token, wrap):
            if len(current) + len(piece) > width and current.strip():
                current = new_line()
            while piece and len(current) + len(piece) > width:
                cut = max(1, width - len(current))
                current += piece[:cut]
                piece = piece[cut:]
                current = new_line()
            current += piece
    if current.strip():
        lines.append(current.rstrip())
    return lines


def _wrap_header(headers: list[str], widths: list[int]) -> list[list[str]]:
    return [_wrap(h, w, "header") for h, w in zip(headers, widths)]


def _lines(parts: list[list[str]], widths: list[int], numeric: list[bool], gap: int) -> list[str]:
    out = []
    for k in range(max(len(p) for p in parts)):
        cells = [
            (p[k] if k < len(p) else "").rjust(w) if right else (p[k] if k < len(p) else "").ljust(w)
            for p, w, right in zip(parts, widths, numeric)
        ]
        out.append((" " + (" " * gap).join(cells)).rstrip())
    return out


def _wrap_total(text: str, width: int | None) -> list[str]:
    """A totals line, broken after commas (continuation lines indented) to fit ``width``."""
    if width is None or len(text) <= width:
        return [text]
    return textwrap.wrap(text, width, subsequent_indent="  ", break_long_words=False, break_on_hyphens=False)


# ------------------------------------------------------------------------------ Summary


class Summary(str):
    """What :meth:`cnndsl.Network.summary` returns: the text itself (a ``str``: it prints as
    the table, and compares, splits and writes as the text), shown in Jupyter as an HTML table
    (for the table format) and in IPython as the text, not its quoted repr."""

    def __new__(cls, text: str, html: Callable[[], str] | None = None) -> Summary:
        self = super().__new__(cls, text)
        self._html = html  # made when a notebook asks for it
        return self

    def _repr_html_(self) -> str | None:
        return self._html() if self._html is not None else None

    def _repr_pretty_(self, printer, cycle) -> None:
        printer.text(str(self))


def to_html(net: Network, batch_size: int = 1, dtype: str = "float32", *,
            columns: Iterable[str] | None = None, depth: int | None = None,
            convention: str = "keras") -> str:
    """The summary as an HTML table (numbers right-aligned, nested rows indented)."""
    analysis = net.analysis
    memory = analysis.memory(batch_size, dtype)
    view = View(convention, DTYPE_BYTES[dtype] * batch_size)
    rows = layer_rows(analysis) if depth is None else block_rows(analysis, depth)
    shown = choose_columns(columns, rows)
    esc = html.escape
    right = ' style="text-align: right"'
    out = [
        '<div class="cnndsl-summary">',
        f"<p><strong>Network: {esc(net.name)}</strong></p>",
        "<table>",
        "<thead><tr>" + "".join(
            f"<th{right if c.numeric else ''}>{esc(c.title(view))}</th>" for c in shown
        ) + "</tr></thead>",
        "<tbody>",
    ]
    for r, line in zip(rows, _cells(rows, shown, view)):
        tds = []
        for c, text in zip(shown, line):
            stripped = text.lstrip(" ")
            pad = "&nbsp;" * (len(text) - len(stripped))
            tds.append(f"<td{right if c.numeric else ''}>{pad}{esc(stripped)}</td>")
        out.append("<tr>" + "".join(tds) + "</tr>")
    out += ["</tbody>", "</table>", "<ul>"]
    out += [f"<li>{esc(t)}</li>" for t in _totals(analysis, memory, convention)]
    out += ["</ul>", "</div>"]
    return "\n".join(out)
