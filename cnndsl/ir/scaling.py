"""Per-channel affine maps: constant rescaling, Keras's input normalization, learnable layer scale.

Each applies at every position of a map (or to a vector) with one value, or one value per
channel; none looks at a neighbouring position, so none has a receptive-field window.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import BeforeValidator, Field, Strict, field_validator, model_validator

from .base import Layer, fmt_float, fmt_shape
from .geometry import ShapeError


def _floats(value):
    """A number stays a number; a list of numbers becomes a tuple."""
    return tuple(value) if isinstance(value, list) else value


Finite = Annotated[float, Strict(), Field(allow_inf_nan=False)]
Values = Annotated[
    Finite | Annotated[tuple[Finite, ...], Field(min_length=1)], BeforeValidator(_floats)
]
"""One number for every channel, or one per channel."""


def _check_channels(layer: Layer, shape, **per_channel) -> None:
    if len(shape) not in (1, 3):
        raise ShapeError(f"{layer.spec_names[0]} needs a map or a vector, got {fmt_shape(shape)}")
    for field, value in per_channel.items():
        if isinstance(value, tuple) and len(value) != shape[-1]:
            raise ShapeError(
                f"{layer.spec_names[0]} has {len(value)} value{'s' * (len(value) != 1)} for"
                f" {field}, but its input has {shape[-1]} channels (one number for all of them,"
                " or one per channel)"
            )


def _show(value) -> str:
    if isinstance(value, tuple):
        items = ", ".join(fmt_float(float(v)) for v in value)
        return f"({items},)" if len(value) == 1 else f"({items})"
    return fmt_float(float(value))


class Rescaling(Layer):
    """A constant affine map, y = x * scale + offset (``rescaling 1/255``,
    ``rescaling 1/127.5 offset=-1``); ``rescaling 0.17`` scales a residual branch as
    InceptionResNetV2 does.

    Fields: scale, offset (0 by default): each one number, or one per channel.  No parameters.

    Keras: ``keras.layers.Rescaling(scale, offset)``.  PyTorch: ``x * scale + offset`` with
    the numbers as constants (per-channel values as tensors of shape (C, 1, 1) for a map, (C,)
    for a vector).  InceptionResNetV2's ``CustomScaleLayer``, x + r * scale, is
    ``add { identity | ... -> rescaling scale }``.
    """

    kind: Literal["rescaling"] = "rescaling"
    scale: Values
    offset: Values = 0.0

    family: ClassVar[str] = "norm"
    spec_names: ClassVar[tuple[str, ...]] = ("rescaling", "rescale")
    positional: ClassVar[tuple[str, ...]] = ("scale", "offset")

    def output_shape(self, inputs):
        _check_channels(self, inputs[0], scale=self.scale, offset=self.offset)
        return inputs[0]

    def notation(self):
        scale = _show(self.scale)
        text = f"rescaling scale={scale}" if isinstance(self.scale, tuple) else f"rescaling {scale}"
        return text + (f" offset={_show(self.offset)}" if self.offset != 0 else "")


class Normalization(Layer):
    """Keras's input normalization over the channels (``normalization``, or with fixed
    statistics ``normalization mean=(0.485, 0.456, 0.406) variance=(0.052, 0.05, 0.051)``):
    y = (x - mean) / max(sqrt(variance), 1e-7).

    Fields: mean, variance -- both given (each one number, or one per channel), or neither.
    Given, they are constants and the layer has no parameters.  Not given, the layer holds them
    as weights to be loaded (or adapted to data): mean (C), variance (C) and the count of
    examples they came from (one integer), all non-trainable -- 2C + 1 parameters as Keras counts
    them (EfficientNet's 7 for an RGB input); before loading they are 0 and 1.

    Keras: ``keras.layers.Normalization(axis=-1, mean=mean, variance=variance)`` (``axis=-1``
    and no statistics for the weighted form); 1e-7 is ``keras.backend.epsilon()``.  PyTorch:
    ``(x - mean) / torch.clamp(torch.sqrt(variance), min=1e-7)`` with mean and variance of shape
    (C, 1, 1) for a map, (C,) for a vector: constants, or non-trainable buffers ``mean``,
    ``variance`` and ``count`` (the weighted form), which take Keras's weights as they are.
    """

    kind: Literal["normalization"] = "normalization"
    mean: Values | None = None
    variance: Values | None = None

    family: ClassVar[str] = "norm"
    spec_names: ClassVar[tuple[str, ...]] = ("normalization", "normalize")
    foreign_options: ClassVar[dict[str, str]] = {
        "axis": "normalization works on the channels (Keras's axis=-1): mean and variance have"
        " one value per channel, or one for all",
        "invert": "the inverse, x * sqrt(variance) + mean, is `rescaling scale=... offset=...`",
    }

    @model_validator(mode="after")
    def _statistics(self):
        if (self.mean is None) != (self.variance is None):
            raise ValueError(
                "normalization takes both mean= and variance=, or neither (then they are"
                " weights, loaded or adapted)"
            )
        return self

    @field_validator("variance")
    @classmethod
    def _variance(cls, variance):
        items = () if variance is None else variance if isinstance(variance, tuple) else (variance,)
        negative = [v for v in items if v < 0]
        if negative:
            raise ValueError(
                f"normalization variance must be at least 0, got {fmt_float(negative[0])}"
            )
        return variance

    def output_shape(self, inputs):
        _check_channels(self, inputs[0], mean=self.mean, variance=self.variance)
        return inputs[0]

    def param_counts(self, inputs):
        return (0, 0) if self.mean is not None else (0, 2 * inputs[0][-1] + 1)

    def notation(self):
        if self.mean is None:
            return "normalization"
        return f"normalization mean={_show(self.mean)} variance={_show(self.variance)}"


class LayerScale(Layer):
    """A learnable scale per channel, y = x * gamma (``layerscale``, ``layerscale 1e-6``):
    ConvNeXt's layer scale on its residual branch (Touvron et al., CaiT).

    Field: init, gamma's initial value (1e-6, as ConvNeXt in both frameworks).  Parameters: C,
    trainable.

    PyTorch: ``x * gamma`` with ``gamma = nn.Parameter(torch.full((C, 1, 1), init))`` -- the
    ``layer_scale`` of torchvision's CNBlock, shape (C, 1, 1); (C,) on a vector.  Keras:
    ``x * gamma`` with gamma of shape (C,) -- keras.applications' ConvNeXt ``LayerScale(init,
    C)`` (``keras.src.applications.convnext.LayerScale``, not a public layer).  The same
    function: moving weights between the two is a reshape.
    """

    kind: Literal["layerscale"] = "layerscale"
    init: Finite = 1e-6

    family: ClassVar[str] = "norm"
    spec_names: ClassVar[tuple[str, ...]] = ("layerscale", "layer_scale")
    positional: ClassVar[tuple[str, ...]] = ("init",)
    aliases: ClassVar[dict[str, str]] = {"init_values": "init", "init_value": "init"}

    def output_shape(self, inputs):
        _check_channels(self, inputs[0])
        return inputs[0]

    def param_counts(self, inputs):
        return inputs[0][-1], 0

    def notation(self):
        return "layerscale" + (f" {fmt_float(self.init)}" if self.init != 1e-6 else "")
