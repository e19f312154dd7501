"""Summaries of an analysed network: table (like Keras's ``model.summary()``), markdown, csv,
json.  Reads only the IR and its analysis."""

from __future__ import annotations

import csv
import io
from typing import TYPE_CHECKING

from pydantic_core import to_json

from .analysis import DTYPE_BYTES, Analysis, LayerInfo
from .analysis.memory import Memory
from .display import grouped, human, int_text, json_safe
from .ir.base import fmt_shape

if TYPE_CHECKING:
    from .ir import Network

FORMATS = ("table", "markdown", "csv", "json")


def render(net: Network, batch_size: int = 1, dtype: str = "float32", format: str = "table") -> str:
    analysis = net.analysis
    memory = analysis.memory(batch_size, dtype)
    if format == "json":
        # pydantic-core writes integers of any size, where json.dumps stops at 4,300 digits
        return to_json(json_safe(as_dict(net, analysis, memory)), indent=2).decode() + "\n"
    if format == "csv":
        return _csv(net, analysis, memory)
    if format == "markdown":
        return _markdown(net, analysis, memory)
    if format == "table":
        return _table(net, analysis, memory)
    raise ValueError(f"unknown format {format!r}; choose one of {', '.join(FORMATS)}")


# ------------------------------------------------------------------------------ json


def as_dict(net: Network, analysis: Analysis, memory: Memory) -> dict:
    """The object ``cnndsl summary --format json`` prints."""
    bytes_each = DTYPE_BYTES[memory.dtype] * memory.batch_size
    return {
        "name": net.name,
        "inputs": [{"name": x.name, "shape": list(x.shape)} for x in net.inputs],
        "outputs": [{"name": name, "shape": list(shape)} for name, shape in analysis.outputs],
        "params": {
            "trainable": analysis.trainable_params,
            "non_trainable": analysis.non_trainable_params,
            "total": analysis.total_params,
        },
        "macs": analysis.macs,
        **_inference_dict(net, analysis),
        "memory": memory.as_dict(),
        "layers": [
            _layer_dict(info, bytes_each) for info in analysis
        ],
    }


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


def _layer_dict(info: LayerInfo, bytes_each: int) -> dict:
    layer = info.layer
    pos = layer.position
    return {
        "name": layer.name,
        "kind": layer.kind,
        "type": layer.type_name,
        "notation": layer.notation(),
        "file": pos.file if pos else None,
        "line": pos.line if pos else None,
        "inputs": list(layer.inputs),
        "output_shape": list(info.output_shape),
        "params": info.params,
        "trainable_params": info.trainable_params,
        "non_trainable_params": info.non_trainable_params,
        "macs": info.macs,
        "output_bytes": info.output_elements * bytes_each,
        "receptive_field": info.receptive_field.as_dict() if info.receptive_field else None,
        "block": [call.instance for call in layer.calls],
    }


# ----------------------------------------------------------------------------- tables


def _rows(net: Network, analysis: Analysis) -> tuple[list[str], list[list[str]]]:
    chain = all(
        layer.inputs == ((prev.name,) if prev is not None else ())
        for prev, layer in zip([None, *net.layers[:-1]], net.layers)
    )
    header = ["Layer (type)", "Output shape", "Param #", "MACs", "RF size/stride/pad", "Line"]
    if not chain:
        header.append("Connected to")
    rows = []
    for info in analysis:
        layer = info.layer
        row = [
            f"{layer.name} ({layer.type_name})",
            fmt_shape(info.output_shape),
            grouped(info.params),
            grouped(info.macs),
            info.receptive_field.short() if info.receptive_field else "-",
            str(layer.position.line) if layer.position else "",
        ]
        if not chain:
            row.append(", ".join(layer.inputs) or "-")
        rows.append(row)
    return header, rows


def _totals(analysis: Analysis, memory: Memory) -> list[str]:
    lines = [
        f"Total params: {grouped(analysis.total_params)} ({human(memory.params_bytes, 'B')})",
        f"Trainable params: {grouped(analysis.trainable_params)}",
        f"Non-trainable params: {grouped(analysis.non_trainable_params)}",
        f"MACs: {grouped(analysis.macs)} ({human(analysis.macs)})",
    ]
    if analysis.training_only:
        inference = analysis.inference
        lines.append(
            f"Without the training-only outputs: params {grouped(inference.total_params)}"
            f" (trainable {grouped(inference.trainable_params)}), MACs {grouped(inference.macs)}"
            f" ({human(inference.macs)})"
        )
    lines.append(
        f"Memory (batch {grouped(memory.batch_size)}, {memory.dtype}):"
        f" parameters {human(memory.params_bytes, 'B')},"
        f" inference peak {human(memory.inference_peak_bytes, 'B')},"
        f" training {human(memory.training_bytes, 'B')}"
    )
    return lines


def _table(net: Network, analysis: Analysis, memory: Memory) -> str:
    header, rows = _rows(net, analysis)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    numeric = {2, 3}

    def line(cells: list[str]) -> str:
        parts = [
            c.rjust(w) if i in numeric else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))
        ]
        return (" " + "  ".join(parts)).rstrip()

    total_width = sum(widths) + 2 * (len(widths) - 1) + 2
    out = [f'Network: "{net.name}"', "─" * total_width, line(header), "═" * total_width]
    out.extend(line(r) for r in rows)
    out.append("─" * total_width)
    out.extend(" " + t for t in _totals(analysis, memory))
    out.append("─" * total_width)
    return "\n".join(out) + "\n"


def _markdown(net: Network, analysis: Analysis, memory: Memory) -> str:
    header, rows = _rows(net, analysis)

    def esc(cell: str) -> str:
        return cell.replace("|", "\\|")

    out = [f"### {net.name}", "", "| " + " | ".join(header) + " |"]
    out.append("|" + "|".join("---:" if i in (2, 3) else "---" for i in range(len(header))) + "|")
    out.extend("| " + " | ".join(esc(c) for c in r) + " |" for r in rows)
    out.append("")
    out.extend(f"- {t}" for t in _totals(analysis, memory))
    return "\n".join(out) + "\n"


def _csv(net: Network, analysis: Analysis, memory: Memory) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(
        ["name", "kind", "type", "line", "output_shape", "params", "trainable_params",
         "non_trainable_params", "macs", "rf_size", "rf_stride", "rf_padding", "inputs"]
    )
    for info in analysis:
        layer = info.layer
        rf = info.receptive_field.as_dict() if info.receptive_field else None
        writer.writerow(
            [
                layer.name,
                layer.kind,
                layer.type_name,
                layer.position.line if layer.position else "",
                fmt_shape(info.output_shape),
                int_text(info.params),
                int_text(info.trainable_params),
                int_text(info.non_trainable_params),
                int_text(info.macs),
                _pair(rf["size"]) if rf else "",
                _pair(rf["stride"]) if rf else "",
                _pair(rf["padding"]) if rf else "",
                " ".join(layer.inputs),
            ]
        )
    return buf.getvalue()


def _pair(values) -> str:
    return "x".join(int_text(v) if isinstance(v, int) else str(v) for v in values)
