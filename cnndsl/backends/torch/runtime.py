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

__all__ = [
    "ExcludePadAvgPool2d",
    "LayerNorm2d",
    "LayerScale",
    "Normalization",
    "Rescaling",
    "SeparableConv2d",
    "StochasticDepth",
    "channel_shuffle",
    "pad_same",
    "same_padding",
]


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


class LayerNorm2d(nn.LayerNorm):
    """Layer normalization over the channels at every position of an NCHW map (torchvision's
    LayerNorm2d): the map permuted to channels last, normalized, and permuted back."""

    def forward(self, x):
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class LayerScale(nn.Module):
    """Multiplies each channel by a learnable factor, initialised to init (ConvNeXt's layer
    scale; gamma of shape (C,), as Keras's and timm's, on maps and vectors alike)."""

    def __init__(self, num_features, init=1e-6):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((num_features,), float(init)))

    def forward(self, x):
        return x * self.gamma.view((-1,) + (1,) * (x.dim() - 2))


class StochasticDepth(nn.Module):
    """torchvision.ops.StochasticDepth: in training, each example's tensor (mode "row") or the
    whole batch's ("batch") is zeroed with probability p and otherwise divided by 1 - p; the
    identity in eval mode."""

    def __init__(self, p, mode):
        super().__init__()
        self.p = p
        self.mode = mode

    def forward(self, x):
        if not self.training or self.p == 0.0:
            return x
        survival_rate = 1.0 - self.p
        size = [x.shape[0]] + [1] * (x.dim() - 1) if self.mode == "row" else [1] * x.dim()
        noise = torch.empty(size, dtype=x.dtype, device=x.device).bernoulli_(survival_rate)
        if survival_rate > 0.0:
            noise.div_(survival_rate)
        return x * noise

    def extra_repr(self):
        return f"p={self.p}, mode={self.mode}"


class Rescaling(nn.Module):
    """x * scale + offset with one number per channel (Keras's Rescaling): constants, kept as
    buffers outside the state dict so that they follow the module's device and dtype."""

    def __init__(self, scale, offset=0.0):
        super().__init__()
        self.register_buffer("scale", torch.tensor(scale), persistent=False)
        self.register_buffer("offset", torch.tensor(offset), persistent=False)

    def forward(self, x):
        shape = (-1,) + (1,) * (x.dim() - 2)  # the channels are axis 1
        return x * self.scale.view(shape) + self.offset.view(shape)


class Normalization(nn.Module):
    """Keras's Normalization(axis=-1): (x - mean) / max(sqrt(variance), 1e-7), per channel.
    Given mean and variance (a number, or one per channel), they are constants (buffers outside
    the state dict); without, they are the buffers mean, variance (shape (C,), as Keras's
    weights) and count to load, 0 and 1 until then."""

    def __init__(self, num_features, mean=None, variance=None):
        super().__init__()
        if mean is None:
            self.register_buffer("mean", torch.zeros(num_features))
            self.register_buffer("variance", torch.ones(num_features))
            self.register_buffer("count", torch.zeros((), dtype=torch.int64))
        else:
            self.register_buffer("mean", torch.tensor(mean), persistent=False)
            self.register_buffer("variance", torch.tensor(variance), persistent=False)

    def forward(self, x):
        shape = (-1,) + (1,) * (x.dim() - 2)  # the channels are axis 1
        std = torch.clamp(torch.sqrt(self.variance), min=1e-7)
        return (x - self.mean.view(shape)) / std.view(shape)


def channel_shuffle(x, groups):
    """ShuffleNet's channel shuffle (torchvision's): the channels, seen as `groups` rows of
    C/groups, read column by column."""
    batchsize, num_channels, height, width = x.size()
    channels_per_group = num_channels // groups
    x = x.view(batchsize, groups, channels_per_group, height, width)
    x = torch.transpose(x, 1, 2).contiguous()
    return x.view(batchsize, num_channels, height, width)
