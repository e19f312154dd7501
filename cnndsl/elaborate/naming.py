"""Nodes under construction, block-call frames, and the names they end up with."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import Location
from ..ir import Layer
from .values import has_tensor


@dataclass(slots=True)
class Frame:
    """One block call: becomes a :class:`~cnndsl.ir.CallSite` on every node it produces."""

    block: str
    args: dict[str, Any]
    loc: Location
    user_name: str | None
    parent: Frame | None
    call: str = ""
    instance: str | None = None  # assigned by assign_names

    @property
    def named(self) -> bool:
        """Whether the spec named this call (``stem = conv_bn(64)``)."""
        return self.user_name is not None and self.instance == instance_prefix(self.parent) + self.user_name


@dataclass(slots=True)
class Node:
    """A node before naming: its validated layer (with a placeholder name) and its inputs."""

    layer: Layer
    inputs: tuple[int, ...]
    loc: Location
    frame: Frame | None
    user_name: str | None
    name_loc: Location | None = None


@dataclass(slots=True)
class Expansion:
    """The nodes one block call produced, relative to their first node, to be copied for
    another call of the block with the same arguments.

    ``nodes``: (layer, inputs, loc, frame index, user name, name loc), with inputs as indices
    into these nodes or -1 for the call's input; ``frames``: the call's frame and the frames of
    the calls nested in it, each with the index of its parent; ``output``: the index of the
    call's result, or -1 when the call returns its input.
    """

    nodes: list[tuple]
    frames: list[tuple[Frame, int]]
    output: int

    @classmethod
    def record(
        cls, nodes: list[Node], start: int, end: int, input_id: int, result: int, top: Frame
    ) -> Expansion | None:
        """The template of the call that produced ``nodes[start:end]`` (None if the call
        cannot be copied: it reads a tensor from outside, or passes one to a nested call)."""
        index = {id(top): 0}
        frames: list[tuple[Frame, int]] = [(top, -1)]
        records = []
        for node in nodes[start:end]:
            chain = []
            frame = node.frame
            while frame is not None and id(frame) not in index:
                chain.append(frame)
                frame = frame.parent
            if frame is None:
                return None
            for f in reversed(chain):
                if any(has_tensor(v) for v in f.args.values()):
                    return None  # its CallSite would name nodes of this call: not copied
                index[id(f)] = len(frames)
                frames.append((f, index[id(f.parent)]))
            inputs = []
            for j in node.inputs:
                if j >= start:
                    inputs.append(j - start)
                elif j == input_id:
                    inputs.append(-1)
                else:  # reads a tensor from outside the call: not a pure expansion
                    return None
            records.append((node.layer, tuple(inputs), node.loc, index[id(node.frame)], node.user_name, node.name_loc))
        if result is None or (result < start and result != input_id):
            return None
        return cls(records, frames, result - start if result >= start else -1)


def instance_prefix(frame: Frame | None) -> str:
    return frame.instance + "_" if frame is not None and frame.instance else ""


def assign_names(nodes: list[Node]) -> list[str]:
    """Unique identifiers for every node.

    Named tensors keep their names; other nodes are named by kind, counted within their block
    call: ``conv_1``, ``conv_2``, ``inception_1_conv_3``.  Block calls are ``<block>_<n>``
    (or the tensor name they were assigned to), prefixed by their enclosing call.
    """
    taken = {node.user_name for node in nodes if node.user_name is not None and node.frame is None}
    counters: dict[tuple[str, str], int] = {}

    def fresh(prefix: str, base: str) -> str:
        key = (prefix, base)
        n = counters.get(key, 0) + 1
        name = f"{prefix}{base}_{n}"
        while name in taken:
            n += 1
            name = f"{prefix}{base}_{n}"
        counters[key] = n
        taken.add(name)
        return name

    prefixes: dict[int, str] = {}  # by id of the frame

    def prefix_of(frame: Frame | None) -> str:
        if frame is None:
            return ""
        found = prefixes.get(id(frame))
        if found is None:
            outer = prefix_of(frame.parent)
            if frame.user_name is not None and f"{outer}{frame.user_name}" not in taken:
                frame.instance = f"{outer}{frame.user_name}"
                taken.add(frame.instance)
            else:
                frame.instance = fresh(outer, frame.user_name or frame.block)
            found = prefixes[id(frame)] = frame.instance + "_"
        return found

    names: list[str] = []
    given: set[str] = set()  # top-level user names already given to a node
    for node in nodes:
        frame = node.frame
        prefix = "" if frame is None else prefixes.get(id(frame)) or prefix_of(frame)
        user_name = node.user_name
        if user_name is None:
            names.append(fresh(prefix, node.layer.type_name))
            continue
        candidate = f"{prefix}{user_name}"
        if frame is not None and candidate not in taken:
            taken.add(candidate)
            names.append(candidate)
        elif frame is None and candidate not in given:
            given.add(candidate)
            names.append(candidate)
        else:  # the name again (a tensor reassigned in a loop): number it
            names.append(fresh(prefix, user_name))
    return names
