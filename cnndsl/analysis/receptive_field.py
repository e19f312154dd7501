"""Receptive fields, after Araujo, Norris and Sim, "Computing Receptive Fields of
Convolutional Neural Networks" (Distill, 2019).

Per spatial axis, every node has a receptive-field size r, an effective stride j and an
effective padding p, all in input pixels: output position o of the node sees input pixels
[o*j - p, o*j - p + r - 1].  A layer whose window on its own input has span k_eff - 1, stride s
and padding-before q gives

    r_out = r_in + (k_eff - 1) * j_in,   j_out = j_in * s,   p_out = p_in + q * j_in.

On a DAG a node's receptive field is the union of its inputs' fields: per axis the padding is
the largest p_i and the size max(r_i - p_i) + max(p_i).  When the paths are centred on the
same pixel (as SAME-padded branches are) that is the largest size over the paths -- the
"maximum over paths" of the Distill article and of google-research's receptive_field library
-- and it stays exact when they are not.  The inputs' strides agree in any network whose merges
are aligned; the largest is kept otherwise.  Upsampling and transposed convolutions have
fractional strides.  Nodes that no image input reaches have no receptive field.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction


def _num(x: int | Fraction) -> int | float:
    return int(x) if x.denominator == 1 else float(x)


@dataclass(frozen=True, slots=True)
class ReceptiveField:
    """Size, effective stride and effective padding, each as (height, width)."""

    size: tuple[int | Fraction, int | Fraction]
    stride: tuple[int | Fraction, int | Fraction]
    padding: tuple[int | Fraction, int | Fraction]
    """Integers, or fractions after upsampling layers."""

    def as_dict(self) -> dict[str, list[int | float]]:
        return {
            "size": [_num(v) for v in self.size],
            "stride": [_num(v) for v in self.stride],
            "padding": [_num(v) for v in self.padding],
        }

    def short(self) -> str:
        """``212/32/90`` when both axes agree, else ``7x5/2x2/3x2``."""
        parts = []
        for pair in (self.size, self.stride, self.padding):
            a, b = (_fmt(v) for v in pair)
            parts.append(a if a == b else f"{a}x{b}")
        return "/".join(parts)


def _fmt(x: int | Fraction) -> str:
    return str(int(x)) if x.denominator == 1 else f"{float(x):.4g}"


IMAGE = ReceptiveField((1, 1), (1, 1), (0, 0))


def combine(fields: list[ReceptiveField]) -> ReceptiveField:
    """The union of the receptive fields of a merge's inputs."""
    if len(fields) == 1:
        return fields[0]
    size, stride, padding = [], [], []
    for axis in (0, 1):
        p = max(f.padding[axis] for f in fields)
        padding.append(p)
        size.append(max(f.size[axis] - f.padding[axis] for f in fields) + p)
        stride.append(max(f.stride[axis] for f in fields))
    return ReceptiveField(tuple(size), tuple(stride), tuple(padding))


def apply_window(rf: ReceptiveField, window) -> ReceptiveField:
    size, stride, padding = [], [], []
    for axis, (span, s, q) in enumerate(window):
        r, j, p = rf.size[axis], rf.stride[axis], rf.padding[axis]
        size.append(r + span * j)
        stride.append(j * s)
        padding.append(p + q * j)
    return ReceptiveField(tuple(size), tuple(stride), tuple(padding))
