"""Layers that move values without computing: reshape, cropping, channel split and shuffle.

Shapes are channels last, (H, W, C) or (N,), in every back end: a reshape reads and writes
values in H, W, C order (as ``flatten`` does), whatever layout a framework keeps internally.
"""

from __future__ import annotations

from math import prod
from typing import Annotated, ClassVar, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from .base import (
    Int,
    Layer,
    NonNegInt,
    PositiveInt,
    _padding,
    fmt_shape,
    require_map,
    whole_map_window,
)
from .geometry import ShapeError


def _dims(value):
    if isinstance(value, int) and not isinstance(value, bool):
        return (value,)
    return tuple(value) if isinstance(value, list) else value


class Reshape(Layer):
    """A new shape for the same values, read and written in H, W, C order (``reshape 1000``,
    ``reshape 1x1x1024``, ``reshape shape=(7, 7, -1)``): MobileNet's head turns its 1 x 1 x
    classes map into a vector this way.

    Field: shape, the target: a vector (N,) or a map (H, W, C); one dimension may be -1, computed
    from the others.  The number of values must not change.

    Keras: ``keras.layers.Reshape(shape)``.  PyTorch: on the channels-last tensor --
    ``x.permute(0, 2, 3, 1)`` for a map input, ``.reshape(x.size(0), *shape)``, and
    ``.permute(0, 3, 1, 2)`` back for a map output (none for 1 x 1 maps of fixed size).
    Its receptive-field window is none when the positions are unchanged (H and W the same, or
    a vector in and out) and the whole input map otherwise, as ``flatten``'s.
    """

    kind: Literal["reshape"] = "reshape"
    shape: Annotated[tuple[Int, ...], BeforeValidator(_dims)]

    family: ClassVar[str] = "reshape"
    spec_names: ClassVar[tuple[str, ...]] = ("reshape",)
    positional: ClassVar[tuple[str, ...]] = ("shape",)
    aliases: ClassVar[dict[str, str]] = {"target_shape": "shape"}

    @field_validator("shape")
    @classmethod
    def _target(cls, shape):
        if len(shape) not in (1, 3):
            raise ValueError(
                f"reshape makes a vector N or a map H x W x C, not {len(shape)} dimensions"
            )
        if any(d < 1 and d != -1 for d in shape) or list(shape).count(-1) > 1:
            raise ValueError("reshape sizes must be at least 1, with at most one -1 (inferred)")
        return shape

    def output_shape(self, inputs):
        total = prod(inputs[0])
        known = prod(d for d in self.shape if d != -1)
        if -1 in self.shape:
            if total % known:
                raise ShapeError(
                    f"reshape cannot make {self.shape} of {fmt_shape(inputs[0])}:"
                    f" {total} values are not a multiple of {known}"
                )
            return tuple(total // known if d == -1 else d for d in self.shape)
        if known != total:
            raise ShapeError(
                f"reshape cannot make {fmt_shape(self.shape)} ({known} values) of"
                f" {fmt_shape(inputs[0])} ({total} values)"
            )
        return self.shape

    def window(self, inputs):
        shape = inputs[0]
        if len(shape) == 1:
            return None
        out = self.output_shape(inputs)
        if len(out) == 3 and out[:2] == shape[:2]:
            return None
        return whole_map_window(shape)

    def notation(self):
        if len(self.shape) == 1 or -1 in self.shape:
            dims = ", ".join(map(str, self.shape)) + ("," if len(self.shape) == 1 else "")
            return f"reshape shape=({dims})"
        return f"reshape {fmt_shape(self.shape)}"


Cropping = Annotated[
    tuple[tuple[NonNegInt, NonNegInt], tuple[NonNegInt, NonNegInt]], BeforeValidator(_padding)
]


class Cropping2D(Layer):
    """Cropping of a map (``crop 1``, ``crop cropping=((0, 1), (0, 1))``): removes rows at the top
    and bottom and columns at the left and right, as NASNet does.

    Field: cropping ((top, bottom), (left, right)); one number crops every side, (h, w) both
    sides of each axis.  Output pixel (i, j) is input pixel (i + top, j + left).

    Keras: ``keras.layers.Cropping2D(((top, bottom), (left, right)))``.  PyTorch:
    ``x[:, :, top:H - bottom, left:W - right]``.
    """

    kind: Literal["crop"] = "crop"
    cropping: Cropping

    family: ClassVar[str] = "reshape"
    spec_names: ClassVar[tuple[str, ...]] = ("crop", "cropping", "cropping2d")
    positional: ClassVar[tuple[str, ...]] = ("cropping",)

    def output_shape(self, inputs):
        h, w, c = require_map(self, inputs[0])
        (t, b), (l, r) = self.cropping
        if t + b >= h or l + r >= w:
            raise ShapeError(f"{self.notation()} leaves nothing of a {fmt_shape(inputs[0])} map")
        return (h - t - b, w - l - r, c)

    def window(self, inputs):
        (t, _), (l, _) = self.cropping
        return ((0, 1, -t), (0, 1, -l))

    def notation(self):
        (t, b), (l, r) = self.cropping
        if t == b == l == r:
            return f"crop {t}"
        return f"crop cropping=(({t}, {b}), ({l}, {r}))"


class ChannelSplit(Layer):
    """One of ``parts`` equal groups of consecutive channels (``split 2 part=0``): channels
    [part * C/parts, (part + 1) * C/parts).  Each node keeps one part; two branches of a merge
    read the two halves, as ShuffleNetV2's ``x1, x2 = x.chunk(2, dim=1)``::

        concat { split 2 part=0 | split 2 part=1 -> ... } -> shuffle 2

    Fields: parts (>= 2), part (0 <= part < parts).  The channels must divide into parts.

    PyTorch: ``x.chunk(parts, dim=1)[part]`` (equal chunks, as C divides).  Keras:
    ``keras.ops.split(x, parts, axis=-1)[part]`` or the slice ``x[..., a:b]``.
    """

    kind: Literal["split"] = "split"
    parts: Annotated[PositiveInt, Field(ge=2)]
    part: NonNegInt = 0

    family: ClassVar[str] = "reshape"
    spec_names: ClassVar[tuple[str, ...]] = ("split", "channelsplit", "channel_split")
    positional: ClassVar[tuple[str, ...]] = ("parts", "part")
    aliases: ClassVar[dict[str, str]] = {"chunks": "parts", "index": "part"}

    @model_validator(mode="after")
    def _part(self):
        if self.part >= self.parts:
            raise ValueError(
                f"split part={self.part} does not exist: the parts are 0 to {self.parts - 1}"
            )
        return self

    def output_shape(self, inputs):
        shape = inputs[0]
        if len(shape) not in (1, 3):
            raise ShapeError(f"split needs a map or a vector, got {fmt_shape(shape)}")
        if shape[-1] % self.parts:
            raise ShapeError(
                f"split {self.parts} needs channels divisible by {self.parts}, got {shape[-1]}"
            )
        return (*shape[:-1], shape[-1] // self.parts)

    def channels(self, inputs) -> range:
        """The input channels this node keeps."""
        size = inputs[0][-1] // self.parts
        return range(self.part * size, (self.part + 1) * size)

    def notation(self):
        return f"split {self.parts} part={self.part}"


class ChannelShuffle(Layer):
    """ShuffleNet's channel shuffle (``shuffle 2``): the channels, seen as ``groups`` rows of
    C/groups, are read column by column -- output channel j * groups + i is input channel
    i * C/groups + j.

    Field: groups (the channels must divide into them).

    PyTorch: ``nn.ChannelShuffle(groups)`` (torchvision's ``channel_shuffle``:
    ``x.view(N, g, C // g, H, W).transpose(1, 2).reshape(N, C, H, W)``).  Keras: the same on the
    channels-last tensor, ``Reshape((H, W, g, C // g))``, ``Permute((1, 2, 4, 3))``,
    ``Reshape((H, W, C))``.
    """

    kind: Literal["shuffle"] = "shuffle"
    groups: PositiveInt

    family: ClassVar[str] = "reshape"
    spec_names: ClassVar[tuple[str, ...]] = ("shuffle", "channelshuffle", "channel_shuffle")
    positional: ClassVar[tuple[str, ...]] = ("groups",)

    def output_shape(self, inputs):
        h, w, c = require_map(self, inputs[0])
        if c % self.groups:
            raise ShapeError(
                f"shuffle {self.groups} needs channels divisible by {self.groups}, got {c}"
            )
        return inputs[0]

    def permutation(self, channels: int) -> list[int]:
        """For each output channel, the input channel it takes."""
        size = channels // self.groups
        return [(o % self.groups) * size + o // self.groups for o in range(channels)]

    def notation(self):
        return f"shuffle {self.groups}"
