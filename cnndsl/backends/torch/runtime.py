"""Helpers for what PyTorch has no layer for, copied into the generated files.

This file is real, importable code (it is tested like any module), and it is also the text
that :func:`cnndsl.backends.codegen.runtime_definitions` cuts each definition out of: a
generated file that needs ``SeparableConv2d`` contains its definition from here, verbatim
(with the definitions it uses), and imports nothing but torch.  So every definition here may
depend only on the three imports below and on each other, and the order of the file is the
order in which generated files define them.
"""

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ExcludePadAvgPool2d", "SeparableConv2d", "pad_same", "same_padding"]


def same_padding(x, kernel_size, stride, dilation=1):
    """TensorFlow's SAME padding of x's height and width, as F.pad takes it (left, right, top,
    bottom): max((ceil(n / s) - 1) * s + k_eff - n, 0) on each axis, the smaller half before
    (so stride 2 on an even size pads only after).  It depends on the input's size when the
    stride is more than 1: computed here, for every input."""
    height, width = x.shape[-2:]
    pairs = (v if isinstance(v, tuple) else (v, v) for v in (kernel_size, stride, dilation))
    (kh, kw), (sh, sw), (dh, dw) = pairs
    pad_h = max((-(-height // sh) - 1) * sh + (kh - 1) * dh + 1 - height, 0)
    pad_w = max((-(-width // sw) - 1) * sw + (kw - 1) * dw + 1 - width, 0)
    return (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2)


def pad_same(x, kernel_size, stride, dilation=1, value=0.0):
    """x padded as TensorFlow's SAME padding pads it for a window, whatever x's size."""
    return F.pad(x, same_padding(x, kernel_size, stride, dilation), value=value)


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
    """Average pooling over a padded input that, as TensorFlow's SAME padding, does not count
    padded cells: the sum over each window divided by the number of real cells in it.  padding
    is (left, right, top, bottom), or "same": TensorFlow's for the input's size."""

    def __init__(self, kernel_size, stride, padding, ceil_mode=False):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = padding
        self.ceil_mode = ceil_mode

    def forward(self, x):
        padding = self.padding
        if padding == "same":
            padding = same_padding(x, self.kernel_size, self.stride)
        pool = (self.kernel_size, self.stride, 0, self.ceil_mode)
        total = F.avg_pool2d(F.pad(x, padding), *pool)
        real = F.avg_pool2d(F.pad(torch.ones_like(x[:1, :1]), padding), *pool)
        return total / real
