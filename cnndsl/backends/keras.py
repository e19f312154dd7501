"""Keras back end: an analysed IR network -> a Keras 3 functional model, live or as source.

    build(net) -> keras.Model     the model itself
    to_source(net) -> str         a standalone module (imports only keras) whose build_model()
                                  gives the same model, one Python function per spec block
    layer_names(net) -> dict      IR node -> the Keras layers it becomes (the last gives its output)

Every IR node becomes one Keras layer with the node's name.  A few nodes need a helper layer,
named after the node: ``<name>_pad`` (ZeroPadding2D, or NegInfPadding2D before max pooling) for
explicit padding that is not TensorFlow's SAME, ``<name>_crop`` (Cropping2D) after a transposed
convolution with explicit padding, ``<name>_reshape`` (a channel vector to 1x1xC) before a
multiply.  Semantics are kept exactly; what Keras cannot express raises
:func:`cnndsl.backends.unsupported`.

The module has four parts:
1. custom layers, defined here and copied verbatim into generated source;
2. the plan: one handler per IR layer class (``HANDLERS``) turns a node into Keras layer calls;
   ``build`` instantiates the plan, ``to_source`` prints it;
3. ``build``;
4. ``to_source``: the nodes of each block call become a body; runs of identical layers (or calls)
   whose names count up become ``for`` loops; the calls of one block with one structure share one
   function whose parameters are the values that differ between calls (named after the block
   parameter that gives them), structurally different calls of a block get their own function.
"""

from __future__ import annotations

import builtins
import inspect
import json
import keyword
import os
import re
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import keras

from ..ir import (
    LRN,
    Activation,
    Add,
    AvgPool2D,
    BatchNorm,
    Concat,
    Conv2D,
    Conv2DTranspose,
    Dense,
    DepthMaxPool,
    DepthwiseConv2D,
    Dropout,
    Flatten,
    GlobalAvgPool2D,
    GlobalMaxPool2D,
    Input,
    Layer,
    MaxPool2D,
    Multiply,
    Network,
    SeparableConv2D,
    Upsample,
    ZeroPad,
)
from ..ir.geometry import effective_kernel, same_padding
from . import unsupported
from ._source import SourceWriter, comment_text, docstring_text, py_identifier

__all__ = [
    "HANDLERS",
    "UNSUPPORTED",
    "DepthMaxPooling2D",
    "LocalResponseNormalization",
    "NegInfPadding2D",
    "PaddedAveragePooling2D",
    "build",
    "layer_names",
    "leaky_relu",
    "to_source",
]

TARGET = "Keras"
LINE_LENGTH = 100

# =================================================================== 1. custom layers
# Each is copied into generated source by inspect.getsource: keep them self-contained (only
# `keras`), black-formatted, and registered for serialization.


@keras.saving.register_keras_serializable(package="cnndsl")
class NegInfPadding2D(keras.layers.Layer):
    """Pads height and width with -inf, so that a max pooling after it never picks a padded cell
    (PyTorch's padded max pooling).  padding: as ZeroPadding2D's, an int, (height, width) or
    ((top, bottom), (left, right))."""

    def __init__(self, padding, **kwargs):
        super().__init__(**kwargs)
        if isinstance(padding, int):
            padding = (padding, padding)
        self.padding = tuple((p, p) if isinstance(p, int) else tuple(p) for p in padding)

    def call(self, x):
        (top, bottom), (left, right) = self.padding
        pads = [[0, 0], [top, bottom], [left, right], [0, 0]]
        return keras.ops.pad(x, pads, constant_values=float("-inf"))

    def get_config(self):
        return {**super().get_config(), "padding": self.padding}


@keras.saving.register_keras_serializable(package="cnndsl")
class PaddedAveragePooling2D(keras.layers.Layer):
    """Average pooling as PyTorch's avg_pool2d: zero padding ((top, bottom), (left, right));
    with ceil_mode, a last partial window is kept when it starts inside the input or the top/left
    padding; each window's sum is divided by its cells inside the input (count_include_pad off)
    or inside the padded input (on)."""

    def __init__(
        self, pool_size, strides, padding, ceil_mode=False, count_include_pad=True, **kwargs
    ):
        super().__init__(**kwargs)
        self.pool_size = tuple(pool_size)
        self.strides = tuple(strides)
        self.padding = tuple(tuple(int(p) for p in side) for side in padding)
        self.ceil_mode = bool(ceil_mode)
        self.count_include_pad = bool(count_include_pad)

    def _extra(self, n, k, s, before, after):
        """Cells to add after the padding so that a VALID pooling gives PyTorch's output size."""
        span = n + before + after - k
        out = span // s + 1
        if self.ceil_mode:
            out = -(-span // s) + 1
            if (out - 1) * s >= n + before:
                out -= 1
        return max(0, (out - 1) * s + k - (n + before + after))

    def call(self, x):
        (top, bottom), (left, right) = self.padding
        height, width = x.shape[1], x.shape[2]
        below = bottom + self._extra(height, self.pool_size[0], self.strides[0], top, bottom)
        beside = right + self._extra(width, self.pool_size[1], self.strides[1], left, right)
        # mask: 1 on the cells a window's average counts, 0 on the others
        if self.count_include_pad:
            mask = keras.ops.ones((1, top + height + bottom, left + width + right, 1), x.dtype)
            mask_pads = [[0, 0], [0, below - bottom], [0, beside - right], [0, 0]]
        else:
            mask = keras.ops.ones((1, height, width, 1), x.dtype)
            mask_pads = [[0, 0], [top, below], [left, beside], [0, 0]]
        mask = keras.ops.pad(mask, mask_pads)
        x = keras.ops.pad(x, [[0, 0], [top, below], [left, beside], [0, 0]])
        sums = keras.ops.average_pool(x, self.pool_size, self.strides, "valid")
        counts = keras.ops.average_pool(mask, self.pool_size, self.strides, "valid")
        return sums / counts

    def get_config(self):
        return {
            **super().get_config(),
            "pool_size": self.pool_size,
            "strides": self.strides,
            "padding": self.padding,
            "ceil_mode": self.ceil_mode,
            "count_include_pad": self.count_include_pad,
        }


@keras.saving.register_keras_serializable(package="cnndsl")
class LocalResponseNormalization(keras.layers.Layer):
    """Local response normalization across channels, as tf.nn.local_response_normalization:
    x / (bias + alpha * sum(x[..., c - depth_radius : c + depth_radius + 1] ** 2)) ** beta."""

    def __init__(self, depth_radius=5, bias=1.0, alpha=1.0, beta=0.5, **kwargs):
        super().__init__(**kwargs)
        self.depth_radius = int(depth_radius)
        self.bias = float(bias)
        self.alpha = float(alpha)
        self.beta = float(beta)

    def call(self, x):
        r, channels = self.depth_radius, x.shape[-1]
        squares = keras.ops.pad(keras.ops.square(x), [[0, 0]] * (len(x.shape) - 1) + [[r, r]])
        total = squares[..., :channels]
        for i in range(1, 2 * r + 1):
            total = total + squares[..., i : i + channels]
        return x / keras.ops.power(self.bias + self.alpha * total, self.beta)

    def get_config(self):
        return {
            **super().get_config(),
            "depth_radius": self.depth_radius,
            "bias": self.bias,
            "alpha": self.alpha,
            "beta": self.beta,
        }


@keras.saving.register_keras_serializable(package="cnndsl")
class DepthMaxPooling2D(keras.layers.Layer):
    """Max pooling across channels: the max of every pool_size consecutive channels,
    H x W x C -> H x W x C/pool_size (tf.nn.max_pool with ksize = strides = (1, 1, 1, k))."""

    def __init__(self, pool_size, **kwargs):
        super().__init__(**kwargs)
        self.pool_size = int(pool_size)

    def call(self, x):
        height, width, channels = x.shape[1:]
        groups = (-1, height, width, channels // self.pool_size, self.pool_size)
        return keras.ops.max(keras.ops.reshape(x, groups), axis=-1)

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size}


@keras.saving.register_keras_serializable(package="cnndsl")
def leaky_relu(x):
    """The `leakyrelu` activation of a layer: negative slope 0.3, as keras.layers.LeakyReLU."""
    return keras.ops.leaky_relu(x, negative_slope=0.3)


CUSTOM_OBJECTS: dict[str, Any] = {
    obj.__name__: obj
    for obj in (
        NegInfPadding2D,
        PaddedAveragePooling2D,
        LocalResponseNormalization,
        DepthMaxPooling2D,
        leaky_relu,
    )
}
"""Everything of this module that generated source defines (copied with inspect.getsource)."""

# =================================================================== 2. the plan

_NO_DEFAULT = object()


@dataclass(frozen=True)
class Sym:
    """A name defined in the generated module (a custom activation), not a literal."""

    name: str


@dataclass(frozen=True)
class Arg:
    """One argument of a Keras layer constructor.  Generated source leaves out a keyword
    argument whose value is its default in every call of the line."""

    key: str
    value: Any
    default: Any = _NO_DEFAULT
    positional: bool = False


@dataclass(frozen=True)
class KCall:
    """One Keras layer: its class (in keras.layers, a custom class of this module, or Input),
    constructor arguments, name, the values it reads (node or helper layer names), its node."""

    cls: str
    args: tuple[Arg, ...]
    name: str
    inputs: tuple[str, ...]
    node: Layer
    merge: bool = False  # takes a list of tensors


def _pos(key: str, value: Any) -> Arg:
    return Arg(key, value, positional=True)


def _layer(cls: str, node: Layer, *args: Arg, name=None, inputs=None, merge=False) -> KCall:
    inputs = node.inputs if inputs is None else inputs
    return KCall(cls, args, name or node.name, tuple(inputs), node, merge)


class _Planner:
    """What handlers share: the network (for errors) and the names taken."""

    def __init__(self, net: Network) -> None:
        self.net = net
        self.taken = {layer.name for layer in net.layers}

    def helper(self, node: str, suffix: str) -> str:
        """A fresh name for a helper layer: ``conv_1_pad`` (``conv_1_pad_2`` if a node has it)."""
        name, k = f"{node}_{suffix}", 1
        while name in self.taken:
            k += 1
            name = f"{node}_{suffix}_{k}"
        self.taken.add(name)
        return name

    def fail(self, layer: Layer, why: str):
        return unsupported(self.net, layer, TARGET, why)


def _pair(value: tuple[int, int]) -> Any:
    return value[0] if value[0] == value[1] else tuple(value)


def _padding_value(pads) -> Any:
    """((t, b), (l, r)) as ZeroPadding2D takes it, shortest first: 1, (1, 2), ((0, 1), (1, 1))."""
    (t, b), (l, r) = pads
    if t == b == l == r:
        return t
    return (t, l) if t == b and l == r else ((t, b), (l, r))


def _zero(pads) -> bool:
    return all(v == 0 for side in pads for v in side)


def _activation(name: str) -> Any:
    if name == "linear":
        return None
    return Sym("leaky_relu") if name == "leakyrelu" else name


def _is_same(info, pads, kernel, stride, dilation=(1, 1)) -> bool:
    """Whether explicit pads are exactly TensorFlow's SAME padding for this input."""
    for axis in (0, 1):
        n, s = info.input_shapes[0][axis], stride[axis]
        k_eff = effective_kernel(kernel[axis], dilation[axis])
        if tuple(pads[axis]) != same_padding(n, k_eff, s) or info.output_shape[axis] != -(-n // s):
            return False
    return True


def _pad_first(p: _Planner, layer, info, pads, pad_cls: str, same: bool = True):
    """Explicit padding -> ([a helper padding layer], the value the layer reads, its padding).

    With ``same``, padding that is TensorFlow's SAME for this input becomes padding="same".
    """
    src = layer.inputs[0]
    if _zero(pads):
        return [], src, "valid"
    dilation = getattr(layer, "dilation", (1, 1))
    if same and _is_same(info, pads, layer.kernel, layer.stride, dilation):
        return [], src, "same"
    name = p.helper(layer.name, "pad")
    return [_layer(pad_cls, layer, _pos("padding", _padding_value(pads)), name=name)], name, "valid"


# ---- convolutions


def _conv_padding(p, layer, info):
    if layer.padding in ("same", "valid"):
        return [], layer.inputs[0], layer.padding
    return _pad_first(
        p, layer, info, layer.explicit_padding(list(info.input_shapes)), "ZeroPadding2D"
    )


def _window(layer, padding: str) -> list[Arg]:
    return [
        _pos("kernel_size", _pair(layer.kernel)),
        Arg("strides", _pair(layer.stride), 1),
        Arg("padding", padding, "valid"),
    ]


def _dilation(layer) -> Arg:
    return Arg("dilation_rate", _pair(layer.dilation), 1)


def _output(layer) -> list[Arg]:
    return [
        Arg("activation", _activation(layer.activation), None),
        Arg("use_bias", layer.bias, True),
    ]


def _conv2d(p, layer: Conv2D, info):
    pre, src, padding = _conv_padding(p, layer, info)
    args = [_pos("filters", layer.filters), *_window(layer, padding), _dilation(layer)]
    args += [Arg("groups", layer.groups, 1), *_output(layer)]
    return [*pre, _layer("Conv2D", layer, *args, inputs=[src])]


def _dwconv(p, layer: DepthwiseConv2D, info):
    pre, src, padding = _conv_padding(p, layer, info)
    args = [*_window(layer, padding), Arg("depth_multiplier", layer.depth_multiplier, 1)]
    args += [_dilation(layer), *_output(layer)]
    return [*pre, _layer("DepthwiseConv2D", layer, *args, inputs=[src])]


def _sepconv(p, layer: SeparableConv2D, info):
    pre, src, padding = _conv_padding(p, layer, info)
    args = [_pos("filters", layer.filters), *_window(layer, padding), _dilation(layer)]
    args += [Arg("depth_multiplier", layer.depth_multiplier, 1), *_output(layer)]
    return [*pre, _layer("SeparableConv2D", layer, *args, inputs=[src])]


def _convtranspose(p, layer: Conv2DTranspose, info):
    crop = ((0, 0), (0, 0))
    if layer.padding in ("same", "valid"):
        padding, output_padding = layer.padding, layer.output_padding
    else:
        # A VALID transposed convolution gives the full (n-1)*s + k_eff; PyTorch's explicit
        # padding crops it; a negative crop after is rows beyond it: Keras's output_padding.
        padding = "valid"
        (top, bottom), (left, right) = layer.explicit_padding(list(info.input_shapes))
        crop = ((top, max(0, bottom)), (left, max(0, right)))
        output_padding = (max(0, -bottom), max(0, -right))
        output_padding = None if output_padding == (0, 0) else output_padding
    if output_padding is not None and any(q >= s for q, s in zip(output_padding, layer.stride)):
        raise p.fail(layer, "Keras needs output_padding smaller than the stride")
    args = [_pos("filters", layer.filters), *_window(layer, padding)]
    args.append(Arg("output_padding", output_padding and _pair(output_padding), None))
    calls = [_layer("Conv2DTranspose", layer, *args, _dilation(layer), *_output(layer))]
    if not _zero(crop):
        cropping = _pos("cropping", _padding_value(crop))
        name = p.helper(layer.name, "crop")
        calls.append(_layer("Cropping2D", layer, cropping, name=name, inputs=[layer.name]))
    return calls


# ---- pooling


def _pool_pads(layer, info):
    """The padding of a pooling window, and the same with the cells that PyTorch's ceil_mode
    adds after it (those a VALID pooling needs to give the IR's output size)."""
    pads = ((0, 0), (0, 0)) if layer.padding == "valid" else layer.padding
    full = []
    for axis, (before, after) in enumerate(pads):
        n, k, s = info.input_shapes[0][axis], layer.kernel[axis], layer.stride[axis]
        out = info.output_shape[axis]
        full.append((before, after + max(0, (out - 1) * s + k - (n + before + after))))
    return pads, tuple(full)


def _pool(cls: str, layer, padding: str, src: str) -> KCall:
    strides = None if layer.stride == layer.kernel else _pair(layer.stride)
    args = (
        _pos("pool_size", _pair(layer.kernel)),
        Arg("strides", strides, None),
        Arg("padding", padding, "valid"),
    )
    return _layer(cls, layer, *args, inputs=[src])


def _maxpool(p, layer: MaxPool2D, info):
    """Padded cells never win: pad with -inf (after, the cells of ceil mode too)."""
    if layer.padding == "same":
        return [_pool("MaxPooling2D", layer, "same", layer.inputs[0])]
    pre, src, padding = _pad_first(p, layer, info, _pool_pads(layer, info)[1], "NegInfPadding2D")
    return [*pre, _pool("MaxPooling2D", layer, padding, src)]


def _avgpool(p, layer: AvgPool2D, info):
    """TensorFlow's SAME averages over the input cells; explicit padding that counts (no ceil
    mode) is zero padding; the rest is PyTorch's average, PaddedAveragePooling2D."""
    src = layer.inputs[0]
    if layer.padding == "same" and not layer.include_pad:
        return [_pool("AveragePooling2D", layer, "same", src)]
    if layer.padding == "same":
        pads = full = layer.explicit_padding(list(info.input_shapes))
    else:
        pads, full = _pool_pads(layer, info)
    counted = layer.include_pad and not _zero(pads)
    if _zero(full) or (not counted and _is_same(info, full, layer.kernel, layer.stride)):
        return [_pool("AveragePooling2D", layer, "valid" if _zero(full) else "same", src)]
    if counted and tuple(full) == tuple(pads):
        pre, src, _ = _pad_first(p, layer, info, full, "ZeroPadding2D", same=False)
        return [*pre, _pool("AveragePooling2D", layer, "valid", src)]
    args = (
        _pos("pool_size", tuple(layer.kernel)),
        Arg("strides", tuple(layer.stride)),
        Arg("padding", tuple(tuple(side) for side in pads)),
        Arg("ceil_mode", layer.ceil_mode, False),
        Arg("count_include_pad", bool(layer.include_pad), True),
    )
    return [_layer("PaddedAveragePooling2D", layer, *args)]


def _global_pool(cls: str):
    return lambda p, layer, info: [_layer(cls, layer, Arg("keepdims", layer.keepdims, False))]


def _depthmaxpool(p, layer: DepthMaxPool, info):
    return [_layer("DepthMaxPooling2D", layer, _pos("pool_size", layer.pool))]


# ---- the others


def _input(p, layer: Input, info):
    return [_layer("Input", layer, Arg("shape", tuple(layer.shape)))]


def _dense(p, layer: Dense, info):
    return [_layer("Dense", layer, _pos("units", layer.units), *_output(layer))]


def _batchnorm(p, layer: BatchNorm, info):
    args = (
        Arg("momentum", layer.momentum, 0.99),
        Arg("epsilon", layer.epsilon, 0.001),
        Arg("center", layer.center, True),
        Arg("scale", layer.scale, True),
    )
    return [_layer("BatchNormalization", layer, *args)]


def _lrn(p, layer: LRN, info):
    args = (
        Arg("depth_radius", layer.radius, 5),
        Arg("bias", layer.bias, 1.0),
        Arg("alpha", layer.alpha, 1.0),
        Arg("beta", layer.beta, 0.5),
    )
    return [_layer("LocalResponseNormalization", layer, *args)]


def _activation_layer(p, layer: Activation, info):
    fn = layer.function
    if fn == "relu":
        return [_layer("ReLU", layer)]
    if fn == "relu6":
        return [_layer("ReLU", layer, Arg("max_value", 6.0))]
    if fn == "leakyrelu":
        return [_layer("LeakyReLU", layer, Arg("negative_slope", layer.alpha, 0.3))]
    if fn == "elu":
        return [_layer("ELU", layer, Arg("alpha", layer.alpha, 1.0))]
    return [_layer("Activation", layer, _pos("activation", fn))]


def _upsample(p, layer: Upsample, info):
    args = (_pos("size", _pair(layer.size)), Arg("interpolation", layer.interpolation, "nearest"))
    return [_layer("UpSampling2D", layer, *args)]


def _multiply(p, layer: Multiply, info):
    """A channel vector scales a map (squeeze-and-excitation): reshape it to 1x1xC first."""
    calls, inputs = [], []
    for src, shape in zip(layer.inputs, info.input_shapes):
        if len(shape) == 1 and len(info.output_shape) == 3:
            name = p.helper(layer.name, "reshape")
            calls.append(
                _layer("Reshape", layer, _pos("target_shape", (1, 1, -1)), name=name, inputs=[src])
            )
            src = name
        inputs.append(src)
    return [*calls, _layer("Multiply", layer, inputs=inputs, merge=True)]


def _simple(cls: str, *fields: tuple[str, Callable[[Any], Any]], merge: bool = False):
    """A handler for a layer that maps to one Keras layer with positional arguments."""
    return lambda p, layer, info: [
        _layer(cls, layer, *(_pos(key, get(layer)) for key, get in fields), merge=merge)
    ]


Handler = Callable[[_Planner, Any, Any], list[KCall]]

HANDLERS: dict[type[Layer], Handler] = {
    Input: _input,
    Conv2D: _conv2d,
    DepthwiseConv2D: _dwconv,
    SeparableConv2D: _sepconv,
    Conv2DTranspose: _convtranspose,
    Dense: _dense,
    Flatten: _simple("Flatten"),
    Activation: _activation_layer,
    ZeroPad: _simple("ZeroPadding2D", ("padding", lambda layer: _padding_value(layer.padding))),
    Upsample: _upsample,
    Add: _simple("Add", merge=True),
    Concat: _simple("Concatenate", merge=True),
    Multiply: _multiply,
    BatchNorm: _batchnorm,
    LRN: _lrn,
    Dropout: _simple("Dropout", ("rate", lambda layer: layer.rate)),
    MaxPool2D: _maxpool,
    AvgPool2D: _avgpool,
    GlobalAvgPool2D: _global_pool("GlobalAveragePooling2D"),
    GlobalMaxPool2D: _global_pool("GlobalMaxPooling2D"),
    DepthMaxPool: _depthmaxpool,
}
"""One handler per IR layer class: (planner, node, LayerInfo) -> the Keras layers it becomes."""

UNSUPPORTED: dict[type[Layer], str] = {}
"""IR layer classes this back end cannot express at all, with why (none: the cases it cannot
express, such as an output_padding Keras refuses, raise from their handler)."""


@dataclass
class _Plan:
    calls: list[KCall]  # every Keras layer, in order
    value: dict[str, str]  # IR node -> the Keras layer that gives its output

    def outputs(self, net: Network) -> list[str]:
        return [self.value[name] for name in net.outputs]


def _plan(net: Network) -> _Plan:
    """Every Keras layer of the model, in order; raises for what Keras cannot express."""
    _check_reachable(net)
    planner = _Planner(net)
    plan = _Plan([], {})
    for layer in net.layers:
        cls = type(layer)
        if cls in UNSUPPORTED or cls not in HANDLERS:
            raise planner.fail(layer, UNSUPPORTED.get(cls, f"no handler for {cls.__name__}"))
        for call in HANDLERS[cls](planner, layer, net.analysis[layer.name]):
            inputs = tuple(plan.value.get(name, name) for name in call.inputs)
            plan.calls.append(replace(call, inputs=inputs))
        plan.value[layer.name] = plan.calls[-1].name
    return plan


def _check_reachable(net: Network) -> None:
    """A Keras functional model keeps only the layers between its inputs and outputs."""
    needed = set(net.outputs)
    for layer in reversed(net.layers):
        if layer.name in needed:
            needed.update(layer.inputs)
    for layer in net.layers:
        if layer.name not in needed:
            why = "it reaches no output, and a Keras functional model would drop it"
            raise unsupported(net, layer, TARGET, why)


def layer_names(net: Network) -> dict[str, list[str]]:
    """For every IR node, the names of the Keras layers it becomes, in order; the last one's
    output is the node's output (``conv_1`` -> ``["conv_1_pad", "conv_1"]``)."""
    result: dict[str, list[str]] = {layer.name: [] for layer in net.layers}
    for call in _plan(net).calls:
        result[call.node.name].append(call.name)
    return result


# =================================================================== 3. build


def _value(value: Any) -> Any:
    return CUSTOM_OBJECTS[value.name] if isinstance(value, Sym) else value


def build(net: Network) -> keras.Model:
    """The network as a live Keras functional model (untrained, Keras's initializers).

    Raises :class:`cnndsl.CnnDslError` for what Keras cannot express.
    """
    tensors: dict[str, Any] = {}
    plan = _plan(net)
    for call in plan.calls:
        if call.cls == "Input":
            tensors[call.name] = keras.Input(shape=call.args[0].value, name=call.name)
            continue
        cls = getattr(keras.layers, call.cls, None) or CUSTOM_OBJECTS[call.cls]
        positional = [_value(a.value) for a in call.args if a.positional]
        keywords = {a.key: _value(a.value) for a in call.args if not a.positional}
        layer = cls(*positional, **keywords, name=call.name)
        inputs = [tensors[name] for name in call.inputs]
        tensors[call.name] = layer(inputs if call.merge else inputs[0])
    inputs = [tensors[layer.name] for layer in net.inputs]
    outputs = [tensors[name] for name in plan.outputs(net)]
    return keras.Model(
        inputs[0] if len(inputs) == 1 else inputs,
        outputs[0] if len(outputs) == 1 else outputs,
        name=net.name,
    )


# =================================================================== 4. to_source
#
# The plan's layers are grouped by block call into a tree of bodies.  A body's items are layers
# (_Prim), block calls (_Call, with a body of their own) and, after folding, loops (_Loop).  Item
# values are named by the Keras layer that makes them; a body reads `inputs` from outside and
# gives `outputs` to the outside.  The slots of a body are its constructor arguments, the
# parameter values of its calls and its loop counts, in one fixed traversal order: instances of a
# block whose bodies have one key (structure) share a function, whose per-slot plan says which
# slots are literals and which come from parameters.

_COUNTED = re.compile(r"^(.*)_(\d+)$")


@dataclass(eq=False)
class _Prim:
    call: KCall
    local: str | None  # name after the body's prefix (None: not under it)
    where: str | None
    node_local: str | None = None  # its node's name after the prefix
    counter: tuple[str, int, int] | None = None  # in a loop: (base, first count, step)

    @property
    def inputs(self) -> tuple[str, ...]:
        return self.call.inputs

    @property
    def outputs(self) -> list[str]:
        return [self.call.name]


@dataclass(eq=False)
class _Body:
    items: list
    inputs: list[str]
    outputs: list[str]


@dataclass(eq=False)
class _Call:
    site: Any  # CallSite
    local: str | None
    body: _Body
    where: str | None
    counter: tuple[str, int, int] | None = None
    func: _Function | None = None
    values: list = field(default_factory=list)  # the function's parameter values here

    @property
    def inputs(self) -> list[str]:
        return self.body.inputs

    @property
    def outputs(self) -> list[str]:
        return self.body.outputs


@dataclass(eq=False)
class _Loop:
    unit: _Body  # the first repetition; inputs: [the carried value, loop invariants...]
    count: int
    outputs: list[str]
    local = None
    counter = None

    @property
    def inputs(self) -> list[str]:
        return self.unit.inputs


@dataclass(eq=False)
class _Function:
    name: str
    block: str
    calls: list[_Call]
    input_names: list[str]  # parameters that receive tensors
    params: list[str]  # value parameters
    keyword: set[str]  # parameters passed by keyword (not named after a block parameter)
    plan: list[tuple]  # per slot: ("const", v) | ("param", p) | ("expr", p, op, k or q)
    variant: bool = False  # one of several structures of its block


class _Flat(Exception):
    """The block calls do not nest as expected: emit the network without block functions."""


def _where(position) -> str | None:
    if position is None:
        return None
    return f"{os.path.basename(position.file)}:{position.line}"


def _local(name: str, prefix: str) -> str | None:
    return name[len(prefix) :] if name.startswith(prefix) and len(name) > len(prefix) else None


def _tree(net: Network, plan: _Plan, flat: bool) -> _Body:
    """The plan grouped by block call (outermost first); the root body's outputs: the network's."""
    calls = plan.calls
    consumers: dict[str, list[int]] = {call.name: [] for call in calls}
    for i, call in enumerate(calls):
        for name in call.inputs:
            consumers[name].append(i)
    net_outputs = set(plan.outputs(net))
    seen: set[str] = set()

    def body(lo: int, hi: int, depth: int, prefix: str) -> _Body:
        items: list = []
        i = lo
        while i < hi:
            node = calls[i].node
            if not flat and len(node.calls) > depth:
                site = node.calls[depth]
                j = i
                while (
                    j < hi
                    and len(calls[j].node.calls) > depth
                    and calls[j].node.calls[depth].instance == site.instance
                ):
                    j += 1
                if site.instance in seen:
                    raise _Flat
                seen.add(site.instance)
                items.append(
                    _Call(
                        site,
                        _local(site.instance, prefix),
                        body(i, j, depth + 1, site.instance + "_"),
                        _where(site.position),
                    )
                )
                i = j
            else:
                local = _local(calls[i].name, prefix)
                items.append(
                    _Prim(calls[i], local, _where(node.position), _local(node.name, prefix))
                )
                i += 1
        inside = {call.name for call in calls[lo:hi]}
        inputs = list(
            dict.fromkeys(n for call in calls[lo:hi] for n in call.inputs if n not in inside)
        )
        outputs = [
            call.name
            for call in calls[lo:hi]
            if call.name in net_outputs or any(k < lo or k >= hi for k in consumers[call.name])
        ]
        return _Body(items, inputs, outputs)

    root = body(0, len(calls), 0, "")
    root.outputs = plan.outputs(net)
    return root


# ---------------------------------------------------------------- keys, slots, literals


def _lit(value: Any) -> str:
    """A value as a Python literal, black-style (double quotes)."""
    if isinstance(value, Sym):
        return value.name
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, tuple):
        inner = ", ".join(_lit(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, float):
        return repr(value) if value == value and abs(value) != float("inf") else f'float("{value}")'
    return repr(value)


def _norm(value: Any) -> Any:
    """A block argument in the form the plan writes values: lists as tuples, (n, n) as n."""
    if isinstance(value, list):
        value = tuple(_norm(v) for v in value)
    if (
        isinstance(value, tuple)
        and len(value) == 2
        and value[0] == value[1]
        and not isinstance(value[0], (tuple, bool))
    ):
        return value[0]
    return value


def _mtok(value: Any) -> Any:
    """A value for matching with block arguments: by type and value (6 is not 6.0 nor True)."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, (int, float)):
        return (type(value).__name__, value)
    if isinstance(value, (list, tuple)):
        return ("tuple", tuple(_mtok(v) for v in value))
    if isinstance(value, Sym):
        return ("sym", value.name)
    return (type(value).__name__, value)


def _positions(body: _Body) -> dict[str, tuple[int, int]]:
    return {v: (i, k) for i, item in enumerate(body.items) for k, v in enumerate(item.outputs)}


def _refs(body: _Body):
    pos, ext = _positions(body), {v: k for k, v in enumerate(body.inputs)}
    return lambda v: ("item", *pos[v]) if v in pos else ("ext", ext[v])


def _name_key(item) -> tuple:
    if isinstance(item, _Loop):
        return ("loop",)
    if item.counter is not None:
        return ("counted", *item.counter)
    if item.local is not None:
        return ("local", item.local)
    return ("abs", item.call.name if isinstance(item, _Prim) else item.site.instance)


def _shape(item) -> tuple:
    """An item's structure, without its values, name or inputs."""
    if isinstance(item, _Prim):
        call = item.call
        return (
            "prim",
            call.cls,
            tuple((a.key, a.positional) for a in call.args),
            call.merge,
            item.where,
        )
    if isinstance(item, _Call):
        return ("call", id(item.func), len(item.outputs), item.where)
    return ("loop", _body_key(item.unit))


def _body_key(body: _Body) -> tuple:
    ref = _refs(body)
    items = tuple(
        (_shape(it), _name_key(it), tuple(ref(v) for v in it.inputs)) for it in body.items
    )
    return items, tuple(ref(v) for v in body.outputs), len(body.inputs)


def _slots(items) -> Iterator[tuple[str, str, Any]]:
    """(key, hint for a parameter name, value) of every slot, in emission order."""
    for item in items:
        if isinstance(item, _Prim):
            base = item.counter[0] if item.counter else (item.local or item.call.name)
            for a in item.call.args:
                yield a.key, f"{base}_{a.key}", a.value
        elif isinstance(item, _Call):
            base = item.counter[0] if item.counter else (item.local or item.site.instance)
            for param, value in zip(item.func.params, item.values):
                yield param, f"{base}_{param}", value
        else:
            yield "repeats", "repeats", item.count
            yield from _slots(item.unit.items)


def _slot_values(items) -> tuple:
    return tuple(_lit(value) for _, _, value in _slots(items))


# ---------------------------------------------------------------- loops


def _fold(body: _Body, exported: set[str], max_unit: int = 32) -> None:
    """Replace runs of r >= 2 identical repetitions of a unit of items, whose names count up
    and each of which reads the previous one's result, by a _Loop."""
    items = body.items
    if len(items) < 2:
        return
    sigs = []
    for item in items:
        counted = _COUNTED.match(item.local) if item.local is not None else None
        if counted is None:
            sigs.append(None)
        else:
            shape = (_shape(item), _slot_values([item]), counted.group(1))
            sigs.append((shape, int(counted.group(2))))
    pos = _positions(body)
    uses: dict[str, list[int]] = {}
    for i, item in enumerate(items):
        for v in item.inputs:
            uses.setdefault(v, []).append(i)

    result: list = []
    i = 0
    while i < len(items):
        best = None
        for size in range(1, min(max_unit, (len(items) - i) // 2) + 1):
            loop = _try_loop(items, sigs, pos, uses, exported, i, size)
            if loop is not None and (best is None or loop[1] * size > best[1] * best[2]):
                best = (*loop, size)
        if best is None:
            result.append(items[i])
            i += 1
            continue
        make, reps, size = best
        result.append(make())
        i += reps * size
    body.items = result


def _try_loop(items, sigs, pos, uses, exported, start, size):
    if any(sigs[start + j] is None for j in range(size)):
        return None
    steps = []
    for j in range(size):
        (shape0, n0), second = sigs[start + j], sigs[start + size + j]
        if second is None or second[0] != shape0 or second[1] <= n0:
            return None
        steps.append(second[1] - n0)
    reps = 2
    while start + (reps + 1) * size <= len(items) and all(
        sigs[start + reps * size + j] is not None
        and sigs[start + reps * size + j][0] == sigs[start + j][0]
        and sigs[start + reps * size + j][1] == sigs[start + j][1] + reps * steps[j]
        for j in range(size)
    ):
        reps += 1
    while reps >= 2:
        loop = _loop(items, pos, uses, exported, start, size, reps, steps)
        if loop is not None:
            return loop, reps
        reps -= 1
    return None


def _loop(items, pos, uses, exported, start, size, reps, steps):
    """The loop for `reps` repetitions of items[start:start+size], or None if their data flow
    is not a chain: each repetition reads the previous one's last value (the first reads one
    value from before the run) and values from before the run that all repetitions share."""
    second = start + size
    kinds: dict[tuple[int, int], tuple] = {}
    for j in range(size):
        for p, v in enumerate(items[second + j].inputs):
            src = pos.get(v, (None,))[0]
            if src is not None and second <= src < second + j:
                kinds[j, p] = ("intra", src - second)
            elif src == second - 1:
                kinds[j, p] = ("carry",)
            elif src is None or src < start:
                kinds[j, p] = ("shared", v)
            else:
                return None
    if not any(kind[0] == "carry" for kind in kinds.values()):
        return None
    entry = None
    for t in range(reps):
        first = start + t * size
        for j in range(size):
            item = items[first + j]
            if len(item.inputs) != len(items[second + j].inputs):
                return None
            for p, v in enumerate(item.inputs):
                kind = kinds[j, p]
                src = pos.get(v, (None,))[0]
                if kind[0] == "intra" and src != first + kind[1]:
                    return None
                if kind[0] == "shared" and v != kind[1]:
                    return None
                if kind[0] == "carry":
                    if t > 0 and src != first - 1:
                        return None
                    if t == 0:
                        if (entry is not None and v != entry) or (src is not None and src >= start):
                            return None
                        entry = v
    end = start + reps * size
    last = items[end - 1]
    shared = list(dict.fromkeys(k[1] for k in kinds.values() if k[0] == "shared"))
    if len(last.outputs) != 1 or entry in shared:
        return None
    for item in items[start : end - 1]:
        for v in item.outputs:
            if v in exported or any(u >= end for u in uses.get(v, ())):
                return None
    unit = items[start:second]

    def make() -> _Loop:
        for j, item in enumerate(unit):
            counted = _COUNTED.match(item.local)
            item.counter = (counted.group(1), int(counted.group(2)), steps[j])
        return _Loop(_Body(unit, [entry, *shared], [unit[-1].outputs[0]]), reps, [last.outputs[0]])

    return make


# ---------------------------------------------------------------- block functions

_MODULE_NAMES = frozenset({"keras", "layers", "build_model"})
_RESERVED = (
    frozenset(keyword.kwlist)
    | frozenset(keyword.softkwlist)
    | frozenset(dir(builtins))
    | {"i", "name"}
)


def _is_auto(item) -> bool:
    """Whether the elaborator made up the item's name (``conv_3``, ``inception_2``)."""
    if item.local is None:
        return True
    if isinstance(item, _Prim):
        node = item.call.node
        return (
            item.node_local is None
            or re.fullmatch(rf"{re.escape(node.type_name)}_\d+", item.node_local) is not None
        )
    return re.fullmatch(rf"{re.escape(item.site.block)}_\d+", item.local) is not None


def _user_locals(items) -> list[str]:
    names = []
    for item in items:
        if isinstance(item, _Loop):
            names += _user_locals(item.unit.items)
        elif not _is_auto(item):
            names.append(item.node_local if isinstance(item, _Prim) else item.local)
    return list(dict.fromkeys(names))


def _unique(candidate: str, taken: set[str]) -> str:
    name, k = candidate, 1
    while name in taken or name in _RESERVED:
        k += 1
        name = f"{candidate}_{k}"
    taken.add(name)
    return name


def _functions(root: _Body, taken: set[str]) -> list[_Function]:
    """Decide the block functions, innermost blocks first; fold loops in every block body."""
    calls: list[_Call] = []
    inner: dict[str, set[str]] = {}

    def walk(body: _Body, block: str | None) -> None:
        for item in body.items:
            if isinstance(item, _Call):
                calls.append(item)
                inner.setdefault(item.site.block, set())
                if block is not None:
                    inner[block].add(item.site.block)
                walk(item.body, item.site.block)

    walk(root, None)
    by_block: dict[str, list[_Call]] = {}
    for call in calls:
        by_block.setdefault(call.site.block, []).append(call)
    block_names = {py_identifier(b) for b in by_block}
    order: list[str] = []
    while len(order) < len(by_block):  # blocks after the blocks they call (there is no recursion)
        order.append(next(b for b in by_block if b not in order and inner[b] <= set(order)))

    functions = []
    for block in order:
        for call in by_block[block]:
            _fold(call.body, set(call.body.outputs))
        _align(by_block[block])
        groups: dict[tuple, list[_Call]] = {}
        for call in by_block[block]:
            groups.setdefault(_body_key(call.body), []).append(call)
        members = list(groups.values())
        main = max(range(len(members)), key=lambda g: (len(members[g]), -g))
        number = 1
        for g, group in enumerate(members):
            if g == main:
                candidate = py_identifier(block)
                if candidate in taken:
                    candidate += "_block"
            else:
                names = [
                    n
                    for n in _variant_names(block, group, members[main])
                    if n not in taken | block_names
                ]
                if names:
                    candidate = names[0]
                else:
                    number += 1
                    candidate = py_identifier(f"{block}_{number}")
            functions.append(_resolve(_unique(candidate, taken), block, group, taken))
            functions[-1].variant = len(members) > 1
    return functions


def _align(calls: list[_Call]) -> None:
    """Where a call of a block has a loop that another call runs once (``repeat n - 1`` with
    n = 2), make that one repetition a loop too, when that gives both one structure."""
    loops = {}
    for call in calls:
        for item in call.body.items:
            if isinstance(item, _Loop):
                loops.setdefault(_body_key(item.unit), item)
    if not loops:
        return
    keys = {
        _body_key(call.body) for call in calls if any(isinstance(i, _Loop) for i in call.body.items)
    }
    for call in calls:
        body = call.body
        saved = [(item, item.counter) for item in body.items], list(body.items)
        changed = True
        while changed:
            changed = any(_fold_single(body, loop) for loop in loops.values())
        if body.items != saved[1] and _body_key(body) not in keys:
            body.items = saved[1]
            for item, counter in saved[0]:
                if not isinstance(item, _Loop):
                    item.counter = counter


def _fold_single(body: _Body, loop: _Loop) -> bool:
    """Replace the first run of items that is one repetition of `loop` by a loop of one."""
    unit, items = loop.unit, body.items
    size, key, ref = len(unit.items), _body_key(unit), _refs(unit)
    exported = set(body.outputs)
    for start in range(len(items) - size + 1):
        run = items[start : start + size]
        if any(
            isinstance(item, _Loop) or item.local is None or not _COUNTED.match(item.local)
            for item in run
        ):
            continue
        if any(len(a.inputs) != len(b.inputs) for a, b in zip(run, unit.items)):
            continue
        ext: dict[int, str] = {}  # the unit's inputs (carried value, shared ones) in the run
        pairs = [(v, ref(w)) for a, b in zip(run, unit.items) for v, w in zip(a.inputs, b.inputs)]
        if any(r[0] == "ext" and ext.setdefault(r[1], v) != v for v, r in pairs):
            continue
        if sorted(ext) != list(range(len(unit.inputs))) or len(set(ext.values())) != len(ext):
            continue
        inner = {v for item in run[:-1] for v in item.outputs}
        later = {v for item in items[start + size :] for v in item.inputs}
        if inner & (later | exported):
            continue
        saved = [item.counter for item in run]
        for item, model in zip(run, unit.items):
            counted = _COUNTED.match(item.local)
            item.counter = (counted.group(1), int(counted.group(2)), model.counter[2])
        candidate = _Body(run, [ext[k] for k in range(len(ext))], [run[-1].outputs[0]])
        if _body_key(candidate) == key:
            body.items = [
                *items[:start],
                _Loop(candidate, 1, [run[-1].outputs[0]]),
                *items[start + size :],
            ]
            return True
        for item, counter in zip(run, saved):
            item.counter = counter
    return False


_TRUE, _FALSE = {True, "true", "on", "yes"}, {False, "false", "off", "no"}


def _variant_names(block: str, group: list[_Call], main: list[_Call]) -> list[str]:
    """Names for calls of a block whose structure differs from its most common one, best first:
    after a parameter that is constant in both and differs (``bottleneck_project``,
    ``inverted_residual_expansion_1``), a name given only in them, a layer kind they add or lack."""
    names = []
    for p in group[0].site.args:
        mine = {_lit(_norm(call.site.args.get(p))) for call in group}
        theirs = {_lit(_norm(call.site.args.get(p))) for call in main}
        if len(mine) == 1 and len(theirs) == 1 and mine != theirs:
            value = _norm(group[0].site.args.get(p))
            if isinstance(value, (bool, str)) and value in _TRUE:
                names.append(f"{block}_{p}")
            elif isinstance(value, (bool, str)) and value in _FALSE:
                names.append(f"{block}_no_{p}")
            elif _int(value) or (isinstance(value, str) and value.isidentifier()):
                names.append(f"{block}_{p}_{value}")
    main_names = set(_user_locals(main[0].body.items))
    names += [f"{block}_{n}" for n in _user_locals(group[0].body.items) if n not in main_names]
    mine, theirs = _kinds(group[0].body.items), _kinds(main[0].body.items)
    names += [f"{block}_with_{k}" for k in mine if k not in theirs]
    names += [f"{block}_no_{k}" for k in theirs if k not in mine]
    return [py_identifier(n) for n in names]


def _kinds(items) -> list[str]:
    """The layer kinds and blocks a body uses, in order."""
    kinds: list[str] = []
    for item in items:
        if isinstance(item, _Loop):
            kinds += _kinds(item.unit.items)
        elif isinstance(item, _Call):
            kinds.append(item.site.block)
        elif item.call.name == item.call.node.name:
            kinds.append(item.call.node.type_name)
    return list(dict.fromkeys(kinds))


def _resolve(name: str, block: str, group: list[_Call], module: set[str]) -> _Function:
    """Anti-unify the calls of one structure: slots equal in every call stay literals, the others
    become parameters, named after the block parameter that gives them where there is one.
    ``module``: the names a parameter must not shadow (modules, classes, functions)."""
    first = group[0]
    args = [call.site.args for call in group]
    block_params = list(first.site.args)
    avoid = _RESERVED | module | {"x"}
    pyname = {
        p: p if p.isidentifier() and p not in avoid else f"{py_identifier(p)}_"
        for p in block_params
    }

    # tensors: the block parameter naming the tensor in every call, else x, x2, ...
    input_params: list[str | None] = []
    for k in range(len(first.body.inputs)):
        values = [call.body.inputs[k] for call in group]
        input_params.append(
            next(
                (
                    p
                    for p in block_params
                    if p not in input_params and [a.get(p) for a in args] == values
                ),
                None,
            )
        )
    value_params = [p for p in block_params if p not in input_params]
    given = {p: [_norm(a.get(p)) for a in args] for p in value_params}

    slots = [list(_slots(call.body.items)) for call in group]
    plan: list[tuple] = []
    derived: dict[tuple, tuple[str, str]] = {}  # its literal in each call -> (key, hint)
    for k, (key, hint, value) in enumerate(slots[0]):
        vector = [s[k][2] for s in slots]
        if len({_lit(v) for v in vector}) == 1:
            # the same in every call: a literal, unless a block parameter of the same name gives
            # it (and it is not a value like 1 or off, which might just as well be a constant)
            plain = value is None or isinstance(value, (bool, Sym)) or (_int(value) and value <= 1)
            word = (
                None
                if plain
                else next(
                    (p for p in value_params if _same_word(key, p) and _equal(given[p], vector)),
                    None,
                )
            )
            plan.append(("param", word) if word else ("const", value))
            continue
        entry = _match(vector, value_params, given, key == "repeats")
        if entry is None:
            lits = tuple(_lit(v) for v in vector)
            entry = ("derived", derived.setdefault(lits, (key, hint)), k)
        plan.append(entry)

    used = {e[1] for e in plan if e[0] in ("param", "expr")} | {
        e[3] for e in plan if e[0] == "expr"
    }
    params = [p for p in value_params if p in used]
    taken = {pyname[p] for p in params} | module
    inputs, unnamed = [], 0
    for p in input_params:
        unnamed += p is None
        inputs.append(_unique(pyname[p] if p else "x" if unnamed == 1 else f"x{unnamed}", taken))
    # a derived parameter is named after its argument (units), or where two would be, the layer
    keys = [key for key, _ in derived.values()]
    derived_names = {
        (key, hint): _unique(py_identifier(key if keys.count(key) == 1 else hint), taken)
        for key, hint in derived.values()
    }
    derived_first: dict[str, int] = {}  # parameter -> the first slot that gives it
    final_plan = []
    for entry in plan:
        if entry[0] == "derived":
            derived_first.setdefault(derived_names[entry[1]], entry[2])
            final_plan.append(("param", derived_names[entry[1]]))
        elif entry[0] == "param":
            final_plan.append(("param", pyname[entry[1]]))
        elif entry[0] == "expr":
            _, left, op, right = entry
            final_plan.append(("expr", pyname[left], op, pyname.get(right, right)))
        else:
            final_plan.append(entry)
    fn = _Function(
        name=name,
        block=block,
        calls=group,
        input_names=inputs,
        params=[pyname[p] for p in params] + list(derived_first),
        keyword=set(derived_first),
        plan=final_plan,
    )
    for call, call_slots in zip(group, slots):
        call.func = fn
        call.values = [_norm(call.site.args[p]) for p in params]
        call.values += [call_slots[k][2] for k in derived_first.values()]
    return fn


def _same_word(key: str, param: str) -> bool:
    """``filters`` and ``filters``, ``strides`` and ``stride``: a slot and a block parameter
    that name one thing."""
    return key == param or key.rstrip("s") == param.rstrip("s")


def _equal(given: list, vector: list) -> bool:
    return [_mtok(g) for g in given] == [_mtok(v) for v in vector]


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _match(vector, value_params, given, count: bool) -> tuple | None:
    """How a slot that differs between calls follows from the block's parameters: equal to one,
    a product or quotient of two, a multiple or fraction of one, or (a loop count) one less."""
    for p in value_params:
        if _equal(given[p], vector):
            return ("param", p)
    if not all(_int(v) for v in vector):
        return None
    ints = [p for p in value_params if all(_int(g) and g > 0 for g in given[p])]
    for p in ints:
        for q in ints:
            if p != q and all(v == a * b for v, a, b in zip(vector, given[p], given[q])):
                return ("expr", p, "*", q)
            if p != q and all(v == a // b for v, a, b in zip(vector, given[p], given[q])):
                return ("expr", p, "//", q)
    for p in ints:
        a0, v0 = given[p][0], vector[0]
        if (
            v0 % a0 == 0
            and v0 // a0 >= 2
            and all(v == a * (v0 // a0) for v, a in zip(vector, given[p]))
        ):
            return ("expr", p, "*", v0 // a0)
        if v0 > 0 and a0 // v0 >= 2 and all(v == a // (a0 // v0) for v, a in zip(vector, given[p])):
            return ("expr", p, "//", a0 // v0)
        if count and all(v == a - 1 for v, a in zip(vector, given[p])):
            return ("expr", p, "-", 1)
    return None


# ---------------------------------------------------------------- writing


class _Writer(SourceWriter):
    def docstring(self, text: str) -> None:
        """A docstring, wrapped within LINE_LENGTH (quotes and backslashes escaped)."""
        text = docstring_text(text)
        indent = len(self._unit) * self._level
        if indent + len(text) + 6 <= LINE_LENGTH:
            self.line(f'"""{text}"""')
            return
        lines = textwrap.wrap(text, LINE_LENGTH - indent - 3, break_on_hyphens=False)
        self.line(f'"""{lines[0]}')
        for line in lines[1:]:
            self.line(line)
        self.line('"""')

    def statement(
        self, lhs: str, head: str, args: list[str], tail: str = "", comment: str | None = None
    ) -> None:
        """``lhs head(args)tail  # comment`` within LINE_LENGTH, split as black splits it."""
        indent = len(self._unit) * self._level
        note = f"  # {comment_text(comment)}" if comment else ""
        one = f"{lhs}{head}({', '.join(args)}){tail}"
        if indent + len(one) + len(note) <= LINE_LENGTH or not args:
            self.line(one + note)
            return
        self.line(f"{lhs}{head}(")
        with self.indented():
            hugged = ", ".join(args)
            if indent + len(self._unit) + len(hugged) <= LINE_LENGTH:
                self.line(hugged)
            else:
                for arg in args:
                    self.line(f"{arg},")
        self.line(f"){tail}{note}")


class _Scope:
    """The variables of one generated function: which hold a value still needed."""

    def __init__(self, reserved: set[str], live: list[str]) -> None:
        self.reserved = reserved
        self.live = set(live)
        self.branches = 0

    def free(self, var: str) -> bool:
        return var not in self.live and var not in self.reserved

    def branch(self) -> str:
        while True:
            self.branches += 1
            var = f"branch{self.branches}"
            if self.free(var):
                return var

    def named(self, text: str) -> str:
        var = candidate = py_identifier(text)
        k = 1
        while not self.free(var):
            k += 1
            var = f"{candidate}_{k}"
        return var


@dataclass
class _LoopContext:
    start: int  # the loop variable's first value
    unit_steps: bool  # every counter steps by one: the loop runs over the first item's count


class _Emitter:
    def __init__(self, net: Network, functions: list[_Function], module_names: set[str]) -> None:
        self.net = net
        self.functions = functions
        self.module_names = module_names
        self.w = _Writer()
        self.loop: _LoopContext | None = None

    # ---- values
    @staticmethod
    def expr(entry: tuple, plus: int = 0) -> str:
        """A slot's value in source, plus a constant (for loop bounds)."""
        if entry[0] == "const":
            return _lit(entry[1] + plus) if plus else _lit(entry[1])
        if entry[0] == "param":
            text, offset = entry[1], plus
        elif entry[2] == "-":  # a count: n - k
            text, offset = entry[1], plus - entry[3]
        else:
            text, offset = f"{entry[1]} {entry[2]} {entry[3]}", plus
        if offset == 0:
            return text
        return f"{text} + {offset}" if offset > 0 else f"{text} - {-offset}"

    def counter(self, n0: int, step: int) -> str:
        loop = self.loop
        if loop.unit_steps:
            d = n0 - loop.start
            return "i" if d == 0 else f"i + {d}" if d > 0 else f"i - {-d}"
        scaled = "i" if step == 1 else f"{step} * i"
        return scaled if n0 == 0 else f"{scaled} + {n0}"

    def layer_name(self, item, prefix: bool) -> str:
        if item.counter is not None:
            base, n0, step = item.counter
            head = "{name}_" if prefix else ""
            return f'f"{head}{base}_{{{self.counter(n0, step)}}}"'
        if prefix and item.local is not None:
            return f'f"{{name}}_{item.local}"'
        return _lit(item.call.name if isinstance(item, _Prim) else item.site.instance)

    # ---- bodies
    def body(
        self,
        body: _Body,
        scope: _Scope,
        ext_vars: list[str],
        plan: Iterator,
        prefix: bool,
        exported: set[str],
        force: str | None = None,
    ) -> dict[str, str]:
        """Write a body's items; give the variable that holds each value at its last use."""
        var = dict(zip(body.inputs, ext_vars))
        uses: dict[str, list[int]] = {}
        for idx, item in enumerate(body.items):
            for v in item.inputs:
                uses.setdefault(v, []).append(idx)
        count = {v: len(u) + (v in exported) for v, u in uses.items()}
        last = len(body.items) - 1

        def dies(v: str, idx: int) -> bool:
            return v not in exported and uses[v][-1] == idx

        for idx, item in enumerate(body.items):
            ins = list(dict.fromkeys(item.inputs))
            release = ins[:1] if isinstance(item, _Loop) else ins
            released = [var[v] for v in release if dies(v, idx)]
            scope.live.difference_update(released)
            if force is not None and idx == last:
                targets = [force]
            else:
                important = count.get(item.outputs[0], 0) >= 2 or (
                    not prefix and item.outputs[0] in exported
                )
                targets = self.targets(item, ins, var, important, count, scope, released)
            if isinstance(item, _Prim):
                self.prim(item, targets[0], var, plan, prefix)
            elif isinstance(item, _Call):
                self.call(item, targets, var, plan, prefix)
            else:
                self.for_loop(item, targets[0], var, scope, plan, prefix)
                scope.live.difference_update(var[v] for v in ins[1:] if dies(v, idx))
            for v, target in zip(item.outputs, targets):
                var[v] = target
                scope.live.add(target)
        return var

    def targets(
        self, item, ins, var, important, count, scope: _Scope, released: list[str]
    ) -> list[str]:
        """The variable for an item's result: a chain goes on in its variable; a branch off a
        value that others read starts `x` when free, else a variable named after the spec's
        name for it, else `branch<n>`."""
        outs = item.outputs
        if len(outs) > 1:
            return [scope.branch() for _ in outs]
        if not ins:  # a network input
            name = item.call.name
            return [scope.named("inputs" if name == "input" else name)]
        named = (
            None
            if isinstance(item, _Loop) or _is_auto(item)
            else getattr(item, "node_local", item.local)
        )
        if named and important:
            return [scope.named(named)]  # a named value that several layers read, or an output
        if len(ins) == 1:
            src = var[ins[0]]
            if count[ins[0]] == 1:
                return [src]
            if src != "x" and scope.free("x"):
                return ["x"]
        elif scope.free("x"):
            return ["x"]
        elif released:
            return [released[0]]
        return [scope.named(named) if named else scope.branch()]

    def prim(self, item: _Prim, target: str, var, plan: Iterator, prefix: bool) -> None:
        call = item.call
        args = []
        for a in call.args:
            entry = next(plan)
            if (
                entry[0] == "const"
                and a.default is not _NO_DEFAULT
                and _lit(entry[1]) == _lit(a.default)
            ):
                continue
            text = self.expr(entry)
            args.append(text if a.positional else f"{a.key}={text}")
        args.append(f"name={self.layer_name(item, prefix)}")
        if call.cls == "Input":
            self.w.statement(f"{target} = ", "keras.Input", args, "", item.where)
            return
        head = call.cls if call.cls in CUSTOM_OBJECTS else f"layers.{call.cls}"
        ins = [var[v] for v in call.inputs]
        tail = f"([{', '.join(ins)}])" if call.merge else f"({ins[0]})"
        self.w.statement(f"{target} = ", head, args, tail, item.where)

    def call(self, item: _Call, targets: list[str], var, plan: Iterator, prefix: bool) -> None:
        fn = item.func
        args = [var[v] for v in item.inputs]
        for param in fn.params:
            text = self.expr(next(plan))
            args.append(f"{param}={text}" if param in fn.keyword else text)
        args.append(f"name={self.layer_name(item, prefix)}")
        self.w.statement(f"{', '.join(targets)} = ", fn.name, args, "", item.where)

    def for_loop(
        self, item: _Loop, target: str, var, scope: _Scope, plan: Iterator, prefix: bool
    ) -> None:
        entry, shared = item.inputs[0], item.inputs[1:]
        if target != var[entry]:
            self.w.line(f"{target} = {var[entry]}")
        count = next(plan)
        counters = [unit.counter for unit in item.unit.items]
        steps_one = all(step == 1 for _, _, step in counters)
        start = counters[0][1] if steps_one else 0
        bounds = f"{start}, {self.expr(count, start)}" if start else self.expr(count)
        self.w.line(f"for i in range({bounds}):")
        scope.live.add(target)
        saved, self.loop = (set(scope.live), self.loop), _LoopContext(start, steps_one)
        with self.w.indented():
            ext = [target, *(var[v] for v in shared)]
            self.body(item.unit, scope, ext, plan, prefix, set(shared), force=target)
        scope.live, self.loop = saved

    # ---- functions and the module
    def function(self, fn: _Function) -> None:
        body = fn.calls[0].body
        reserved = set(_RESERVED) | self.module_names | set(fn.params)
        scope = _Scope(reserved, fn.input_names)
        self.w.statement("def ", fn.name, [*fn.input_names, *fn.params, "name"], ":")
        with self.w.indented():
            self.w.docstring(_function_doc(fn))
            plan = iter(fn.plan)
            var = self.body(body, scope, fn.input_names, plan, True, set(body.outputs))
            self.w.line(f"return {', '.join(var[v] for v in body.outputs)}")
        self.w.blank(2)

    def build_model(self, root: _Body, plan: list[tuple]) -> None:
        net = self.net
        inputs = [layer.name for layer in net.inputs]
        scope = _Scope(set(_RESERVED) | self.module_names, [])
        self.w.line("def build_model():")
        with self.w.indented():
            self.w.docstring(
                f"The network `{comment_text(net.name)}`{_file_note(net)} as a Keras model."
            )
            var = self.body(root, scope, [], iter(plan), False, set(root.outputs) | set(inputs))
            ins = [var[v] for v in inputs]
            outs = [var[v] for v in root.outputs]
            model_in = ins[0] if len(ins) == 1 else f"[{', '.join(ins)}]"
            model_out = outs[0] if len(outs) == 1 else f"[{', '.join(outs)}]"
            self.w.statement(
                "return ", "keras.Model", [model_in, model_out, f"name={_lit(net.name)}"]
            )


def _file_note(net: Network) -> str:
    files = sorted(
        {os.path.basename(layer.position.file) for layer in net.layers if layer.position}
    )
    return f" ({files[0]})" if len(files) == 1 else ""


def _function_doc(fn: _Function) -> str:
    wheres = []

    def collect(items) -> None:
        for item in items:
            if isinstance(item, _Loop):
                collect(item.unit.items)
            elif item.where:
                wheres.append(item.where.rsplit(":", 1))

    collect(fn.calls[0].body.items)
    text = f"Block `{fn.block}`"
    files = {f for f, _ in wheres}
    if len(files) == 1:
        lines = sorted(int(n) for _, n in wheres)
        span = str(lines[0]) if lines[0] == lines[-1] else f"{lines[0]}-{lines[-1]}"
        text += f" ({files.pop()}:{span})"
    if fn.variant:
        calls = [call.site.instance for call in fn.calls]
        more = f" and {len(calls) - 3} more" if len(calls) > 3 else ""
        text += f", as {', '.join(calls[:3])}{more} build{'s' if len(calls) == 1 else ''} it"
    return comment_text(text) + "."


def _used_objects(calls: list[KCall]) -> list[str]:
    used = {call.cls for call in calls if call.cls in CUSTOM_OBJECTS}
    used |= {a.value.name for call in calls for a in call.args if isinstance(a.value, Sym)}
    return [name for name in CUSTOM_OBJECTS if name in used]


def to_source(net: Network) -> str:
    """A standalone Python module (it imports only keras) whose ``build_model()`` returns the
    same model as :func:`build`, written as a person would: the Keras functional API, one
    function per block of the spec, loops for repeated layers, the spec line of every layer.

    Deterministic: the same network gives the same text, byte for byte.  Raises
    :class:`cnndsl.CnnDslError` for what Keras cannot express.
    """
    plan = _plan(net)
    customs = _used_objects(plan.calls)
    module_names = set(_MODULE_NAMES) | set(customs)
    taken = set(module_names)
    try:
        root = _tree(net, plan, flat=False)
        functions = _functions(root, taken)
    except _Flat:  # pragma: no cover - the elaborator keeps each block call contiguous
        root, functions = _tree(net, plan, flat=True), []
    module_names |= {fn.name for fn in functions}
    _fold(root, set(root.outputs))
    root_plan = [("const", value) for _, _, value in _slots(root.items)]

    emitter = _Emitter(net, functions, module_names)
    w = emitter.w
    source = _file_note(net).strip(" ()")
    title = f"{comment_text(net.name)}: a Keras model generated by cnndsl"
    title += f" from {source}." if source else "."
    lines = textwrap.wrap(docstring_text(title), LINE_LENGTH - 3, break_on_hyphens=False)
    w.line(f'"""{lines[0]}')
    w.lines(*lines[1:])
    w.blank()
    w.line("build_model() returns it.  Every layer has the name of its node in the spec, and the")
    w.line("comment after it gives the spec line it comes from.")
    w.line('"""')
    w.blank()
    w.line("import keras")
    if any(call.cls not in CUSTOM_OBJECTS and call.cls != "Input" for call in plan.calls):
        w.line("from keras import layers")
    w.blank(2)
    for name in customs:
        for line in inspect.getsource(CUSTOM_OBJECTS[name]).rstrip("\n").split("\n"):
            w.line(line)
        w.blank(2)
    for fn in functions:
        emitter.function(fn)
    emitter.build_model(root, root_plan)
    w.blank(2)
    w.line('if __name__ == "__main__":')
    with w.indented():
        w.line("build_model().summary()")
    return w.getvalue()
