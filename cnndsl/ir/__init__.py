"""The IR: one pydantic class per layer kind, and :class:`Network`.

Every node has ``kind`` (the discriminator), ``name``, ``inputs`` (names of the nodes it reads),
``position`` (file, line, column in the spec) and ``calls`` (the block calls that produced it).
``AnyLayer`` is the discriminated union of all kinds; ``Layer.registry()`` maps kind -> class.
"""

from .base import ACTIVATIONS, CallSite, Layer, Position, Shape
from .conv import Conv2D, Conv2DTranspose, DepthwiseConv2D, SeparableConv2D
from .core import Activation, Dense, Flatten, Input, Upsample, ZeroPad
from .geometry import ShapeError
from .merge import Add, Concat, Multiply
from .network import LAYER_CLASSES, AnyLayer, Network, Origins
from .norm import LRN, BatchNorm, Dropout
from .pool import AvgPool2D, DepthMaxPool, GlobalAvgPool2D, GlobalMaxPool2D, MaxPool2D

__all__ = [
    "ACTIVATIONS",
    "AnyLayer",
    "Activation",
    "Add",
    "AvgPool2D",
    "BatchNorm",
    "CallSite",
    "Concat",
    "Conv2D",
    "Conv2DTranspose",
    "Dense",
    "DepthMaxPool",
    "DepthwiseConv2D",
    "Dropout",
    "Flatten",
    "GlobalAvgPool2D",
    "GlobalMaxPool2D",
    "Input",
    "LAYER_CLASSES",
    "LRN",
    "Layer",
    "MaxPool2D",
    "Multiply",
    "Network",
    "Origins",
    "Position",
    "SeparableConv2D",
    "Shape",
    "ShapeError",
    "Upsample",
    "ZeroPad",
]
