"""Matching two graphs of units: signatures, the pairing, and the message that names the
first divergence (see the package docstring)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from .units import MERGES, Graph, Matching, Unit, params_text, shape_text

__all__ = ["frozen", "match"]


def frozen(value) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return float(f"{value:.6g}")
    if isinstance(value, (list, tuple)):
        return tuple(frozen(v) for v in value)
    return repr(value)


def _key(unit: Unit) -> tuple:
    settings = tuple(sorted((k, frozen(v)) for k, v in unit.settings.items()))
    return (unit.kind, settings, unit.shape, unit.params)


def _signatures(graph: Graph, table: dict) -> list[int]:
    sigs: list[int] = []
    for unit in graph.units:
        inputs = tuple(sigs[j] for j in unit.inputs)
        if unit.kind in MERGES:
            inputs = tuple(sorted(inputs))
        sigs.append(table.setdefault((_key(unit), inputs), len(table)))
    return sigs


def match(ours: Graph, theirs: Graph) -> Matching:
    """Pairs every unit of ``ours`` with one of ``theirs`` (see the module docstring); raises
    ValueError naming the first divergence."""
    table: dict = {}
    s_ours, s_theirs = _signatures(ours, table), _signatures(theirs, table)
    for what, a, b in (
        ("inputs", ours.inputs, theirs.inputs),
        ("outputs", ours.outputs, theirs.outputs),
    ):
        if len(a) != len(b):
            raise ValueError(f"{ours.label} has {len(a)} {what}, {theirs.label} {len(b)}")
    if any(s_ours[o] != s_theirs[t] for o, t in zip(ours.outputs, theirs.outputs)):
        raise ValueError(_divergence(ours, theirs, s_ours, s_theirs))
    pairs: dict[int, int] = {}
    taken: dict[int, int] = {}
    branches: dict[int, list[int]] = {}
    stack = list(zip(ours.outputs, theirs.outputs))
    while stack:
        o, t = stack.pop()
        if o in pairs or t in taken:
            if pairs.get(o) != t or taken.get(t) != o:
                a = ours.units[o] if o in pairs else ours.units[taken[t]]
                raise ValueError(
                    f"the models diverge in how they share layers: {ours.label}'s {a.describe()}"
                    f" stands for several layers of {theirs.label}, or the other way round"
                    f" ({theirs.label}'s {theirs.units[t].describe()})"
                )
            continue
        pairs[o], taken[t] = t, o
        ins_o, ins_t = ours.units[o].inputs, theirs.units[t].inputs
        if ours.units[o].kind in MERGES:
            free = list(range(len(ins_t)))
            order = []
            for j in ins_o:
                k = next(k for k in free if s_theirs[ins_t[k]] == s_ours[j])
                free.remove(k)
                order.append(k)
            branches[o] = order
            stack += [(j, ins_t[k]) for j, k in zip(ins_o, order)]
        else:
            stack += list(zip(ins_o, ins_t))
    for graph, done in ((ours, pairs), (theirs, taken)):
        left = [u for i, u in enumerate(graph.units) if i not in done]
        if left:
            raise ValueError(f"{graph.label}'s {left[0].describe()} reaches no output")
    return Matching(ours, theirs, pairs, branches)


def _divergence(ours: Graph, theirs: Graph, s_ours: list[int], s_theirs: list[int]) -> str:
    """The message for two graphs whose outputs differ: the first unit of theirs with no
    counterpart in ours (in theirs' order), and what ours has in its place."""
    first_t = _first_missing(theirs, s_theirs, s_ours)
    first_o = _first_missing(ours, s_ours, s_theirs)
    if first_t is None and first_o is None:  # every unit has a counterpart: the outputs differ
        return f"the models' outputs differ: {_at(ours, ours.units[ours.outputs[0]])}"
    if first_t is None:
        return (
            f"the models diverge at {_at(ours, ours.units[first_o])}, which has no counterpart"
            f" in {theirs.label}"
        )
    unit = theirs.units[first_t]
    lines = [f"the models diverge at {_at(theirs, unit)}"]
    wanted = sorted(s_theirs[j] for j in unit.inputs)
    if unit.inputs:
        candidates = [
            u for u in ours.units if u.inputs and sorted(s_ours[j] for j in u.inputs) == wanted
        ]
    else:
        candidates = [ours.units[i] for i in ours.inputs]
    if candidates:
        lines.append(f"  {ours.label} has there:")
        lines += [f"    {c.describe()}: {_differences(c, unit)}" for c in candidates[:4]]
    else:
        lines.append(f"  {ours.label} has no layer that reads the same input")
    return "\n".join(lines)


def _at(graph: Graph, unit: Unit) -> str:
    reads = ", ".join(f"'{graph.units[j].name}'" for j in unit.inputs)
    reads = f", reading {reads}" if reads else ""
    where = f"{unit.source} -> {shape_text(unit.shape)}{params_text(unit)}{reads}"
    return f"'{unit.name}' of {graph.label} ({where})"


def _first_missing(graph: Graph, sigs: list[int], other: list[int]) -> int | None:
    available = Counter(other)
    for i in range(len(graph.units)):
        if available[sigs[i]] > 0:
            available[sigs[i]] -= 1
        else:
            return i
    return None


def _differences(a: Unit, b: Unit) -> str:
    if a.kind != b.kind:
        return f"{_a(a.kind)} against {_a(b.kind)}"
    parts = []
    for key in sorted(set(a.settings) | set(b.settings)):
        x, y = a.settings.get(key), b.settings.get(key)
        if frozen(x) != frozen(y):
            parts.append(f"{key} {x} against {y}")
    if a.shape != b.shape:
        parts.append(f"output {a.shape} against {b.shape}")
    if a.params != b.params:
        parts.append(f"parameters (trainable, not) {a.params} against {b.params}")
    return "; ".join(parts) or "the same layer, after a different input"


def _a(kind: str) -> str:
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"
