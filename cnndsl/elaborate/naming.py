"""Nodes under construction, block-call and loop frames, and the names they end up with."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import Location
from ..ir import CallSite, Layer, LoopSite, Position
from .values import json_value


@dataclass(slots=True)
class Frame:
    """One block call being elaborated (its frame): becomes a :class:`~cnndsl.ir.CallSite` on
    every node it produces."""

    block: str
    args: dict[str, Any]
    loc: Location
    user_name: str | None
    parent: Frame | None
    written: str = ""  # the call as written, arguments evaluated: `conv_bn(64, k=7)`
    instance: str | None = None  # assigned by place()

    @property
    def named(self) -> bool:
        """Whether the spec named this call (``stem = conv_bn(64)``)."""
        return self.user_name is not None and self.instance == instance_prefix(self.parent) + self.user_name


@dataclass(slots=True)
class LoopFrame:
    """One iteration of a ``repeat`` or ``for`` being elaborated: becomes a
    :class:`~cnndsl.ir.LoopSite` on every node it produces.  ``frame`` is the block call whose
    body holds the loop (None at the top level); ``parent`` the iteration around this one (in
    this body or a caller's)."""

    loc: Location  # the loop statement
    iteration: int
    count: int
    frame: Frame | None
    parent: LoopFrame | None


class Nodes:
    """The nodes made so far, before naming, as parallel lists indexed by node id: each
    node's validated layer (with a placeholder name), its inputs (node ids), where it was
    written, the block call that made it, the loop iteration it was made in, and the name the
    spec gave it.  A block call replayed from its :class:`~.replay.Expansion` appends whole
    runs to these lists."""

    __slots__ = ("layers", "inputs", "locs", "frames", "loops", "user_names")

    def __init__(self) -> None:
        self.layers: list[Layer] = []
        self.inputs: list[tuple[int, ...]] = []
        self.locs: list[Location] = []
        self.frames: list[Frame | None] = []
        self.loops: list[LoopFrame | None] = []
        self.user_names: list[str | None] = []

    def __len__(self) -> int:
        return len(self.layers)

    def add(self, layer: Layer, inputs: tuple[int, ...], loc: Location, frame: Frame | None,
            loop: LoopFrame | None, user_name: str | None) -> int:
        self.layers.append(layer)
        self.inputs.append(inputs)
        self.locs.append(loc)
        self.frames.append(frame)
        self.loops.append(loop)
        self.user_names.append(user_name)
        return len(self.layers) - 1


def instance_prefix(frame: Frame | None) -> str:
    return frame.instance + "_" if frame is not None and frame.instance else ""


def place(nodes: Nodes) -> tuple[list[Layer], list[str]]:
    """Name every node and make it an IR node in its place: (nodes, names), in order.

    Named tensors keep their names; other nodes are named by kind, counted within their block
    call: ``conv_1``, ``conv_2``, ``inception_1_conv_3``.  Block calls are ``<block>_<n>``
    (or the tensor name they were assigned to), prefixed by their enclosing call.  Each node
    is its template layer :meth:`~cnndsl.ir.Layer.placed` with its name, its inputs' names,
    its Position, its CallSites and its LoopSites (one object per location, per call and per
    iteration, shared by the nodes that have them).  One pass: a node's inputs come before it.
    """
    return _Placer(nodes).run()


class _Placer:
    """The state of :func:`place` (a class, not closures: recursive closures would make
    reference cycles that only the garbage collector frees)."""

    def __init__(self, nodes: Nodes) -> None:
        self.nodes = nodes
        self.taken = {  # every name given so far, and the top-level tensor names to come
            user_name
            for user_name, frame in zip(nodes.user_names, nodes.frames)
            if user_name is not None and frame is None
        }
        self.counters: dict[tuple[str, str], int] = {}
        self.prefixes: dict[int, str] = {}  # by id of the frame (every frame is alive meanwhile)
        self.positions: dict[int, Position] = {}  # by id of the Location
        self.sites: dict[int, tuple[CallSite, ...]] = {}  # by id of the frame
        self.loop_sites: dict[int, tuple[LoopSite, ...]] = {}  # by id of the loop frame
        self.names: list[str] = []

    def fresh(self, prefix: str, base: str) -> str:
        key = (prefix, base)
        n = self.counters.get(key, 0) + 1
        name = f"{prefix}{base}_{n}"
        while name in self.taken:
            n += 1
            name = f"{prefix}{base}_{n}"
        self.counters[key] = n
        self.taken.add(name)
        return name

    def prefix_of(self, frame: Frame | None) -> str:
        if frame is None:
            return ""
        found = self.prefixes.get(id(frame))
        if found is None:
            outer = self.prefix_of(frame.parent)
            if frame.user_name is not None and f"{outer}{frame.user_name}" not in self.taken:
                frame.instance = f"{outer}{frame.user_name}"
                self.taken.add(frame.instance)
            else:
                frame.instance = self.fresh(outer, frame.user_name or frame.block)
            found = self.prefixes[id(frame)] = frame.instance + "_"
        return found

    def position(self, loc: Location) -> Position:
        found = self.positions[id(loc)] = Position(
            file=loc.file, line=loc.line, column=loc.column, end_column=loc.end_column
        )
        return found

    def calls(self, frame: Frame) -> tuple[CallSite, ...]:
        """The call sites from the outermost call down to ``frame``."""
        found = self.sites.get(id(frame))
        if found is None:
            site = CallSite(
                block=frame.block,
                instance=frame.instance,
                args={k: json_value(v, self.names) for k, v in frame.args.items()},
                call=frame.written,
                named=frame.named,
                position=self.positions.get(id(frame.loc)) or self.position(frame.loc),
            )
            outer = () if frame.parent is None else self.calls(frame.parent)
            found = self.sites[id(frame)] = (*outer, site)
        return found

    def loops(self, loop: LoopFrame) -> tuple[LoopSite, ...]:
        """The loop sites from the outermost loop down to ``loop``."""
        found = self.loop_sites.get(id(loop))
        if found is None:
            site = LoopSite(
                position=self.positions.get(id(loop.loc)) or self.position(loop.loc),
                depth=0 if loop.frame is None else len(self.calls(loop.frame)),
                iteration=loop.iteration,
                count=loop.count,
            )
            outer = () if loop.parent is None else self.loops(loop.parent)
            found = self.loop_sites[id(loop)] = (*outer, site)
        return found

    def run(self) -> tuple[list[Layer], list[str]]:
        nodes = self.nodes
        names = self.names
        taken = self.taken
        counters = self.counters
        positions = self.positions
        layers: list[Layer] = []
        # (type name, placed_fields()) by id of the template layer
        templates: dict[int, tuple[str, set[str]]] = {}
        given: set[str] = set()  # top-level user names already given to a node
        last_frame: Frame | None = None  # runs of nodes share their frame: its prefix and calls
        prefix = ""
        call_sites: tuple[CallSite, ...] = ()
        last_loop: LoopFrame | None = None  # and their loop iteration
        loop_sites: tuple[LoopSite, ...] = ()
        for layer, ids, loc, frame, loop, user_name in zip(
            nodes.layers, nodes.inputs, nodes.locs, nodes.frames, nodes.loops, nodes.user_names
        ):
            if frame is not last_frame:
                last_frame = frame
                prefix = self.prefix_of(frame)
                call_sites = () if frame is None else self.calls(frame)
            if loop is not last_loop:
                last_loop = loop
                loop_sites = () if loop is None else self.loops(loop)
            template = templates.get(id(layer))
            if template is None:
                template = templates[id(layer)] = (layer.type_name, layer.placed_fields())
            if user_name is None:
                # self.fresh(prefix, type name), inlined: this runs for most nodes
                key = (prefix, template[0])
                n = counters.get(key, 0) + 1
                name = f"{prefix}{template[0]}_{n}"
                if name in taken:
                    name = self.fresh(prefix, template[0])
                else:
                    counters[key] = n
                    taken.add(name)
            else:
                name = f"{prefix}{user_name}"
                if frame is not None and name not in taken:
                    taken.add(name)
                elif frame is None and name not in given:
                    given.add(name)
                else:  # the name again (a tensor reassigned in a loop): number it
                    name = self.fresh(prefix, user_name)
            names.append(name)
            layers.append(layer.placed(
                name,
                (names[ids[0]],) if len(ids) == 1 else tuple([names[j] for j in ids]),
                positions.get(id(loc)) or self.position(loc),
                call_sites,
                loop_sites,
                template[1],
            ))
        return layers, names
