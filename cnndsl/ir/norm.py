"""Normalization and regularization: batch norm, local response normalization, dropout."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from .base import Bool, Float, Layer, NonNegInt, fmt_float, require_map


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
