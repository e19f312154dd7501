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
    """The message for two graphs whose outputs differ, naming a layer of each: the first unit
    of theirs with no counterpart in ours (in theirs' order) and what ours has in its place --
    or, where every unit of theirs has one, the first unit of ours without a counterpart and
    what theirs has in its place."""
    first_t = _first_missing(theirs, s_theirs, s_ours)
    first_o = _first_missing(ours, s_ours, s_theirs)
    if first_t is None and first_o is None:  # every unit has a counterpart: the outputs differ
        o, t = ours.units[ours.outputs[0]], theirs.units[theirs.outputs[0]]
        return (
            f"the models' outputs differ: the first output of one is {_at(ours, o)}, of the"
            f" other {_at(theirs, t)}"
        )
    if first_t is not None:
        unit = theirs.units[first_t]
        lines = [f"the models diverge at {_at(theirs, unit)}"]
        lines += _in_its_place(unit, theirs, s_theirs, ours, s_ours, ours_first=False)
    else:
        unit = ours.units[first_o]
        lines = [
            f"the models diverge at {_at(ours, unit)}, which has no counterpart in {theirs.label}"
        ]
        lines += _in_its_place(unit, ours, s_ours, theirs, s_theirs, ours_first=True)
    return "\n".join(lines)


def _in_its_place(
    unit: Unit, graph: Graph, sigs: list[int], other: Graph, s_other: list[int], ours_first: bool
) -> list[str]:
    """The lines naming what ``other`` has in the place of ``unit`` of ``graph``: its layers
    that read the same inputs (their differences from ``unit``, ours against theirs); failing
    those, the layers that read one of them; failing those, the counterparts of its inputs and
    what reads them."""

    def differences(candidate: Unit) -> str:
        return _differences(candidate, unit) if not ours_first else _differences(unit, candidate)

    if not unit.inputs:
        candidates = [other.units[i] for i in other.inputs]
    else:
        wanted = sorted(sigs[j] for j in unit.inputs)
        candidates = [
            u for u in other.units if u.inputs and sorted(s_other[j] for j in u.inputs) == wanted
        ]
        if not candidates:
            candidates = [u for u in other.units if {s_other[j] for j in u.inputs} & set(wanted)]
    if candidates:
        lines = [f"  {other.label} has there:"]
        return lines + [f"    {c.describe()}: {differences(c)}" for c in candidates[:4]]
    # nothing in other reads the counterparts of the unit's inputs: name those
    counterparts = [i for i, sig in enumerate(s_other) if sig in {sigs[j] for j in unit.inputs}]
    if not counterparts:
        return [f"  {other.label} has no layer that reads the same input"]
    named = ", ".join(
        f"{other.units[i].describe()}{' (an output)' if i in other.outputs else ''}"
        for i in counterparts[:4]
    )
    reads = ", ".join(f"'{graph.units[j].name}'" for j in unit.inputs)
    return [f"  {other.label} has nothing after {named}, the counterpart of {reads}"]


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
