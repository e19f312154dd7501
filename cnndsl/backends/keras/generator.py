"""The Keras generator: each IR layer kind as the Keras layers it becomes, and the module.

Every IR node becomes one Keras layer with the node's name; a few need a helper layer named
after the node: ``<name>_pad`` (ZeroPadding2D, or NegInfPadding2D before a max pooling whose
input may be negative) for explicit padding that is not TensorFlow's SAME, ``<name>_crop``
(Cropping2D) after a transposed convolution with explicit padding, ``<name>_reshape`` (a
channel vector to 1x1xC) before a multiply.  What Keras cannot express raises :func:`cnndsl.backends.unsupported`.

The module is written as a person would write it with the functional API: one function per
block structure (``def stage(x, filters, convs, name)``), loops for repeated layers, each layer
with its spec line; the custom layers it uses (``layers.py``) are copied into it.
"""

from __future__ import annotations

import os
from itertools import groupby
from typing import Any

from ...ir import (
    LRN,
    Activation,
    Add,
    AvgPool2D,
    BatchNorm,
    ChannelSplit,
    Concat,
    Conv2D,
    Conv2DTranspose,
    Dropout,
    Flatten,
    Input,
    Layer,
    LayerNorm,
    MaxPool2D,
    Network,
    Normalization,
    Rescaling,
    StochasticDepth,
    Upsample,
    ZeroPad,
)
from ...ir.geometry import effective_kernel, same_padding
from ..codegen.expr import (
    Call,
    Code,
    Const,
    Display,
    Expr,
    LayerName,
    Ref,
    Sym,
    Var,
    call,
    literal,
    pair,
    plus,
)
from ..codegen.generator import Generator, Program, Render, runtime_definitions
from ..codegen.lower import Draft, Loop, NodeContext, call_step, where
from ..codegen.loops import counters
from ..codegen.names import Reserved, identifier, variables
from ..codegen.tree import CallScope, local_name
from ..codegen.unify import Function, name_params
from ..codegen.writer import Writer

RUNTIME = ("cnndsl.backends.keras", "layers.py")

# ---------------------------------------------------------------- shared by the handlers


def _c(value: Any, role: str, field: str | None = None) -> Const:
    return Const(value, role, field)


def _padding_value(pads) -> Any:
    """((t, b), (l, r)) as ZeroPadding2D takes it, shortest first: 1, (1, 2), ((0, 1), (1, 1))."""
    (t, b), (left, right) = pads
    if t == b == left == right:
        return t
    return (t, left) if t == b and left == right else ((t, b), (left, right))


def _zero(pads) -> bool:
    return all(v == 0 for side in pads for v in side)


# Activations that are never negative: zero padding of their output before a max pooling is
# -inf padding (a padded cell never wins), so Keras's own ZeroPadding2D does.
_NON_NEGATIVE = frozenset({"relu", "relu6", "sigmoid", "softmax", "hardsigmoid"})


def _non_negative(net, name: str) -> bool:
    """Whether node ``name``'s output is never negative: it is, or ends with, one of those."""
    layer = net[name]
    function = layer.function if layer.kind == "activation" else getattr(layer, "activation", None)
    return function in _NON_NEGATIVE


def _is_same(ctx: NodeContext, pads, kernel, stride, dilation=(1, 1)) -> bool:
    """Whether explicit pads are exactly TensorFlow's SAME padding for every input size: they
    are SAME's for this one, and the stride is 1 (with a larger stride SAME's padding depends on
    the input's size, and explicit padding does not)."""
    if tuple(stride) != (1, 1):
        return False
    for axis in (0, 1):
        n, s = ctx.in_shape[axis], stride[axis]
        k_eff = effective_kernel(kernel[axis], dilation[axis])
        if tuple(pads[axis]) != same_padding(n, k_eff, s) or ctx.out_shape[axis] != -(-n // s):
            return False
    return True


def _window(layer, padding: str) -> tuple[list[Expr], dict]:
    return [_c(pair(layer.kernel), "kernel_size", "kernel")], {
        "strides": (_c(pair(layer.stride), "strides", "stride"), 1),
        "padding": (_c(padding, "padding"), "valid"),
    }


def _dilation(layer) -> dict:
    return {"dilation_rate": (_c(pair(layer.dilation), "dilation_rate", "dilation"), 1)}


class KerasGenerator(Generator):
    TARGET = "Keras"
    RUNTIME = RUNTIME
    LOOPS = True
    SHAPES_INFERRED = True
    RESERVED = Reserved(
        module=frozenset({"keras", "layers", "build_model"})
        | frozenset(runtime_definitions(*RUNTIME)),
        locals=frozenset({"name", "i", "training_outputs"}),
    )

    def __init__(self, net: Network) -> None:
        super().__init__(net)
        self.taken = {layer.name for layer in net.layers}
        self.layer_names: dict[str, list[str]] = {layer.name: [] for layer in net.layers}

    # ---------------------------------------------------------------- the dialect

    def define(self, ctx: NodeContext, ctor: Expr, name: LayerName) -> Expr:
        """A Keras layer is made where it is applied: ``layers.Conv2D(..., name=...)``."""
        self.layer_names[ctx.layer.name].append(name.absolute)
        return ctor.keyword("name", name)

    def helper_name(self, layer: Layer, suffix: str) -> str:
        """A fresh name for a helper layer: ``conv_1_pad`` (``conv_1_pad_2`` if a node has it)."""
        name, k = f"{layer.name}_{suffix}", 1
        while name in self.taken:
            k += 1
            name = f"{layer.name}_{suffix}_{k}"
        self.taken.add(name)
        return name

    def lower_call(self, draft: Draft, scope: CallScope, sub: CallScope) -> None:
        fn: Function = sub.function
        args: list[Expr] = [Var(v) for v in sub.inputs]
        kwargs = []
        for param, value in zip(fn.params, sub.values):
            const = Const(value, param.source, param.source, sub.local)
            if param.kind == "derived":
                kwargs.append((param, const))
            else:
                args.append(const)
        expr = Call(Ref(fn), tuple(args))
        for param, const in kwargs:
            expr = expr.keyword(param, const)
        name = LayerName(local_name(sub.site.instance, scope.prefix), sub.site.instance)
        expr = expr.keyword("name", name)
        step = call_step(scope, sub, expr, where(sub.site.position))
        if scope.site is None and list(sub.outputs) in ([o] for o in self.net.outputs):
            step.hint = identifier(sub.local)  # aux1 = googlenet_aux(x, name="aux1")
        draft.steps.append(step)

    def root_args(self, root: CallScope) -> list[str]:
        return []  # the inputs are keras.Input layers of build_model

    def root_live_out(self, root: CallScope) -> list[str]:
        return list(root.inputs)  # keras.Model(inputs, outputs) reads them at the end

    def variable_hint(self, layer: Layer) -> str | None:
        """The inputs are ``inputs`` (or their names); an output of the network named in the
        spec keeps its name (``predictions``)."""
        if isinstance(layer, Input):
            return "inputs" if layer.name == "input" else layer.name
        named = not layer.name.startswith(f"{layer.type_name}_")
        if named and not layer.calls and layer.name in self.net.outputs:
            return layer.name
        return None

    # ---------------------------------------------------------------- convolutions

    def _conv_padding(self, ctx: NodeContext) -> tuple[Expr, str]:
        layer = ctx.layer
        if layer.padding in ("same", "valid"):
            return ctx.x, layer.padding
        return self._pad_first(ctx, layer.explicit_padding(ctx.in_shapes), "ZeroPadding2D")

    def _pad_first(self, ctx: NodeContext, pads, pad_cls: str, same: bool = True):
        """Explicit padding -> (the value the layer reads, its padding=): a helper padding
        layer first, or none where the padding is TensorFlow's SAME for this input."""
        layer = ctx.layer
        if _zero(pads):
            return ctx.x, "valid"
        dilation = getattr(layer, "dilation", (1, 1))
        if same and _is_same(ctx, pads, layer.kernel, layer.stride, dilation):
            return ctx.x, "same"
        cls = f"layers.{pad_cls}" if pad_cls == "ZeroPadding2D" else ctx.helper(pad_cls)
        pad = ctx.module(call(cls, _c(_padding_value(pads), "padding")), "pad")
        return ctx.let(call(pad, ctx.x)), "valid"

    def _output(self, ctx: NodeContext) -> dict:
        layer = ctx.layer
        return {
            "activation": (_c(self._activation(ctx, layer.activation), "activation"), None),
            "use_bias": (_c(layer.bias, "use_bias", "bias"), True),
        }

    ACTIVATIONS: dict[str, str | Sym | None] = {
        "linear": None,
        "relu": "relu",
        "relu6": "relu6",
        "leakyrelu": Sym("leaky_relu"),  # layers.py: the slope of Keras's LeakyReLU layer, 0.3
        "elu": "elu",
        "selu": "selu",
        "tanh": "tanh",
        "sigmoid": "sigmoid",
        "softmax": "softmax",
        "silu": "silu",
        "gelu": "gelu",  # keras.activations.gelu: exact (approximate=False)
        "gelu_tanh": Sym("gelu_tanh"),  # layers.py: gelu(x, approximate=True)
        "hardsigmoid": "hard_sigmoid",
        "hardswish": "hard_swish",
    }
    """Each IR activation (:data:`cnndsl.ir.ACTIVATIONS`) as a layer's ``activation=``: a
    name of ``keras.activations``, a function of ``layers.py`` (a Sym), or None (linear)."""

    def _activation(self, ctx: NodeContext, name: str) -> Any:
        value = self.ACTIVATIONS[name]
        if isinstance(value, Sym):
            ctx.helper(value.name)
        return value

    def lower_conv(self, ctx: NodeContext) -> Expr:
        layer: Conv2D = ctx.layer
        src, padding = self._conv_padding(ctx)
        args, kwargs = _window(layer, padding)
        kwargs.update(_dilation(layer), groups=(_c(layer.groups, "groups", "groups"), 1))
        kwargs.update(self._output(ctx))
        conv = call("layers.Conv2D", _c(layer.filters, "filters", "filters"), *args, **kwargs)
        return call(ctx.module(conv), src)

    def lower_dwconv(self, ctx: NodeContext) -> Expr:
        layer = ctx.layer
        src, padding = self._conv_padding(ctx)
        args, kwargs = _window(layer, padding)
        multiplier = _c(layer.depth_multiplier, "depth_multiplier", "depth_multiplier")
        kwargs.update(depth_multiplier=(multiplier, 1), **_dilation(layer), **self._output(ctx))
        return call(ctx.module(call("layers.DepthwiseConv2D", *args, **kwargs)), src)

    def lower_sepconv(self, ctx: NodeContext) -> Expr:
        layer = ctx.layer
        src, padding = self._conv_padding(ctx)
        args, kwargs = _window(layer, padding)
        multiplier = _c(layer.depth_multiplier, "depth_multiplier", "depth_multiplier")
        kwargs.update(_dilation(layer), depth_multiplier=(multiplier, 1), **self._output(ctx))
        filters = _c(layer.filters, "filters", "filters")
        return call(ctx.module(call("layers.SeparableConv2D", filters, *args, **kwargs)), src)

    def lower_convtranspose(self, ctx: NodeContext) -> Expr:
        layer: Conv2DTranspose = ctx.layer
        crop = ((0, 0), (0, 0))
        if layer.padding in ("same", "valid"):
            padding, output_padding = layer.padding, layer.output_padding
        else:
            # A VALID transposed convolution gives the full (n-1)*s + k_eff; PyTorch's explicit
            # padding crops it; a negative crop after is rows beyond it: Keras's output_padding.
            padding = "valid"
            (top, bottom), (left, right) = layer.explicit_padding(ctx.in_shapes)
            crop = ((top, max(0, bottom)), (left, max(0, right)))
            output_padding = (max(0, -bottom), max(0, -right))
            # Keras's VALID without output_padding gives n*s rows when the stride exceeds the
            # kernel: s - k_eff more than the full output; an explicit 0 keeps it full.
            k_eff = [effective_kernel(k, d) for k, d in zip(layer.kernel, layer.dilation)]
            longer = any(s > k for s, k in zip(layer.stride, k_eff))
            output_padding = None if output_padding == (0, 0) and not longer else output_padding
        if output_padding is not None and any(q >= s for q, s in zip(output_padding, layer.stride)):
            raise ctx.unsupported("Keras needs output_padding smaller than the stride")
        args, kwargs = _window(layer, padding)
        value = output_padding and pair(output_padding)
        kwargs["output_padding"] = (_c(value, "output_padding", "output_padding"), None)
        kwargs.update(_dilation(layer), **self._output(ctx))
        filters = _c(layer.filters, "filters", "filters")
        out = call(ctx.module(call("layers.Conv2DTranspose", filters, *args, **kwargs)), ctx.x)
        if _zero(crop):
            return out
        cropping = call("layers.Cropping2D", _c(_padding_value(crop), "cropping"))
        conv = ctx.let(out)
        return call(ctx.module(cropping, "crop"), conv)

    # ---------------------------------------------------------------- pooling

    def _pool(self, ctx: NodeContext, cls: str, padding: str, src: Expr) -> Expr:
        layer = ctx.layer
        strides = None if layer.stride == layer.kernel else pair(layer.stride)
        pool = call(
            f"layers.{cls}",
            _c(pair(layer.kernel), "pool_size", "kernel"),
            strides=(_c(strides, "strides", "stride"), None),
            padding=(_c(padding, "padding"), "valid"),
        )
        return call(ctx.module(pool), src)

    def _padded_pool(self, ctx: NodeContext, cls: str, padding, **kwargs) -> Expr:
        """PyTorch's pooling, its padding and ceil mode computed for the input's size."""
        layer = ctx.layer
        pool = call(
            ctx.helper(cls),
            _c(tuple(layer.kernel), "pool_size", "kernel"),
            strides=_c(tuple(layer.stride), "strides", "stride"),
            padding=_c(padding, "padding"),
            ceil_mode=(_c(layer.ceil_mode, "ceil_mode", "ceil_mode"), False),
            **kwargs,
        )
        return call(ctx.module(pool), ctx.x)

    def lower_maxpool(self, ctx: NodeContext) -> Expr:
        """Padded cells never win: TensorFlow's SAME, or -inf padding -- zeros (ZeroPadding2D, a
        built-in layer) where the input is never negative.  Where PyTorch's ceil mode adds cells
        that depend on the input's size, PaddedMaxPooling2D computes them."""
        layer: MaxPool2D = ctx.layer
        if layer.padding == "same":
            return self._pool(ctx, "MaxPooling2D", "same", ctx.x)
        pads = ((0, 0), (0, 0)) if layer.padding == "valid" else layer.padding
        if layer.ceil_mode and tuple(layer.stride) != (1, 1):
            return self._padded_pool(ctx, "PaddedMaxPooling2D", pads)
        positive = _non_negative(ctx.net, layer.inputs[0])
        src, padding = self._pad_first(
            ctx, pads, "ZeroPadding2D" if positive else "NegInfPadding2D"
        )
        return self._pool(ctx, "MaxPooling2D", padding, src)

    def lower_avgpool(self, ctx: NodeContext) -> Expr:
        """TensorFlow's SAME averages over the input cells; explicit padding that counts is zero
        padding; the rest is PyTorch's average, PaddedAveragePooling2D -- as is every padding or
        ceil mode that depends on the input's size (a stride over 1)."""
        layer: AvgPool2D = ctx.layer
        counted = bool(layer.include_pad)
        fixed = tuple(layer.stride) == (1, 1)  # no padding or ceil cells depend on the size
        if layer.padding == "same":
            if not counted:
                return self._pool(ctx, "AveragePooling2D", "same", ctx.x)
            if not fixed:
                return self._padded_pool(ctx, "PaddedAveragePooling2D", "same")
            pads = layer.explicit_padding(ctx.in_shapes)
        else:
            pads = ((0, 0), (0, 0)) if layer.padding == "valid" else layer.padding
            if layer.ceil_mode and not fixed:
                include = (_c(counted, "count_include_pad"), True)
                return self._padded_pool(
                    ctx, "PaddedAveragePooling2D", pads, count_include_pad=include
                )
        if _zero(pads):
            return self._pool(ctx, "AveragePooling2D", "valid", ctx.x)
        if counted:
            src, _ = self._pad_first(ctx, pads, "ZeroPadding2D", same=False)
            return self._pool(ctx, "AveragePooling2D", "valid", src)
        if _is_same(ctx, pads, layer.kernel, layer.stride):
            return self._pool(ctx, "AveragePooling2D", "same", ctx.x)
        include = (_c(False, "count_include_pad"), True)
        return self._padded_pool(ctx, "PaddedAveragePooling2D", pads, count_include_pad=include)

    def _global_pool(self, ctx: NodeContext, cls: str) -> Expr:
        keepdims = _c(ctx.layer.keepdims, "keepdims", "keepdims")
        return call(ctx.module(call(f"layers.{cls}", keepdims=(keepdims, False))), ctx.x)

    def lower_globalavgpool(self, ctx: NodeContext) -> Expr:
        return self._global_pool(ctx, "GlobalAveragePooling2D")

    def lower_globalmaxpool(self, ctx: NodeContext) -> Expr:
        return self._global_pool(ctx, "GlobalMaxPooling2D")

    def lower_depthmaxpool(self, ctx: NodeContext) -> Expr:
        pool = call(ctx.helper("DepthMaxPooling2D"), _c(ctx.layer.pool, "pool_size", "pool"))
        return call(ctx.module(pool), ctx.x)

    # ---------------------------------------------------------------- the others

    def lower_input(self, ctx: NodeContext) -> Expr:
        # None: a height or width the spec leaves open (`input ?x?x3`): the model takes any
        layer: Input = ctx.layer
        shape = tuple(None if o else d for d, o in zip(layer.shape, (*layer.open, False)))
        return ctx.module(call("keras.Input", shape=_c(shape, "shape")))

    def lower_dense(self, ctx: NodeContext) -> Expr:
        units = _c(ctx.layer.units, "units", "units")
        return call(ctx.module(call("layers.Dense", units, **self._output(ctx))), ctx.x)

    def lower_batchnorm(self, ctx: NodeContext) -> Expr:
        layer: BatchNorm = ctx.layer
        bn = call(
            "layers.BatchNormalization",
            momentum=(_c(layer.momentum, "momentum", "momentum"), 0.99),
            epsilon=(_c(layer.epsilon, "epsilon", "epsilon"), 0.001),
            center=(_c(layer.center, "center", "center"), True),
            scale=(_c(layer.scale, "scale", "scale"), True),
        )
        return call(ctx.module(bn), ctx.x)

    def lower_lrn(self, ctx: NodeContext) -> Expr:
        layer: LRN = ctx.layer
        lrn = call(
            ctx.helper("LocalResponseNormalization"),
            depth_radius=(_c(layer.radius, "depth_radius", "radius"), 5),
            bias=(_c(layer.bias, "bias", "bias"), 1.0),
            alpha=(_c(layer.alpha, "alpha", "alpha"), 1.0),
            beta=(_c(layer.beta, "beta", "beta"), 0.5),
        )
        return call(ctx.module(lrn), ctx.x)

    def lower_activation(self, ctx: NodeContext) -> Expr:
        layer: Activation = ctx.layer
        fn = layer.function
        if fn == "relu":
            act = call("layers.ReLU")
        elif fn == "relu6":
            act = call("layers.ReLU", max_value=_c(6.0, "max_value"))
        elif fn == "leakyrelu":
            if layer.alpha < 0:
                raise ctx.unsupported(
                    f"Keras's LeakyReLU takes a slope of 0 or more, not {layer.alpha}"
                )
            slope = _c(layer.alpha, "negative_slope", "alpha")
            act = call("layers.LeakyReLU", negative_slope=(slope, 0.3))
        elif fn == "elu":
            act = call("layers.ELU", alpha=(_c(layer.alpha, "alpha", "alpha"), 1.0))
        else:
            act = call("layers.Activation", _c(self._activation(ctx, fn), "activation", "function"))
        return call(ctx.module(act), ctx.x)

    def lower_upsample(self, ctx: NodeContext) -> Expr:
        layer: Upsample = ctx.layer
        interpolation = _c(layer.interpolation, "interpolation", "interpolation")
        up = call(
            "layers.UpSampling2D",
            _c(pair(layer.size), "size", "size"),
            interpolation=(interpolation, "nearest"),
        )
        return call(ctx.module(up), ctx.x)

    def lower_multiply(self, ctx: NodeContext) -> Expr:
        """A channel vector scales a map (squeeze-and-excitation): reshape it to 1x1xC first."""
        inputs = []
        for x, shape in zip(ctx.xs, ctx.in_shapes):
            if len(shape) == 1 and len(ctx.out_shape) == 3:
                reshape = call("layers.Reshape", _c((1, 1, -1), "target_shape"))
                x = ctx.let(call(ctx.module(reshape, "reshape"), x))
            inputs.append(x)
        return call(ctx.module(call("layers.Multiply")), _list(inputs))

    TRANSFORMS = {
        Flatten: lambda self, ctx: call(ctx.module(call("layers.Flatten")), ctx.x),
        Dropout: lambda self, ctx: call(
            ctx.module(call("layers.Dropout", _c(ctx.layer.rate, "rate", "rate"))), ctx.x
        ),
        ZeroPad: lambda self, ctx: call(
            ctx.module(
                call(
                    "layers.ZeroPadding2D",
                    _c(_padding_value(ctx.layer.padding), "padding", "padding"),
                )
            ),
            ctx.x,
        ),
        Add: lambda self, ctx: call(ctx.module(call("layers.Add")), _list(ctx.xs)),
        Concat: lambda self, ctx: call(ctx.module(call("layers.Concatenate")), _list(ctx.xs)),
    }

    # ---------------------------------------------------------------- the newer kinds

    def lower_layernorm(self, ctx: NodeContext) -> Expr:
        layer: LayerNorm = ctx.layer
        norm = call(
            "layers.LayerNormalization",
            epsilon=(_c(layer.epsilon, "epsilon", "epsilon"), 0.001),
            center=(_c(layer.center, "center", "center"), True),
            scale=(_c(layer.scale, "scale", "scale"), True),
        )
        return call(ctx.module(norm), ctx.x)

    lower_pointwise = lower_dense  # Dense acts on the last axis: the channels of every position

    def lower_layerscale(self, ctx: NodeContext) -> Expr:
        init = _c(ctx.layer.init, "init_values", "init")
        return call(ctx.module(call(ctx.helper("LayerScale"), init)), ctx.x)

    def lower_stochasticdepth(self, ctx: NodeContext) -> Expr:
        layer: StochasticDepth = ctx.layer
        drop = call(
            ctx.helper("StochasticDepth"),
            _c(layer.rate, "drop_path_rate", "rate"),
            mode=(_c(layer.mode, "mode", "mode"), "row"),
        )
        return call(ctx.module(drop), ctx.x)

    def lower_adaptiveavgpool(self, ctx: NodeContext) -> Expr:
        """Keras 3's bins are PyTorch's (start floor(i * n / out), end ceil((i + 1) * n / out))."""
        size = _c(pair(ctx.layer.output_size), "output_size", "output_size")
        return call(ctx.module(call("layers.AdaptiveAveragePooling2D", size)), ctx.x)

    def lower_rescaling(self, ctx: NodeContext) -> Expr:
        layer: Rescaling = ctx.layer
        rescale = call(
            "layers.Rescaling",
            _c(layer.scale, "scale", "scale"),
            offset=(_c(layer.offset, "offset", "offset"), 0.0),
        )
        return call(ctx.module(rescale), ctx.x)

    def lower_normalization(self, ctx: NodeContext) -> Expr:
        """Without statistics, Keras's layer holds them as weights (mean, variance, count)."""
        layer: Normalization = ctx.layer
        if layer.mean is None:
            return call(ctx.module(call("layers.Normalization")), ctx.x)
        mean, variance = layer.mean, layer.variance
        if isinstance(mean, tuple) != isinstance(variance, tuple):  # Keras wants one shape
            channels = ctx.in_shape[-1]
            mean, variance = (
                v if isinstance(v, tuple) else (v,) * channels for v in (mean, variance)
            )
        norm = call(
            "layers.Normalization",
            mean=_c(mean, "mean", "mean"),
            variance=_c(variance, "variance", "variance"),
        )
        return call(ctx.module(norm), ctx.x)

    def lower_reshape(self, ctx: NodeContext) -> Expr:
        shape = _c(tuple(ctx.layer.shape), "target_shape", "shape")
        return call(ctx.module(call("layers.Reshape", shape)), ctx.x)

    def lower_crop(self, ctx: NodeContext) -> Expr:
        cropping = _c(_padding_value(ctx.layer.cropping), "cropping", "cropping")
        return call(ctx.module(call("layers.Cropping2D", cropping)), ctx.x)

    def lower_split(self, ctx: NodeContext) -> Expr:
        layer: ChannelSplit = ctx.layer
        split = call(
            ctx.helper("ChannelSplit"),
            _c(layer.parts, "parts", "parts"),
            part=(_c(layer.part, "part", "part"), 0),
        )
        return call(ctx.module(split), ctx.x)

    def lower_shuffle(self, ctx: NodeContext) -> Expr:
        groups = _c(ctx.layer.groups, "groups", "groups")
        return call(ctx.module(call(ctx.helper("ChannelShuffle"), groups)), ctx.x)

    # ---------------------------------------------------------------- checks and the plan

    def check(self) -> None:
        super().check()
        _check_reachable(self)
        a = self.net.analysis
        for layer in self.net.layers:
            if layer.kind == "adaptiveavgpool" and any(a.follows(layer.inputs[0])[:2]):
                raise self.unsupported(
                    layer,
                    "Keras's AdaptiveAveragePooling2D needs the map's height and width when the"
                    " model is built, and here they follow the input's open size (`?`): give the"
                    " input a fixed size, or pool with `globalavgpool`",
                )

    def write_head(self, w: Writer, used: set[str]) -> None:
        source = _file_note(self.net).strip(" ()")
        title = f"{self.net.name}: a Keras model generated by cnndsl"
        title += f" from {source}." if source else "."
        w.docstring(
            title,
            [
                "build_model() returns it.  Every layer has the name of its node in the spec, and"
                " the",
                "comment after it gives the spec line it comes from.",
            ],
        )
        w.blank()
        w.line("import keras")
        if "layers" in used:
            w.line("from keras import layers")

    def write_function(self, w: Writer, fn: Function) -> None:
        names = self.module_names.child(self.RESERVED.locals)
        name_params(fn, names)
        signature = [*fn.arg_names, *(p.name for p in fn.params), "name"]
        w.statement("def ", call(fn.name, *map(Code, signature)), Render(), tail=":")
        with w.indented():
            w.docstring(_function_doc(fn))
            avoid = names.reserved | {p.name for p in fn.params}
            _body(w, fn.draft, fn.arg_names, avoid, _Render({}, True))

    def write_network(self, w: Writer, program: Program) -> None:
        """``build_model()``; a network with training outputs gets ``build_model(
        training_outputs=False)``: a functional model cannot change its outputs with the mode,
        so the inference model (the default) leaves out the layers that only training outputs
        need, and ``training_outputs=True`` builds them and returns every output."""
        net, module = self.net, self.module_names
        avoid = frozenset(module.reserved | module.taken | self.RESERVED.locals)
        training = net.training_only()  # layers that only training outputs need
        marked = bool(net.training_outputs)  # (a training output may need no layer of its own)
        w.line(f"def build_model({'training_outputs=False' if marked else ''}):")
        with w.indented():
            doc = f"The network `{net.name}`{_file_note(net)} as a Keras model"
            if marked:
                listed = ", ".join(net.inference_outputs)
                doc += (
                    f": its inference outputs ({listed}), or with training_outputs every output"
                    " and the layers that compute them."
                )
            w.docstring(doc + ("" if marked else "."))
            r = _Render({}, False)

            def only(step) -> bool:
                return all(t.split(":")[0] in training for t in step.targets)

            def model(outputs: list[str]) -> Expr:
                ins = [r.names[layer.name] for layer in net.inputs]
                outs = [r.names[o] for o in outputs]
                model_in = Code(ins[0] if len(ins) == 1 else f"[{', '.join(ins)}]")
                model_out = Code(outs[0] if len(outs) == 1 else f"[{', '.join(outs)}]")
                return call("keras.Model", model_in, model_out, name=Code(literal(net.name)))

            def training_end() -> None:
                w.statement("return ", model(net.outputs), r)

            end = training_end if training else None
            _body(w, program.draft, [], avoid, r, returns=False, training=only, training_end=end)
            if marked and not training:  # the same layers either way: only the outputs differ
                w.line("if training_outputs:")
                with w.indented():
                    w.statement("return ", model(net.outputs), r)
            w.statement("return ", model(net.inference_outputs if marked else net.outputs), r)
        w.blank(2)
        w.line('if __name__ == "__main__":')
        with w.indented():
            w.line("build_model().summary()")


def _list(items) -> Expr:
    return Display(tuple(items))


def _check_reachable(gen: KerasGenerator) -> None:
    """A Keras functional model keeps only the layers between its inputs and outputs."""
    net = gen.net
    needed = set(net.outputs)
    for layer in reversed(net.layers):
        if layer.name in needed:
            needed.update(layer.inputs)
    for layer in net.layers:
        if layer.name not in needed:
            why = "it reaches no output, and a Keras functional model would drop it"
            raise gen.unsupported(layer, why)


# ---------------------------------------------------------------- writing the module


class _Render(Render):
    """How values and layer names read in the Keras function being written: inside a block's
    function a layer's name follows the call's (``f"{name}_conv_1"``), in a loop it counts."""

    def __init__(self, names: dict[str, str], in_block: bool):
        super().__init__(names)
        self.in_block = in_block
        self.loop: tuple[int, bool] | None = None  # (the loop variable's start, unit steps)

    def counter(self, n0: int, step: int) -> str:
        start, unit_steps = self.loop
        if unit_steps:
            d = n0 - start
            return "i" if d == 0 else f"i + {d}" if d > 0 else f"i - {-d}"
        scaled = "i" if step == 1 else f"{step} * i"
        return scaled if n0 == 0 else f"{scaled} + {n0}"

    def layer_name(self, name: LayerName) -> str:
        if name.counter is not None:
            base, n0, step = name.counter
            head = "{name}_" if self.in_block else ""
            return f'f"{head}{base}_{{{self.counter(n0, step)}}}"'
        if self.in_block and name.local is not None:
            return f'f"{{name}}_{name.local}"'
        return literal(name.absolute)


def _body(
    w: Writer,
    draft: Draft,
    arg_names: list[str],
    avoid: frozenset[str],
    r: _Render,
    force: str | None = None,
    returns: bool = True,
    training=None,
    training_end=None,
) -> dict[str, str]:
    """Write a draft's steps (and its return); returns the variable of every value.  Runs of
    steps for which ``training(step)`` holds are built only ``if training_outputs:``;
    ``training_end()`` writes what ends that case (its return), in the last such run when the
    steps end with one, else under an ``if training_outputs:`` of its own."""
    names = variables(draft, arg_names, avoid, force)
    r.names = names
    loops = [step for step in draft.steps if isinstance(step, Loop)]
    inner = avoid | frozenset(names.values()) if loops else avoid  # what a loop must not reuse

    def write(step) -> None:
        if isinstance(step, Loop):
            _loop(w, step, r, inner)
        else:
            w.statement(
                f"{', '.join(names[t] for t in step.targets)} = ", step.expr, r, step.comment
            )

    guarded = False
    for guarded, run in groupby(draft.steps, key=training or (lambda step: False)):
        if not guarded:
            for step in run:
                write(step)
            continue
        w.line("if training_outputs:")
        with w.indented():
            for step in run:
                write(step)
            if training_end is not None and step is draft.steps[-1]:
                training_end()
    if training_end is not None and not guarded:
        w.line("if training_outputs:")
        with w.indented():
            training_end()
    if returns:
        w.line("return " + ", ".join(names[o] for o in draft.outputs))
    return names


def _loop(w: Writer, loop: Loop, r: _Render, avoid: frozenset[str]) -> None:
    """``for i in range(...)``: the carried value keeps its variable, the layer names count;
    the unit's values avoid ``avoid`` (the body's variables among them)."""
    names = r.names
    target = names[loop.targets[0]]
    entry = loop.unit.args[0]
    if target != names[entry]:
        w.line(f"{target} = {names[entry]}")
    increments = counters(loop)
    unit_steps = all(step == 1 for _, _, step in increments)
    start = increments[0][1] if unit_steps else 0
    count = plus(loop.count, start) if start else loop.count
    bounds = f"{start}, {count.text(r)}" if start else count.text(r)
    w.line(f"for i in range({bounds}):")
    with w.indented():
        args = [target, *(names[v] for v in loop.unit.args[1:])]
        inner = _Render({}, r.in_block)
        inner.loop = (start, unit_steps)
        _body(w, loop.unit, args, avoid - {target}, inner, target, returns=False)


def _file_note(net: Network) -> str:
    files = sorted(
        {os.path.basename(layer.position.file) for layer in net.layers if layer.position}
    )
    return f" ({files[0]})" if len(files) == 1 else ""


def _function_doc(fn: Function) -> str:
    wheres = []

    def collect(draft: Draft) -> None:
        for step in draft.steps:
            if isinstance(step, Loop):
                collect(step.unit)
            elif step.comment:
                wheres.append(step.comment.rsplit(":", 1))

    collect(fn.draft)
    text = f"Block `{fn.block}`"
    files = {f for f, _ in wheres}
    if len(files) == 1:
        lines = sorted(int(n) for _, n in wheres)
        span = str(lines[0]) if lines[0] == lines[-1] else f"{lines[0]}-{lines[-1]}"
        text += f" ({files.pop()}:{span})"
    if fn.variants > 1:
        calls = [call.site.instance for call in fn.calls]
        more = f" and {len(calls) - 3} more" if len(calls) > 3 else ""
        text += f", as {', '.join(calls[:3])}{more} build{'s' if len(calls) == 1 else ''} it"
    return text + "."
