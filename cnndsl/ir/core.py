"""Core layers: input, dense, flatten, activations, zero padding, upsampling."""

from __future__ import annotations

from fractions import Fraction
from typing import ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from .base import (
    ACTIVATIONS,
    Bool,
    Float,
    Int,
    Layer,
    Padding,
    Pair,
    PositiveInt,
    fmt_float,
    fmt_shape,
    numel,
    require_map,
    whole_map_window,
)
from ..display import int_text
from .geometry import ShapeError


class Input(Layer):
    """A network input (``input 224x224x3``): an image H x W x C, or a vector N.

    Fields: shape, open.  ``open`` marks the height and width a spec leaves open (``input
    ?x?x3``): the models take any size there, and ``shape`` holds the size the network is
    analysed at (``--input``, ``load(..., input=)``), or None where none was given -- then
    it cannot be analysed.
    """

    kind: Literal["input"] = "input"
    shape: tuple[Int | None, ...]
    open: tuple[Bool, Bool] = Field((False, False), exclude_if=lambda v: not any(v))

    family: ClassVar[str] = "input"
    min_inputs: ClassVar[int] = 0
    max_inputs: ClassVar[int | None] = 0

    @field_validator("shape")
    @classmethod
    def _dims(cls, shape):
        if len(shape) not in (1, 3):
            raise ValueError(
                f"input is H x W x C (channels last) or a vector N, got {len(shape)} dimensions"
            )
        if any(d is not None and d < 1 for d in shape):
            raise ValueError("input sizes must be at least 1")
        return shape

    @model_validator(mode="after")
    def _top_level(self):
        if self.calls:
            raise ValueError("an input is declared at the top level, never in a block call")
        if any(self.open) and len(self.shape) != 3:
            raise ValueError("only the height and width of an image input can be open")
        if len(self.shape) == 3 and self.shape[2] is None:
            raise ValueError("an input's channels cannot be open")
        if any(d is None and not o for d, o in zip(self.shape, self.open)):
            raise ValueError("an input size is missing where the input is not open")
        return self

    @property
    def sized(self) -> bool:
        """Whether every size is known (given, where the spec leaves it open)."""
        return None not in self.shape

    def written(self) -> str:
        """The size as the spec writes it: ``?x?x3`` where it is open."""
        return "x".join("?" if o else int_text(d) for d, o in zip(self.shape, (*self.open, False)))

    def output_shape(self, inputs):
        if not self.sized:
            what = "height and width are" if all(self.open) else ("height is", "width is")[self.open[1]]
            whose = "the input" if self.name == "input" else f"input '{self.name}'"
            noun, verb = what.rsplit(" ", 1)
            raise ShapeError(
                f"the {noun} of {whose} {verb} open ({self.written()}): the analysis needs a size",
                hint=f"give one: `--input {self._example()}` on the command line,"
                f" `cnndsl.load(path, input={self._example(python=True)})` in Python",
            )
        return self.shape

    def _example(self, python: bool = False) -> str:
        """The input's size with 256 where it is open and unknown, for the hints."""
        sizes = [256 if d is None else d for d in self.shape]
        if self.name == "input":
            return str(tuple(sizes)) if python else fmt_shape(sizes)
        return f"{{{self.name!r}: {tuple(sizes)}}}" if python else f"{self.name}={fmt_shape(sizes)}"

    def notation(self):
        return f"input {self.written()}"


class Dense(Layer):
    """A fully connected layer (``dense 128 relu``) on a flat input.

    Fields: units, bias, activation.
    """

    kind: Literal["dense"] = "dense"
    units: PositiveInt
    bias: Bool = True
    activation: Literal[ACTIVATIONS] = "linear"  # type: ignore[valid-type]

    family: ClassVar[str] = "dense"
    takes_activation: ClassVar[bool] = True
    spec_names: ClassVar[tuple[str, ...]] = ("dense",)
    positional: ClassVar[tuple[str, ...]] = ("units",)
    aliases: ClassVar[dict[str, str]] = {"use_bias": "bias", "act": "activation"}
    flags: ClassVar[dict[str, tuple[str, object]]] = {"nobias": ("bias", False)}

    def output_shape(self, inputs):
        shape = inputs[0]
        if len(shape) != 1:
            raise ShapeError(
                f"dense needs a flat input, got a {fmt_shape(shape)} map: add `flatten` (or"
                f" `globalavgpool`) before it, or write `pointwise {self.units}` to apply it to"
                " the channels at every position"
            )
        return (self.units,)

    def param_counts(self, inputs):
        return inputs[0][0] * self.units + self.units * self.bias, 0

    def macs(self, inputs, output):
        return inputs[0][0] * self.units

    def notation(self):
        return _dense_notation(self)


def _dense_notation(layer: Dense | PointwiseDense) -> str:
    words = [f"{layer.spec_names[0]} {layer.units}"]
    if layer.activation != "linear":
        words.append(layer.activation)
    if not layer.bias:
        words.append("bias=off")
    return " ".join(words)


class PointwiseDense(Layer):
    """A fully connected layer applied to the channels at every position of a map
    (``pointwise 384 gelu``): H x W x Cin -> H x W x units, as ConvNeXt's pointwise layers.

    Fields: units, bias, activation (as ``dense``).  The same function as a 1x1 convolution,
    stored as a dense layer so that weights load from models written that way.  On a vector it is
    ``dense``.  Parameters Cin * units (+ units); MACs H * W * Cin * units (a linear layer on an
    N x H x W x Cin tensor, as fvcore counts it).

    Keras: ``keras.layers.Dense(units, activation=..., use_bias=bias)`` on the channels-last
    map (Dense acts on the last axis; kernel (Cin, units)).  PyTorch: ``nn.Linear(Cin, units,
    bias=bias)`` on the channels-last tensor: ``x.permute(0, 2, 3, 1)``, the linear layer (and
    activation), ``.permute(0, 3, 1, 2)`` -- torchvision's CNBlock (weight (units, Cin)).
    """

    kind: Literal["pointwise"] = "pointwise"
    units: PositiveInt
    bias: Bool = True
    activation: Literal[ACTIVATIONS] = "linear"  # type: ignore[valid-type]

    family: ClassVar[str] = "dense"
    takes_activation: ClassVar[bool] = True
    spec_names: ClassVar[tuple[str, ...]] = ("pointwise", "pointwise_dense")
    positional: ClassVar[tuple[str, ...]] = ("units",)
    aliases: ClassVar[dict[str, str]] = Dense.aliases
    flags: ClassVar[dict[str, tuple[str, object]]] = Dense.flags

    def output_shape(self, inputs):
        shape = inputs[0]
        if len(shape) not in (1, 3):
            raise ShapeError(f"pointwise needs a map or a vector, got {fmt_shape(shape)}")
        return (*shape[:-1], self.units)

    def param_counts(self, inputs):
        return inputs[0][-1] * self.units + self.units * self.bias, 0

    def macs(self, inputs, output):
        return numel(inputs[0]) * self.units

    def notation(self):
        return _dense_notation(self)


class Flatten(Layer):
    """Flattens a feature map H x W x C into a vector, in H, W, C order (``flatten``)."""

    kind: Literal["flatten"] = "flatten"
    family: ClassVar[str] = "reshape"
    spec_names: ClassVar[tuple[str, ...]] = ("flatten",)

    def output_shape(self, inputs):
        h = 1
        for d in inputs[0]:
            h *= d
        return (h,)

    def window(self, inputs):
        return whole_map_window(inputs[0]) if len(inputs[0]) == 3 else None


_ACTIVATION_WORDS = {name: name for name in ACTIVATIONS} | {
    "leaky_relu": "leakyrelu",
    "lrelu": "leakyrelu",
    "swish": "silu",
    "identity_activation": "linear",
    "hard_sigmoid": "hardsigmoid",
    "hard_swish": "hardswish",
    "hard_silu": "hardswish",
}

# The hard functions have one definition in cnndsl, PyTorch and Keras 3 (Keras 2's differed).
_FIXED_SLOPES = {
    "hardsigmoid": "it is relu6(x + 3) / 6, as in PyTorch and Keras 3 (Keras 2's hard_sigmoid,"
    " clip(0.2 * x + 0.5, 0, 1), is another function, not a cnndsl activation)",
    "hardswish": "it is x * relu6(x + 3) / 6, as in PyTorch and Keras 3",
}


class Activation(Layer):
    """An activation function as a layer: ``relu``, ``relu6``, ``leakyrelu 0.2``, ``elu``,
    ``selu``, ``tanh``, ``sigmoid``, ``softmax`` (over the channels), ``linear``, ``silu``,
    ``gelu``, ``gelu_tanh``, ``hardsigmoid``, ``hardswish``.

    Fields: function, alpha (the negative slope of leakyrelu, 0.3 as in Keras; elu's alpha, 1).

    The functions where the frameworks' names or defaults differ, as both back ends compute them:

    - ``gelu``: the exact x * Phi(x) = 0.5 * x * (1 + erf(x / sqrt(2))).  PyTorch
      ``F.gelu(x)`` (``nn.GELU()``, approximate='none'); Keras ``keras.activations.gelu(x,
      approximate=False)``, which is what ``Activation("gelu")`` calls (keras.ops.gelu's own
      default is the approximation: do not call it bare).
    - ``gelu_tanh``: 0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x**3))).  PyTorch
      ``F.gelu(x, approximate="tanh")``; Keras ``keras.activations.gelu(x, approximate=True)``.
    - ``hardsigmoid``: relu6(x + 3) / 6 (0 below -3, 1 above 3, x/6 + 1/2 between).  PyTorch
      ``F.hardsigmoid(x)``; Keras 3 ``keras.activations.hard_sigmoid(x)`` (the same function
      since Keras 3.0; Keras 2's was clip(0.2 * x + 0.5, 0, 1), a different one).
      keras.applications' MobileNetV3 writes it ``ReLU(6.0)(x + 3.0) * (1.0 / 6.0)``: equal up to
      rounding (multiplying by 1/6 instead of dividing by 6).
    - ``hardswish``: x * relu6(x + 3) / 6.  PyTorch ``F.hardswish(x)``; Keras 3
      ``keras.activations.hard_silu(x)`` (registered as "hard_swish" too).
    - ``silu``: x * sigmoid(x) (``F.silu``, ``keras.activations.silu``, alias swish).
    """

    kind: Literal["activation"] = "activation"
    function: Literal[ACTIVATIONS]  # type: ignore[valid-type]
    alpha: Float | None = None

    family: ClassVar[str] = "activation"
    spec_names: ClassVar[tuple[str, ...]] = tuple(_ACTIVATION_WORDS)
    positional: ClassVar[tuple[str, ...]] = ("alpha",)
    aliases: ClassVar[dict[str, str]] = {"negative_slope": "alpha", "slope": "alpha"}
    foreign_options: ClassVar[dict[str, str]] = {
        "approximate": "`gelu` is the exact x * Phi(x) (PyTorch's approximate='none', Keras's"
        " approximate=False); GELU's tanh approximation is an activation of its own: write"
        " `gelu_tanh` (as a layer or `activation=gelu_tanh`)"
    }

    @classmethod
    def preset(cls, word: str) -> dict:
        return {"function": _ACTIVATION_WORDS[word]}

    @model_validator(mode="after")
    def _alpha(self):
        if self.alpha is not None and self.function in _FIXED_SLOPES:
            raise ValueError(f"{self.function} takes no alpha: {_FIXED_SLOPES[self.function]}")
        if self.alpha is not None and self.function not in ("leakyrelu", "elu"):
            raise ValueError(f"{self.function} takes no alpha")
        if self.alpha is None and self.function in ("leakyrelu", "elu"):
            object.__setattr__(self, "alpha", 0.3 if self.function == "leakyrelu" else 1.0)
        return self

    @property
    def type_name(self) -> str:
        return self.function

    def notation(self):
        if self.function == "leakyrelu" and self.alpha != 0.3:
            return f"leakyrelu {fmt_float(self.alpha)}"
        if self.function == "elu" and self.alpha != 1.0:
            return f"elu {fmt_float(self.alpha)}"
        return self.function


class ZeroPad(Layer):
    """Zero padding of a feature map (``zeropad 3``, ``zeropad padding=((0, 1), (0, 1))``).

    Field: padding ((top, bottom), (left, right)); one number pads every side.
    """

    kind: Literal["zeropad"] = "zeropad"
    padding: Padding

    family: ClassVar[str] = "reshape"
    spec_names: ClassVar[tuple[str, ...]] = ("zeropad", "zeropadding", "zero_padding")
    positional: ClassVar[tuple[str, ...]] = ("padding",)

    @field_validator("padding")
    @classmethod
    def _explicit(cls, padding):
        if isinstance(padding, str):
            raise ValueError("zeropad takes pixel amounts, not 'same' or 'valid'")
        return padding

    def output_shape(self, inputs):
        h, w, c = require_map(self, inputs[0])
        (t, b), (l, r) = self.padding
        return (h + t + b, w + l + r, c)

    def window(self, inputs):
        (t, _), (l, _) = self.padding
        return ((0, 1, t), (0, 1, l))

    def notation(self):
        (t, b), (l, r) = self.padding
        if t == b == l == r:
            return f"zeropad {t}"
        return f"zeropad padding=(({t}, {b}), ({l}, {r}))"


class Upsample(Layer):
    """Upsampling by an integer factor (``upsample 2``), nearest (default) or bilinear
    (half-pixel centres, as Keras's UpSampling2D and PyTorch's align_corners=False).
    """

    kind: Literal["upsample"] = "upsample"
    size: Pair = (2, 2)
    interpolation: Literal["nearest", "bilinear"] = "nearest"

    family: ClassVar[str] = "reshape"
    spec_names: ClassVar[tuple[str, ...]] = ("upsample", "upsampling", "upsampling2d")
    positional: ClassVar[tuple[str, ...]] = ("size",)
    aliases: ClassVar[dict[str, str]] = {"factor": "size", "scale_factor": "size", "mode": "interpolation"}
    flags: ClassVar[dict[str, tuple[str, object]]] = {
        "nearest": ("interpolation", "nearest"),
        "bilinear": ("interpolation", "bilinear"),
    }

    def output_shape(self, inputs):
        h, w, c = require_map(self, inputs[0])
        return (h * self.size[0], w * self.size[1], c)

    def window(self, inputs):
        axes = []
        for f in self.size:
            if f == 1:  # both modes copy the input along this axis
                axes.append((0, 1, 0))
            elif self.interpolation == "nearest":
                axes.append((0, Fraction(1, f), 0))
            else:
                axes.append((1, Fraction(1, f), Fraction(1, 2) - Fraction(1, 2 * f)))
        return tuple(axes)

    def notation(self):
        f = self.size
        text = f"upsample {f[0]}" if f[0] == f[1] else f"upsample size=({f[0]}, {f[1]})"
        return text + (" bilinear" if self.interpolation == "bilinear" else "")

