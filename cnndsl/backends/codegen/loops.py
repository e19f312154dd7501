"""Loops: the iterations of a ``repeat`` or ``for`` that compute alike become a ``for`` loop.

Every node records the loop iterations that made it (:class:`~cnndsl.ir.LoopSite`), and each
step of a draft those of its scope's body (``Step.loops``).  :func:`fold` replaces each run of
r >= 2 consecutive iterations of one loop that have one structure and one set of values, whose
layer names count up (``conv_3``, ``conv_4``, ...: the loop names its layers from its counter)
and each of which reads the previous one's result, by a :class:`~.lower.Loop` over the first
iteration.  One level of loop is written: an iteration whose loop does not fold has its inner
loops folded instead.  A loop that ran once is returned to the caller: :func:`align` makes it a
loop of one where another call of the same block has that loop, so that both calls share one
function (``repeat n - 1`` with n = 2).  Both are linear in the number of steps.

Nothing here reads names to find a loop: steps that the spec wrote out one by one stay as
written, however alike.
"""

from __future__ import annotations

import re
from dataclasses import replace

from .expr import Const, Expr, LayerName, literal
from .lower import Draft, Loop, Step

COUNTED = re.compile(r"^(.*)_(\d+)$")


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
    # a step that also makes a helper layer (Keras's `convtranspose_1_crop`) is not repeated by
    # a loop: only the step's own name counts up, so the helper's would be the same in every
    # iteration, and Keras refuses a model with two layers of one name
    if any(leaf.local != step.local for leaf in _names(step.expr)):
        return None
    return COUNTED.match(step.local)


def _positions(steps) -> dict[str, int]:
    return {v: i for i, step in enumerate(steps) for v in step.targets}


Single = tuple[Step, int]
"""A loop that ran once in a draft: its iteration's first step and number of steps."""


def fold(draft: Draft) -> list[Single]:
    """Replace the runs of alike iterations of a draft's loops by loops (see the module's
    docstring); returns the loops that ran once, for :func:`align`."""
    steps = draft.steps
    singles: list[Single] = []
    if not any(step.loops for step in steps):
        return singles
    exported = set(draft.outputs) | set(draft.live_out)
    sigs = []  # (structure, values, name) and count of each step a loop may repeat
    for step in steps:
        counted = _counted(step) if step.loops else None
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
    tables = (steps, sigs, pos, maxuse, escapes)
    draft.steps = _fold(tables, 0, len(steps), 0, singles)
    return singles


def _fold(tables, lo: int, hi: int, level: int, singles: list[Single]) -> list:
    """The steps ``lo:hi`` (inside one iteration of each of ``level`` loops) with the loops at
    that level folded where their iterations allow, and inside the others."""
    steps = tables[0]
    result: list = []
    i = lo
    while i < hi:
        if len(steps[i].loops) <= level:
            result.append(steps[i])
            i += 1
            continue
        iterations = _iterations(steps, i, hi, level)
        alike = [1] * len(iterations)  # how many iterations from each have its number of steps
        sizes = [stop - start for start, stop in iterations]
        for k in range(len(iterations) - 2, -1, -1):
            if sizes[k] == sizes[k + 1]:
                alike[k] = alike[k + 1] + 1
        k = 0
        hopeless = 0  # the iterations before this one start no loop: their run does not flow
        while k < len(iterations):
            if k >= hopeless and alike[k] >= 2:
                loop, reps = _loop_from(tables, iterations[k], alike[k])
                if loop is not None:
                    result.append(loop)
                    k += reps
                    continue
                hopeless = k + reps
            start, stop = iterations[k]
            if len(iterations) == 1:
                singles.append((steps[start], stop - start))
            result.extend(_fold(tables, start, stop, level + 1, singles))
            k += 1
        i = iterations[-1][1]
    return result


def _iterations(steps, i: int, hi: int, level: int) -> list[tuple[int, int]]:
    """The (start, stop) of each iteration of the loop at ``level`` of step i, from step i on:
    the steps that follow, of that loop, in iterations that count up."""
    position = steps[i].loops[level].position
    found: list[list[int]] = []
    current = -1
    j = i
    while j < hi:
        loops = steps[j].loops
        if len(loops) <= level or loops[level].position != position:
            break
        iteration = loops[level].iteration
        if iteration < current:
            break
        if iteration == current:
            found[-1][1] = j + 1
        else:
            found.append([j, j + 1])
            current = iteration
        j += 1
    return [(start, stop) for start, stop in found]


def _loop_from(tables, iteration: tuple[int, int], alike: int) -> tuple[Loop | None, int]:
    """The loop over an iteration and the ones after it (``alike`` in all have its number of
    steps) that compute alike, and how many it covers; (None, n) when none does, the next n - 1
    iterations starting none either."""
    steps, sigs, pos, maxuse, escapes = tables
    start, stop = iteration
    size = stop - start
    if any(sigs[j] is None for j in range(start, stop)):
        return None, 1
    found = _try_loop(steps, sigs, pos, maxuse, escapes, start, size, start + alike * size)
    if found is None:
        return None, 1
    make, reps, run = found
    return (make(), reps) if make is not None else (None, run)


def _try_loop(steps, sigs, pos, maxuse, escapes, start, size, stop):
    """(make the loop, its repetitions, the run's repetitions) for the longest loop of units
    of ``size`` steps from ``start``, ending by ``stop``; make is None when none of 2 or more
    repetitions is one.  None when the steps do not even repeat."""
    increments = []
    for j in range(size):
        (shape0, n0), second = sigs[start + j], sigs[start + size + j]
        if second is None or second[0] != shape0 or second[1] <= n0:
            return None
        increments.append(second[1] - n0)
    run = 2
    while start + (run + 1) * size <= stop and all(
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


def align(drafts: list[Draft], singles: list[list[Single]]) -> None:
    """Where a call of a block has a loop that another call ran once (``repeat n - 1`` with
    n = 2), make that one iteration a loop too, when that gives both one structure.
    ``singles[i]``: the loops that ran once in ``drafts[i]`` (from :func:`fold`)."""
    loops = {}
    for draft in drafts:
        for step in draft.steps:
            if isinstance(step, Loop):
                loops.setdefault(step.unit.key(), step)
    if not loops:
        return
    keys = {d.key() for d in drafts if any(isinstance(s, Loop) for s in d.steps)}
    for draft, once in zip(drafts, singles):
        saved = list(draft.steps)
        for first, size in once:
            any(_fold_single(draft, first, size, loop) for loop in loops.values())
        if draft.steps != saved and draft.key() not in keys:
            draft.steps = saved


def _fold_single(draft: Draft, first: Step, size: int, loop: Loop) -> bool:
    """Replace the iteration of ``size`` steps from ``first``, of a loop that ran once, by a
    loop of one, if it is one repetition of ``loop``."""
    unit, steps = loop.unit, draft.steps
    key = unit.key()
    increments = [leaf[2] for leaf in counters(loop)]
    if size != len(unit.steps) or len(increments) != size:
        return False
    start = next((i for i, step in enumerate(steps) if step is first), None)
    if start is None:
        return False
    run = steps[start : start + size]
    if len(run) != size or any(_counted(step) is None for step in run):
        return False
    if any(len(a.reads) != len(b.reads) for a, b in zip(run, unit.steps)):
        return False
    unit_pos = unit.positions()
    ext: dict[int, str] = {}  # the unit's arguments (carried value, shared ones) in the run
    pairs = [(v, unit_pos[w]) for a, b in zip(run, unit.steps) for v, w in zip(a.reads, b.reads)]
    if any(r[0] == "arg" and ext.setdefault(r[1], v) != v for v, r in pairs):
        return False
    if sorted(ext) != list(range(len(unit.args))) or len(set(ext.values())) != len(ext):
        return False
    exported = set(draft.outputs) | set(draft.live_out)
    inner = {v for step in run[:-1] for v in step.targets}
    later = {v for step in steps[start + size :] for v in step.reads}
    if inner & (later | exported):
        return False
    counted = [_with_counter(step, inc) for step, inc in zip(run, increments)]
    candidate = Draft([ext[k] for k in range(len(ext))], [], counted, [run[-1].targets[0]])
    if candidate.key() != key:
        return False
    single = Loop(candidate, Const(1, "repeats"), [run[-1].targets[0]])
    draft.steps = [*steps[:start], single, *steps[start + size :]]
    return True
