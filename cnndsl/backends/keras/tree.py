"""The plan grouped by block call: a tree of bodies, and the keys that compare them.

``to_source`` writes one Python function per spec block, so it first groups the plan's Keras
layers by the block call (``node.calls``) that made them: :func:`body_tree`.  A :class:`Body`'s
items are layers (:class:`Prim`), block calls (:class:`Call`, with a body of their own) and, after
folding (``loops.py``), loops (:class:`Loop`).  Item values are named by the Keras layer that makes
them; a body reads ``inputs`` from outside and gives ``outputs`` to the outside.

The slots of a body are its constructor arguments, the parameter values of its calls and its loop
counts, in one fixed traversal order (:func:`slots_of`).  Two bodies with one :func:`body_key`
have one structure and differ only in their slot values: the calls of a block with one key share
a function (``blocks.py``), whose per-slot plan says which slots are literals and which come from
parameters.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ...ir import Network
from .calls import KCall, Sym
from .handlers import Plan

# ---------------------------------------------------------------- the tree

COUNTED = re.compile(r"^(.*)_(\d+)$")


@dataclass(eq=False)
class Prim:
    """One Keras layer of a body."""

    call: KCall
    local: str | None  # name after the body's prefix (None: not under it)
    where: str | None
    node_local: str | None = None  # its node's name after the prefix
    counter: tuple[str, int, int] | None = None  # in a loop: (base, first count, step)

    @property
    def inputs(self) -> tuple[str, ...]:
        return self.call.inputs

    @property
    def outputs(self) -> list[str]:
        return [self.call.name]


@dataclass(eq=False)
class Body:
    """Items in order; reads ``inputs`` (values made outside), gives ``outputs``."""

    items: list
    inputs: list[str]
    outputs: list[str]


@dataclass(eq=False)
class Call:
    """A block call: its call site (block, instance, arguments) and body; once the functions are
    decided, the function it calls and that function's parameter values here."""

    site: Any  # CallSite
    local: str | None
    body: Body
    where: str | None
    counter: tuple[str, int, int] | None = None
    func: Function | None = None
    values: list = field(default_factory=list)  # the function's parameter values here

    @property
    def inputs(self) -> list[str]:
        return self.body.inputs

    @property
    def outputs(self) -> list[str]:
        return self.body.outputs


@dataclass(eq=False)
class Loop:
    """``count`` repetitions of ``unit``, each reading the previous one's result."""

    unit: Body  # the first repetition; inputs: [the carried value, loop invariants...]
    count: int
    outputs: list[str]
    local = None
    counter = None

    @property
    def inputs(self) -> list[str]:
        return self.unit.inputs


@dataclass(eq=False)
class Function:
    """One generated function: the calls of a block that have one structure."""

    name: str
    block: str
    calls: list[Call]
    input_names: list[str]  # parameters that receive tensors
    params: list[str]  # value parameters
    keyword: set[str]  # parameters passed by keyword (not named after a block parameter)
    plan: list[tuple]  # per slot: ("const", v) | ("param", p) | ("expr", p, op, k or q)
    variant: bool = False  # one of several structures of its block


class Flat(Exception):
    """The block calls do not nest as expected: emit the network without block functions."""


def _where(position) -> str | None:
    if position is None:
        return None
    return f"{os.path.basename(position.file)}:{position.line}"


def _local(name: str, prefix: str) -> str | None:
    return name[len(prefix) :] if name.startswith(prefix) and len(name) > len(prefix) else None


def body_tree(net: Network, plan: Plan, flat: bool) -> Body:
    """The plan grouped by block call (outermost first); the root body's outputs: the network's."""
    calls = plan.calls
    consumers: dict[str, list[int]] = {call.name: [] for call in calls}
    for i, call in enumerate(calls):
        for name in call.inputs:
            consumers[name].append(i)
    net_outputs = set(plan.outputs(net))
    seen: set[str] = set()

    def body(lo: int, hi: int, depth: int, prefix: str) -> Body:
        items: list = []
        i = lo
        while i < hi:
            node = calls[i].node
            if not flat and len(node.calls) > depth:
                site = node.calls[depth]
                j = i
                while (
                    j < hi
                    and len(calls[j].node.calls) > depth
                    and calls[j].node.calls[depth].instance == site.instance
                ):
                    j += 1
                if site.instance in seen:
                    raise Flat
                seen.add(site.instance)
                items.append(
                    Call(
                        site,
                        _local(site.instance, prefix),
                        body(i, j, depth + 1, site.instance + "_"),
                        _where(site.position),
                    )
                )
                i = j
            else:
                local = _local(calls[i].name, prefix)
                items.append(
                    Prim(calls[i], local, _where(node.position), _local(node.name, prefix))
                )
                i += 1
        inside = {call.name for call in calls[lo:hi]}
        inputs = list(
            dict.fromkeys(n for call in calls[lo:hi] for n in call.inputs if n not in inside)
        )
        outputs = [
            call.name
            for call in calls[lo:hi]
            if call.name in net_outputs or any(k < lo or k >= hi for k in consumers[call.name])
        ]
        return Body(items, inputs, outputs)

    root = body(0, len(calls), 0, "")
    root.outputs = plan.outputs(net)
    return root


# ---------------------------------------------------------------- keys, slots, literals


def lit(value: Any) -> str:
    """A value as a Python literal, black-style (double quotes)."""
    if isinstance(value, Sym):
        return value.name
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, tuple):
        inner = ", ".join(lit(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, float):
        return repr(value) if value == value and abs(value) != float("inf") else f'float("{value}")'
    return repr(value)


def positions(body: Body) -> dict[str, tuple[int, int]]:
    return {v: (i, k) for i, item in enumerate(body.items) for k, v in enumerate(item.outputs)}


def refs(body: Body):
    pos, ext = positions(body), {v: k for k, v in enumerate(body.inputs)}
    return lambda v: ("item", *pos[v]) if v in pos else ("ext", ext[v])


def _name_key(item) -> tuple:
    if isinstance(item, Loop):
        return ("loop",)
    if item.counter is not None:
        return ("counted", *item.counter)
    if item.local is not None:
        return ("local", item.local)
    return ("abs", item.call.name if isinstance(item, Prim) else item.site.instance)


def item_shape(item) -> tuple:
    """An item's structure, without its values, name or inputs."""
    if isinstance(item, Prim):
        call = item.call
        return (
            "prim",
            call.cls,
            tuple((a.key, a.positional) for a in call.args),
            call.merge,
            item.where,
        )
    if isinstance(item, Call):
        return ("call", id(item.func), len(item.outputs), item.where)
    return ("loop", body_key(item.unit))


def body_key(body: Body) -> tuple:
    ref = refs(body)
    items = tuple(
        (item_shape(it), _name_key(it), tuple(ref(v) for v in it.inputs)) for it in body.items
    )
    return items, tuple(ref(v) for v in body.outputs), len(body.inputs)


def slots_of(items) -> Iterator[tuple[str, str, Any]]:
    """(key, hint for a parameter name, value) of every slot, in emission order."""
    for item in items:
        if isinstance(item, Prim):
            base = item.counter[0] if item.counter else (item.local or item.call.name)
            for a in item.call.args:
                yield a.key, f"{base}_{a.key}", a.value
        elif isinstance(item, Call):
            base = item.counter[0] if item.counter else (item.local or item.site.instance)
            for param, value in zip(item.func.params, item.values):
                yield param, f"{base}_{param}", value
        else:
            yield "repeats", "repeats", item.count
            yield from slots_of(item.unit.items)


def slot_values(items) -> tuple:
    return tuple(lit(value) for _, _, value in slots_of(items))
