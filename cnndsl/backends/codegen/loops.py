"""Loops: runs of repeated steps whose names count up become ``for`` loops.

The IR does not record ``repeat`` and ``for`` (yet), so loops are inferred from what they leave:
:func:`fold` replaces, in a draft, each run of r >= 2 repetitions of a unit of steps that have
one structure and one set of values, whose names count up (``conv_3``, ``conv_4``, ...) and each
of which reads the previous one's result, by a :class:`~.lower.Loop` over the first repetition.
:func:`align` then makes the calls of one block agree: where one call has a loop that another
call runs only once (``repeat n - 1`` with n = 2), that single repetition becomes a loop too, so
that both calls share one function.  Both are linear in the number of steps (times the largest
unit tried, :data:`MAX_UNIT`).
"""

from __future__ import annotations

import re
from dataclasses import replace

from .expr import Const, Expr, LayerName, literal
from .lower import Draft, Loop, Step

COUNTED = re.compile(r"^(.*)_(\d+)$")
MAX_UNIT = 32


def _nopos(name: str) -> tuple:
    return ()


def _mask(key):
    """A key with the layer names left out (they count up along a loop)."""
    if isinstance(key, tuple):
        if key and key[0] == "name":
            return ("name",)
        return tuple(_mask(k) for k in key)
    return key


def _shape(step: Step) -> tuple:
    """A step's structure, without its values, names or inputs."""
    return (len(step.targets), _mask(step.expr.key(_nopos)), step.comment, step.merge)


def _values(step: Step) -> tuple:
    return tuple(literal(c.value) for c in step.expr.consts())


def _counted(step) -> re.Match | None:
    if isinstance(step, Loop) or step.local is None:
        return None
    return COUNTED.match(step.local)


def _positions(steps) -> dict[str, int]:
    return {v: i for i, step in enumerate(steps) for v in step.targets}


def fold(draft: Draft) -> None:
    """Replace the runs of repeated steps of a draft by loops (see the module's docstring)."""
    steps = draft.steps
    if len(steps) < 2:
        return
    exported = set(draft.outputs) | set(draft.live_out)
    sigs = []
    for step in steps:
        counted = _counted(step)
        if counted is None:
            sigs.append(None)
        else:
            sigs.append(((_shape(step), _values(step), counted.group(1)), int(counted.group(2))))
    pos = _positions(steps)
    uses: dict[str, list[int]] = {}
    for i, step in enumerate(steps):
        for v in step.reads:
            uses.setdefault(v, []).append(i)

    maxuse = [max((u for v in step.targets for u in uses.get(v, ())), default=-1) for step in steps]
    escapes = [any(v in exported for v in step.targets) for step in steps]
    failed: set[tuple[int, int]] = set()  # (start, size) inside a run already found to fail
    result: list = []
    i = 0
    while i < len(steps):
        best = None
        for size in range(1, min(MAX_UNIT, (len(steps) - i) // 2) + 1):
            if sigs[i + size - 1] is None:
                break
            if (i, size) in failed:
                continue
            found = _try_loop(steps, sigs, pos, maxuse, escapes, i, size)
            if found is None:
                continue
            make, reps, run = found
            if make is None:  # no loop here, nor later in this run at this size and phase
                failed.update((i + k * size, size) for k in range(1, run))
            elif best is None or reps * size > best[1] * best[2]:
                best = (make, reps, size)
                if reps * size == len(steps) - i:  # a larger unit cannot cover more
                    break
        if best is None:
            result.append(steps[i])
            i += 1
            continue
        make, reps, size = best
        result.append(make())
        i += reps * size
    draft.steps = result


def _try_loop(steps, sigs, pos, maxuse, escapes, start, size):
    """(make the loop, its repetitions, the run's repetitions) for the longest loop of units
    of ``size`` steps from ``start``; make is None when none of 2 or more repetitions is one.
    None when the steps do not even repeat."""
    increments = []
    for j in range(size):
        (shape0, n0), second = sigs[start + j], sigs[start + size + j]
        if second is None or second[0] != shape0 or second[1] <= n0:
            return None
        increments.append(second[1] - n0)
    run = 2
    while start + (run + 1) * size <= len(steps) and all(
        sigs[start + run * size + j] is not None
        and sigs[start + run * size + j][0] == sigs[start + j][0]
        and sigs[start + run * size + j][1] == sigs[start + j][1] + run * increments[j]
        for j in range(size)
    ):
        run += 1
    flow = _flow(steps, pos, start, size, run)
    if flow is None:
        return None, 0, run
    entry, shared, reps = flow
    # the largest count whose values stay inside the loop (but the last)
    best, reach, escaped = 0, -1, False
    for k in range(start, start + reps * size - 1):
        reach, escaped = max(reach, maxuse[k]), escaped or escapes[k]
        end = k + 2
        if (end - start) % size == 0 and end - start >= 2 * size:
            if not escaped and reach < end and len(steps[end - 1].targets) == 1:
                best = (end - start) // size
    if best < 2:
        return None, 0, run
    last = steps[start + best * size - 1]
    unit = steps[start : start + size]

    def make() -> Loop:
        counted = [_with_counter(step, increments[j]) for j, step in enumerate(unit)]
        body = Draft([entry, *shared], [], counted, [unit[-1].targets[0]])
        return Loop(body, Const(best, "repeats"), [last.targets[0]])

    return make, best, run


def _flow(steps, pos, start, size, run):
    """The data flow of the repetitions of steps[start:start+size]: (the value the first one
    reads from before the run, the values from before the run that all read, how many
    repetitions follow that flow), or None if it is not a chain: each repetition reads the
    previous one's last value and values from before the run that all repetitions share."""
    second = start + size
    kinds: dict[tuple[int, int], tuple] = {}
    for j in range(size):
        for p, v in enumerate(steps[second + j].reads):
            src = pos.get(v)
            if src is not None and second <= src < second + j:
                kinds[j, p] = ("intra", src - second)
            elif src == second - 1:
                kinds[j, p] = ("carry",)
            elif src is None or src < start:
                kinds[j, p] = ("shared", v)
            else:
                return None
    if not any(kind[0] == "carry" for kind in kinds.values()):
        return None
    shared = list(dict.fromkeys(k[1] for k in kinds.values() if k[0] == "shared"))
    entry = None
    for t in range(run):
        first = start + t * size
        for j in range(size):
            reads = steps[first + j].reads
            if len(reads) != len(steps[second + j].reads):
                return (entry, shared, t) if t >= 2 else None
            for p, v in enumerate(reads):
                kind = kinds[j, p]
                src = pos.get(v)
                ok = True
                if kind[0] == "intra":
                    ok = src == first + kind[1]
                elif kind[0] == "shared":
                    ok = v == kind[1]
                elif t > 0:
                    ok = src == first - 1
                else:
                    ok = (entry is None or v == entry) and (src is None or src < start)
                    entry = v if ok else entry
                if not ok:
                    return (entry, shared, t) if t >= 2 and entry not in shared else None
    if entry in shared:
        return None
    return entry, shared, run


def _with_counter(step: Step, increment: int) -> Step:
    """The step with its layer name counting up from its own: ``conv_3`` -> conv_{i}."""
    counted = COUNTED.match(step.local)
    base, n0 = counted.group(1), int(counted.group(2))

    def count(leaf: Expr) -> Expr:
        if isinstance(leaf, LayerName) and leaf.local == step.local:
            return LayerName(leaf.local, leaf.absolute, (base, n0, increment))
        return leaf

    return replace(step, expr=step.expr.replace(count))


def counters(loop: Loop) -> list[tuple[str, int, int]]:
    """The (base, first count, increment) of each step of a loop's unit."""
    found = []
    for step in loop.unit.steps:
        for leaf in _names(step.expr):
            if leaf.counter is not None:
                found.append(leaf.counter)
                break
    return found


def _names(expr: Expr):
    if isinstance(expr, LayerName):
        yield expr
    for child in expr.children():
        yield from _names(child)


def align(drafts: list[Draft]) -> None:
    """Where a call of a block has a loop that another call runs once (``repeat n - 1`` with
    n = 2), make that one repetition a loop too, when that gives both one structure."""
    loops = {}
    for draft in drafts:
        for step in draft.steps:
            if isinstance(step, Loop):
                loops.setdefault(step.unit.key(), step)
    if not loops:
        return
    keys = {d.key() for d in drafts if any(isinstance(s, Loop) for s in d.steps)}
    for draft in drafts:
        saved = list(draft.steps)
        changed = True
        while changed:
            changed = any(_fold_single(draft, loop) for loop in loops.values())
        if draft.steps != saved and draft.key() not in keys:
            draft.steps = saved


def _fold_single(draft: Draft, loop: Loop) -> bool:
    """Replace the first run of steps that is one repetition of ``loop`` by a loop of one."""
    unit, steps = loop.unit, draft.steps
    size, key = len(unit.steps), unit.key()
    increments = [leaf[2] for leaf in counters(loop)]
    if len(increments) != size:
        return False
    exported = set(draft.outputs) | set(draft.live_out)
    unit_pos = unit.positions()
    for start in range(len(steps) - size + 1):
        run = steps[start : start + size]
        if any(_counted(step) is None for step in run):
            continue
        if any(len(a.reads) != len(b.reads) for a, b in zip(run, unit.steps)):
            continue
        ext: dict[int, str] = {}  # the unit's arguments (carried value, shared ones) in the run
        pairs = [
            (v, unit_pos[w]) for a, b in zip(run, unit.steps) for v, w in zip(a.reads, b.reads)
        ]
        if any(r[0] == "arg" and ext.setdefault(r[1], v) != v for v, r in pairs):
            continue
        if sorted(ext) != list(range(len(unit.args))) or len(set(ext.values())) != len(ext):
            continue
        inner = {v for step in run[:-1] for v in step.targets}
        later = {v for step in steps[start + size :] for v in step.reads}
        if inner & (later | exported):
            continue
        counted = [_with_counter(step, inc) for step, inc in zip(run, increments)]
        candidate = Draft([ext[k] for k in range(len(ext))], [], counted, [run[-1].targets[0]])
        if candidate.key() == key:
            single = Loop(candidate, Const(1, "repeats"), [run[-1].targets[0]])
            draft.steps = [*steps[:start], single, *steps[start + size :]]
            return True
    return False
