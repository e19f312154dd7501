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

    __slots__ = ("nodes", "known", "follow", "current", "reads", "placed")

    def __init__(self, nodes: Nodes) -> None:
        self.nodes = nodes
        self.known: dict[int, Shape] = {}
        # which sizes of each known shape follow an open input size (`input ?x?x3`), as the
        # analysis finds them (Layer.open_sizes): a spec may not read those
        self.follow: dict[int, tuple[bool, ...]] = {}
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
                inputs = [known[j] for j in nodes.inputs[i]]
                known[i] = layer.output_shape(inputs)
                self.follow[i] = self._follow(layer, inputs, nodes.inputs[i], known[i])
            except ShapeError as e:
                notes = []
                frame = nodes.frames[i]
                while frame is not None:
                    notes.append((f"in {frame.written}, called", frame.loc))
                    frame = frame.parent
                error = CnnDslError(str(e), nodes.locs[i], hint=e.hint, notes=notes)
                self.placed.update(id(d) for d in error.diagnostics)
                raise error from None
        return known[node]

    def _follow(self, layer, inputs: list[Shape], ids, shape: Shape) -> tuple[bool, ...]:
        if not ids:
            return (*layer.open, False) if len(shape) == 3 else (False,)
        marks = [self.follow[j] for j in ids]
        if not any(any(m) for m in marks):
            return (False,) * len(shape)
        return layer.open_sizes(inputs, marks)


# ------------------------------------------------- the built-in functions that read shapes


@builtin(
    "channels", "tensor",
    "The channels of the current tensor (C of H x W x C, N of a vector), or of a named tensor.",
    required=0, scope=True,
)
def channels(scope: Scope, tensor: object = None) -> int:
    return _size(scope, tensor, "channels", -1)


@builtin("height", "tensor", "The height of the current feature map, or of a named one.", required=0, scope=True)
def height(scope: Scope, tensor: object = None) -> int:
    return _spatial(scope, tensor, "height", 0)


@builtin("width", "tensor", "The width of the current feature map, or of a named one.", required=0, scope=True)
def width(scope: Scope, tensor: object = None) -> int:
    return _spatial(scope, tensor, "width", 1)


def _shape(scope: Scope, tensor: object, function: str) -> tuple[Shape, tuple[bool, ...]]:
    """The shape ``function()`` reads: of ``tensor`` (a named tensor), or of the current one;
    and which of its sizes follow an open input size."""
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
    shape = shapes.of(node)
    return shape, shapes.follow[node]


def _spatial(scope: Scope, tensor: object, function: str, axis: int) -> int:
    shape, _ = _shape(scope, tensor, function)
    if len(shape) != 3:
        raise ArgumentError(
            f"a vector of {shape[0]} has no {function}: it needs a feature map (H x W x C)",
            None if tensor is None else 0,
        )
    return _size(scope, tensor, function, axis)


def _size(scope: Scope, tensor: object, function: str, axis: int) -> int:
    """One size of the shape ``function()`` reads, unless it follows an open input size: a
    model of the spec takes any size, so nothing in it may depend on one."""
    shape, follow = _shape(scope, tensor, function)
    if follow[axis]:
        what = "length of this vector" if len(shape) == 1 else f"{function} of this map"
        raise ArgumentError(
            f"the {what} follows the open height and width of the network's input"
            f" ({shape[axis]} at this size), and a model for any size cannot depend on it",
            None if tensor is None else 0,
            hint="read a size that is fixed (channels of a map; any size after `globalavgpool`"
            " or `adaptiveavgpool`), or give the input a fixed size",
        )
    return shape[axis]
