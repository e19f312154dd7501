"""Normalization and regularization: batch norm, layer norm, local response normalization,
dropout, stochastic depth."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from .base import Bool, Float, Layer, NonNegInt, fmt_float, fmt_shape, require_map
from .geometry import ShapeError


class BatchNorm(Layer):
    """Batch normalization over the channels (``bn``, ``batchnorm``).

    Fields: epsilon (Keras's 0.001 by default; PyTorch uses 1e-5), momentum (Keras convention:
    the weight of the old moving average, 0.99 by default; PyTorch's momentum is 1 - this),
    center (beta), scale (gamma).  gamma and beta are trainable; the moving mean and variance
    count as non-trainable parameters, as Keras counts them.
    """

    kind: Literal["batchnorm"] = "batchnorm"
    epsilon: Float = Field(1e-3, gt=0)
    momentum: Float = Field(0.99, ge=0, le=1)
    center: Bool = True
    scale: Bool = True

    family: ClassVar[str] = "norm"
    spec_names: ClassVar[tuple[str, ...]] = ("bn", "batchnorm", "batch_norm", "batchnormalization")
    aliases: ClassVar[dict[str, str]] = {"eps": "epsilon"}

    def param_counts(self, inputs):
        c = inputs[0][-1]
        return c * (int(self.center) + int(self.scale)), 2 * c

    def notation(self):
        opts = []
        if self.epsilon != 1e-3:
            opts.append(f"epsilon={fmt_float(self.epsilon)}")
        if self.momentum != 0.99:
            opts.append(f"momentum={fmt_float(self.momentum)}")
        if not self.center:
            opts.append("center=off")
        if not self.scale:
            opts.append("scale=off")
        return " ".join(["bn", *opts])


class LayerNorm(Layer):
    """Layer normalization over the channels (``layernorm``, ``layernorm epsilon=1e-6``): at
    every position of a map, or over a vector, y = (x - mean) / sqrt(var + epsilon) * gamma +
    beta, with the mean and the (biased) variance of the C values there -- ConvNeXt's LayerNorm2d.

    Fields: epsilon (Keras's 0.001 by default, as ``bn``; PyTorch's nn.LayerNorm defaults to
    1e-5; ConvNeXt uses 1e-6 in both), center (beta), scale (gamma).  gamma and beta (C each)
    are trainable; there are no statistics.

    Keras: ``keras.layers.LayerNormalization(axis=-1, epsilon=epsilon, center=center,
    scale=scale)``.  PyTorch: ``F.layer_norm(x, (C,), weight, bias, epsilon)`` on the
    channels-last tensor -- ``nn.LayerNorm(C, eps=epsilon)`` for a vector; for a map, the
    input permuted with ``permute(0, 2, 3, 1)`` and back with ``permute(0, 3, 1, 2)``, as
    torchvision's LayerNorm2d does.  ``weight`` is gamma (None without ``scale``), ``bias`` is
    beta (None without ``center``): ``nn.LayerNorm(C, eps, elementwise_affine=scale or center,
    bias=center)`` holds them when ``scale`` is on.
    """

    kind: Literal["layernorm"] = "layernorm"
    epsilon: Float = Field(1e-3, gt=0)
    center: Bool = True
    scale: Bool = True

    family: ClassVar[str] = "norm"
    spec_names: ClassVar[tuple[str, ...]] = ("layernorm", "layer_norm", "layernormalization")
    aliases: ClassVar[dict[str, str]] = {"eps": "epsilon"}
    foreign_options: ClassVar[dict[str, str]] = {
        "axis": "layernorm normalizes over the channels at each position (Keras's axis=-1,"
        " PyTorch's normalized_shape=(C,) on channels last, ConvNeXt's LayerNorm2d); other axes"
        " have no cnndsl kind",
        "rms_scaling": "layernorm subtracts the mean (Keras's rms_scaling=False); RMS"
        " normalization has no cnndsl kind",
    }

    def output_shape(self, inputs):
        shape = inputs[0]
        if len(shape) not in (1, 3):
            raise ShapeError(f"layernorm needs a map or a vector, got {fmt_shape(shape)}")
        return shape

    def param_counts(self, inputs):
        return inputs[0][-1] * (int(self.center) + int(self.scale)), 0

    def notation(self):
        opts = []
        if self.epsilon != 1e-3:
            opts.append(f"epsilon={fmt_float(self.epsilon)}")
        if not self.center:
            opts.append("center=off")
        if not self.scale:
            opts.append("scale=off")
        return " ".join(["layernorm", *opts])


class LRN(Layer):
    """Local response normalization across channels (``lrn``), with TensorFlow's parameters:
    out = x / (bias + alpha * sum of x^2 over channels [c - radius, c + radius]) ** beta.

    The book's AlexNet: ``lrn radius=2 alpha=0.00002 beta=0.75 bias=1``.  (PyTorch's
    LocalResponseNorm takes size = 2*radius + 1 and alpha * size.)
    """

    kind: Literal["lrn"] = "lrn"
    radius: NonNegInt = 5
    alpha: Float = Field(1.0, ge=0)
    beta: Float = Field(0.5, ge=0)
    bias: Float = Field(1.0, gt=0)

    family: ClassVar[str] = "norm"
    spec_names: ClassVar[tuple[str, ...]] = ("lrn", "local_response_norm")
    positional: ClassVar[tuple[str, ...]] = ("radius",)
    aliases: ClassVar[dict[str, str]] = {"depth_radius": "radius"}

    def output_shape(self, inputs):
        return require_map(self, inputs[0])

    def notation(self):
        return f"lrn radius={self.radius} alpha={fmt_float(self.alpha)} beta={fmt_float(self.beta)} bias={fmt_float(self.bias)}"


class Dropout(Layer):
    """Dropout (``dropout 0.5``): zeroes a fraction ``rate`` of the activations in training."""

    kind: Literal["dropout"] = "dropout"
    rate: Float = Field(ge=0, lt=1)

    family: ClassVar[str] = "regularization"
    spec_names: ClassVar[tuple[str, ...]] = ("dropout",)
    positional: ClassVar[tuple[str, ...]] = ("rate",)

    def notation(self):
        return f"dropout {fmt_float(self.rate)}"


class StochasticDepth(Layer):
    """Stochastic depth (``stochasticdepth 0.1``, ``droppath 0.1``): in training, each example's
    tensor is zeroed with probability ``rate`` and otherwise divided by 1 - rate; at inference,
    the identity.  Put on a residual branch before the ``add``, it drops the branch.  No
    parameters.

    Fields: rate (0 <= rate < 1), mode: ``row`` (default; one draw per example, as torchvision's
    ``StochasticDepth(p, "row")`` and timm's DropPath) or ``batch`` (one draw for the batch).

    PyTorch: ``torchvision.ops.stochastic_depth(x, rate, mode, training)`` (or the same in
    torch: noise of shape (N, 1, 1, 1) -- (1, 1, 1, 1) in batch mode -- drawn with
    ``bernoulli_(1 - rate)``, divided by 1 - rate, times x).  Keras: no built-in layer;
    keras.applications' ConvNeXt defines one (``keras.src.applications.convnext.StochasticDepth``,
    row mode: ``x / keep * floor(keep + uniform((N, 1, 1, 1)))`` with keep = 1 - rate, only when
    ``training``).  Both are the identity in inference, which is all the equivalence of two
    models can check: the random draws differ.
    """

    kind: Literal["stochasticdepth"] = "stochasticdepth"
    rate: Float = Field(ge=0, lt=1)
    mode: Literal["row", "batch"] = "row"

    family: ClassVar[str] = "regularization"
    spec_names: ClassVar[tuple[str, ...]] = (
        "stochasticdepth",
        "stochastic_depth",
        "droppath",
        "drop_path",
    )
    positional: ClassVar[tuple[str, ...]] = ("rate",)
    aliases: ClassVar[dict[str, str]] = {"p": "rate", "drop_rate": "rate", "drop_path_rate": "rate"}
    flags: ClassVar[dict[str, tuple[str, object]]] = {
        "row": ("mode", "row"),
        "batch": ("mode", "batch"),
    }

    def notation(self):
        mode = " batch" if self.mode == "batch" else ""
        return f"stochasticdepth {fmt_float(self.rate)}{mode}"
