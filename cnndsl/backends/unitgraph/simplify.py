"""The spellings of one function folded into one unit, and windowed units' padding
normalized: what makes a cnndsl network, the Keras model compiled from it and
keras.applications' model give the same units."""

from __future__ import annotations

from ...ir.geometry import effective_kernel
from .units import WINDOWED, Graph, Unit

__all__ = ["normalized", "simplified"]

# Activations whose output is never negative: zero padding after them is -inf padding for a
# max pooling.
_NON_NEGATIVE = ("relu", "relu6", "sigmoid", "softmax", "hardsigmoid")


def simplified(graph: Graph) -> Graph:
    """Folds the spellings of one function into one unit: zero padding into the convolution
    (or average pooling, or max pooling of a non-negative input) that alone reads it, -inf
    padding into its max pooling, ``ReLU6(x + 3) * (1/6)`` into a hard sigmoid, a reshape
    between a vector and a 1x1 map into the ``multiply`` that alone reads it, a cropping into
    the transposed convolution that it alone reads."""
    units = graph.units
    readers = graph.readers()
    alias: dict[int, int] = {}

    def source(i: int) -> int:
        while i in alias:
            i = alias[i]
        return i

    for i, unit in enumerate(units):
        unit.inputs = [source(j) for j in unit.inputs]
        if unit.kind == "activation" and unit.settings["function"] == "relu6":
            _fold_hard_sigmoid(units, readers, i, alias)
    for i, unit in enumerate(units):
        unit.inputs = [source(j) for j in unit.inputs]
        if unit.kind == "crop" and _folded_crop(units, readers, unit):
            alias[i] = unit.inputs[0]
            continue
        if unit.kind not in ("zeropad", "neginfpad", "reshape") or len(readers[i]) != 1:
            continue
        reader = units[readers[i][0]]
        if unit.kind == "reshape":
            if reader.kind == "multiply" and _vector_or_1x1(
                units[unit.inputs[0]].shape, unit.shape
            ):
                alias[i] = unit.inputs[0]
            continue
        if _folds(units, unit, reader):
            (t, b_), (l, r) = unit.settings["pads"]
            (rt, rb), (rl, rr) = reader.settings["pads"]
            reader.settings["pads"] = ((t + rt, b_ + rb), (l + rl, r + rr))
            reader.settings["_hw"] = units[unit.inputs[0]].shape[:2]
            if reader.kind == "avgpool" and reader.settings["count_pad"] is None:
                reader.settings["count_pad"] = True
            alias[i] = unit.inputs[0]
    keep = [i for i in range(len(units)) if i not in alias]
    index = {old: new for new, old in enumerate(keep)}
    result = []
    for old in keep:
        unit = units[old]
        unit.inputs = [index[source(j)] for j in unit.inputs]
        result.append(unit)
    inputs = [index[source(i)] for i in graph.inputs]
    outputs = [index[source(i)] for i in graph.outputs]
    return Graph(result, inputs, outputs, graph.label)


def _folds(units: list[Unit], pad: Unit, reader: Unit) -> bool:
    if reader.kind in ("conv", "dwconv", "sepconv"):
        return pad.kind == "zeropad"
    if reader.kind == "maxpool":
        if pad.kind == "neginfpad":
            return True
        before = units[pad.inputs[0]]
        return before.kind == "activation" and before.settings["function"] in _NON_NEGATIVE
    if reader.kind == "avgpool":
        counted = reader.settings["count_pad"] in (None, True)
        return pad.kind == "zeropad" and counted and not reader.settings["ceil_mode"]
    return False


def _folded_crop(units: list[Unit], readers, crop: Unit) -> bool:
    """Folds ``crop`` into the transposed convolution before it (how Keras writes PyTorch's
    explicit padding), through its fused activation, when each is read only by the next."""
    chain = [crop.inputs[0]]
    if units[chain[0]].kind == "activation":
        chain += units[chain[0]].inputs
    conv = units[chain[-1]]
    if conv.kind != "convtranspose" or any(len(readers[j]) != 1 for j in chain):
        return False
    (top, _), (left, _) = crop.settings["cropping"]
    rows, columns = conv.settings["crop"]
    conv.settings["crop"] = (rows + top, columns + left)
    conv.source = f"{conv.source} + {crop.source}"
    for j in chain:
        units[j].shape = crop.shape
    return True


def _fold_hard_sigmoid(units: list[Unit], readers, i: int, alias: dict[int, int]) -> None:
    """``(x + 3) -> relu6 -> (* 1/6)`` (each read only by the next) is ``hardsigmoid``."""
    relu6 = units[i]
    plus = units[relu6.inputs[0]]
    if len(readers[i]) != 1 or plus.kind != "rescaling" or len(readers[relu6.inputs[0]]) != 1:
        return
    times = units[readers[i][0]]
    if times.kind != "rescaling":
        return
    if plus.settings != {"scale": 1.0, "offset": 3.0} or times.settings.get("offset") != 0.0:
        return
    if abs(times.settings["scale"] - 1 / 6) > 1e-7:
        return
    times.kind, times.settings = "activation", {"function": "hardsigmoid", "alpha": None}
    times.source = f"{plus.source} + ReLU6 + {times.source}: hard sigmoid"
    alias[relu6.inputs[0]] = plus.inputs[0]
    alias[i] = plus.inputs[0]
    times.inputs = [plus.inputs[0]]


def _vector_or_1x1(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    """Whether shapes a and b are one vector, each as (C,) or as a 1x1 map (1, 1, C)."""
    return _as_vector(a) is not None and _as_vector(a) == _as_vector(b)


def _as_vector(shape: tuple[int, ...]) -> tuple[int, ...] | None:
    if len(shape) == 1:
        return shape
    return (shape[2],) if len(shape) == 3 and shape[:2] == (1, 1) else None


def normalized(graph: Graph) -> Graph:
    """Windowed units' padding as the cells the windows use: (before, after) with ``after``
    the last window's end past the input (negative when trailing cells are never read).  An
    average pooling's ``ceil_mode`` stays only where the ceiling adds cells past the padding
    (they are never counted)."""
    for unit in graph.units:
        hw = unit.settings.pop("_hw", None)
        if unit.kind not in WINDOWED or hw is None:
            continue
        unit.in_hw = tuple(hw)
        settings = unit.settings
        kernel, strides = settings["kernel"], settings["strides"]
        pooling = unit.kind in ("maxpool", "avgpool")
        dilation = settings.pop("dilation") if pooling else settings["dilation"]
        declared = settings["pads"]
        used = []
        for a in (0, 1):
            before = declared[a][0]
            end = (unit.shape[a] - 1) * strides[a] + effective_kernel(kernel[a], dilation[a])
            used.append((before, end - hw[a] - before))
        settings["pads"] = tuple(used)
        if unit.kind == "avgpool":
            settings["ceil_mode"] = settings["ceil_mode"] and any(
                used[a][1] > declared[a][1] for a in (0, 1)
            )
    return graph
