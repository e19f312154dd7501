"""The PyTorch generator: each IR layer kind as PyTorch code, and the module.

A handler defines the node's module (``self.<attr> = nn.Conv2d(...)`` in ``__init__``) and
returns its value as an expression of ``forward``; trivial nodes (merges, reshapes, most
activations) define no module.  Semantics are the IR's, exactly (see the package's docstring).

The module is written as a person would write it: one ``nn.Module`` class per block structure,
whose ``__init__`` takes the values that differ between its calls (``in_channels``,
``filters``, ``filters * 4``), the network's class, and ``build_model()``; the helper modules
PyTorch lacks (``runtime.py``) are copied into it.
"""

from __future__ import annotations

import os
from typing import Any

from ...ir import (
    Activation,
    Add,
    AvgPool2D,
    BatchNorm,
    ChannelSplit,
    Concat,
    Conv2D,
    Conv2DTranspose,
    Dense,
    Flatten,
    GlobalAvgPool2D,
    Layer,
    LayerNorm,
    Network,
    Normalization,
    PointwiseDense,
    Rescaling,
    StochasticDepth,
    Upsample,
)
from ...ir.geometry import effective_kernel
from ..codegen.expr import (
    SELF,
    Attr,
    Call,
    Code,
    Const,
    Display,
    Expr,
    Index,
    LayerName,
    Operation,
    Ref,
    Var,
    call,
    literal,
    method,
    pair,
    same,
)
from ..codegen.generator import Generator, Program, Render, runtime_definitions
from ..codegen.lower import Draft, Module, NodeContext, call_step, where
from ..codegen.names import Namespace, Reserved, attribute, camel, identifier, variables
from ..codegen.tree import CallScope
from ..codegen.unify import Function, name_params
from ..codegen.writer import Writer
from .inplace import AugmentedAdd, in_place

__all__ = ["ACTIVATIONS", "MODULE_ATTRIBUTES", "TorchGenerator", "flattens_map"]

RUNTIME = ("cnndsl.backends.torch", "runtime.py")

MODULE_ATTRIBUTES = frozenset(
    """T_destination add_module apply bfloat16 buffers call_super_init children compile cpu cuda
    double dump_patches eval extra_repr float forward get_buffer get_extra_state get_parameter
    get_submodule half ipu load_state_dict modules mtia named_buffers named_children
    named_modules named_parameters parameters register_backward_hook register_buffer
    register_forward_hook register_forward_pre_hook register_full_backward_hook
    register_full_backward_pre_hook register_load_state_dict_post_hook
    register_load_state_dict_pre_hook register_module register_parameter
    register_state_dict_post_hook register_state_dict_pre_hook requires_grad_ set_extra_state
    set_submodule share_memory state_dict to to_empty train training type xpu zero_grad""".split()
)
"""``nn.Module``'s public attributes (its private ones all start with ``_``, which a layer's
attribute never does: :func:`~cnndsl.backends.codegen.names.attribute`)."""


def _c(value: Any, role: str, field: str | None = None) -> Const:
    return Const(value, role, field)


# ---------------------------------------------------------------- shared by several handlers


ACTIVATIONS: dict[str, tuple[str, dict[str, str]] | None] = {
    "linear": None,
    "relu": ("F.relu", {}),
    "relu6": ("F.relu6", {}),
    "leakyrelu": ("F.leaky_relu", {}),
    "elu": ("F.elu", {}),
    "selu": ("F.selu", {}),
    "tanh": ("torch.tanh", {}),
    "sigmoid": ("torch.sigmoid", {}),
    "softmax": ("F.softmax", {"dim": "1"}),  # over the channels: axis 1 of maps and vectors
    "silu": ("F.silu", {}),
    "gelu": ("F.gelu", {}),  # exact, as Keras's
    "gelu_tanh": ("F.gelu", {"approximate": '"tanh"'}),
    "hardsigmoid": ("F.hardsigmoid", {}),
    "hardswish": ("F.hardswish", {}),
}
"""Each IR activation (:data:`cnndsl.ir.ACTIVATIONS`) as PyTorch computes it: the function and
its fixed keyword arguments (None: the identity).  leakyrelu and elu also take their alpha."""


def _activate(expr: Expr, function: str, alpha: float | None) -> Expr:
    """The activation applied to expr (channels are axis 1 for maps and vectors alike)."""
    if ACTIVATIONS[function] is None:
        return expr
    name, fixed = ACTIVATIONS[function]
    kwargs = {key: Code(value) for key, value in fixed.items()}
    if function == "leakyrelu":  # a layer's activation= has Keras's LeakyReLU slope, 0.3
        slope = 0.3 if alpha is None else alpha
        return call(name, expr, _c(slope, "negative_slope", "alpha"))
    if function == "elu":
        kwargs["alpha"] = (_c(1.0 if alpha is None else alpha, "alpha", "alpha"), 1.0)
    return call(name, expr, **kwargs)


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
        _c(in_c, "in_channels"),
        _c(out_c, "out_channels", "filters" if out_c == getattr(layer, "filters", None) else None),
        _c(pair(layer.kernel), "kernel_size", "kernel"),
        stride=(_c(pair(layer.stride), "stride", "stride"), 1),
        padding=(_c(pad, "padding"), 0),
        dilation=(_c(pair(layer.dilation), "dilation", "dilation"), 1),
        groups=(groups, 1),
        bias=(_c(layer.bias, "bias", "bias"), True),
    )


def _sized(layer) -> bool:
    """Whether a layer's SAME padding depends on the input's size (on an axis with a stride
    over 1 and a window over 1): then it is computed from the input, in forward, so that the
    model computes the spec at any size."""
    if layer.padding != "same":
        return False
    dilation = getattr(layer, "dilation", (1, 1))
    kernels = [effective_kernel(k, d) for k, d in zip(layer.kernel, dilation)]
    return any(s > 1 and k > 1 for s, k in zip(layer.stride, kernels))


def _pad_same(ctx: NodeContext, value: str | None = None) -> Expr:
    """``pad_same(x, kernel, stride)``: TensorFlow's SAME padding for the input's size."""
    layer = ctx.layer
    kwargs: dict[str, Any] = {}
    if hasattr(layer, "dilation"):
        kwargs["dilation"] = (_c(pair(layer.dilation), "dilation", "dilation"), 1)
    if value is not None:
        kwargs["value"] = Code(value)
    kernel = _c(pair(layer.kernel), "kernel_size", "kernel")
    return call(
        ctx.helper("pad_same"), ctx.x, kernel, _c(pair(layer.stride), "stride", "stride"), **kwargs
    )


def _conv_input(ctx: NodeContext) -> tuple[Any, Expr]:
    """A convolution's padding= and what it reads: the input padded first when the padding is
    asymmetric (F.pad) or depends on the input's size (pad_same)."""
    if _sized(ctx.layer):
        return 0, _pad_same(ctx)
    pad, extra = _split_padding(ctx.layer.explicit_padding(ctx.in_shapes))
    return pad, _padded(ctx.x, extra)


def _padded(x: Expr, extra: tuple[int, ...] | None, value: str | None = None) -> Expr:
    if extra is None:
        return x
    if value is None:
        return call("F.pad", x, _c(extra, "pad"))
    return call("F.pad", x, _c(extra, "pad"), value=Code(value))


def _check_size(ctx: NodeContext, axis: int, size: int) -> None:
    if size != ctx.out_shape[axis]:
        raise ctx.unsupported(
            f"PyTorch would give {size} {('rows', 'columns')[axis]}, the spec {ctx.out_shape[axis]}"
        )


def _check_ceil(ctx: NodeContext, pads) -> None:
    """A pooling with ceil_mode over an input padded first keeps a last window that starts in
    the padding after it, which the spec's (PyTorch's) rule drops: at some input size, unless
    that padding is at most kernel - stride."""
    layer = ctx.layer
    for axis in (0, 1):
        after, k, s = pads[axis][1], layer.kernel[axis], layer.stride[axis]
        if layer.ceil_mode and after > k - s:
            raise ctx.unsupported(
                f"with ceil_mode and {after} {('rows', 'columns')[axis]} of padding after, PyTorch"
                " would keep a last window that starts in the padding at some input sizes"
            )


def flattens_map(in_shapes) -> bool:
    """Whether a flatten reorders: a map larger than 1x1."""
    shape = in_shapes[0]
    return len(shape) == 3 and shape[0] * shape[1] > 1


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
    return kernel.key(_nopos) == stride.key(_nopos) and not isinstance(kernel, Const)


def _nopos(name: str) -> tuple:
    return ()


class TorchGenerator(Generator):
    TARGET = "PyTorch"
    RUNTIME = RUNTIME
    FIRST_ROLES = ("in_channels", "in_features", "num_features")
    ACTIVATIONS = ACTIVATIONS
    NAME_SEP = ""
    RESERVED = Reserved(
        module=frozenset({"torch", "nn", "F", "build_model", "_tap"})
        | frozenset(runtime_definitions(*RUNTIME)),
        locals=frozenset({"self"}),
        # input_shape(s): the network class's own attribute (see write_network)
        attributes=MODULE_ATTRIBUTES | {"input_shape", "input_shapes"},
    )

    def __init__(self, net: Network, taps: bool = False) -> None:
        super().__init__(net)
        self.taps = taps
        self._attrs: dict[int, Namespace] = {}
        self._consumers: dict[str, list[str]] | None = None
        self.channels_last = channels_last_runs(net)
        """{node: (first, last)} for the nodes computed on the channels-last tensor."""

    # ---------------------------------------------------------------- the dialect

    def attribute(self, draft: Draft, local: str) -> str:
        """A fresh attribute of the module a draft becomes, for a layer or call ``local``."""
        names = self._attrs.setdefault(id(draft), Namespace(()))
        return names.claim(attribute(local, self.RESERVED.attributes))

    def define(self, ctx: NodeContext, ctor: Expr, name: LayerName) -> Expr:
        """A module of ``__init__``: ``self.<attr> = ctor``; returns ``self.<attr>``."""
        attr = self.attribute(ctx.draft, name.local or name.absolute)
        ctx.modules.append(Module(attr, ctor, ctx.comment, ctx.layer.name))
        return Attr(SELF, attr)

    def lower_call(self, draft: Draft, scope: CallScope, sub: CallScope) -> None:
        fn: Function = sub.function
        sub.attr = self.attribute(draft, sub.local)
        consts = (Const(v, p.source, p.source, sub.local) for p, v in zip(fn.params, sub.values))
        draft.modules.append(
            Module(sub.attr, Call(Ref(fn), tuple(consts)), where(sub.site.position))
        )
        expr = call(Attr(SELF, sub.attr), *(Var(v) for v in sub.inputs))
        step = call_step(scope, sub, expr, None)
        if scope.site is None and list(sub.outputs) in ([o] for o in self.net.outputs):
            step.hint = identifier(sub.local)  # aux1 = googlenet_aux(): forward's aux1
        draft.steps.append(step)

    def variable_hint(self, layer: Layer) -> str | None:
        """An output of the network named in the spec keeps its name in forward (``logits``,
        returned with ``aux1``)."""
        named = not layer.name.startswith(f"{layer.type_name}_")
        if named and not layer.calls and layer.name in self.net.outputs:
            return identifier(layer.name)
        return None

    def in_forward(self, draft: Draft) -> set[int]:
        return {id(c) for step in draft.steps for c in step.expr.consts()}

    def function_name(self, candidate: str) -> str:
        return camel(candidate, "Block")

    # ---------------------------------------------------------------- convolutions

    def lower_conv(self, ctx: NodeContext) -> Expr:
        layer: Conv2D = ctx.layer
        pad, src = _conv_input(ctx)
        groups = _c(layer.groups, "groups", "groups")
        conv = _conv_module(ctx, "nn.Conv2d", ctx.in_shape[2], layer.filters, groups, pad)
        return _activate(call(ctx.module(conv), src), layer.activation, None)

    def lower_dwconv(self, ctx: NodeContext) -> Expr:
        layer = ctx.layer
        c = ctx.in_shape[2]
        pad, src = _conv_input(ctx)
        groups = _c(c, "in_channels")
        conv = _conv_module(ctx, "nn.Conv2d", c, c * layer.depth_multiplier, groups, pad)
        return _activate(call(ctx.module(conv), src), layer.activation, None)

    def lower_sepconv(self, ctx: NodeContext) -> Expr:
        layer = ctx.layer
        pad, src = _conv_input(ctx)
        module = call(
            ctx.helper("SeparableConv2d"),
            _c(ctx.in_shape[2], "in_channels"),
            _c(layer.filters, "out_channels", "filters"),
            _c(pair(layer.kernel), "kernel_size", "kernel"),
            stride=(_c(pair(layer.stride), "stride", "stride"), 1),
            padding=(_c(pad, "padding"), 0),
            dilation=(_c(pair(layer.dilation), "dilation", "dilation"), 1),
            depth_multiplier=(
                _c(layer.depth_multiplier, "depth_multiplier", "depth_multiplier"),
                1,
            ),
            bias=(_c(layer.bias, "bias", "bias"), True),
        )
        return _activate(call(ctx.module(module), src), layer.activation, None)

    def lower_convtranspose(self, ctx: NodeContext) -> Expr:
        layer: Conv2DTranspose = ctx.layer
        crops = layer.explicit_padding(ctx.in_shapes)
        padding, output_padding, trims = [], [], []
        for axis, (before, after) in enumerate(crops):
            limit = max(layer.stride[axis], layer.dilation[axis])
            op = (
                before - after
            )  # PyTorch crops `padding` before and `padding - output_padding` after
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
            _c(ctx.in_shape[2], "in_channels"),
            _c(layer.filters, "out_channels", "filters"),
            _c(pair(layer.kernel), "kernel_size", "kernel"),
            stride=(_c(pair(layer.stride), "stride", "stride"), 1),
            padding=(_c(pair(padding), "padding"), 0),
            output_padding=(_c(pair(output_padding), "output_padding", "output_padding"), 0),
            dilation=(_c(pair(layer.dilation), "dilation", "dilation"), 1),
            bias=(_c(layer.bias, "bias", "bias"), True),
        )
        out = call(ctx.module(module), ctx.x)
        if any(trims):
            out = Index(out, ", ".join([":", ":"] + [f":-{t}" if t else ":" for t in trims]))
        # The output size PyTorch gives must be the IR's.
        for axis, n in enumerate(ctx.in_shape[:2]):
            k_eff = effective_kernel(layer.kernel[axis], layer.dilation[axis])
            size = (n - 1) * layer.stride[axis] - 2 * padding[axis] + k_eff + output_padding[axis]
            _check_size(ctx, axis, size - trims[axis])
        return _activate(out, layer.activation, None)

    # ---------------------------------------------------------------- dense, reshaping, activations

    def lower_dense(self, ctx: NodeContext) -> Expr:
        layer: Dense = ctx.layer
        module = call(
            "nn.Linear",
            _c(ctx.in_shape[0], "in_features"),
            _c(layer.units, "out_features", "units"),
            bias=(_c(layer.bias, "bias", "bias"), True),
        )
        return _activate(call(ctx.module(module), ctx.x), layer.activation, None)

    def lower_flatten(self, ctx: NodeContext) -> Expr:
        """Keras's order, (H, W, C): the map is permuted to channels last first, unless it is
        1x1 and a dense layer after the flatten fixes its size (then it is 1x1 at any input
        size the model takes)."""
        if flattens_map(ctx.in_shapes) or (len(ctx.in_shape) == 3 and not self._pinned(ctx.layer)):
            return method(method(ctx.x, "permute", *map(Code, "0231")), "flatten", Code("1"))
        return method(ctx.x, "flatten", Code("1"))

    def _pinned(self, layer: Layer) -> bool:
        """Whether every path from a node reaches a dense layer through layers that keep the
        features in order (so that its size is the one the dense layer takes)."""
        if self._consumers is None:
            self._consumers = self.net.consumers()
        outputs = set(self.net.outputs)
        todo, seen = [layer.name], set()
        while todo:
            name = todo.pop()
            if name in outputs:
                return False
            for user in self._consumers[name]:
                kind = self.net[user].kind
                if kind in ("dropout", "activation", "batchnorm") and user not in seen:
                    seen.add(user)
                    todo.append(user)
                elif kind != "dense":
                    return False
        return True

    def lower_activation(self, ctx: NodeContext) -> Expr:
        layer: Activation = ctx.layer
        if layer.name in self.channels_last:  # between two pointwise layers (elementwise)
            value = _activate(self._in_layout(ctx), layer.function, layer.alpha)
            return self._out_layout(ctx, value)
        if layer.function == "linear":
            return call(ctx.module(call("nn.Identity")), ctx.x)
        return _activate(ctx.x, layer.function, layer.alpha)

    def lower_zeropad(self, ctx: NodeContext) -> Expr:
        (t, b), (left, right) = ctx.layer.padding
        amount = t if t == b == left == right else (left, right, t, b)
        return call(ctx.module(call("nn.ZeroPad2d", _c(amount, "padding"))), ctx.x)

    def lower_upsample(self, ctx: NodeContext) -> Expr:
        layer: Upsample = ctx.layer
        kwargs = {
            "scale_factor": _c(pair(layer.size), "scale_factor", "size"),
            "mode": _c(layer.interpolation, "mode", "interpolation"),
        }
        if layer.interpolation == "bilinear":  # half-pixel centres, as Keras
            kwargs["align_corners"] = Code("False")
        return call(ctx.module(call("nn.Upsample", **kwargs)), ctx.x)

    # ---------------------------------------------------------------- merges

    def lower_multiply(self, ctx: NodeContext) -> Expr:
        operands = []
        for x, shape in zip(ctx.xs, ctx.in_shapes):
            if len(shape) == 1 and len(ctx.out_shape) == 3:  # a channel vector scales a map
                x = Index(x, ":, :, None, None")
            operands.append(x)
        return Operation("*", tuple(operands))

    TRANSFORMS = {
        Add: lambda self, ctx: Operation("+", tuple(ctx.xs)),
        Concat: lambda self, ctx: call("torch.cat", Display(tuple(ctx.xs)), Code("1")),
    }

    # ---------------------------------------------------------------- normalization, dropout

    def lower_batchnorm(self, ctx: NodeContext) -> Expr:
        layer: BatchNorm = ctx.layer
        cls = "nn.BatchNorm2d" if len(ctx.in_shape) == 3 else "nn.BatchNorm1d"
        affine = layer.center or layer.scale
        module = call(
            cls,
            _c(ctx.in_shape[-1], "num_features"),
            eps=(_c(layer.epsilon, "eps", "epsilon"), 1e-5),
            momentum=(_c(round(1 - layer.momentum, 12), "momentum"), 0.1),
            affine=(Code("True" if affine else "False"), lambda c: affine),
        )
        mod = ctx.module(module)
        for flag, name in ((layer.scale, "weight"), (layer.center, "bias")):
            if affine and not flag:  # Keras's scale=off (no gamma) or center=off (no beta)
                ctx.init(method(mod, "register_parameter", Code(f'"{name}"'), Code("None")))
        return call(mod, ctx.x)

    def lower_lrn(self, ctx: NodeContext) -> Expr:
        layer = ctx.layer
        size = 2 * layer.radius + 1
        module = call(
            "nn.LocalResponseNorm",
            _c(size, "size"),
            alpha=(_c(float(f"{layer.alpha * size:.15g}"), "alpha"), 1e-4),
            beta=(_c(layer.beta, "beta", "beta"), 0.75),
            k=(_c(layer.bias, "k", "bias"), 1.0),
        )
        return call(ctx.module(module), ctx.x)

    def lower_dropout(self, ctx: NodeContext) -> Expr:
        return call(ctx.module(call("nn.Dropout", _c(ctx.layer.rate, "p", "rate"))), ctx.x)

    # ---------------------------------------------------------------- pooling

    def _pool(self, ctx: NodeContext, cls: str, pad_value: str | None, **extra) -> Expr:
        """Max or average pooling; asymmetric padding, or padding that depends on the input's
        size, is an F.pad (pad_same) before an unpadded pool."""
        layer = ctx.layer
        pads = layer.explicit_padding(ctx.in_shapes)
        pad, before = _split_padding(pads)
        ceil_mode = layer.ceil_mode
        if before is not None or _sized(layer):  # pad exactly, then pool without padding
            _check_ceil(ctx, pads)
            (t, b), (left, right) = pads
            sizes = [ctx.in_shape[0] + t + b, ctx.in_shape[1] + left + right]
            src = _pad_same(ctx, pad_value) if _sized(layer) else _padded(ctx.x, before, pad_value)
            pad, pads = 0, ((0, 0), (0, 0))
        else:
            sizes, src = list(ctx.in_shape[:2]), ctx.x
        for axis in (0, 1):
            p = pads[axis][0]
            got = _pool_out(sizes[axis], layer.kernel[axis], layer.stride[axis], p, p, ceil_mode)
            _check_size(ctx, axis, got)
        module = call(
            cls,
            _c(pair(layer.kernel), "kernel_size", "kernel"),
            stride=(_c(pair(layer.stride), "stride", "stride"), _stride_is_kernel),
            padding=(_c(pad, "padding"), 0),
            ceil_mode=(_c(ceil_mode, "ceil_mode", "ceil_mode"), False),
            **extra,
        )
        return call(ctx.module(module), src)

    def lower_maxpool(self, ctx: NodeContext) -> Expr:
        return self._pool(ctx, "nn.MaxPool2d", 'float("-inf")')

    def lower_avgpool(self, ctx: NodeContext) -> Expr:
        layer: AvgPool2D = ctx.layer
        pads = layer.explicit_padding(ctx.in_shapes)
        symmetric = _split_padding(pads)[1] is None
        padded = _sized(layer) or any(p for axis in pads for p in axis)
        if not padded:
            return self._pool(ctx, "nn.AvgPool2d", None)
        if layer.include_pad or (symmetric and not _sized(layer)):
            include = _c(bool(layer.include_pad), "count_include_pad")
            return self._pool(ctx, "nn.AvgPool2d", None, count_include_pad=(include, True))
        # Padding that padded cells must not dilute (TensorFlow's SAME).
        _check_ceil(ctx, pads)
        (t, b), (left, right) = pads
        for axis, n in enumerate(ctx.in_shape[:2]):
            size = n + sum(pads[axis])
            k, s = layer.kernel[axis], layer.stride[axis]
            _check_size(ctx, axis, _pool_out(size, k, s, 0, 0, layer.ceil_mode))
        module = call(
            ctx.helper("ExcludePadAvgPool2d"),
            _c(pair(layer.kernel), "kernel_size", "kernel"),
            _c(pair(layer.stride), "stride", "stride"),
            _c("same" if _sized(layer) else (left, right, t, b), "padding"),
            ceil_mode=(_c(layer.ceil_mode, "ceil_mode", "ceil_mode"), False),
        )
        return call(ctx.module(module), ctx.x)

    def _global_pool(self, ctx: NodeContext) -> Expr:
        name = "mean" if isinstance(ctx.layer, GlobalAvgPool2D) else "amax"
        if ctx.layer.keepdims:
            return method(ctx.x, name, Code("(2, 3)"), keepdim=Code("True"))
        return method(ctx.x, name, Code("(2, 3)"))

    lower_globalavgpool = _global_pool
    lower_globalmaxpool = _global_pool

    def lower_depthmaxpool(self, ctx: NodeContext) -> Expr:
        # channels c*pool ... c*pool + pool - 1 become channel c, as TensorFlow's depth pooling
        groups = method(ctx.x, "unflatten", Code("1"), Code(f"(-1, {ctx.layer.pool})"))
        return method(groups, "amax", Code("2"))

    def lower_input(self, ctx: NodeContext) -> Expr:
        raise AssertionError("inputs are arguments of forward(), not statements")

    # ---------------------------------------------------------------- the newer kinds

    def _in_layout(self, ctx: NodeContext) -> Expr:
        """The input as a node of a channels-last run reads it: permuted at the run's start."""
        first, _ = self.channels_last[ctx.layer.name]
        return method(ctx.x, "permute", *map(Code, "0231")) if first else ctx.x

    def _out_layout(self, ctx: NodeContext, value: Expr) -> Expr:
        """A channels-last run's value, permuted back to NCHW at its end."""
        _, last = self.channels_last[ctx.layer.name]
        return method(value, "permute", *map(Code, "0312")) if last else value

    def lower_layernorm(self, ctx: NodeContext) -> Expr:
        """nn.LayerNorm on a vector or in a channels-last run (ConvNeXt's block); elsewhere on
        a map, LayerNorm2d (torchvision's: it permutes to channels last and back)."""
        layer: LayerNorm = ctx.layer
        affine = layer.scale or layer.center
        last = len(ctx.in_shape) == 1 or layer.name in self.channels_last
        module = call(
            "nn.LayerNorm" if last else ctx.helper("LayerNorm2d"),
            _c(ctx.in_shape[-1], "num_features"),
            eps=(_c(layer.epsilon, "eps", "epsilon"), 1e-5),
            elementwise_affine=(Code("True" if affine else "False"), lambda c: affine),
            bias=(Code("False"), lambda c: layer.center or not affine),
        )
        mod = ctx.module(module)
        if affine and not layer.scale:  # Keras's scale=off: a bias, no weight
            ctx.init(method(mod, "register_parameter", Code('"weight"'), Code("None")))
        if layer.name in self.channels_last:
            return self._out_layout(ctx, call(mod, self._in_layout(ctx)))
        return call(mod, ctx.x)

    def lower_pointwise(self, ctx: NodeContext) -> Expr:
        """nn.Linear on the channels: on a map, in a channels-last run (ConvNeXt's block)."""
        if len(ctx.in_shape) == 1:
            return self.lower_dense(ctx)
        layer: PointwiseDense = ctx.layer
        module = call(
            "nn.Linear",
            _c(ctx.in_shape[-1], "in_features"),
            _c(layer.units, "out_features", "units"),
            bias=(_c(layer.bias, "bias", "bias"), True),
        )
        value = _activate(call(ctx.module(module), self._in_layout(ctx)), layer.activation, None)
        return self._out_layout(ctx, value)

    def lower_layerscale(self, ctx: NodeContext) -> Expr:
        scale = call(
            ctx.helper("LayerScale"),
            _c(ctx.in_shape[-1], "num_features"),
            _c(ctx.layer.init, "init", "init"),
        )
        return call(ctx.module(scale), ctx.x)

    def lower_stochasticdepth(self, ctx: NodeContext) -> Expr:
        layer: StochasticDepth = ctx.layer
        drop = call(
            ctx.helper("StochasticDepth"),
            _c(layer.rate, "p", "rate"),
            _c(layer.mode, "mode", "mode"),
        )
        return call(ctx.module(drop), ctx.x)

    def lower_adaptiveavgpool(self, ctx: NodeContext) -> Expr:
        size = _c(pair(ctx.layer.output_size), "output_size", "output_size")
        return call(ctx.module(call("nn.AdaptiveAvgPool2d", size)), ctx.x)

    def lower_rescaling(self, ctx: NodeContext) -> Expr:
        """``x * scale + offset``; one number per channel takes a Rescaling module."""
        layer: Rescaling = ctx.layer
        scale, offset = layer.scale, layer.offset
        if isinstance(scale, tuple) or isinstance(offset, tuple):
            module = call(
                ctx.helper("Rescaling"),
                _c(scale, "scale", "scale"),
                offset=(_c(offset, "offset", "offset"), 0.0),
            )
            return call(ctx.module(module), ctx.x)
        out = Operation("*", (ctx.x, _c(scale, "scale", "scale")))
        if offset == 0:
            return out
        return Operation("+" if offset > 0 else "-", (out, _c(abs(offset), "offset", "offset")))

    def lower_normalization(self, ctx: NodeContext) -> Expr:
        layer: Normalization = ctx.layer
        module = call(
            ctx.helper("Normalization"),
            _c(ctx.in_shape[-1], "num_features"),
            mean=(_c(layer.mean, "mean", "mean"), None),
            variance=(_c(layer.variance, "variance", "variance"), None),
        )
        return call(ctx.module(module), ctx.x)

    def lower_reshape(self, ctx: NodeContext) -> Expr:
        """On the channels-last tensor: permuted to NHWC (a map, unless it is 1 x 1 and the
        target has no -1), reshaped to the batch and the spec's sizes (its -1 kept), permuted
        back to NCHW (a map output larger than 1 x 1).  At another input size the model then
        computes the spec evaluated there, or refuses the size as the spec does."""
        src, out, shape = ctx.in_shape, ctx.out_shape, ctx.layer.shape
        free = -1 in shape
        x = ctx.x
        if len(src) == 3 and (src[0] * src[1] > 1 or free):
            x = method(x, "permute", *map(Code, "0231"))
        roles = ("features",) if len(out) == 1 else ("height", "width", "channels")
        dims = [Code("-1") if d == -1 else _c(n, r) for d, n, r in zip(shape, out, roles)]
        batch = method(ctx.x, "size", Code("0"))
        if len(out) == 1:
            return method(x, "reshape", batch, *dims)
        if shape[0] == shape[1] == 1:
            return method(x, "reshape", batch, dims[2], Code("1"), Code("1"))
        return method(method(x, "reshape", batch, *dims), "permute", *map(Code, "0312"))

    def lower_crop(self, ctx: NodeContext) -> Expr:
        (top, bottom), (left, right) = ctx.layer.cropping
        rows = f"{top or ''}:{-bottom if bottom else ''}"
        columns = f"{left or ''}:{-right if right else ''}"
        return Index(ctx.x, f":, :, {rows}, {columns}")

    def lower_split(self, ctx: NodeContext) -> Expr:
        layer: ChannelSplit = ctx.layer
        chunks = method(ctx.x, "chunk", _c(layer.parts, "chunks", "parts"), dim=Code("1"))
        return Index(chunks, str(layer.part))

    def lower_shuffle(self, ctx: NodeContext) -> Expr:
        return call(ctx.helper("channel_shuffle"), ctx.x, _c(ctx.layer.groups, "groups", "groups"))

    # ---------------------------------------------------------------- the module

    def write_head(self, w: Writer, used: set[str]) -> None:
        net = self.net
        a = net.analysis
        files = sorted({os.path.basename(l.position.file) for l in net.layers if l.position})
        source = f" from {', '.join(files)}" if files else ""
        inputs = [_nchw(a[layer.name].output_shape, a.follows(layer.name)) for layer in net.inputs]
        outputs = [_nchw(a[name].output_shape, a.follows(name)) for name in net.outputs]
        counts = f"{a.trainable_params:,} parameters"
        if a.non_trainable_params:
            normalized = any(l.kind == "normalization" and l.mean is None for l in net.layers)
            kind = "statistics" if normalized else "batch-norm statistics"
            counts += f", {a.non_trainable_params:,} {kind}"
        words = ["Input:", *_listed(inputs), "channels first.", " Output:", *_listed(outputs, ".")]
        if net.training_outputs:  # the outputs in eval mode, then in training mode
            inference = [_nchw(a[name].output_shape, a.follows(name)) for name in net.inference_outputs]
            words[-len(outputs) :] = [*_listed(inference, ";"), "in training mode"]
            words += _listed(outputs, ".")
        if any(any(layer.open) for layer in net.inputs):
            words[words.index("channels first.")] = "channels first; ? is any size its layers take."
        lines = [*_fill(words, w.width), counts + "."]
        if any(  # a map larger than 1x1 here, or at other sizes (one that follows an open one)
            flattens_map(a[layer.name].input_shapes) or any(a.follows(layer.inputs[0])[:2])
            for layer in net.layers
            if layer.kind == "flatten"
        ):
            lines.append(
                "Flatten orders features as Keras does, (H, W, C), so that dense weights transfer."
            )
        w.docstring(f"{net.name} in PyTorch, generated by cnndsl{source}.", lines)
        w.blank()
        if "torch" in used or self.taps:
            w.line("import torch")
        if "F" in used:
            w.line("import torch.nn.functional as F")
        w.line("from torch import nn")
        if self.taps:
            w.blank(2)
            w.line("def _tap(module, name, value):")
            with w.indented():
                w.line("pass")

    def write_function(self, w: Writer, fn: Function) -> None:
        module = self.module_names
        names = module.child(self.RESERVED.locals | fn.draft.attrs())
        name_params(fn, names)
        w.line(f"class {fn.name}(nn.Module):")
        with w.indented():
            block_params = list(fn.calls[0].site.args)
            signature = f"{fn.block}({', '.join(block_params)})"
            files = {os.path.basename(c.site.position.file) for c in fn.calls if c.site.position}
            doc = f"Block ``{signature}``" + (f" of {', '.join(sorted(files))}" if files else "")
            doc += f", with {fn.variant}" if fn.variant else ""
            w.docstring(f"{doc}.")
            w.blank()
            params = ["self", *(p.name for p in fn.params)]
            _init(w, fn.draft, params, [p.name for p in fn.params if p.stored])
            w.blank()
            avoid = frozenset(module.reserved | module.taken | self.RESERVED.locals)
            _forward(w, fn.draft, fn.arg_names, avoid, self.taps, self.channels_last)

    def write_network(self, w: Writer, program: Program) -> None:
        net, module = self.net, self.module_names
        name = module.claim(camel(net.name, "Network"), "")
        w.line(f"class {name}(nn.Module):")
        with w.indented():
            w.docstring(f"The network {net.name}.")
            w.blank()
            # what the input is, for tools (cnndsl's torchvision loader traces the model with it)
            shapes = [_channels_first(_open(layer.shape, layer.open)) for layer in net.inputs]
            note = "; None: any size" if any(any(layer.open) for layer in net.inputs) else ""
            if len(shapes) == 1:
                w.line(f"input_shape = {shapes[0]}  # (C, H, W), without the batch axis{note}")
            else:
                w.line(
                    f"input_shapes = ({', '.join(map(str, shapes))})"
                    f"  # of each input, in forward's order{note}"
                )
            w.blank()
            _init(w, program.draft, ["self"], [])
            w.blank()
            avoid = frozenset(module.reserved | module.taken | self.RESERVED.locals)
            if len(net.inputs) == 1:
                args = ["x"]
            else:
                inputs = Namespace(avoid)
                args = [inputs.claim(layer.name) for layer in net.inputs]
            training = training_steps(net, program.draft)
            inference = net.inference_outputs if net.training_outputs else None
            _forward(
                w, program.draft, args, avoid, self.taps, self.channels_last, training, inference
            )
        w.blank(2)
        w.line("def build_model():")
        with w.indented():
            w.line(f"return {name}()")

    def module_paths(self) -> dict[str, str]:
        """{node: path of its module in the model}, for nodes that own a module."""
        program = self.program()
        paths: dict[str, str] = {}

        def visit(scope: CallScope, path: str) -> None:
            for m in scope.draft.modules:
                if m.node is not None and m.attr is not None:
                    paths[m.node] = path + m.attr
            for item in scope.items:
                if isinstance(item, CallScope):
                    visit(item, f"{path}{item.attr}.")

        visit(program.root, "")
        return paths

    def tap_names(self) -> list[tuple[str, dict[str, str]]]:
        """(module path, {the local name a tap reports: its node}) of the network and of every
        block call."""
        program = self.program()
        result = []

        def visit(scope: CallScope, path: str) -> None:
            result.append((path, {s.local: s.node for s in scope.draft.steps if s.node}))
            for item in scope.items:
                if isinstance(item, CallScope):
                    visit(item, f"{path}{item.attr}" if not path else f"{path}.{item.attr}")

        visit(program.root, "")
        return result


def _forward(
    w: Writer,
    draft: Draft,
    arg_names: list[str],
    avoid: frozenset[str],
    taps: bool,
    channels_last: dict[str, tuple[bool, bool]],
    training: set[int] = frozenset(),
    inference: list[str] | None = None,
) -> None:
    """``forward``: in place where that is safe (never with taps), a tap after each node (of
    its NCHW value, also for the nodes of a channels-last run).
    The steps in ``training`` (indices) run only in training mode, under ``if self.training:``;
    with ``inference`` (the network's inference outputs, when it has training outputs too),
    it returns every output in training mode and those in inference mode."""
    w.statement("def ", call("forward", *map(Code, ["self", *arg_names])), Render(), tail=":")
    names = variables(draft, arg_names, avoid)
    r = Render(names)
    changes = {} if taps else in_place(draft, names)

    def nchw(node: str) -> bool:
        return channels_last.get(node, (False, True))[1]

    def write(i: int, step) -> bool:
        """One step; True when it returned."""
        targets = [names[t] for t in step.targets]
        expr = changes.get(i, step.expr)
        if isinstance(expr, AugmentedAdd):  # x += y
            w.statement(f"{names[expr.target]} += ", expr.value, r, step.comment)
            return False
        last = i == len(draft.steps) - 1
        if last and not taps and draft.outputs == step.targets and len(targets) == 1:
            w.statement("return ", expr, r, step.comment)
            return True
        w.statement(f"{', '.join(targets)} = ", expr, r, step.comment)
        if taps and step.node:
            value = targets[0]
            if not nchw(step.node):  # inside a channels-last run: the tap sees NCHW too
                value += ".permute(0, 3, 1, 2)"
            w.line(f"_tap(self, {literal(step.local)}, {value})")
        return False

    outputs = ", ".join(names[o] for o in draft.outputs)
    with w.indented():
        i, returned = 0, False  # (returned: in training mode)
        while i < len(draft.steps):
            if i not in training:
                if write(i, draft.steps[i]):
                    return
                i += 1
                continue
            w.line("if self.training:")
            with w.indented():
                while i in training:
                    write(i, draft.steps[i])
                    i += 1
                if i == len(draft.steps) and inference is not None:
                    w.line(f"return {outputs}")
                    returned = True
        if inference is not None:
            if not returned:
                w.line("if self.training:")
                with w.indented():
                    w.line(f"return {outputs}")
            outputs = ", ".join(names[o] for o in inference)
        w.line("return " + outputs)


def channels_last_runs(net: Network) -> dict[str, tuple[bool, bool]]:
    """The nodes PyTorch computes on the channels-last (NHWC) tensor, as torchvision's
    ConvNeXt block does (``permute``, LayerNorm, Linear, GELU, Linear, ``permute``): chains of
    layer norms, pointwise layers and elementwise activations on maps, each read only by the
    next, within one block call, that hold a pointwise layer and begin and end with a layer.
    {node: (first of its run, last of its run)}."""
    users = net.consumers()
    outputs = set(net.outputs)

    def fits(layer) -> bool:
        if layer.kind not in ("layernorm", "pointwise", "activation") or len(layer.inputs) != 1:
            return False
        if len(net.analysis[layer.name].output_shape) != 3:
            return False
        return layer.kind != "activation" or layer.function not in ("softmax", "linear")

    runs, run = [], []
    for layer in net.layers:
        previous = run[-1] if run else None
        follows = (
            previous is not None
            and list(layer.inputs) == [previous.name]
            and list(users[previous.name]) == [layer.name]
            and previous.name not in outputs
            and getattr(layer, "calls", ()) == getattr(previous, "calls", ())
        )
        if fits(layer) and follows:
            run.append(layer)
            continue
        runs.append(run)
        run = [layer] if fits(layer) else []
    runs.append(run)
    result = {}
    for run in runs:
        while run and run[0].kind == "activation":
            run = run[1:]
        while run and run[-1].kind == "activation":
            run = run[:-1]
        if any(layer.kind == "pointwise" for layer in run):
            for i, layer in enumerate(run):
                result[layer.name] = (i == 0, i == len(run) - 1)
    return result


def training_steps(net: Network, draft: Draft) -> set[int]:
    """The steps of the network's draft that compute only what its training outputs need
    (GoogLeNet's auxiliary heads).  A block call has one output (its last tensor): it is
    needed for inference or it is not."""
    only = net.training_only()
    return {
        i
        for i, step in enumerate(draft.steps)
        if all(target.split(":")[0] in only for target in step.targets)
    }


def _init(w: Writer, draft: Draft, params: list[str], stored: list[str]) -> None:
    w.statement("def ", call("__init__", *map(Code, params)), Render(), tail=":")
    with w.indented():
        w.line("super().__init__()")
        for name in stored:
            w.line(f"self.{name} = {name}")
        for m in draft.modules:
            w.statement(f"self.{m.attr} = " if m.attr else "", m.expr, Render(), m.comment)


def _listed(items: list[str], end: str = ",") -> list[str]:
    return [item + ("," if i < len(items) - 1 else end) for i, item in enumerate(items)]


def _fill(words: list[str], width: int) -> list[str]:
    """Words (which may hold spaces) filled into lines of ``width``."""
    lines = [""]
    for word in words:
        if lines[-1] and len(lines[-1]) + 1 + len(word) > width:
            lines.append(word.strip())
        else:
            lines[-1] = f"{lines[-1]} {word}" if lines[-1] else word
    return lines


def _nchw(shape: tuple[int, ...], follow: tuple[bool, ...]) -> str:
    """``(N, C, H, W)``, with ``?`` for a size that follows an open input size."""
    sizes = ["?" if f else str(d) for d, f in zip(shape, follow)]
    if len(shape) == 3:
        h, w, c = sizes
        return f"(N, {c}, {h}, {w})"
    return f"(N, {sizes[0]})"


def _open(shape: tuple[int, ...], opened: tuple[bool, bool]) -> tuple:
    """An input's shape with None for a height or width the spec leaves open."""
    return tuple(None if o else d for d, o in zip(shape, (*opened, False)))


def _channels_first(shape: tuple[int, ...]) -> tuple[int, ...]:
    return (shape[2], shape[0], shape[1]) if len(shape) == 3 else tuple(shape)
