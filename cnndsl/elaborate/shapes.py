"""Shapes during elaboration: the output shape of a node made so far, computed when a spec asks
for it (``channels()``, ``height()``, ``width()``: DenseNet transitions and MBConv blocks need
their input's channel count).

Each node's shape comes from its IR class's ``output_shape`` on its inputs' shapes, exactly as
the analysis computes it (a test compares the two on the whole zoo), once per node and only
for the nodes asked about and what they read.  A node that cannot apply gives the analysis's
own error, located at that node, with its block calls as notes.
"""

from __future__ import annotations

from ..errors import CnnDslError, Location
from ..ir import Shape, ShapeError
from .naming import Nodes
from .values import POISONED, Poisoned, Scope, TensorRef, show


class Shapes:
    """The output shapes of one load's nodes, by node id, computed on demand.

    ``current`` is the node that the item being elaborated reads (the elaborator keeps it up
    to date): what ``channels()`` without an argument is about.  ``reads`` counts the shapes
    asked for, so that a block call whose nodes depend on its input's shape is replayed only
    for an input of that shape (see :mod:`.replay`).
    """

    __slots__ = ("nodes", "known", "current", "reads")

    def __init__(self, nodes: Nodes) -> None:
        self.nodes = nodes
        self.known: dict[int, Shape] = {}
        self.current: int | None = None
        self.reads = 0

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
                raise CnnDslError(str(e), nodes.locs[i], notes=notes) from None
        return known[node]

    def of_tensor(self, tensor: object, function: str, loc: Location | None = None) -> Shape:
        """The shape of ``tensor`` (a named tensor), or of the current tensor when it is None:
        what ``function()`` reads."""
        if tensor is None:
            node = self.current
            if node is None:
                raise CnnDslError(
                    f"{function}() reads the current tensor, and there is none here:"
                    " declare an input first",
                    loc,
                )
        elif isinstance(tensor, TensorRef):
            node = tensor.node
        else:
            raise CnnDslError(f"{function}() takes a tensor, got {show(tensor)}", loc)
        if node == POISONED:
            raise Poisoned
        return self.of(node)


def channels(scope: Scope, tensor: object = None, loc: Location | None = None) -> int:
    """The channels of the current tensor (or of ``tensor``): C of H x W x C, N of a vector."""
    return _shapes(scope, "channels", loc).of_tensor(tensor, "channels", loc)[-1]


def height(scope: Scope, tensor: object = None, loc: Location | None = None) -> int:
    """The height (rows) of the current feature map (or of ``tensor``)."""
    return _spatial(scope, tensor, "height", 0, loc)


def width(scope: Scope, tensor: object = None, loc: Location | None = None) -> int:
    """The width (columns) of the current feature map (or of ``tensor``)."""
    return _spatial(scope, tensor, "width", 1, loc)


def _spatial(scope: Scope, tensor: object, function: str, axis: int, loc: Location | None) -> int:
    shape = _shapes(scope, function, loc).of_tensor(tensor, function, loc)
    if len(shape) != 3:
        raise CnnDslError(
            f"{function}() needs a feature map (H x W x C), and this tensor is a vector of"
            f" {shape[0]}",
            loc,
        )
    return shape[axis]


def _shapes(scope: Scope, function: str, loc: Location | None) -> Shapes:
    shapes = scope.shapes
    if shapes is None:  # `defaults conv filters=channels()`: no layer, no tensor
        raise CnnDslError(f"{function}() reads a tensor, and a `defaults` line has none", loc)
    return shapes
