"""The IR: one pydantic class per layer kind, and :class:`Network`.

Every node has ``kind`` (the discriminator), ``name``, ``inputs`` (names of the nodes it reads),
``position`` (file, line, column in the spec) and ``calls`` (the block calls that produced it).
``AnyLayer`` is the discriminated union of all kinds; ``Layer.registry()`` maps kind -> class.
"""

from .base import ACTIVATIONS, CallSite, Layer, LoopSite, Position, Shape
from .conv import Conv2D, Conv2DTranspose, DepthwiseConv2D, SeparableConv2D
from .core import Activation, Dense, Flatten, Input, PointwiseDense, Upsample, ZeroPad
from .geometry import ShapeError
from .merge import Add, Concat, Multiply
from .network import LAYER_CLASSES, AnyLayer, Network, Origins
from .norm import LRN, BatchNorm, Dropout, LayerNorm, StochasticDepth
from .pool import (
    AdaptiveAvgPool2D,
    AvgPool2D,
    DepthMaxPool,
    GlobalAvgPool2D,
    GlobalMaxPool2D,
    MaxPool2D,
)
from .reshape import ChannelShuffle, ChannelSplit, Cropping2D, Reshape
from .scaling import LayerScale, Normalization, Rescaling

__all__ = [
    "ACTIVATIONS",
    "AdaptiveAvgPool2D",
    "AnyLayer",
    "Activation",
    "Add",
    "AvgPool2D",
    "BatchNorm",
    "CallSite",
    "ChannelShuffle",
    "ChannelSplit",
    "Concat",
    "Conv2D",
    "Conv2DTranspose",
    "Cropping2D",
    "Dense",
    "DepthMaxPool",
    "DepthwiseConv2D",
    "Dropout",
    "Flatten",
    "GlobalAvgPool2D",
    "GlobalMaxPool2D",
    "Input",
    "LAYER_CLASSES",
    "LayerNorm",
    "LayerScale",
    "LRN",
    "Layer",
    "LoopSite",
    "MaxPool2D",
    "Multiply",
    "Network",
    "Normalization",
    "Origins",
    "PointwiseDense",
    "Position",
    "Rescaling",
    "Reshape",
    "SeparableConv2D",
    "Shape",
    "ShapeError",
    "StochasticDepth",
    "Upsample",
    "ZeroPad",
]
