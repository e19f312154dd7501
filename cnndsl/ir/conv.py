"""Convolution layers: conv, depthwise conv, separable conv, transposed conv."""

from __future__ import annotations

from fractions import Fraction
from typing import ClassVar, Literal

from pydantic import model_validator

from .base import (
    ACTIVATIONS,
    Axis,
    Bool,
    Layer,
    NonNegPair,
    Padding,
    Pair,
    PositiveInt,
    Shape,
    fmt_shape,
    kspec_notation,
    require_map,
)
from .geometry import ShapeError, effective_kernel, transposed_output, window_output

Activation = Literal[ACTIVATIONS]  # type: ignore[valid-type]

_CONV_ALIASES = {
    "kernel_size": "kernel",
    "size": "kernel",
    "strides": "stride",
    "dilation_rate": "dilation",
    "use_bias": "bias",
    "act": "activation",
}
_CONV_FLAGS = {
    "same": ("padding", "same"),
    "valid": ("padding", "valid"),
    "nobias": ("bias", False),
}


def sliding_window(layer, shape: Shape, kernel, stride, dilation, padding, ceil_mode=False):
    """Output (H, W) and per-axis (before, after) padding of a 2-D window; ShapeError if empty."""
    h, w, _ = require_map(layer, shape)
    oh, pt, pb = window_output(h, kernel[0], stride[0], dilation[0], padding, 0, ceil_mode)
    ow, pl, pr = window_output(w, kernel[1], stride[1], dilation[1], padding, 1, ceil_mode)
    for size, what in ((oh, "rows"), (ow, "columns")):
        if size < 1:
            raise ShapeError(
                f"{layer.notation()} on a {fmt_shape(shape)} map gives {size} {what}: the"
                f" {kernel[0]}x{kernel[1]} window does not fit"
                + (" (try SAME padding)" if padding == "valid" else "")
            )
    return (oh, ow), ((pt, pb), (pl, pr))


def window_axes(kernel, stride, dilation, pads) -> tuple[Axis, Axis]:
    return tuple(  # type: ignore[return-value]
        (effective_kernel(kernel[i], dilation[i]) - 1, stride[i], pads[i][0])
        for i in (0, 1)
    )


class _ConvBase(Layer):
    kernel: Pair
    stride: Pair = (1, 1)
    padding: Padding = "valid"
    dilation: Pair = (1, 1)
    bias: Bool = True
    activation: Activation = "linear"

    takes_kernel_spec: ClassVar[bool] = True
    takes_activation: ClassVar[bool] = True
    family: ClassVar[str] = "conv"
    aliases: ClassVar[dict[str, str]] = _CONV_ALIASES
    flags: ClassVar[dict[str, tuple[str, object]]] = _CONV_FLAGS

    @model_validator(mode="after")
    def _stride_or_dilation(self):
        if self.stride != (1, 1) and self.dilation != (1, 1):
            raise ValueError("stride and dilation cannot both be above 1 (Keras refuses it)")
        return self

    def _spatial(self, shape: Shape):
        return sliding_window(self, shape, self.kernel, self.stride, self.dilation, self.padding)

    def window(self, inputs):
        _, pads = self._spatial(inputs[0])
        return window_axes(self.kernel, self.stride, self.dilation, pads)

    def explicit_padding(self, inputs) -> tuple[tuple[int, int], tuple[int, int]]:
        """The padding actually applied, ((top, bottom), (left, right)), for these inputs
        (SAME resolved as TensorFlow does; may be asymmetric)."""
        return self._spatial(inputs[0])[1]

    def _notation(self, count: str | None) -> str:
        head, extra = kspec_notation(self.kernel, self.stride, self.padding)
        words = [head, self.spec_names[0]]
        if count is not None:
            words.append(count)
        if self.dilation != (1, 1):
            d = self.dilation
            extra.append(f"dilation={d[0]}" if d[0] == d[1] else f"dilation=({d[0]}, {d[1]})")
        if not self.bias:
            extra.append("bias=off")
        if self.activation != "linear":
            words.append(self.activation)
        return " ".join(words + extra)


class Conv2D(_ConvBase):
    """A 2-D convolution (``conv``): ``3x3+1(S) conv 64 relu``.

    Fields: filters, kernel, stride, padding, dilation, groups, bias, activation.
    """

    kind: Literal["conv"] = "conv"
    filters: PositiveInt
    groups: PositiveInt = 1

    spec_names: ClassVar[tuple[str, ...]] = ("conv", "conv2d", "convolution")
    positional: ClassVar[tuple[str, ...]] = ("filters",)

    def output_shape(self, inputs):
        (oh, ow), _ = self._spatial(inputs[0])
        c = inputs[0][2]
        if c % self.groups or self.filters % self.groups:
            raise ShapeError(
                f"groups={self.groups} must divide both the input channels ({c}) and the"
                f" filters ({self.filters})"
            )
        return (oh, ow, self.filters)

    def param_counts(self, inputs):
        kh, kw = self.kernel
        c = inputs[0][2]
        return kh * kw * (c // self.groups) * self.filters + self.filters * self.bias, 0

    def macs(self, inputs, output):
        kh, kw = self.kernel
        return output[0] * output[1] * self.filters * kh * kw * (inputs[0][2] // self.groups)

    def notation(self):
        text = self._notation(str(self.filters))
        return text + (f" groups={self.groups}" if self.groups != 1 else "")


class DepthwiseConv2D(_ConvBase):
    """A depthwise convolution (``dwconv``): one filter per input channel (times the multiplier).

    ``3x3+1(S) dwconv``; fields: depth_multiplier, kernel, stride, padding, dilation, bias,
    activation.
    """

    kind: Literal["dwconv"] = "dwconv"
    depth_multiplier: PositiveInt = 1

    spec_names: ClassVar[tuple[str, ...]] = ("dwconv", "depthwise", "depthwiseconv", "depthwise_conv")
    positional: ClassVar[tuple[str, ...]] = ("depth_multiplier",)
    aliases: ClassVar[dict[str, str]] = {**_CONV_ALIASES, "multiplier": "depth_multiplier"}

    def output_shape(self, inputs):
        (oh, ow), _ = self._spatial(inputs[0])
        return (oh, ow, inputs[0][2] * self.depth_multiplier)

    def param_counts(self, inputs):
        kh, kw = self.kernel
        out_c = inputs[0][2] * self.depth_multiplier
        return kh * kw * out_c + out_c * self.bias, 0

    def macs(self, inputs, output):
        kh, kw = self.kernel
        return output[0] * output[1] * output[2] * kh * kw

    def notation(self):
        m = self.depth_multiplier
        return self._notation(str(m) if m != 1 else None)


class SeparableConv2D(_ConvBase):
    """A depthwise convolution followed by a 1x1 pointwise one (``sepconv``), as Keras's
    SeparableConv2D: ``3x3+1(S) sepconv 128``.  One bias, on the pointwise part.

    Fields: filters, depth_multiplier, kernel, stride, padding, dilation, bias, activation.
    """

    kind: Literal["sepconv"] = "sepconv"
    filters: PositiveInt
    depth_multiplier: PositiveInt = 1

    spec_names: ClassVar[tuple[str, ...]] = ("sepconv", "separable", "separableconv", "separable_conv")
    positional: ClassVar[tuple[str, ...]] = ("filters",)
    aliases: ClassVar[dict[str, str]] = {**_CONV_ALIASES, "multiplier": "depth_multiplier"}

    def output_shape(self, inputs):
        (oh, ow), _ = self._spatial(inputs[0])
        return (oh, ow, self.filters)

    def param_counts(self, inputs):
        kh, kw = self.kernel
        mid = inputs[0][2] * self.depth_multiplier
        return kh * kw * mid + mid * self.filters + self.filters * self.bias, 0

    def macs(self, inputs, output):
        kh, kw = self.kernel
        mid = inputs[0][2] * self.depth_multiplier
        return output[0] * output[1] * mid * (kh * kw + self.filters)

    def notation(self):
        text = self._notation(str(self.filters))
        m = self.depth_multiplier
        return text + (f" depth_multiplier={m}" if m != 1 else "")


class Conv2DTranspose(_ConvBase):
    """A transposed convolution (``convtranspose``, ``deconv``): ``2x2+2(S) convtranspose 64``.

    Output size with "same"/"valid" follows Keras (``same`` multiplies the size by the stride);
    with explicit padding p it follows PyTorch: (n-1)*s - 2p + k_eff + output_padding.

    Fields: filters, kernel, stride, padding, output_padding, dilation, bias, activation.
    """

    kind: Literal["convtranspose"] = "convtranspose"
    filters: PositiveInt
    output_padding: NonNegPair | None = None

    spec_names: ClassVar[tuple[str, ...]] = (
        "convtranspose", "deconv", "conv_transpose", "convT", "upconv",
    )
    positional: ClassVar[tuple[str, ...]] = ("filters",)

    @model_validator(mode="after")
    def _output_padding_below_stride(self):
        if self.output_padding is not None:
            for op, s, d in zip(self.output_padding, self.stride, self.dilation):
                if op >= max(s, d):
                    raise ValueError(
                        f"output_padding ({op}) must be smaller than the stride or the dilation"
                    )
        return self

    def _sizes(self, shape: Shape):
        h, w, _ = require_map(self, shape)
        out = []
        for axis, n in enumerate((h, w)):
            op = None if self.output_padding is None else self.output_padding[axis]
            size, before = transposed_output(
                n, self.kernel[axis], self.stride[axis], self.dilation[axis], self.padding, axis, op
            )
            if size < 1:
                raise ShapeError(f"{self.notation()} on a {fmt_shape(shape)} map gives size {size}")
            out.append((size, before))
        return out

    def output_shape(self, inputs):
        (oh, _), (ow, _) = self._sizes(inputs[0])
        return (oh, ow, self.filters)

    def param_counts(self, inputs):
        kh, kw = self.kernel
        return kh * kw * inputs[0][2] * self.filters + self.filters * self.bias, 0

    def macs(self, inputs, output):
        kh, kw = self.kernel
        h, w, c = inputs[0]
        return h * w * c * kh * kw * self.filters

    def explicit_padding(self, inputs) -> tuple[tuple[int, int], tuple[int, int]]:
        """((crop top, crop bottom), (crop left, crop right)) removed from the full transposed
        convolution of size (n-1)*s + k_eff (negative: zeros appended), for these inputs."""
        h, w, _ = inputs[0]
        result = []
        for axis, (n, (size, before)) in enumerate(zip((h, w), self._sizes(inputs[0]))):
            full = (n - 1) * self.stride[axis] + effective_kernel(self.kernel[axis], self.dilation[axis])
            result.append((before, full - size - before))
        return tuple(result)

    def window(self, inputs):
        # Output o gathers inputs i with i*s - before + t*d = o: at most floor((k_eff-1)/s) + 1
        # consecutive inputs, the first near (o + before - k_eff + 1) / s.
        axes = []
        for axis, (_, before) in enumerate(self._sizes(inputs[0])):
            k_eff = effective_kernel(self.kernel[axis], self.dilation[axis])
            s = self.stride[axis]
            axes.append(
                ((k_eff - 1) // s, Fraction(1, s), Fraction(k_eff - 1 - before, s))
            )
        return tuple(axes)

    def notation(self):
        text = self._notation(str(self.filters))
        if self.output_padding is not None:
            op = self.output_padding
            text += f" output_padding=({op[0]}, {op[1]})"
        return text
