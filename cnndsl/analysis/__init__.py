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

from ..errors import CnnDslError, Location
from ..ir.base import Layer, Position, Shape, numel
from ..ir.geometry import ShapeError
from . import memory as _memory
from .memory import DTYPE_BYTES, Memory
from .receptive_field import IMAGE, ReceptiveField, apply_window, combine

if TYPE_CHECKING:
    from ..ir import Network

__all__ = ["Analysis", "LayerInfo", "Memory", "ReceptiveField", "analyze", "DTYPE_BYTES", "locate"]


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


class Analysis:
    """Per-node facts and totals for a network.  Index it by node name."""

    def __init__(self, network: Network, infos: dict[str, LayerInfo]) -> None:
        self.network = network
        self.layers = infos
        self.trainable_params = sum(i.trainable_params for i in infos.values())
        self.non_trainable_params = sum(i.non_trainable_params for i in infos.values())
        self.total_params = self.trainable_params + self.non_trainable_params
        self.macs = sum(i.macs for i in infos.values())
        self._last_use: list[int] | None = None

    def __getitem__(self, name: str) -> LayerInfo:
        return self.layers[name]

    def __iter__(self) -> Iterator[LayerInfo]:
        return iter(self.layers.values())

    def __len__(self) -> int:
        return len(self.layers)

    @property
    def outputs(self) -> list[tuple[str, Shape]]:
        return [(name, self.layers[name].output_shape) for name in self.network.outputs]

    def memory(self, batch_size: int = 1, dtype: str = "float32") -> Memory:
        """Parameter, inference-peak and training bytes (see :mod:`cnndsl.analysis.memory`)."""
        infos = list(self.layers.values())
        if self._last_use is None:
            position = {info.layer.name: i for i, info in enumerate(infos)}
            last = list(range(len(infos)))
            for i, info in enumerate(infos):
                for name in info.layer.inputs:
                    last[position[name]] = i
            for name in self.network.outputs:
                last[position[name]] = len(infos)
            self._last_use = last
        sizes = [info.output_elements for info in infos]
        return _memory.compute(self.total_params, sizes, self._last_use, batch_size, dtype)


def locate(network: Network, position: Position | None) -> Location | None:
    """A :class:`Location` (with its source line, when the source is known) for a Position."""
    if position is None:
        return None
    text = network._sources.get(position.file)
    line = None
    if text is not None:
        lines = text.splitlines()
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


def analyze(network: Network) -> Analysis:
    """Compute every node's facts.

    Raises :class:`CnnDslError` listing every layer that cannot apply to its input (up to
    MAX_ERRORS); layers downstream of a failed one are skipped, not reported again.
    """
    infos: dict[str, LayerInfo] = {}
    fields: dict[str, ReceptiveField | None] = {}
    failed: set[str] = set()
    errors: list = []
    # Nodes the elaborator made from one validated layer (a block called again, a repeat)
    # have the same facts for the same input shapes: computed once.
    templates = network._templates or [None] * len(network.layers)
    memo: dict[tuple, tuple] = {}
    for layer, template in zip(network.layers, templates):
        if any(name in failed for name in layer.inputs):
            failed.add(layer.name)
            continue
        in_shapes = [infos[name].output_shape for name in layer.inputs]
        key = (id(template), *in_shapes) if template is not None else None
        facts = memo.get(key) if key is not None else None
        if facts is None:
            try:
                facts = _facts(layer, in_shapes)
            except ShapeError as e:
                failed.add(layer.name)
                errors.extend(layer_error(network, layer, str(e)).diagnostics)
                if len(errors) >= MAX_ERRORS:
                    break
                continue
            if key is not None:
                memo[key] = facts
        out, trainable, frozen, macs, window = facts
        rf = _receptive_field(layer, window, [fields[name] for name in layer.inputs])
        fields[layer.name] = rf
        infos[layer.name] = LayerInfo(layer, tuple(in_shapes), out, trainable, frozen, macs, rf)
    if errors:
        raise CnnDslError(errors)
    return Analysis(network, infos)


def _facts(layer: Layer, in_shapes: list[Shape]) -> tuple:
    """(output shape, trainable, non-trainable, MACs, receptive-field window) of one node."""
    out = layer.output_shape(in_shapes)
    trainable, frozen = layer.param_counts(in_shapes)
    window = layer.window(in_shapes) if layer.kind != "input" else None
    return out, trainable, frozen, layer.macs(in_shapes, out), window


def _receptive_field(layer: Layer, window, in_fields) -> ReceptiveField | None:
    if layer.kind == "input":
        return IMAGE if len(layer.shape) == 3 else None  # type: ignore[attr-defined]
    known = [f for f in in_fields if f is not None]
    if not known:
        return None
    rf = combine(known)
    return rf if window is None else apply_window(rf, window)
