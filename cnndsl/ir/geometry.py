"""Output-size and padding arithmetic shared by the analysis and the back ends.

All sizes are Python integers, so absurd inputs (10^9 x 10^9 maps) are computed, not allocated.

Conventions (one spatial axis, input size n, kernel k, stride s, dilation d, k_eff = d*(k-1)+1):
- SAME (TensorFlow): out = ceil(n / s); the total padding max((out-1)*s + k_eff - n, 0) is split
  with the smaller half before, the larger after (so stride 2 on an even size pads only after).
- VALID: out = floor((n - k_eff) / s) + 1.
- explicit (PyTorch): out = floor((n + before + after - k_eff) / s) + 1, or with ceil_mode the
  ceiling, dropping a last window that would start in the right padding (PyTorch's rule).
"""

from __future__ import annotations

from typing import Literal

Padding2D = tuple[tuple[int, int], tuple[int, int]]
PaddingSpec = Literal["same", "valid"] | Padding2D


class ShapeError(ValueError):
    """A layer cannot be applied to its input: the message says why (no location yet), and
    ``hint`` what to do, where there is advice."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


def effective_kernel(k: int, d: int) -> int:
    return d * (k - 1) + 1


def same_padding(n: int, k_eff: int, s: int) -> tuple[int, int]:
    """TensorFlow's SAME padding (before, after) for one axis."""
    out = -(-n // s)
    total = max((out - 1) * s + k_eff - n, 0)
    return total // 2, total - total // 2


def window_output(
    n: int, k: int, s: int, d: int, padding: PaddingSpec, axis: int, ceil_mode: bool = False
) -> tuple[int, int, int]:
    """Output size and the (before, after) padding of a sliding window along one axis.

    ``axis`` is 0 for height, 1 for width.  The size is below 1 when no window fits (a 5x5 VALID
    window on 3 rows gives -1); the caller reports that.
    """
    k_eff = effective_kernel(k, d)
    if padding == "same":
        before, after = same_padding(n, k_eff, s)
        return -(-n // s), before, after
    if padding == "valid":
        before = after = 0
    else:
        before, after = padding[axis]
    span = n + before + after - k_eff
    if ceil_mode and span >= 0:
        out = -(-span // s) + 1
        if (out - 1) * s >= n + before:  # the last window must start inside the input
            out -= 1
    else:
        out = span // s + 1
    return out, before, after


def transposed_output(
    n: int, k: int, s: int, d: int, padding: PaddingSpec, axis: int, output_padding: int | None
) -> tuple[int, int]:
    """Output size of a transposed convolution and its 'before' cropping along one axis.

    Keras semantics for "same"/"valid" (keras.utils.conv_utils.deconv_output_length), PyTorch's
    for explicit padding: out = (n-1)*s - before - after + k_eff + output_padding.
    """
    k_eff = effective_kernel(k, d)
    if padding == "same" or padding == "valid":
        if output_padding is None:
            if padding == "valid":
                out = n * s + max(k_eff - s, 0)
            else:
                out = n * s
        else:
            pad = k_eff // 2 if padding == "same" else 0
            out = (n - 1) * s + k_eff - 2 * pad + output_padding
        full = (n - 1) * s + k_eff  # size before cropping
        before = max(full - out, 0) // 2 if padding == "same" else 0
        return out, before
    before, after = padding[axis]
    return (n - 1) * s - before - after + k_eff + (output_padding or 0), before
