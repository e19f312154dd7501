"""Units, graphs of units, and the builder the two readers (Keras, cnndsl) share."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ...ir.geometry import effective_kernel, same_padding

Pads = tuple[tuple[int, int], tuple[int, int]]
ZERO_PADS: Pads = ((0, 0), (0, 0))
MERGES = ("add", "multiply", "concat")
WINDOWED = ("conv", "dwconv", "sepconv", "maxpool", "avgpool")


@dataclass
class Unit:
    """One layer of a model in the common vocabulary (see the package docstring).

    ``name`` is the layer (Keras) or node (cnndsl) it comes from, ``source`` how it is written
    there; ``weights`` maps each weight's role (``kernel``, ``bias``, ``gamma``,
    ``moving_mean`` ...) to the Keras variable, for Keras models.  ``in_hw`` is the input's
    height and width for windowed units (their ``pads`` are normalized from it).
    """

    kind: str
    settings: dict[str, Any]
    inputs: list[int]
    shape: tuple[int, ...]
    params: tuple[int, int] = (0, 0)
    name: str = ""
    source: str = ""
    weights: dict[str, Any] = field(default_factory=dict)
    in_hw: tuple[int, int] | None = None

    def describe(self) -> str:
        return f"'{self.name}' ({self.source}) -> {shape_text(self.shape)}{params_text(self)}"


def shape_text(shape: tuple[int, ...]) -> str:
    return "x".join(str(d) for d in shape)


def params_text(unit: Unit) -> str:
    total = sum(unit.params)
    return f", {total:,} parameters" if total else ""


@dataclass
class Graph:
    """A model as units in topological order; ``label`` names the model in messages."""

    units: list[Unit]
    inputs: list[int]
    outputs: list[int]
    label: str

    def readers(self) -> list[list[int]]:
        """For each unit, the units that read it."""
        result: list[list[int]] = [[] for _ in self.units]
        for i, unit in enumerate(self.units):
            for j in unit.inputs:
                result[j].append(i)
        return result


@dataclass
class Matching:
    """The pairing of two graphs: ``pairs[i]`` is the unit of ``theirs`` paired with unit i of
    ``ours``; ``branches[i]`` gives, for a merge, the position in theirs' inputs of each of
    ours' inputs."""

    ours: Graph
    theirs: Graph
    pairs: dict[int, int]
    branches: dict[int, list[int]]


class Builder:
    """Collects units; ``value`` maps a layer's (or node's) name to the unit giving its output
    (an identity maps to its input's)."""

    def __init__(self, label: str):
        self.units: list[Unit] = []
        self.value: dict[str, int] = {}
        self.label = label

    def add(self, unit: Unit) -> int:
        self.units.append(unit)
        return len(self.units) - 1

    def graph(self, inputs: list[str], outputs: list[str]) -> Graph:
        from .simplify import normalized, simplified

        ins = [self.value[name] for name in inputs]
        outs = [self.value[name] for name in outputs]
        return normalized(simplified(Graph(self.units, ins, outs, self.label)))


def pads(value) -> Pads:
    """A padding or cropping argument (int, (h, w) or ((t, b), (l, r))) as ((t, b), (l, r))."""
    if isinstance(value, int):
        return ((value, value), (value, value))
    h, w = value
    return (
        (h, h) if isinstance(h, int) else (int(h[0]), int(h[1])),
        (w, w) if isinstance(w, int) else (int(w[0]), int(w[1])),
    )


def resolve(padding, hw, kernel, strides, dilation) -> Pads:
    """'same', 'valid' or explicit pads -> explicit ((top, bottom), (left, right))."""
    if padding == "valid":
        return ZERO_PADS
    if padding == "same":
        return tuple(  # type: ignore[return-value]
            same_padding(hw[a], effective_kernel(kernel[a], dilation[a]), strides[a])
            for a in (0, 1)
        )
    return tuple(tuple(int(v) for v in side) for side in padding)  # type: ignore[return-value]


def window(kernel, strides, dilation, padding: Pads, hw) -> dict[str, Any]:
    """The settings of a windowed unit; ``_hw`` (the input's size) is consumed by
    :func:`~.simplify.normalized`."""
    return {
        "kernel": tuple(kernel),
        "strides": tuple(strides),
        "dilation": tuple(dilation),
        "pads": padding,
        "_hw": tuple(hw),
    }


def transposed(kernel, strides, dilation, crop) -> dict[str, Any]:
    """The settings of a transposed convolution: ``crop`` is the (rows, columns) removed from
    the start of its full output, (n - 1) * s + k_eff; its output size gives the end (cropped,
    or extended with rows of bias alone)."""
    return {
        "kernel": tuple(kernel),
        "strides": tuple(strides),
        "dilation": tuple(dilation),
        "crop": tuple(crop),
    }


def values(value):
    """A number or a list of numbers (one per channel) as a float or a tuple of floats."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        items = tuple(float(v) for v in value)
        return items[0] if len(set(items)) == 1 else items
    return float(value)
