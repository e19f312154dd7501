"""Merges of several tensors: add, concatenate (along the channels), multiply."""

from __future__ import annotations

from typing import ClassVar, Literal

from .base import Layer, fmt_shape, whole_map_window
from .geometry import ShapeError


def _listing(inputs) -> str:
    return ", ".join(fmt_shape(s) for s in inputs)


class _Merge(Layer):
    family: ClassVar[str] = "merge"
    min_inputs: ClassVar[int] = 2
    max_inputs: ClassVar[int | None] = None


class Add(_Merge):
    """Elementwise sum of inputs of one shape (``add { ... | identity }``, ``add(x, y)``)."""

    kind: Literal["add"] = "add"
    spec_names: ClassVar[tuple[str, ...]] = ("add",)

    def output_shape(self, inputs):
        if any(s != inputs[0] for s in inputs):
            raise ShapeError(f"add needs inputs of one shape, got {_listing(inputs)}")
        return inputs[0]


class Concat(_Merge):
    """Concatenation along the channels (``concat { ... | ... }``): maps of one height and
    width, or vectors."""

    kind: Literal["concat"] = "concat"
    spec_names: ClassVar[tuple[str, ...]] = ("concat", "concatenate")

    def output_shape(self, inputs):
        ranks = {len(s) for s in inputs}
        if len(ranks) != 1 or any(s[:-1] != inputs[0][:-1] for s in inputs):
            raise ShapeError(
                "concat needs maps of one height and width (or only vectors), got "
                + _listing(inputs)
            )
        return (*inputs[0][:-1], sum(s[-1] for s in inputs))


class Multiply(_Merge):
    """Elementwise product (``multiply``).  A vector of C (or a 1x1xC map) is broadcast over
    the height and width of an H x W x C map, as squeeze-and-excitation needs."""

    kind: Literal["multiply"] = "multiply"
    spec_names: ClassVar[tuple[str, ...]] = ("multiply",)

    def output_shape(self, inputs):
        big = max(inputs, key=len)
        for s in inputs:
            if s == big or (len(big) == 3 and s in ((big[2],), (1, 1, big[2]))):
                continue
            raise ShapeError(
                "multiply needs inputs of one shape, or channel vectors to scale a map with the"
                f" same channels, got {_listing(inputs)}"
            )
        return big

    def windows(self, inputs):
        # A broadcast 1x1 map is read whole at every position (a vector's field is global
        # already): its field becomes global.
        big = max(inputs, key=len)
        return tuple(
            whole_map_window(s) if s != big and len(s) == 3 else None for s in inputs
        )
