"""One handler per IR layer kind: an IR node -> the Keras layers it becomes (the plan).

``HANDLERS`` maps every IR layer class to its handler, ``(planner, node, LayerInfo) -> [KCall]``;
``make_plan`` runs them over a network, in order.  Semantics are kept exactly: explicit padding
that is not TensorFlow's SAME becomes a helper layer before the node (``<name>_pad``:
ZeroPadding2D, or NegInfPadding2D before max pooling), a transposed convolution's explicit padding
a ``<name>_crop`` (Cropping2D) after it, a channel vector multiplied with a map a ``<name>_reshape``
to 1x1xC; PyTorch's padded average pooling is PaddedAveragePooling2D.  What Keras cannot express
raises :func:`cnndsl.backends.unsupported` from its handler.

The handlers are grouped by layer family: convolutions, pooling, the others.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from ...ir import (
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
from ...ir.geometry import effective_kernel, same_padding
from .. import unsupported
from .calls import TARGET, Arg, KCall, Planner, Sym, kcall, pos

# ---- shared: arguments and padding


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


def _pad_first(p: Planner, layer, info, pads, pad_cls: str, same: bool = True):
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
    return [kcall(pad_cls, layer, pos("padding", _padding_value(pads)), name=name)], name, "valid"


# ---- convolutions


def _conv_padding(p, layer, info):
    if layer.padding in ("same", "valid"):
        return [], layer.inputs[0], layer.padding
    return _pad_first(
        p, layer, info, layer.explicit_padding(list(info.input_shapes)), "ZeroPadding2D"
    )


def _window(layer, padding: str) -> list[Arg]:
    return [
        pos("kernel_size", _pair(layer.kernel)),
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
    args = [pos("filters", layer.filters), *_window(layer, padding), _dilation(layer)]
    args += [Arg("groups", layer.groups, 1), *_output(layer)]
    return [*pre, kcall("Conv2D", layer, *args, inputs=[src])]


def _dwconv(p, layer: DepthwiseConv2D, info):
    pre, src, padding = _conv_padding(p, layer, info)
    args = [*_window(layer, padding), Arg("depth_multiplier", layer.depth_multiplier, 1)]
    args += [_dilation(layer), *_output(layer)]
    return [*pre, kcall("DepthwiseConv2D", layer, *args, inputs=[src])]


def _sepconv(p, layer: SeparableConv2D, info):
    pre, src, padding = _conv_padding(p, layer, info)
    args = [pos("filters", layer.filters), *_window(layer, padding), _dilation(layer)]
    args += [Arg("depth_multiplier", layer.depth_multiplier, 1), *_output(layer)]
    return [*pre, kcall("SeparableConv2D", layer, *args, inputs=[src])]


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
    args = [pos("filters", layer.filters), *_window(layer, padding)]
    args.append(Arg("output_padding", output_padding and _pair(output_padding), None))
    calls = [kcall("Conv2DTranspose", layer, *args, _dilation(layer), *_output(layer))]
    if not _zero(crop):
        cropping = pos("cropping", _padding_value(crop))
        name = p.helper(layer.name, "crop")
        calls.append(kcall("Cropping2D", layer, cropping, name=name, inputs=[layer.name]))
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
        pos("pool_size", _pair(layer.kernel)),
        Arg("strides", strides, None),
        Arg("padding", padding, "valid"),
    )
    return kcall(cls, layer, *args, inputs=[src])


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
        pos("pool_size", tuple(layer.kernel)),
        Arg("strides", tuple(layer.stride)),
        Arg("padding", tuple(tuple(side) for side in pads)),
        Arg("ceil_mode", layer.ceil_mode, False),
        Arg("count_include_pad", bool(layer.include_pad), True),
    )
    return [kcall("PaddedAveragePooling2D", layer, *args)]


def _global_pool(cls: str):
    return lambda p, layer, info: [kcall(cls, layer, Arg("keepdims", layer.keepdims, False))]


def _depthmaxpool(p, layer: DepthMaxPool, info):
    return [kcall("DepthMaxPooling2D", layer, pos("pool_size", layer.pool))]


# ---- the others


def _input(p, layer: Input, info):
    return [kcall("Input", layer, Arg("shape", tuple(layer.shape)))]


def _dense(p, layer: Dense, info):
    return [kcall("Dense", layer, pos("units", layer.units), *_output(layer))]


def _batchnorm(p, layer: BatchNorm, info):
    args = (
        Arg("momentum", layer.momentum, 0.99),
        Arg("epsilon", layer.epsilon, 0.001),
        Arg("center", layer.center, True),
        Arg("scale", layer.scale, True),
    )
    return [kcall("BatchNormalization", layer, *args)]


def _lrn(p, layer: LRN, info):
    args = (
        Arg("depth_radius", layer.radius, 5),
        Arg("bias", layer.bias, 1.0),
        Arg("alpha", layer.alpha, 1.0),
        Arg("beta", layer.beta, 0.5),
    )
    return [kcall("LocalResponseNormalization", layer, *args)]


def _activation_layer(p, layer: Activation, info):
    fn = layer.function
    if fn == "relu":
        return [kcall("ReLU", layer)]
    if fn == "relu6":
        return [kcall("ReLU", layer, Arg("max_value", 6.0))]
    if fn == "leakyrelu":
        return [kcall("LeakyReLU", layer, Arg("negative_slope", layer.alpha, 0.3))]
    if fn == "elu":
        return [kcall("ELU", layer, Arg("alpha", layer.alpha, 1.0))]
    return [kcall("Activation", layer, pos("activation", fn))]


def _upsample(p, layer: Upsample, info):
    args = (pos("size", _pair(layer.size)), Arg("interpolation", layer.interpolation, "nearest"))
    return [kcall("UpSampling2D", layer, *args)]


def _multiply(p, layer: Multiply, info):
    """A channel vector scales a map (squeeze-and-excitation): reshape it to 1x1xC first."""
    calls, inputs = [], []
    for src, shape in zip(layer.inputs, info.input_shapes):
        if len(shape) == 1 and len(info.output_shape) == 3:
            name = p.helper(layer.name, "reshape")
            calls.append(
                kcall("Reshape", layer, pos("target_shape", (1, 1, -1)), name=name, inputs=[src])
            )
            src = name
        inputs.append(src)
    return [*calls, kcall("Multiply", layer, inputs=inputs, merge=True)]


def _simple(cls: str, *fields: tuple[str, Callable[[Any], Any]], merge: bool = False):
    """A handler for a layer that maps to one Keras layer with positional arguments."""
    return lambda p, layer, info: [
        kcall(cls, layer, *(pos(key, get(layer)) for key, get in fields), merge=merge)
    ]


# ---- the table and the plan

Handler = Callable[[Planner, Any, Any], list[KCall]]

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

UNSUPPORTED: dict[type[Layer], str] = {
    cls: "this layer kind has no handler in this back end yet"
    for cls in Layer.registry().values()
    if cls.__name__ in {
        "PointwiseDense", "LayerNorm", "StochasticDepth", "AdaptiveAvgPool2D", "Reshape",
        "Cropping2D", "ChannelSplit", "ChannelShuffle", "Rescaling", "Normalization",
        "LayerScale",
    }
}
"""IR layer classes this back end cannot express at all, with why (none: the cases it cannot
express, such as an output_padding Keras refuses, raise from their handler)."""


@dataclass
class Plan:
    calls: list[KCall]  # every Keras layer, in order
    value: dict[str, str]  # IR node -> the Keras layer that gives its output

    def outputs(self, net: Network) -> list[str]:
        return [self.value[name] for name in net.outputs]


def make_plan(net: Network) -> Plan:
    """Every Keras layer of the model, in order; raises for what Keras cannot express."""
    _check_reachable(net)
    planner = Planner(net)
    plan = Plan([], {})
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
    for call in make_plan(net).calls:
        result[call.node.name].append(call.name)
    return result
