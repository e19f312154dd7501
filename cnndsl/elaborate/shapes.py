"""Shapes during elaboration: the output shape of a node made so far, computed when a spec asks
for it (``channels()``, ``height()``, ``width()``: DenseNet transitions and MBConv blocks need
their input's channel count).

Each node's shape comes from its IR class's ``output_shape`` on its inputs' shapes, exactly as
the analysis computes it (a test compares the two on the whole zoo), once per node and only
for the nodes asked about and what they read.  A node that cannot apply gives the analysis's
own error, located at that node, with its block calls as notes.
"""

from __future__ import annotations

from ..errors import CnnDslError
from ..ir import Shape, ShapeError
from .functions import ArgumentError, builtin
from .naming import Nodes
from .values import POISONED, Poisoned, Scope, TensorRef, show


class Shapes:
    """The output shapes of one load's nodes, by node id, computed on demand.

    ``current`` is the node that the item being elaborated reads (the elaborator keeps it up
    to date): what ``channels()`` without an argument is about.  ``reads`` counts the shapes
    asked for, so that a block call whose nodes depend on its input's shape is replayed only
    for an input of that shape (see :mod:`.replay`).
    """

    __slots__ = ("nodes", "known", "current", "reads", "placed")

    def __init__(self, nodes: Nodes) -> None:
        self.nodes = nodes
        self.known: dict[int, Shape] = {}
        self.current: int | None = None
        self.reads = 0
        # The errors about nodes that cannot apply, by id: they carry the block calls of
        # their node, and the block calls they pass through on their way out add none.
        self.placed: set[int] = set()

    def of(self, node: int) -> Shape:
        """The output shape of node ``node``; a located CnnDslError if it, or a node it
        reads, cannot apply."""
        self.reads += 1
        known = self.known
        found = known.get(node)
        if found is not None:
            return found
        nodes = self.nodes
        stack = [node]
        while stack:  # depth first, without recursion: a chain may be 200,000 nodes long
            i = stack[-1]
            if i in known:
                stack.pop()
                continue
            missing = [j for j in nodes.inputs[i] if j not in known]
            if missing:
                stack.extend(missing)
                continue
            stack.pop()
            layer = nodes.layers[i]
            try:
                known[i] = layer.output_shape([known[j] for j in nodes.inputs[i]])
            except ShapeError as e:
                notes = []
                frame = nodes.frames[i]
                while frame is not None:
                    notes.append((f"in {frame.written}, called", frame.loc))
                    frame = frame.parent
                error = CnnDslError(str(e), nodes.locs[i], notes=notes)
                self.placed.update(id(d) for d in error.diagnostics)
                raise error from None
        return known[node]


# ------------------------------------------------- the built-in functions that read shapes


@builtin(
    "channels", "tensor",
    "The channels of the current tensor (C of H x W x C, N of a vector), or of a named tensor.",
    required=0, scope=True,
)
def channels(scope: Scope, tensor: object = None) -> int:
    return _shape(scope, tensor, "channels")[-1]


@builtin("height", "tensor", "The height of the current feature map, or of a named one.", required=0, scope=True)
def height(scope: Scope, tensor: object = None) -> int:
    return _spatial(scope, tensor, "height", 0)


@builtin("width", "tensor", "The width of the current feature map, or of a named one.", required=0, scope=True)
def width(scope: Scope, tensor: object = None) -> int:
    return _spatial(scope, tensor, "width", 1)


def _shape(scope: Scope, tensor: object, function: str) -> Shape:
    """The shape ``function()`` reads: of ``tensor`` (a named tensor), or of the current one."""
    shapes = scope.shapes
    if shapes is None:  # `defaults conv filters=channels()`: no layer, no tensor
        raise ArgumentError("there is no tensor to read in a `defaults` line")
    if tensor is None:
        node = shapes.current
        if node is None:
            raise ArgumentError("there is no current tensor here: declare an input first")
    elif isinstance(tensor, TensorRef):
        node = tensor.node
    else:
        raise ArgumentError(f"expected a tensor, got {show(tensor)}", 0)
    if node == POISONED:
        raise Poisoned
    return shapes.of(node)


def _spatial(scope: Scope, tensor: object, function: str, axis: int) -> int:
    shape = _shape(scope, tensor, function)
    if len(shape) != 3:
        raise ArgumentError(
            f"a vector of {shape[0]} has no {function}: it needs a feature map (H x W x C)",
            None if tensor is None else 0,
        )
    return shape[axis]
