"""Pooling layers: max/avg pooling, adaptive average pooling, global pooling, depth-wise (across
channels) max pooling."""

from __future__ import annotations

from fractions import Fraction
from math import gcd
from typing import ClassVar, Literal

from pydantic import model_validator

from .base import (
    Axis,
    Bool,
    Layer,
    Padding,
    Pair,
    PositiveInt,
    kspec_notation,
    require_map,
    whole_map_window,
)
from .conv import sliding_window, window_axes
from .geometry import ShapeError

_POOL_ALIASES = {
    "pool_size": "kernel",
    "kernel_size": "kernel",
    "size": "kernel",
    "strides": "stride",
    "ceil": "ceil_mode",
}
_POOL_FLAGS = {
    "same": ("padding", "same"),
    "valid": ("padding", "valid"),
    "ceil": ("ceil_mode", True),
}


class _Pool2D(Layer):
    kernel: Pair = (2, 2)
    stride: Pair | None = None
    padding: Padding = "valid"
    ceil_mode: Bool = False

    takes_kernel_spec: ClassVar[bool] = True
    family: ClassVar[str] = "pool"
    positional: ClassVar[tuple[str, ...]] = ("kernel",)
    aliases: ClassVar[dict[str, str]] = _POOL_ALIASES
    flags: ClassVar[dict[str, tuple[str, object]]] = _POOL_FLAGS

    @model_validator(mode="after")
    def _defaults(self):
        if self.stride is None:  # as in Keras and PyTorch, the stride defaults to the window
            object.__setattr__(self, "stride", self.kernel)
        if self.ceil_mode and self.padding == "same":
            raise ValueError("ceil_mode only applies to VALID or explicit padding")
        if self.padding not in ("same", "valid"):
            for (before, after), k in zip(self.padding, self.kernel):
                if max(before, after) * 2 > k:
                    raise ValueError(
                        f"padding ({max(before, after)}) must be at most half the window ({k})"
                    )
        return self

    def _spatial(self, shape):
        return sliding_window(self, shape, self.kernel, self.stride, (1, 1), self.padding, self.ceil_mode)

    def output_shape(self, inputs):
        (oh, ow), _ = self._spatial(inputs[0])
        return (oh, ow, inputs[0][2])

    def window(self, inputs):
        _, pads = self._spatial(inputs[0])
        return window_axes(self.kernel, self.stride, (1, 1), pads)

    def explicit_padding(self, inputs) -> tuple[tuple[int, int], tuple[int, int]]:
        """The padding declared or, for SAME, resolved as TensorFlow does:
        ((top, bottom), (left, right)) for these inputs.  (With ceil_mode the last window may
        also run past the bottom/right padding; :func:`geometry.window_output` sizes it.)"""
        return self._spatial(inputs[0])[1]

    def notation(self):
        head, extra = kspec_notation(self.kernel, self.stride, self.padding)
        if self.ceil_mode:
            extra.append("ceil")
        return " ".join([head, self.spec_names[0], *extra])


class MaxPool2D(_Pool2D):
    """Max pooling (``maxpool``): ``3x3+2(S) maxpool``.  Stride defaults to the window size.

    Fields: kernel (2x2 if not given), stride, padding (padded cells never win), ceil_mode.
    """

    kind: Literal["maxpool"] = "maxpool"
    spec_names: ClassVar[tuple[str, ...]] = ("maxpool", "maxpool2d", "maxpooling")


class AvgPool2D(_Pool2D):
    """Average pooling (``avgpool``): ``2x2+2(V) avgpool``.

    Fields: kernel, stride, padding, ceil_mode, include_pad.  ``include_pad`` says whether padded
    cells count in the average; by default they do not with SAME padding (TensorFlow) and do with
    explicit padding (PyTorch's count_include_pad).
    """

    kind: Literal["avgpool"] = "avgpool"
    include_pad: Bool | None = None

    spec_names: ClassVar[tuple[str, ...]] = ("avgpool", "avgpool2d", "averagepooling")
    aliases: ClassVar[dict[str, str]] = {**_POOL_ALIASES, "count_include_pad": "include_pad"}

    @model_validator(mode="after")
    def _include_pad(self):
        if self.include_pad is None:
            object.__setattr__(self, "include_pad", self.padding not in ("same", "valid"))
        return self

    def notation(self):
        text = super().notation()
        if self.padding == "same" and self.include_pad:
            text += " include_pad=on"
        elif self.padding not in ("same", "valid") and not self.include_pad:
            text += " include_pad=off"
        return text


def adaptive_bins(n: int, out: int) -> list[tuple[int, int]]:
    """PyTorch's adaptive pooling bins along one axis of n cells pooled to ``out``: output i
    averages cells [floor(i * n / out), ceil((i + 1) * n / out)) (end exclusive)."""
    return [((i * n) // out, -((-(i + 1) * n) // out)) for i in range(out)]


def adaptive_window(shape, axis: int, out: int) -> Axis:
    """The receptive-field window of adaptive pooling to ``out`` cells along ``axis`` (0 or 1)
    of a map of this ``shape``: (span, stride, padding).

    When ``out`` divides ``n`` the bins are plain windows of n/out cells at stride n/out.
    Otherwise they vary in size and start at floor(i * n / out); the window is the smallest one
    at stride n/out (a fraction) that contains every bin: with n/out = a/b in lowest terms, bin
    i starts at most (b-1)/b before i*a/b and ends at most (b-1)/b after (i+1)*a/b, so the
    padding is (b-1)/b and the span a/b - 1 + 2(b-1)/b.  One output cell is global: the whole
    axis, as global pooling's window.
    """
    if out == 1:
        return whole_map_window(shape)[axis]
    n = shape[axis]
    if n % out == 0:
        return (n // out - 1, n // out, 0)
    b = out // gcd(n, out)
    stride = Fraction(n, out)
    slack = Fraction(b - 1, b)
    return (stride - 1 + 2 * slack, stride, slack)


class AdaptiveAvgPool2D(Layer):
    """Average pooling to a fixed output size (``adaptiveavgpool 7``, ``adaptiveavgpool 4x4``,
    ``adaptiveavgpool output_size=(6, 4)``): H x W x C -> OH x OW x C at any input size, as
    VGG's and AlexNet's classifiers and GoogLeNet's auxiliary heads use it.

    Field: output_size (OH, OW); one number means both.  Along an axis of n cells, output i
    averages cells [floor(i * n / out), ceil((i + 1) * n / out)) -- PyTorch's rule; the bins may
    overlap and differ in size when out does not divide n, and cells are repeated when out > n.

    PyTorch: ``nn.AdaptiveAvgPool2d((OH, OW))`` (``F.adaptive_avg_pool2d``).  Keras:
    ``keras.layers.AdaptiveAveragePooling2D((OH, OW))`` (Keras 3.15; the same bins).  With
    OH = OW = 1 it is global average pooling with ``keepdims``.
    """

    kind: Literal["adaptiveavgpool"] = "adaptiveavgpool"
    output_size: Pair

    family: ClassVar[str] = "pool"
    spec_names: ClassVar[tuple[str, ...]] = (
        "adaptiveavgpool",
        "adaptive_avgpool",
        "adaptiveavgpool2d",
    )
    positional: ClassVar[tuple[str, ...]] = ("output_size",)
    aliases: ClassVar[dict[str, str]] = {"size": "output_size"}

    def output_shape(self, inputs):
        _, _, c = require_map(self, inputs[0])
        return (*self.output_size, c)

    def window(self, inputs):
        shape, (oh, ow) = inputs[0], self.output_size
        return adaptive_window(shape, 0, oh), adaptive_window(shape, 1, ow)

    def notation(self):
        oh, ow = self.output_size
        return f"adaptiveavgpool {oh}" if oh == ow else f"adaptiveavgpool {oh}x{ow}"


class _GlobalPool(Layer):
    keepdims: Bool = False

    family: ClassVar[str] = "pool"
    flags: ClassVar[dict[str, tuple[str, object]]] = {"keepdims": ("keepdims", True)}
    aliases: ClassVar[dict[str, str]] = {"keep_dims": "keepdims"}

    def output_shape(self, inputs):
        _, _, c = require_map(self, inputs[0])
        return (1, 1, c) if self.keepdims else (c,)

    def window(self, inputs):
        return whole_map_window(inputs[0])

    def notation(self):
        return self.spec_names[0] + (" keepdims" if self.keepdims else "")


class GlobalMaxPool2D(_GlobalPool):
    """Global max pooling (``globalmaxpool``): H x W x C -> C (or 1 x 1 x C with ``keepdims``)."""

    kind: Literal["globalmaxpool"] = "globalmaxpool"
    spec_names: ClassVar[tuple[str, ...]] = ("globalmaxpool", "global_maxpool", "gmp")


class GlobalAvgPool2D(_GlobalPool):
    """Global average pooling (``globalavgpool``, ``gap``): H x W x C -> C."""

    kind: Literal["globalavgpool"] = "globalavgpool"
    spec_names: ClassVar[tuple[str, ...]] = ("globalavgpool", "global_avgpool", "gap")


class DepthMaxPool(Layer):
    """Max pooling across channels (``depthmaxpool 3``): every ``pool`` consecutive channels
    become one, as the book's ``tf.nn.max_pool(X, ksize=(1, 1, 1, 3), strides=(1, 1, 1, 3))``.
    """

    kind: Literal["depthmaxpool"] = "depthmaxpool"
    pool: PositiveInt

    family: ClassVar[str] = "pool"
    spec_names: ClassVar[tuple[str, ...]] = ("depthmaxpool", "depth_maxpool", "channelmaxpool")
    positional: ClassVar[tuple[str, ...]] = ("pool",)
    aliases: ClassVar[dict[str, str]] = {"pool_size": "pool", "size": "pool"}

    def output_shape(self, inputs):
        h, w, c = require_map(self, inputs[0])
        if c % self.pool:
            raise ShapeError(f"depthmaxpool {self.pool} needs channels divisible by {self.pool}, got {c}")
        return (h, w, c // self.pool)

    def notation(self):
        return f"depthmaxpool {self.pool}"
