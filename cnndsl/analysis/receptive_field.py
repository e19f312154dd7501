"""Receptive fields, after Araujo, Norris and Sim, "Computing Receptive Fields of
Convolutional Neural Networks" (Distill, 2019).

Per spatial axis, every node has a receptive-field size r, an effective stride j and an
effective padding p, all in input pixels: output position o of the node sees input pixels
[o*j - p, o*j - p + r - 1] (as in the article, a map is extended beyond its edges, so padding
cells are positions too and a field may reach outside the image).  A layer whose window on its
own input has span k_eff - 1, stride s and padding-before q gives

    r_out = r_in + (k_eff - 1) * j_in,   j_out = j_in * s,   p_out = p_in + q * j_in.

**Global fields.**  A layer that reads its whole input map whatever the output position
(global pooling, ``flatten``, a 1x1 map or a vector that ``multiply`` broadcasts) has a window
of span n - 1 and stride 0: its output sees the hull of what every position of its input sees,
and no longer moves with o.  A field with stride 0 is *global*; the formula above still holds
(o*0 = 0) and every later layer keeps it as it is (its j_in is 0).  Vectors (after ``flatten``,
global pooling, ``dense``) have global fields.

On a DAG a node's receptive field is the union of its inputs' fields: per axis the padding is
the largest p_i and the size max(r_i - p_i) + max(p_i).  When the paths are centred on the
same pixel (as SAME-padded branches are) that is the largest size over the paths -- the
"maximum over paths" of the Distill article and of google-research's receptive_field library
-- and it stays exact when they are not.  The inputs' strides agree in any network whose merges
are aligned; the largest is kept otherwise.  When one input is global, the node is: every other
input's field is first widened to the hull over all the positions of the merged map, then the
union is taken (for squeeze-and-excitation, the whole map the global pooling read).

Upsampling and transposed convolutions have fractional strides; their field is the
continuous one: the exact field of a pixel starts and ends within one pixel of the layer's
input (j_in input pixels) of it, per such layer on the way.  Nodes that no image input reaches
have no receptive field.
"""

from __future__ import annotations

from fractions import Fraction

from ..display import human, int_text

_FLOAT_MAX = 10**300


def _num(x: int | Fraction) -> int | float | str:
    """An integer, or a float for a fraction (its exact "p/q" beyond the range of floats)."""
    if x.denominator == 1:
        return int(x)
    return float(x) if abs(x) < _FLOAT_MAX else f"{int_text(x.numerator)}/{int_text(x.denominator)}"


class ReceptiveField(tuple):
    """Size, effective stride and effective padding, each as (height, width).

    Stored flat, as the tuple (size_h, size_w, stride_h, stride_w, padding_h, padding_w): the
    analysis makes one per node, so it is one allocation.  Values are integers, or fractions
    after upsampling layers.
    """

    __slots__ = ()

    def __new__(cls, size, stride, padding) -> ReceptiveField:
        return tuple.__new__(cls, (*size, *stride, *padding))

    @property
    def size(self) -> tuple[int | Fraction, int | Fraction]:
        return self[0], self[1]

    @property
    def stride(self) -> tuple[int | Fraction, int | Fraction]:
        return self[2], self[3]

    @property
    def padding(self) -> tuple[int | Fraction, int | Fraction]:
        return self[4], self[5]

    def __getnewargs__(self):
        return self.size, self.stride, self.padding

    @property
    def is_global(self) -> bool:
        """Whether every output position sees the same pixels (stride 0: the field went
        through a global operation)."""
        return self[2] == 0 and self[3] == 0

    def __repr__(self) -> str:
        return f"ReceptiveField(size={self.size}, stride={self.stride}, padding={self.padding})"

    def as_dict(self) -> dict[str, list[int | float] | bool]:
        return {
            "size": [_num(v) for v in self.size],
            "stride": [_num(v) for v in self.stride],
            "padding": [_num(v) for v in self.padding],
            "global": self.is_global,
        }

    def short(self) -> str:
        """``212/32/90`` when both axes agree, else ``7x5/2x2/3x2``; ``global`` for a global
        field (its size and padding are in :meth:`as_dict`)."""
        if self.is_global:
            return "global"
        parts = []
        for pair in (self.size, self.stride, self.padding):
            a, b = (_fmt(v) for v in pair)
            parts.append(a if a == b else f"{a}x{b}")
        return "/".join(parts)


def _fmt(x: int | Fraction) -> str:
    if x.denominator == 1:
        return int_text(int(x))
    return f"{float(x):.4g}" if abs(x) < _FLOAT_MAX else human(round(x))


IMAGE = ReceptiveField((1, 1), (1, 1), (0, 0))

_make = tuple.__new__


def combine(fields: list[ReceptiveField], shape: tuple[int, ...]) -> ReceptiveField:
    """The union of the receptive fields of a merge's inputs; ``shape`` is the merge's output.

    Where one field is global on an axis, the others are first widened on that axis to the
    hull over every position of the merged map (see :func:`globalize`)."""
    if any(f[2] == 0 or f[3] == 0 for f in fields):
        axes = [any(f[2 + a] == 0 for f in fields) for a in (0, 1)]
        fields = [globalize(f, shape, axes) for f in fields]
    rf = fields[0]
    for other in fields[1:]:
        rf = _union(rf, other)
    return rf


def globalize(rf: ReceptiveField, shape: tuple[int, ...], axes=(True, True)) -> ReceptiveField:
    """The global field of everything the positions of a map of this ``shape`` see: the hull
    of [o*j - p, o*j - p + r - 1] over o = 0 .. n-1, on each axis in ``axes``."""
    values = list(rf)
    for a in (0, 1):
        if axes[a] and rf[2 + a] != 0:
            n = shape[a] if len(shape) == 3 else 1
            values[a] = rf[a] + (n - 1) * rf[2 + a]
            values[2 + a] = 0
    return _make(ReceptiveField, values)


def _union(a: ReceptiveField, b: ReceptiveField) -> ReceptiveField:
    a0, a1, aj0, aj1, ap0, ap1 = a
    b0, b1, bj0, bj1, bp0, bp1 = b
    p0 = ap0 if ap0 > bp0 else bp0
    p1 = ap1 if ap1 > bp1 else bp1
    return _make(ReceptiveField, (
        max(a0 - ap0, b0 - bp0) + p0,
        max(a1 - ap1, b1 - bp1) + p1,
        aj0 if aj0 > bj0 else bj0,
        aj1 if aj1 > bj1 else bj1,
        p0,
        p1,
    ))


def apply_window(rf: ReceptiveField, window: tuple) -> ReceptiveField:
    """The field after a layer whose window is the flat (span_h, stride_h, padding_h, span_w,
    stride_w, padding_w), in units of the layer's input (see :func:`flat_window`)."""
    r0, r1, j0, j1, p0, p1 = rf
    a0, s0, q0, a1, s1, q1 = window
    return _make(ReceptiveField, (r0 + a0 * j0, r1 + a1 * j1, j0 * s0, j1 * s1, p0 + q0 * j0, p1 + q1 * j1))


def flat_window(window) -> tuple | None:
    """A layer's window, ((span, stride, padding), (span, stride, padding)) per axis as
    :meth:`cnndsl.ir.Layer.window` gives it, flattened for :func:`apply_window`."""
    if window is None:
        return None
    (a0, s0, q0), (a1, s1, q1) = window
    return (a0, s0, q0, a1, s1, q1)
