"""Summaries of an analysed network: table (like Keras's ``model.summary()``), markdown, csv,
json.  Reads only the IR and its analysis."""

from __future__ import annotations

import csv
import io
import json
from typing import TYPE_CHECKING

from .analysis import DTYPE_BYTES, Analysis, LayerInfo
from .analysis.memory import Memory

if TYPE_CHECKING:
    from .ir import Network

FORMATS = ("table", "markdown", "csv", "json")


def render(net: Network, batch_size: int = 1, dtype: str = "float32", format: str = "table") -> str:
    analysis = net.analysis
    memory = analysis.memory(batch_size, dtype)
    if format == "json":
        return json.dumps(as_dict(net, analysis, memory), indent=2) + "\n"
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


def _shape(shape) -> str:
    return "x".join(str(d) for d in shape)


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
            _shape(info.output_shape),
            f"{info.params:,}",
            f"{info.macs:,}",
            info.receptive_field.short() if info.receptive_field else "-",
            str(layer.position.line) if layer.position else "",
        ]
        if not chain:
            row.append(", ".join(layer.inputs) or "-")
        rows.append(row)
    return header, rows


def _human(n: float, unit: str = "B") -> str:
    if unit == "B":
        for suffix in ("B", "KB", "MB", "GB", "TB", "PB"):
            if abs(n) < 1000 or suffix == "PB":
                return f"{n:,.0f} B" if suffix == "B" else f"{n:.2f} {suffix}"
            n /= 1000
    for suffix in ("", "K", "M", "G", "T", "P"):
        if abs(n) < 1000 or suffix == "P":
            return f"{n:.2f}{suffix}" if suffix else f"{n:.0f}"
        n /= 1000
    return str(n)


def _totals(analysis: Analysis, memory: Memory) -> list[str]:
    lines = [
        f"Total params: {analysis.total_params:,} ({_human(memory.params_bytes)})",
        f"Trainable params: {analysis.trainable_params:,}",
        f"Non-trainable params: {analysis.non_trainable_params:,}",
        f"MACs: {analysis.macs:,} ({_human(analysis.macs, '')})",
    ]
    if analysis.training_only:
        inference = analysis.inference
        lines.append(
            f"Without the training-only outputs: params {inference.total_params:,}"
            f" (trainable {inference.trainable_params:,}), MACs {inference.macs:,}"
            f" ({_human(inference.macs, '')})"
        )
    lines.append(
        f"Memory (batch {memory.batch_size}, {memory.dtype}):"
        f" parameters {_human(memory.params_bytes)},"
        f" inference peak {_human(memory.inference_peak_bytes)},"
        f" training {_human(memory.training_bytes)}"
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
                _shape(info.output_shape),
                info.params,
                info.trainable_params,
                info.non_trainable_params,
                info.macs,
                "x".join(map(str, rf["size"])) if rf else "",
                "x".join(map(str, rf["stride"])) if rf else "",
                "x".join(map(str, rf["padding"])) if rf else "",
                " ".join(layer.inputs),
            ]
        )
    return buf.getvalue()
