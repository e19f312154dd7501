"""Block-call replay: a block called again with the same arguments makes the same nodes.

The first call of a block with some arguments is elaborated; a second call with arguments of
the same values *and types* (see :func:`~.values.value_key`) copies the nodes the first one
made (its :class:`Expansion`) instead of walking the block again.  A call that read a shape
(``channels()``) is copied only for an input of the same shape.  The copy is exact: a test
elaborates the zoo both ways and compares the networks.  The memo belongs to one load.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import syntax as S
from ..errors import Location
from ..ir import Layer
from .naming import Frame, LoopFrame, Nodes
from .values import has_tensor, value_key

UNSEEN = object()
"""What the memo holds for a call not made yet."""
SHAPED = object()
"""What the memo holds, under the call's key, for a call whose nodes depend on its input's
shape (it asked for one: ``channels()``): its expansions are kept by (key, input shape)."""


def call_key(block: S.BlockDef, args: dict[str, Any]) -> tuple | None:
    """What a block call's expansion depends on: the block and its arguments, each with its
    type at every depth (None when an argument is, or holds, a tensor, or is not hashable)."""
    if any(has_tensor(v) for v in args.values()):
        return None
    try:
        return (id(block), tuple([(k, value_key(v)) for k, v in args.items()]))
    except TypeError:
        return None


@dataclass(slots=True)
class Expansion:
    """The nodes one block call produced, to be copied for another call of the block with the
    same arguments.

    ``layers``, ``locs``, ``user_names``: as in :class:`Nodes`, shared by every
    copy; ``inputs``: each node's inputs as indices into these nodes, or -1 for the call's
    input; ``frame_ids``: each node's frame as an index into ``frames``, which holds the call's
    frame and the frames of the calls nested in it, each with the index of its parent;
    ``loop_ids``: each node's loop iteration as an index into ``loops``, the iterations of the
    loops inside the call, each with the index of its parent and of its frame (-1: the
    iteration the call was made in, which differs from copy to copy); ``output``: the index
    of the call's result, or -1 when the call returns its input.
    """

    layers: list[Layer]
    inputs: list[tuple[int, ...]]
    locs: list[Location]
    frame_ids: list[int]
    user_names: list[str | None]
    frames: list[tuple[Frame, int]]
    loop_ids: list[int]
    loops: list[tuple[LoopFrame, int, int]]
    output: int

    @classmethod
    def record(
        cls, nodes: Nodes, start: int, end: int, input_id: int, result: int, top: Frame,
        around: LoopFrame | None,
    ) -> Expansion | None:
        """The template of the call that produced nodes ``start:end`` in loop iteration
        ``around`` (None if the call cannot be copied: it reads a tensor from outside, or
        passes one to a nested call)."""
        if result is None or (result < start and result != input_id):
            return None
        index = {id(top): 0}
        frames: list[tuple[Frame, int]] = [(top, -1)]
        frame_ids = []
        for frame in nodes.frames[start:end]:
            chain = []
            f = frame
            while f is not None and id(f) not in index:
                chain.append(f)
                f = f.parent
            if f is None:
                return None
            for f in reversed(chain):
                if any(has_tensor(v) for v in f.args.values()):
                    return None  # its CallSite would name nodes of this call: not copied
                index[id(f)] = len(frames)
                frames.append((f, index[id(f.parent)]))
            frame_ids.append(index[id(frame)])
        loop_index = {id(around): -1}
        loops: list[tuple[LoopFrame, int, int]] = []
        loop_ids = []
        for loop in nodes.loops[start:end]:
            chain = []
            f = loop
            while id(f) not in loop_index:
                if f is None:  # not inside the call's iteration: cannot happen
                    return None
                chain.append(f)
                f = f.parent
            for f in reversed(chain):
                if id(f.frame) not in index:  # a loop outside the call: cannot happen
                    return None
                loop_index[id(f)] = len(loops)
                loops.append((f, loop_index[id(f.parent)], index[id(f.frame)]))
            loop_ids.append(loop_index[id(loop)])
        inputs = []
        for ids in nodes.inputs[start:end]:
            relative = []
            for j in ids:
                if j >= start:
                    relative.append(j - start)
                elif j == input_id:
                    relative.append(-1)
                else:  # reads a tensor from outside the call: not a pure expansion
                    return None
            inputs.append(tuple(relative))
        return cls(
            nodes.layers[start:end],
            inputs,
            nodes.locs[start:end],
            frame_ids,
            nodes.user_names[start:end],
            frames,
            loop_ids,
            loops,
            result - start if result >= start else -1,
        )

    def replay(self, nodes: Nodes, frame: Frame, around: LoopFrame | None, current: int) -> int:
        """Append a copy of these nodes for a new call (``frame``), made in loop iteration
        ``around``, whose input is node ``current``; returns the id of the call's result."""
        frames = [frame]
        for old, parent in self.frames[1:]:
            frames.append(
                Frame(old.block, old.args, old.loc, old.user_name, frames[parent], written=old.written)
            )
        loops: list[LoopFrame | None] = []
        for old, parent, f in self.loops:
            outer = around if parent < 0 else loops[parent]
            loops.append(LoopFrame(old.loc, old.iteration, old.count, frames[f], outer))
        base = len(nodes.layers)
        inputs = nodes.inputs
        for relative in self.inputs:
            if len(relative) == 1:
                i = relative[0]
                inputs.append((base + i,) if i >= 0 else (current,))
            else:
                inputs.append(tuple([base + i if i >= 0 else current for i in relative]))
        nodes.layers.extend(self.layers)
        nodes.locs.extend(self.locs)
        if len(frames) == 1:
            nodes.frames.extend([frame] * len(self.layers))
        else:
            nodes.frames.extend([frames[f] for f in self.frame_ids])
        if not loops:
            nodes.loops.extend([around] * len(self.layers))
        else:
            nodes.loops.extend([around if i < 0 else loops[i] for i in self.loop_ids])
        nodes.user_names.extend(self.user_names)
        return base + self.output if self.output >= 0 else current
