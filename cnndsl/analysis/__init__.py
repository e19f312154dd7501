"""Static analysis of a :class:`~cnndsl.ir.Network`, without TensorFlow or PyTorch.

:func:`analyze` walks the nodes once, in order, and gives every node its output shape,
parameters (trainable and not), multiply-accumulates and receptive field; :class:`Analysis`
adds the totals and the memory for a batch size and dtype.  Each layer class computes its own
facts (:mod:`cnndsl.ir`); this module only walks the graph and turns failures into located
errors.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, NamedTuple

from ..display import grouped, human
from ..errors import CnnDslError, Location, split_lines
from ..ir.base import Layer, Position, Shape, fmt_shape, numel
from ..ir.geometry import ShapeError
from ..ir.network import Origins
from . import memory as _memory
from .memory import DTYPE_BYTES, Memory
from .receptive_field import IMAGE, ReceptiveField, apply_window, combine, flat_window

if TYPE_CHECKING:
    from ..ir import Network

__all__ = [
    "Analysis",
    "LayerInfo",
    "Memory",
    "Origins",
    "ReceptiveField",
    "Totals",
    "analyze",
    "DTYPE_BYTES",
    "locate",
]


class LayerInfo(NamedTuple):
    """What the analysis knows about one node (immutable)."""

    layer: Layer
    input_shapes: tuple[Shape, ...]
    output_shape: Shape
    trainable_params: int
    non_trainable_params: int
    macs: int
    receptive_field: ReceptiveField | None

    @property
    def params(self) -> int:
        return self.trainable_params + self.non_trainable_params

    @property
    def output_elements(self) -> int:
        return numel(self.output_shape)

    def __repr__(self) -> str:
        rf = self.receptive_field.short() if self.receptive_field is not None else "-"
        return (
            f"<LayerInfo {self.layer.name} ({self.layer.type_name}): {fmt_shape(self.output_shape)},"
            f" {grouped(self.params)} params, {grouped(self.macs)} MACs, RF {rf}>"
        )


class Totals(NamedTuple):
    """Parameters and MACs summed over a set of nodes."""

    trainable_params: int
    non_trainable_params: int
    macs: int

    @property
    def total_params(self) -> int:
        return self.trainable_params + self.non_trainable_params


class _Facts(NamedTuple):
    """What a layer gives for its input shapes (the same for every node made from one
    template with the same inputs: computed once)."""

    output_shape: Shape
    trainable: int
    non_trainable: int
    macs: int
    windows: tuple | None  # per input, flat for apply_window (or None); None when no input has one
    elements: int  # of the output
    input_shapes: tuple[Shape, ...]


class Analysis:
    """Per-node facts and totals for a network.  Index it by node name.

    :func:`analyze` computes every fact at once; the per-node :class:`LayerInfo` records that
    present them are made when first asked for.

    The totals (``total_params``, ``trainable_params``, ``non_trainable_params``, ``macs``)
    cover every node: the model as built, and what a training step computes.  A network with
    training outputs (GoogLeNet's auxiliary heads) also has :attr:`inference`, the totals
    without the nodes only those outputs need (:attr:`training_only`): what a model built
    without them holds and computes (torchvision's ``aux_logits=False``); for other networks
    it equals the totals.
    """

    def __init__(
        self,
        network: Network,
        facts: list[_Facts],
        fields: list[ReceptiveField | None],
        input_ids: list,
        totals: tuple[int, int, int],
        training_only: frozenset[str] = frozenset(),
        follow: list[tuple[bool, ...]] | None = None,
    ) -> None:
        # No reference to the network itself: it holds its analysis, and a cycle would keep
        # both alive until the garbage collector runs.
        self.name = network.name
        self._nodes = network.layers
        self._outputs = list(network.outputs)
        self._facts = facts  # each node's facts
        self._fields = fields  # each node's receptive field
        self._input_ids = input_ids  # each node's inputs, as positions in network.layers
        self.trainable_params, self.non_trainable_params, self.macs = totals
        self.total_params = self.trainable_params + self.non_trainable_params
        self.training_only = training_only
        """Names of the nodes computed only in training (for the training outputs)."""
        if training_only:
            kept = [f for layer, f in zip(network.layers, facts) if layer.name not in training_only]
            self.inference = Totals(
                sum(f.trainable for f in kept),
                sum(f.non_trainable for f in kept),
                sum(f.macs for f in kept),
            )
        else:
            self.inference = Totals(*totals)
        """Parameters and MACs of the nodes inference computes."""
        self._layers: dict[str, LayerInfo] | None = None
        self._last_use: list[int] | None = None
        self._follow = follow  # None: no input size is open
        self._position: dict[str, int] | None = None

    def follows(self, name: str) -> tuple[bool, ...]:
        """Which sizes of node ``name``'s output follow the open height and width of the
        network's inputs (``input ?x?x3``): the models take any size there, and these sizes
        are the analysis's at the size it was given.  All False for a network of fixed size."""
        if self._follow is None:
            return (False,) * len(self.layers[name].output_shape)
        if self._position is None:
            self._position = {layer.name: i for i, layer in enumerate(self._nodes)}
        return self._follow[self._position[name]]

    @property
    def layers(self) -> dict[str, LayerInfo]:
        """Every node's :class:`LayerInfo` by name, in topological order."""
        if self._layers is None:  # the records are made when first asked for
            self._layers = {
                layer.name: _info(
                    LayerInfo,
                    (layer, f.input_shapes, f.output_shape, f.trainable, f.non_trainable, f.macs, rf),
                )
                for layer, f, rf in zip(self._nodes, self._facts, self._fields)
            }
        return self._layers

    def __getitem__(self, name: str) -> LayerInfo:
        return self.layers[name]

    def __iter__(self) -> Iterator[LayerInfo]:
        return iter(self.layers.values())

    def __len__(self) -> int:
        return len(self._facts)

    def __repr__(self) -> str:
        return (
            f"<Analysis of {self.name!r}: {len(self)} nodes, {grouped(self.total_params)} params,"
            f" {human(self.macs)} MACs>"
        )

    @property
    def inputs(self) -> list[Layer]:
        """The input nodes, in declaration order."""
        return [layer for layer in self._nodes if layer.kind == "input"]

    @property
    def outputs(self) -> list[tuple[str, Shape]]:
        return [(name, self.layers[name].output_shape) for name in self._outputs]

    def memory(self, batch_size: int = 1, dtype: str = "float32") -> Memory:
        """Parameter, inference-peak and training bytes (see :mod:`cnndsl.analysis.memory`).
        The inference peak leaves out the nodes computed only in training."""
        skip = None  # the nodes that do not run at inference, if any
        if self.training_only:
            skip = [layer.name in self.training_only for layer in self._nodes]
        if self._last_use is None:
            n = len(self._input_ids)
            last = list(range(n))
            for i, ids in enumerate(self._input_ids):
                if skip and skip[i]:  # not run at inference: it keeps nothing alive
                    continue
                for j in ids:
                    last[j] = i
            outputs = set(self._outputs)
            for i, layer in enumerate(self._nodes):
                if layer.name in outputs:
                    last[i] = n
            self._last_use = last
        sizes = [f.elements for f in self._facts]
        running = [0 if s else size for s, size in zip(skip, sizes)] if skip else None
        return _memory.compute(
            self.total_params, sizes, self._last_use, batch_size, dtype, inference_sizes=running
        )


def locate(network: Network, position: Position | None) -> Location | None:
    """A :class:`Location` (with its source line, when the source is known) for a Position."""
    if position is None:
        return None
    text = network._sources.get(position.file)
    line = None
    if text is not None:
        lines = split_lines(text)
        if 0 < position.line <= len(lines):
            line = lines[position.line - 1]
    return Location(position.file, position.line, position.column, position.end_column, line)


def layer_error(network: Network, layer: Layer, message: str, hint: str | None = None) -> CnnDslError:
    """An error at a node, with a note for each block call it came through (innermost first)."""
    notes = [
        (f"in {call.signature()}, called", locate(network, call.position))
        for call in reversed(layer.calls)
    ]
    return CnnDslError(message, locate(network, layer.position), hint=hint, notes=notes)


MAX_ERRORS = 20
_info = tuple.__new__  # LayerInfo(...) without the keyword handling of its generated __new__


def analyze(network: Network, origins: Origins | None = None) -> Analysis:
    """Compute every node's facts.  ``origins``, from the elaborator, lets nodes placed from
    one layer share their facts (see :class:`Origins`); without them every node is its own.

    Raises :class:`CnnDslError` listing every layer that cannot apply to its input (up to
    MAX_ERRORS); layers downstream of a failed one are skipped, not reported again.
    """
    layers = network.layers
    if origins is not None:
        if not len(origins.templates) == len(origins.inputs) == len(layers):
            raise ValueError("these origins describe another list of layers")
        templates, input_ids = origins
    else:
        templates = layers
        where: dict[str, int] = {}
        input_ids = []
        for i, layer in enumerate(layers):
            input_ids.append(tuple([where[name] for name in layer.inputs]))
            where[layer.name] = i
    n = len(layers)
    shapes: list[Shape | None] = [None] * n  # None: not computed (the node or an input failed)
    fields: list[ReceptiveField | None] = [None] * n
    facts_of: list[_Facts] = []
    total_trainable = total_non_trainable = total_macs = 0
    errors: list = []
    # Nodes the elaborator made from one validated layer (a block called again, a repeat)
    # have the same facts for the same input shapes: computed once.  By template, then by
    # input shape (the tuple of shapes for nodes with several inputs).
    memo: dict[int, dict] = {}
    for i, (layer, template, ids) in enumerate(zip(layers, templates, input_ids)):
        if len(ids) == 1:  # most nodes: one input, no merge of receptive fields
            shape = shapes[ids[0]]
            if shape is None:
                continue
        else:
            shape = tuple([shapes[j] for j in ids])
            if None in shape:
                continue
        by_shape = memo.get(id(template))
        if by_shape is None:
            by_shape = memo[id(template)] = {}
        facts = by_shape.get(shape)
        if facts is None:
            try:
                facts = by_shape[shape] = _facts(layer, (shape,) if len(ids) == 1 else shape)
            except ShapeError as e:
                errors.extend(layer_error(network, layer, str(e), e.hint).diagnostics)
                if len(errors) >= MAX_ERRORS:
                    break
                continue
        out, trainable, non_trainable, macs, windows, _, _ = facts
        if len(ids) == 1:
            rf = fields[ids[0]]
            if windows is not None and rf is not None:
                rf = apply_window(rf, windows[0])
        elif ids:  # a merge: the union of its inputs' fields, each through its window
            known = [
                (fields[j] if windows is None or windows[k] is None else apply_window(fields[j], windows[k]))
                for k, j in enumerate(ids)
                if fields[j] is not None
            ]
            rf = combine(known, out) if known else None
        else:  # an input
            rf = IMAGE if len(out) == 3 else None
        shapes[i] = out
        fields[i] = rf
        facts_of.append(facts)
        total_trainable += trainable
        total_non_trainable += non_trainable
        total_macs += macs
    if errors:
        raise CnnDslError(errors)
    follow = None
    if any(any(layer.open) for layer in network.inputs):
        follow = open_sizes(network, input_ids, facts_of)
    totals = (total_trainable, total_non_trainable, total_macs)
    training_only = frozenset(network.training_only())
    return Analysis(network, facts_of, fields, input_ids, totals, training_only, follow)


def open_sizes(network: Network, input_ids: list, facts: list[_Facts]) -> list[tuple[bool, ...]]:
    """Which sizes of each node's output follow the open height and width of the network's
    inputs (``input ?x?x3``), by :meth:`~cnndsl.ir.Layer.open_sizes`.  Raises
    :class:`CnnDslError` at every layer that would tie a model to one input size (its
    parameters, or whether it applies, depend on a size that follows); layers after one are
    not reported again."""
    follow: list[tuple[bool, ...] | None] = []
    errors: list = []
    for layer, ids, f in zip(network.layers, input_ids, facts):
        if not ids:  # an input: its open height and width
            follow.append((*layer.open, False) if len(f.output_shape) == 3 else (False,))
            continue
        marks = [follow[j] for j in ids]
        if None in marks:  # after a layer reported already
            follow.append(None)
        elif not any(any(m) for m in marks):
            follow.append((False,) * len(f.output_shape))
        else:
            try:
                follow.append(layer.open_sizes(list(f.input_shapes), marks))
            except ShapeError as e:
                errors.extend(layer_error(network, layer, str(e), e.hint).diagnostics)
                follow.append(None)
                if len(errors) >= MAX_ERRORS:
                    break
    if errors:
        raise CnnDslError(errors)
    return follow


def _facts(layer: Layer, in_shapes: tuple[Shape, ...]) -> _Facts:
    """What ``layer`` gives for these input shapes (raises ShapeError where it cannot apply)."""
    inputs = list(in_shapes)
    out = layer.output_shape(inputs)
    trainable, non_trainable = layer.param_counts(inputs)
    windows = None
    if inputs:
        windows = tuple([flat_window(w) for w in layer.windows(inputs)])
        if not any(windows):
            windows = None
    return _Facts(out, trainable, non_trainable, layer.macs(inputs, out), windows, numel(out), in_shapes)
