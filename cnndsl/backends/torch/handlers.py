"""Lowering of one node: one handler per IR layer class (:data:`HANDLERS`), by layer family.

A handler gets the node's :class:`~.context.NodeContext` and the expressions of its inputs; it
defines the node's module with ``ctx.module(...)`` and returns the node's value as an
expression of ``forward``.  Layer arguments are :class:`~.expr.Const` leaves, each named by its
role (``in_channels``), so that calls of one block can share a class.  Trivial nodes (merges,
reshapes, activations) define no module and are only an expression.
"""

from __future__ import annotations

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
    SeparableConv2D,
    Upsample,
    ZeroPad,
)
from ...ir.geometry import effective_kernel
from .context import Handler, NodeContext
from .expr import (
    Call,
    Code,
    Const,
    Display,
    Expr,
    Index,
    Operation,
    call,
    method,
    pair,
    same,
)

# ================================================================ shared by several handlers


def _activate(expr: Expr, function: str, alpha: float | None) -> Expr:
    """The activation applied to expr (channels are axis 1 for maps and vectors alike)."""
    if function == "linear":
        return expr
    if function == "leakyrelu":  # a layer's activation= has Keras's LeakyReLU slope, 0.3
        return call("F.leaky_relu", expr, Const(0.3 if alpha is None else alpha, "negative_slope"))
    if function == "elu":
        return call("F.elu", expr, alpha=(Const(1.0 if alpha is None else alpha, "alpha"), 1.0))
    if function == "softmax":
        return call("F.softmax", expr, dim=Code("1"))
    if function in ("tanh", "sigmoid"):
        return call(f"torch.{function}", expr)
    return call(f"F.{function}", expr)  # relu, relu6, selu, silu, gelu (exact, as Keras)


def _split_padding(pads) -> tuple[Any, tuple[int, int, int, int] | None]:
    """((t, b), (l, r)) -> (the layer's padding=, or an F.pad (l, r, t, b) when asymmetric)."""
    (t, b), (left, right) = pads
    if t == b and left == right:
        return pair((t, left)), None
    return 0, (left, right, t, b)


def _conv_module(ctx: NodeContext, cls: str, in_c: int, out_c: int, groups, pad) -> Call:
    layer = ctx.layer
    return call(
        cls,
        Const(in_c, "in_channels"),
        Const(out_c, "out_channels"),
        Const(pair(layer.kernel), "kernel_size"),
        stride=(Const(pair(layer.stride), "stride"), 1),
        padding=(Const(pad, "padding"), 0),
        dilation=(Const(pair(layer.dilation), "dilation"), 1),
        groups=(groups, 1),
        bias=(Const(layer.bias, "bias"), True),
    )


def _padded(x: Expr, extra: tuple[int, ...] | None, value: str | None = None) -> Expr:
    if extra is None:
        return x
    if value is None:
        return call("F.pad", x, Const(extra, "pad"))
    return call("F.pad", x, Const(extra, "pad"), value=Code(value))


# ================================================================ convolutions


def _conv(ctx: NodeContext, xs: list[Expr]) -> Expr:
    layer: Conv2D = ctx.layer
    pad, extra = _split_padding(layer.explicit_padding(ctx.in_shapes))
    groups = Const(layer.groups, "groups")
    mod = ctx.module(_conv_module(ctx, "nn.Conv2d", ctx.in_shape[2], layer.filters, groups, pad))
    return _activate(call(mod, _padded(xs[0], extra)), layer.activation, None)


def _dwconv(ctx: NodeContext, xs: list[Expr]) -> Expr:
    layer: DepthwiseConv2D = ctx.layer
    c = ctx.in_shape[2]
    pad, extra = _split_padding(layer.explicit_padding(ctx.in_shapes))
    module = _conv_module(
        ctx, "nn.Conv2d", c, c * layer.depth_multiplier, Const(c, "in_channels"), pad
    )
    mod = ctx.module(module)
    return _activate(call(mod, _padded(xs[0], extra)), layer.activation, None)


def _sepconv(ctx: NodeContext, xs: list[Expr]) -> Expr:
    layer: SeparableConv2D = ctx.layer
    pad, extra = _split_padding(layer.explicit_padding(ctx.in_shapes))
    module = call(
        ctx.helper("SeparableConv2d"),
        Const(ctx.in_shape[2], "in_channels"),
        Const(layer.filters, "out_channels"),
        Const(pair(layer.kernel), "kernel_size"),
        stride=(Const(pair(layer.stride), "stride"), 1),
        padding=(Const(pad, "padding"), 0),
        dilation=(Const(pair(layer.dilation), "dilation"), 1),
        depth_multiplier=(Const(layer.depth_multiplier, "depth_multiplier"), 1),
        bias=(Const(layer.bias, "bias"), True),
    )
    mod = ctx.module(module)
    return _activate(call(mod, _padded(xs[0], extra)), layer.activation, None)


def _convtranspose(ctx: NodeContext, xs: list[Expr]) -> Expr:
    layer: Conv2DTranspose = ctx.layer
    crops = layer.explicit_padding(ctx.in_shapes)
    padding, output_padding, trims = [], [], []
    for axis, (before, after) in enumerate(crops):
        limit = max(layer.stride[axis], layer.dilation[axis])
        op = before - after  # PyTorch crops `padding` before and `padding - output_padding` after
        trim = 0
        if op < 0:  # more to crop after than before: crop the rest with a slice
            op, trim = 0, after - before
        if op >= limit:
            raise ctx.unsupported(
                f"it appends {op} rows or columns of bias, more than output_padding allows"
            )
        padding.append(before)
        output_padding.append(op)
        trims.append(trim)
    module = call(
        "nn.ConvTranspose2d",
        Const(ctx.in_shape[2], "in_channels"),
        Const(layer.filters, "out_channels"),
        Const(pair(layer.kernel), "kernel_size"),
        stride=(Const(pair(layer.stride), "stride"), 1),
        padding=(Const(pair(padding), "padding"), 0),
        output_padding=(Const(pair(output_padding), "output_padding"), 0),
        dilation=(Const(pair(layer.dilation), "dilation"), 1),
        bias=(Const(layer.bias, "bias"), True),
    )
    out = call(ctx.module(module), xs[0])
    if any(trims):
        out = Index(out, ", ".join([":", ":"] + [f":-{t}" if t else ":" for t in trims]))
    # The output size PyTorch gives must be the IR's.
    for axis, n in enumerate(ctx.in_shape[:2]):
        k_eff = effective_kernel(layer.kernel[axis], layer.dilation[axis])
        size = (n - 1) * layer.stride[axis] - 2 * padding[axis] + k_eff + output_padding[axis]
        _check_size(ctx, axis, size - trims[axis])
    return _activate(out, layer.activation, None)


def _check_size(ctx: NodeContext, axis: int, size: int) -> None:
    if size != ctx.out_shape[axis]:
        raise ctx.unsupported(
            f"PyTorch would give {size} {('rows', 'columns')[axis]}, the spec {ctx.out_shape[axis]}"
        )


# ================================================================ dense, reshaping, activations


def _dense(ctx: NodeContext, xs: list[Expr]) -> Expr:
    layer: Dense = ctx.layer
    module = call(
        "nn.Linear",
        Const(ctx.in_shape[0], "in_features"),
        Const(layer.units, "out_features"),
        bias=(Const(layer.bias, "bias"), True),
    )
    return _activate(call(ctx.module(module), xs[0]), layer.activation, None)


def flattens_map(in_shapes) -> bool:
    """Whether a flatten reorders: a map larger than 1x1."""
    shape = in_shapes[0]
    return len(shape) == 3 and shape[0] * shape[1] > 1


def _flatten(ctx: NodeContext, xs: list[Expr]) -> Expr:
    if flattens_map(ctx.in_shapes):  # Keras's order: (H, W, C)
        return method(method(xs[0], "permute", *map(Code, "0231")), "flatten", Code("1"))
    return method(xs[0], "flatten", Code("1"))


def _activation(ctx: NodeContext, xs: list[Expr]) -> Expr:
    layer: Activation = ctx.layer
    if layer.function == "linear":
        return call(ctx.module(call("nn.Identity")), xs[0])
    return _activate(xs[0], layer.function, layer.alpha)


def _zeropad(ctx: NodeContext, xs: list[Expr]) -> Expr:
    (t, b), (left, right) = ctx.layer.padding
    amount = t if t == b == left == right else (left, right, t, b)
    return call(ctx.module(call("nn.ZeroPad2d", Const(amount, "padding"))), xs[0])


def _upsample(ctx: NodeContext, xs: list[Expr]) -> Expr:
    layer: Upsample = ctx.layer
    kwargs = {
        "scale_factor": Const(pair(layer.size), "scale_factor"),
        "mode": Const(layer.interpolation, "mode"),
    }
    if layer.interpolation == "bilinear":  # half-pixel centres, as Keras
        kwargs["align_corners"] = Code("False")
    return call(ctx.module(call("nn.Upsample", **kwargs)), xs[0])


# ================================================================ merges


def _add(ctx: NodeContext, xs: list[Expr]) -> Expr:
    return Operation("+", tuple(xs))


def _concat(ctx: NodeContext, xs: list[Expr]) -> Expr:
    return call("torch.cat", Display(tuple(xs)), Code("1"))


def _multiply(ctx: NodeContext, xs: list[Expr]) -> Expr:
    operands = []
    for x, shape in zip(xs, ctx.in_shapes):
        if len(shape) == 1 and len(ctx.out_shape) == 3:  # a channel vector scales a map
            x = Index(x, ":, :, None, None")
        operands.append(x)
    return Operation("*", tuple(operands))


# ================================================================ normalization and dropout


def _batchnorm(ctx: NodeContext, xs: list[Expr]) -> Expr:
    layer: BatchNorm = ctx.layer
    cls = "nn.BatchNorm2d" if len(ctx.in_shape) == 3 else "nn.BatchNorm1d"
    affine = layer.center or layer.scale
    module = call(
        cls,
        Const(ctx.in_shape[-1], "num_features"),
        eps=(Const(layer.epsilon, "eps"), 1e-5),
        momentum=(Const(round(1 - layer.momentum, 12), "momentum"), 0.1),
        affine=(Code("True" if affine else "False"), lambda c: affine),
    )
    mod = ctx.module(module)
    for flag, name in ((layer.scale, "weight"), (layer.center, "bias")):
        if affine and not flag:  # Keras's scale=off (no gamma) or center=off (no beta)
            ctx.init(method(mod, "register_parameter", Code(f'"{name}"'), Code("None")))
    return call(mod, xs[0])


def _lrn(ctx: NodeContext, xs: list[Expr]) -> Expr:
    layer: LRN = ctx.layer
    size = 2 * layer.radius + 1
    module = call(
        "nn.LocalResponseNorm",
        Const(size, "size"),
        alpha=(Const(layer.alpha * size, "alpha"), 1e-4),
        beta=(Const(layer.beta, "beta"), 0.75),
        k=(Const(layer.bias, "k"), 1.0),
    )
    return call(ctx.module(module), xs[0])


def _dropout(ctx: NodeContext, xs: list[Expr]) -> Expr:
    return call(ctx.module(call("nn.Dropout", Const(ctx.layer.rate, "p"))), xs[0])


# ================================================================ pooling


def _pool_out(n: int, k: int, s: int, before: int, after: int, ceil_mode: bool) -> int:
    """PyTorch's pooling output size for symmetric padding `before` (after = before)."""
    span = n + before + after - k
    out = (-(-span // s) if ceil_mode else span // s) + 1
    if ceil_mode and (out - 1) * s >= n + before:
        out -= 1
    return out


def _stride_is_kernel(c: Call) -> bool:
    """nn.MaxPool2d(2, stride=2) is nn.MaxPool2d(2)."""
    kernel, stride = c.args[0], next(v for k, v, _ in c.kwargs if k == "stride")
    if isinstance(kernel, Const) and isinstance(stride, Const):
        return same(kernel.value, stride.value)
    return isinstance(kernel, Code) and isinstance(stride, Code) and kernel.code == stride.code


def _pool(ctx: NodeContext, xs: list[Expr], cls: str, pad_value: str | None, **extra) -> Expr:
    """Max or average pooling; asymmetric padding is an F.pad before an unpadded pool."""
    layer = ctx.layer
    pads = layer.explicit_padding(ctx.in_shapes)
    pad, before = _split_padding(pads)
    ceil_mode = layer.ceil_mode
    if before is not None:  # pad exactly, then pool without padding
        (t, b), (left, right) = pads
        before = (left, right, t, b)
        pads = ((0, 0), (0, 0))
        sizes = [ctx.in_shape[0] + t + b, ctx.in_shape[1] + left + right]
    else:
        sizes = list(ctx.in_shape[:2])
    for axis in (0, 1):
        p = pads[axis][0]
        got = _pool_out(sizes[axis], layer.kernel[axis], layer.stride[axis], p, p, ceil_mode)
        _check_size(ctx, axis, got)
    kernel = Const(pair(layer.kernel), "kernel_size")
    module = call(
        cls,
        kernel,
        stride=(Const(pair(layer.stride), "stride"), _stride_is_kernel),
        padding=(Const(pad, "padding"), 0),
        ceil_mode=(Const(ceil_mode, "ceil_mode"), False),
        **extra,
    )
    return call(ctx.module(module), _padded(xs[0], before, pad_value))


def _maxpool(ctx: NodeContext, xs: list[Expr]) -> Expr:
    return _pool(ctx, xs, "nn.MaxPool2d", 'float("-inf")')


def _avgpool(ctx: NodeContext, xs: list[Expr]) -> Expr:
    layer: AvgPool2D = ctx.layer
    pads = layer.explicit_padding(ctx.in_shapes)
    symmetric = _split_padding(pads)[1] is None
    padded = any(p for axis in pads for p in axis)
    if not padded:
        return _pool(ctx, xs, "nn.AvgPool2d", None)
    if symmetric or layer.include_pad:
        include = Const(bool(layer.include_pad), "count_include_pad")
        return _pool(ctx, xs, "nn.AvgPool2d", None, count_include_pad=(include, True))
    # Asymmetric padding that padded cells must not dilute (TensorFlow's SAME).
    (t, b), (left, right) = pads
    for axis, n in enumerate(ctx.in_shape[:2]):
        size = n + sum(pads[axis])
        _check_size(
            ctx,
            axis,
            _pool_out(size, layer.kernel[axis], layer.stride[axis], 0, 0, layer.ceil_mode),
        )
    module = call(
        ctx.helper("ExcludePadAvgPool2d"),
        Const(pair(layer.kernel), "kernel_size"),
        Const(pair(layer.stride), "stride"),
        Const((left, right, t, b), "padding"),
        ceil_mode=(Const(layer.ceil_mode, "ceil_mode"), False),
    )
    return call(ctx.module(module), xs[0])


def _global_pool(ctx: NodeContext, xs: list[Expr]) -> Expr:
    layer = ctx.layer
    name = "mean" if isinstance(layer, GlobalAvgPool2D) else "amax"
    if layer.keepdims:
        return method(xs[0], name, Code("(2, 3)"), keepdim=Code("True"))
    return method(xs[0], name, Code("(2, 3)"))


def _depthmaxpool(ctx: NodeContext, xs: list[Expr]) -> Expr:
    # channels c*pool ... c*pool + pool - 1 become channel c, as TensorFlow's depth pooling
    groups = method(xs[0], "unflatten", Code("1"), Code(f"(-1, {ctx.layer.pool})"))
    return method(groups, "amax", Code("2"))


# ================================================================ the table


def _input(ctx: NodeContext, xs: list[Expr]) -> Expr:
    raise AssertionError("inputs are arguments of forward(), not statements")


HANDLERS: dict[type[Layer], Handler] = {
    Input: _input,
    Conv2D: _conv,
    DepthwiseConv2D: _dwconv,
    SeparableConv2D: _sepconv,
    Conv2DTranspose: _convtranspose,
    Dense: _dense,
    Flatten: _flatten,
    Activation: _activation,
    ZeroPad: _zeropad,
    Upsample: _upsample,
    Add: _add,
    Concat: _concat,
    Multiply: _multiply,
    BatchNorm: _batchnorm,
    LRN: _lrn,
    Dropout: _dropout,
    MaxPool2D: _maxpool,
    AvgPool2D: _avgpool,
    GlobalAvgPool2D: _global_pool,
    GlobalMaxPool2D: _global_pool,
    DepthMaxPool: _depthmaxpool,
}
"""One handler per layer class: (context, input expressions) -> the output expression."""

UNSUPPORTED: dict[type[Layer], str] = {
    cls: "this layer kind has no handler in this back end yet"
    for cls in Layer.registry().values()
    if cls.__name__ in {
        "PointwiseDense", "LayerNorm", "StochasticDepth", "AdaptiveAvgPool2D", "Reshape",
        "Cropping2D", "ChannelSplit", "ChannelShuffle", "Rescaling", "Normalization",
        "LayerScale",
    }
}
"""Layer classes PyTorch cannot express at all, with the reason (none so far; cases of a
handled class that cannot be expressed raise :func:`~cnndsl.backends.unsupported`)."""
