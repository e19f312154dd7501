"""Helper modules for what PyTorch has no layer for, copied into the generated files.

This file is real, importable code (it is tested like any module), and it is also the text
that :func:`cnndsl.backends.codegen.runtime_definitions` cuts each class out of: a generated
file that needs ``SeparableConv2d`` contains its definition from here, verbatim, and imports
nothing but torch.  So every class here must depend only on the three imports below, and the
order of the classes is the order in which generated files define them.
"""

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ExcludePadAvgPool2d", "SeparableConv2d"]


class SeparableConv2d(nn.Module):
    """A depthwise convolution, then a 1x1 pointwise one (Keras's SeparableConv2D)."""

    def __init__(
        self,
        in_channels,
        out_channels,
        kernel_size,
        stride=1,
        padding=0,
        dilation=1,
        depth_multiplier=1,
        bias=True,
    ):
        super().__init__()
        mid = in_channels * depth_multiplier
        self.depthwise = nn.Conv2d(
            in_channels, mid, kernel_size, stride, padding, dilation, groups=in_channels, bias=False
        )
        self.pointwise = nn.Conv2d(mid, out_channels, 1, bias=bias)

    def forward(self, x):
        return self.pointwise(self.depthwise(x))


class ExcludePadAvgPool2d(nn.Module):
    """Average pooling over an asymmetrically padded input that, as TensorFlow's SAME
    padding, does not count padded cells: the sum over each window divided by the number of
    real cells in it.  padding is (left, right, top, bottom)."""

    def __init__(self, kernel_size, stride, padding, ceil_mode=False):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = padding
        self.ceil_mode = ceil_mode

    def forward(self, x):
        pool = (self.kernel_size, self.stride, 0, self.ceil_mode)
        total = F.avg_pool2d(F.pad(x, self.padding), *pool)
        real = F.avg_pool2d(F.pad(torch.ones_like(x[:1, :1]), self.padding), *pool)
        return total / real
