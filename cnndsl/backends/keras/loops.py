"""Loops: runs of repeated layers (or block calls) whose names count up become ``for`` loops.

:func:`fold` replaces, in a body, each run of r >= 2 repetitions of a unit of items that have
one structure and one set of values, whose names count up (``conv_3``, ``conv_4``, ...) and each
of which reads the previous one's result, by a :class:`~.tree.Loop` over the first repetition.
:func:`align` then makes the calls of one block agree: where one call has a loop that another
call runs only once (``repeat n - 1`` with n = 2), that single repetition becomes a loop too, so
that both calls share one function.
"""

from __future__ import annotations

from .tree import COUNTED, Body, Call, Loop, body_key, item_shape, positions, refs, slot_values


def fold(body: Body, exported: set[str], max_unit: int = 32) -> None:
    """Replace runs of r >= 2 identical repetitions of a unit of items, whose names count up
    and each of which reads the previous one's result, by a Loop."""
    items = body.items
    if len(items) < 2:
        return
    sigs = []
    for item in items:
        counted = COUNTED.match(item.local) if item.local is not None else None
        if counted is None:
            sigs.append(None)
        else:
            shape = (item_shape(item), slot_values([item]), counted.group(1))
            sigs.append((shape, int(counted.group(2))))
    pos = positions(body)
    uses: dict[str, list[int]] = {}
    for i, item in enumerate(items):
        for v in item.inputs:
            uses.setdefault(v, []).append(i)

    result: list = []
    i = 0
    while i < len(items):
        best = None
        for size in range(1, min(max_unit, (len(items) - i) // 2) + 1):
            loop = _try_loop(items, sigs, pos, uses, exported, i, size)
            if loop is not None and (best is None or loop[1] * size > best[1] * best[2]):
                best = (*loop, size)
        if best is None:
            result.append(items[i])
            i += 1
            continue
        make, reps, size = best
        result.append(make())
        i += reps * size
    body.items = result


def _try_loop(items, sigs, pos, uses, exported, start, size):
    if any(sigs[start + j] is None for j in range(size)):
        return None
    steps = []
    for j in range(size):
        (shape0, n0), second = sigs[start + j], sigs[start + size + j]
        if second is None or second[0] != shape0 or second[1] <= n0:
            return None
        steps.append(second[1] - n0)
    reps = 2
    while start + (reps + 1) * size <= len(items) and all(
        sigs[start + reps * size + j] is not None
        and sigs[start + reps * size + j][0] == sigs[start + j][0]
        and sigs[start + reps * size + j][1] == sigs[start + j][1] + reps * steps[j]
        for j in range(size)
    ):
        reps += 1
    while reps >= 2:
        loop = _loop(items, pos, uses, exported, start, size, reps, steps)
        if loop is not None:
            return loop, reps
        reps -= 1
    return None


def _loop(items, pos, uses, exported, start, size, reps, steps):
    """The loop for `reps` repetitions of items[start:start+size], or None if their data flow
    is not a chain: each repetition reads the previous one's last value (the first reads one
    value from before the run) and values from before the run that all repetitions share."""
    second = start + size
    kinds: dict[tuple[int, int], tuple] = {}
    for j in range(size):
        for p, v in enumerate(items[second + j].inputs):
            src = pos.get(v, (None,))[0]
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
    entry = None
    for t in range(reps):
        first = start + t * size
        for j in range(size):
            item = items[first + j]
            if len(item.inputs) != len(items[second + j].inputs):
                return None
            for p, v in enumerate(item.inputs):
                kind = kinds[j, p]
                src = pos.get(v, (None,))[0]
                if kind[0] == "intra" and src != first + kind[1]:
                    return None
                if kind[0] == "shared" and v != kind[1]:
                    return None
                if kind[0] == "carry":
                    if t > 0 and src != first - 1:
                        return None
                    if t == 0:
                        if (entry is not None and v != entry) or (src is not None and src >= start):
                            return None
                        entry = v
    end = start + reps * size
    last = items[end - 1]
    shared = list(dict.fromkeys(k[1] for k in kinds.values() if k[0] == "shared"))
    if len(last.outputs) != 1 or entry in shared:
        return None
    for item in items[start : end - 1]:
        for v in item.outputs:
            if v in exported or any(u >= end for u in uses.get(v, ())):
                return None
    unit = items[start:second]

    def make() -> Loop:
        for j, item in enumerate(unit):
            counted = COUNTED.match(item.local)
            item.counter = (counted.group(1), int(counted.group(2)), steps[j])
        return Loop(Body(unit, [entry, *shared], [unit[-1].outputs[0]]), reps, [last.outputs[0]])

    return make


def align(calls: list[Call]) -> None:
    """Where a call of a block has a loop that another call runs once (``repeat n - 1`` with
    n = 2), make that one repetition a loop too, when that gives both one structure."""
    loops = {}
    for call in calls:
        for item in call.body.items:
            if isinstance(item, Loop):
                loops.setdefault(body_key(item.unit), item)
    if not loops:
        return
    keys = {
        body_key(call.body) for call in calls if any(isinstance(i, Loop) for i in call.body.items)
    }
    for call in calls:
        body = call.body
        saved = [(item, item.counter) for item in body.items], list(body.items)
        changed = True
        while changed:
            changed = any(_fold_single(body, loop) for loop in loops.values())
        if body.items != saved[1] and body_key(body) not in keys:
            body.items = saved[1]
            for item, counter in saved[0]:
                if not isinstance(item, Loop):
                    item.counter = counter


def _fold_single(body: Body, loop: Loop) -> bool:
    """Replace the first run of items that is one repetition of `loop` by a loop of one."""
    unit, items = loop.unit, body.items
    size, key, ref = len(unit.items), body_key(unit), refs(unit)
    exported = set(body.outputs)
    for start in range(len(items) - size + 1):
        run = items[start : start + size]
        if any(
            isinstance(item, Loop) or item.local is None or not COUNTED.match(item.local)
            for item in run
        ):
            continue
        if any(len(a.inputs) != len(b.inputs) for a, b in zip(run, unit.items)):
            continue
        ext: dict[int, str] = {}  # the unit's inputs (carried value, shared ones) in the run
        pairs = [(v, ref(w)) for a, b in zip(run, unit.items) for v, w in zip(a.inputs, b.inputs)]
        if any(r[0] == "ext" and ext.setdefault(r[1], v) != v for v, r in pairs):
            continue
        if sorted(ext) != list(range(len(unit.inputs))) or len(set(ext.values())) != len(ext):
            continue
        inner = {v for item in run[:-1] for v in item.outputs}
        later = {v for item in items[start + size :] for v in item.inputs}
        if inner & (later | exported):
            continue
        saved = [item.counter for item in run]
        for item, model in zip(run, unit.items):
            counted = COUNTED.match(item.local)
            item.counter = (counted.group(1), int(counted.group(2)), model.counter[2])
        candidate = Body(run, [ext[k] for k in range(len(ext))], [run[-1].outputs[0]])
        if body_key(candidate) == key:
            body.items = [
                *items[:start],
                Loop(candidate, 1, [run[-1].outputs[0]]),
                *items[start + size :],
            ]
            return True
        for item, counter in zip(run, saved):
            item.counter = counter
    return False
