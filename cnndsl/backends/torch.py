"""The PyTorch back end: ``build(net) -> torch.nn.Module`` and ``to_source(net) -> str``.

One lowering, two products (as ``torch.fx`` does it): the network is lowered to the source of a
standalone Python module that imports only torch, and :func:`build` executes that source.  So
the live model and the file ``cnndsl compile --target torch`` writes are one model by
construction.  The lowering runs in four steps:

1. **Scopes.**  Nodes are grouped by block call (``CallSite.instance``) into a tree: each block
   call becomes a sub-module of its caller.
2. **Drafts.**  Each node is lowered by the handler of its class (:data:`HANDLERS`) into module
   definitions for ``__init__`` and one expression for ``forward``; layer arguments stay
   :class:`Const` leaves.
3. **Classes** (anti-unification), innermost calls first.  Calls of one block whose drafts agree
   up to those constants share one ``nn.Module`` class; constants that differ between its calls
   become ``__init__`` parameters, named after the block parameter that carries them
   (``filters``), a multiple of one (``filters * 4``) or their role (``in_channels``).  Calls
   that differ in structure get classes of their own (``Bottleneck``, ``BottleneckProject``).
4. **Rendering.**  Variables are named (``x`` along a chain, ``branch1``... for values waiting
   for a merge, ``out`` for a result computed while the input is still needed), lines are
   wrapped as black wraps them at 100 columns, and each layer carries its spec line.

Semantics (the IR's, exactly):

- Tensors are NCHW.  ``flatten`` orders features as Keras does, (H, W, C): the map is permuted
  to NHWC first (unless H = W = 1), so dense weights transfer between the frameworks.
- Padding is the analysis's ``explicit_padding()`` (TensorFlow SAME resolved): symmetric
  padding is the layer's ``padding=``; asymmetric padding is an ``F.pad`` before an unpadded
  layer (with ``-inf`` for max pooling; average pooling that excludes padded cells divides
  by a pooled mask of ones, :class:`ExcludePadAvgPool2d` in the generated file).
- Batch norm: ``eps`` is the IR's epsilon, ``momentum`` is 1 - the IR's (Keras convention);
  without ``center`` or ``scale`` the missing parameter is removed from the module.
- LRN with TensorFlow's (radius r, alpha, beta, bias) is ``nn.LocalResponseNorm(2r + 1,
  alpha * (2r + 1), beta, bias)``.
- Transposed convolutions crop the full ``(n - 1) * s + k_eff`` output as the IR says, with
  ``padding``/``output_padding`` where PyTorch can, and a slice where it cannot.

The generated code has no data-dependent control flow, so ``torch.compile`` and
``torch.export`` take it as it is.
"""

from __future__ import annotations

import dataclasses
import hashlib
import keyword
import linecache
import os
import textwrap
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..ir import (
    LRN,
    Activation,
    Add,
    AvgPool2D,
    BatchNorm,
    CallSite,
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
from ..ir.geometry import effective_kernel
from . import unsupported
from ._source import SourceWriter, comment_text, docstring_text, py_identifier

__all__ = ["HANDLERS", "UNSUPPORTED", "build", "module_paths", "to_source"]

TARGET = "PyTorch"
LINE_LENGTH = 100


# ================================================================ public API


def to_source(net: Network, *, taps: bool = False) -> str:
    """The source of a standalone Python module defining the network as an ``nn.Module``.

    The module imports only torch.  It defines one class per block (or per structural variant
    of a block), the network's class, and ``build_model()``.  With ``taps``, every node's value
    is also passed to a module-level ``_tap(module, name, value)`` (a no-op that :func:`build`
    replaces): a debugging aid, not for deployment.
    Raises :class:`~cnndsl.CnnDslError` for a layer PyTorch cannot express.
    """
    return _Renderer(_plan(net), taps).module()


def build(net: Network, *, tap: Callable[[str, Any], None] | None = None):
    """The network as a live ``torch.nn.Module`` taking NCHW inputs.

    Several inputs are ``forward``'s arguments in declaration order; several outputs come back
    as a tuple in ``net.outputs`` order.  ``tap(node_name, tensor)``, when given, is called
    with every node's value during each forward pass (node names as in the IR).
    """
    plan = _plan(net)
    source = _Renderer(plan, taps=tap is not None).module()
    namespace = _execute(source, net.name)
    model = namespace["build_model"]()
    if tap is not None:
        prefixes = {id(model.get_submodule(path)): prefix for path, prefix in plan.prefixes()}
        namespace["_tap"] = lambda module, name, value: tap(prefixes[id(module)] + name, value)
    model._cnndsl_network = net  # read by torchvision_map.load_torchvision
    return model


def module_paths(net: Network) -> dict[str, str]:
    """For each node that owns a sub-module, that module's path in the model
    (``block1_conv_1`` -> ``block1.conv_1``); its parameters are ``<path>.weight`` etc."""
    return _plan(net).module_paths()


def _execute(source: str, name: str) -> dict[str, Any]:
    """Run generated source as a module, registered with linecache so that tracebacks,
    ``inspect.getsource`` and ``torch.compile`` can read it."""
    digest = hashlib.sha1(source.encode()).hexdigest()[:12]
    filename = f"<cnndsl-torch-{py_identifier(name)}-{digest}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    module = types.ModuleType(f"cnndsl_generated_{py_identifier(name)}")
    module.__file__ = filename
    exec(compile(source, filename, "exec"), module.__dict__)  # noqa: S102 (our own output)
    return module.__dict__


# ================================================================ expressions of generated code


class Expr:
    """A Python expression of the generated code.  Layer arguments are :class:`Const` leaves,
    which anti-unification may turn into parameters."""

    def children(self) -> tuple[Expr, ...]:
        return ()

    def consts(self) -> Iterator[Const]:
        for child in self.children():
            yield from child.consts()

    def key(self) -> tuple:
        """The structure with constants left out: equal keys, one class."""
        raise NotImplementedError

    def replace(self, fn: Callable[[Const], Expr]) -> Expr:
        """A copy with every Const c replaced by fn(c)."""
        raise NotImplementedError

    def text(self, names: dict) -> str:
        raise NotImplementedError


@dataclass(eq=False)
class Code(Expr):
    """Fixed code: ``torch.cat``, ``self``, ``float("-inf")``."""

    code: str

    def key(self):
        return ("code", self.code)

    def replace(self, fn):
        return self

    def text(self, names):
        return self.code


@dataclass(eq=False)
class Const(Expr):
    """A layer argument; ``role`` names a parameter made of it (``in_channels``)."""

    value: Any
    role: str

    def consts(self):
        yield self

    def key(self):
        return ("const",)

    def replace(self, fn):
        return fn(self)

    def text(self, names):
        return literal(self.value)


@dataclass(eq=False)
class Var(Expr):
    """A tensor of ``forward``: ("arg", i) for an argument, ("step", i, j) for the j-th value
    of step i."""

    ref: tuple

    def key(self):
        return ("var", self.ref)

    def replace(self, fn):
        return self

    def text(self, names):
        return names[self.ref]


@dataclass(eq=False)
class Attr(Expr):
    obj: Expr
    name: str

    def children(self):
        return (self.obj,)

    def key(self):
        return ("attr", self.obj.key(), self.name)

    def replace(self, fn):
        return Attr(self.obj.replace(fn), self.name)

    def text(self, names):
        return f"{self.obj.text(names)}.{self.name}"


_KEEP = object()


@dataclass(eq=False)
class Call(Expr):
    """``func(args, name=value)``; a keyword whose value is a Const equal to its ``default``
    (or for which ``default(call)`` is true) is left out when rendered."""

    func: Expr
    args: tuple[Expr, ...] = ()
    kwargs: tuple[tuple[str, Expr, Any], ...] = ()

    def children(self):
        return (self.func, *self.args, *(v for _, v, _ in self.kwargs))

    def key(self):
        return (
            "call",
            self.func.key(),
            tuple(a.key() for a in self.args),
            tuple((k, v.key()) for k, v, _ in self.kwargs),
        )

    def replace(self, fn):
        return Call(
            self.func.replace(fn),
            tuple(a.replace(fn) for a in self.args),
            tuple((k, v.replace(fn), d) for k, v, d in self.kwargs),
        )

    def shown_kwargs(self) -> list[tuple[str, Expr]]:
        shown = []
        for name, value, default in self.kwargs:
            if callable(default):
                if default(self):
                    continue
            elif default is not _KEEP and isinstance(value, Const) and same(value.value, default):
                continue
            shown.append((name, value))
        return shown

    def parts(self, names) -> list[str]:
        return [a.text(names) for a in self.args] + [
            f"{k}={v.text(names)}" for k, v in self.shown_kwargs()
        ]

    def text(self, names):
        return f"{self.func.text(names)}({', '.join(self.parts(names))})"


def call(func: str | Expr, *args: Expr, **kwargs: Expr | tuple[Expr, Any]) -> Call:
    """Call(func, args, kwargs); a keyword given as (expr, default) is omitted at its default."""
    kw = []
    for name, value in kwargs.items():
        expr, default = value if isinstance(value, tuple) else (value, _KEEP)
        kw.append((name, expr, default))
    return Call(Code(func) if isinstance(func, str) else func, args, tuple(kw))


def method(obj: Expr, name: str, *args: Expr, **kwargs) -> Call:
    return call(Attr(obj, name), *args, **kwargs)


@dataclass(eq=False)
class Operation(Expr):
    """``a + b + c``: operands are atoms or calls, so no parentheses are needed."""

    op: str
    operands: tuple[Expr, ...]

    def children(self):
        return self.operands

    def key(self):
        return ("op", self.op, tuple(o.key() for o in self.operands))

    def replace(self, fn):
        return Operation(self.op, tuple(o.replace(fn) for o in self.operands))

    def text(self, names):
        return f" {self.op} ".join(o.text(names) for o in self.operands)


@dataclass(eq=False)
class Index(Expr):
    """``x[:, :, None, None]``"""

    obj: Expr
    index: str

    def children(self):
        return (self.obj,)

    def key(self):
        return ("index", self.obj.key(), self.index)

    def replace(self, fn):
        return Index(self.obj.replace(fn), self.index)

    def text(self, names):
        return f"{self.obj.text(names)}[{self.index}]"


@dataclass(eq=False)
class Display(Expr):
    """A list display ``[a, b]``."""

    items: tuple[Expr, ...]

    def children(self):
        return self.items

    def key(self):
        return ("list", tuple(i.key() for i in self.items))

    def replace(self, fn):
        return Display(tuple(i.replace(fn) for i in self.items))

    def text(self, names):
        return "[" + ", ".join(i.text(names) for i in self.items) + "]"


@dataclass(eq=False)
class ClassRef(Expr):
    """A block class, named only once every class is known."""

    cls: BlockClass

    def key(self):
        return ("class", id(self.cls))

    def replace(self, fn):
        return self

    def text(self, names):
        return self.cls.name


SELF = Code("self")


def literal(value: Any) -> str:
    """A Python literal, black-style (double quotes, no float noise: 1 - 0.99 -> 0.01)."""
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(float(f"{value:.15g}"))
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (tuple, list)):
        items = ", ".join(literal(v) for v in value)
        if isinstance(value, list):
            return f"[{items}]"
        return f"({items},)" if len(value) == 1 else f"({items})"
    raise TypeError(f"no literal for {value!r}")


def same(a: Any, b: Any) -> bool:
    """Equal values of compatible types (1 and 1.0 yes, True and 1 no, lists as tuples)."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    return type(a) is type(b) and a == b


def pair(value: tuple[int, int]) -> int | tuple[int, int]:
    """(3, 3) -> 3, as PyTorch arguments are usually written."""
    return value[0] if value[0] == value[1] else tuple(value)


# ================================================================ lowering of one node


@dataclass
class Statement:
    """A statement of ``__init__``: ``self.<attr> = expr``, or ``expr`` when attr is None."""

    attr: str | None
    expr: Expr
    comment: str | None

    def key(self):
        return (self.attr, self.expr.key(), self.comment)


class NodeContext:
    """What a handler sees: the node, its shapes, and ways to define modules and helpers."""

    def __init__(self, net: Network, layer: Layer, attr: str, comment: str):
        info = net.analysis[layer.name]
        self.net = net
        self.layer = layer
        self.in_shapes: list[tuple[int, ...]] = list(info.input_shapes)
        self.out_shape: tuple[int, ...] = info.output_shape
        self.attr = attr
        self.comment = comment
        self.inits: list[Statement] = []
        self.helpers: set[str] = set()

    @property
    def in_shape(self) -> tuple[int, ...]:
        return self.in_shapes[0]

    def module(self, expr: Expr) -> Expr:
        """Define the node's module, ``self.<attr> = expr``; returns ``self.<attr>``."""
        self.inits.append(Statement(self.attr, expr, self.comment))
        return Attr(SELF, self.attr)

    def init(self, expr: Expr) -> None:
        """One more ``__init__`` statement after the module's definition."""
        self.inits.append(Statement(None, expr, None))

    def helper(self, name: str) -> Code:
        self.helpers.add(name)
        return Code(name)

    def unsupported(self, why: str):
        return unsupported(self.net, self.layer, TARGET, why)


Handler = Callable[[NodeContext, list[Expr]], Expr]


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


def _dense(ctx: NodeContext, xs: list[Expr]) -> Expr:
    layer: Dense = ctx.layer
    module = call(
        "nn.Linear",
        Const(ctx.in_shape[0], "in_features"),
        Const(layer.units, "out_features"),
        bias=(Const(layer.bias, "bias"), True),
    )
    return _activate(call(ctx.module(module), xs[0]), layer.activation, None)


def _flattens_map(in_shapes) -> bool:
    """Whether a flatten reorders: a map larger than 1x1."""
    shape = in_shapes[0]
    return len(shape) == 3 and shape[0] * shape[1] > 1


def _flatten(ctx: NodeContext, xs: list[Expr]) -> Expr:
    if _flattens_map(ctx.in_shapes):  # Keras's order: (H, W, C)
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

UNSUPPORTED: dict[type[Layer], str] = {}
"""Layer classes PyTorch cannot express at all, with the reason (none so far; cases of a
handled class that cannot be expressed raise :func:`~cnndsl.backends.unsupported`)."""


# Helper classes, written into the generated module when a node needs them.
HELPER_SOURCES: dict[str, str] = {
    "SeparableConv2d": '''
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
''',
    "ExcludePadAvgPool2d": '''
class ExcludePadAvgPool2d(nn.Module):
    """Average pooling over an asymmetrically padded input that, as TensorFlow's SAME
    padding, does not count padded cells: the sum over each window divided by the number of
    real cells in it.  padding is (left, right, top, bottom)."""

    def __init__(self, kernel_size, stride, padding, ceil_mode=False):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = padding
        self.ceil_mode = ceil_mode

    def forward(self, x):
        pool = (self.kernel_size, self.stride, 0, self.ceil_mode)
        total = F.avg_pool2d(F.pad(x, self.padding), *pool)
        real = F.avg_pool2d(F.pad(torch.ones_like(x[:1, :1]), self.padding), *pool)
        return total / real
''',
}


# ================================================================ scopes: block calls


@dataclass(eq=False)
class Scope:
    """The network, or one block call: its nodes and nested calls, in order."""

    call: CallSite | None
    prefix: str  # prefix of its nodes' names: "block1_" ("" for the network)
    local: str  # its attribute in the caller: "block1"
    items: list[Layer | Scope] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)  # values read from outside
    outputs: list[str] = field(default_factory=list)  # values used outside
    height: int = 0
    layers: list[Layer] = field(default_factory=list)  # every node inside, nested too
    cls: BlockClass | None = None
    args: list[Any] = field(default_factory=list)  # its class's parameters for this call


def _scopes(net: Network) -> Scope:
    root = Scope(None, "", "")
    _fill(root, net.layers, 0)
    users = net.consumers()
    outputs = set(net.outputs)

    def connect(scope: Scope) -> None:
        inside = {layer.name for layer in scope.layers}
        seen: set[str] = set()
        for layer in scope.layers:
            for name in layer.inputs:
                if name not in inside and name not in seen:
                    seen.add(name)
                    scope.inputs.append(name)
        scope.outputs = [
            layer.name
            for layer in scope.layers
            if layer.name in outputs or any(u not in inside for u in users[layer.name])
        ] or [scope.layers[-1].name]
        for item in scope.items:
            if isinstance(item, Scope):
                connect(item)
                scope.height = max(scope.height, item.height + 1)

    for item in root.items:
        if isinstance(item, Scope):
            connect(item)
    root.inputs = [layer.name for layer in net.inputs]
    root.outputs = list(net.outputs)
    return root


def _fill(scope: Scope, layers: list[Layer], depth: int) -> None:
    scope.layers = list(layers)
    done: set[str] = set()
    i = 0
    while i < len(layers):
        layer = layers[i]
        if len(layer.calls) <= depth:
            scope.items.append(layer)
            i += 1
            continue
        site = layer.calls[depth]
        j = i
        while (
            j < len(layers)
            and len(layers[j].calls) > depth
            and layers[j].calls[depth].instance == site.instance
        ):
            j += 1
        if site.instance in done:
            raise AssertionError(f"the nodes of block call {site.instance} are not contiguous")
        done.add(site.instance)
        local = site.instance.removeprefix(scope.prefix)
        sub = Scope(site, site.instance + "_", local)
        _fill(sub, layers[i:j], depth + 1)
        scope.items.append(sub)
        i = j


def _walk(scope: Scope) -> Iterator[Scope]:
    """Every scope below `scope` (not itself), parents before children."""
    for item in scope.items:
        if isinstance(item, Scope):
            yield item
            yield from _walk(item)


# ================================================================ drafts


# Names an attribute must not take (nn.Module's own) and a variable must not take.
_MODULE_ATTRS = frozenset(
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
_RESERVED_NAMES = frozenset({"self", "torch", "nn", "F", "super", "_tap", "build_model"})


def _attr_name(local: str) -> str:
    name = py_identifier(local)
    while name.startswith("__"):  # no name mangling
        name = name[1:]
    while name in _MODULE_ATTRS:
        name += "_"
    return name


@dataclass
class Step:
    """One statement of ``forward``: the values it defines (IR names), its expression."""

    targets: list[str]
    expr: Expr
    reads: list[str]
    local: str  # the node's or call's name inside the scope
    comment: str | None  # the spec line, when no module definition carries it
    merge: bool = False
    tap: bool = True  # a node's value (not a nested call's)

    def key(self):
        return (len(self.targets), self.expr.key(), self.comment, self.merge, self.tap, self.local)


@dataclass
class Draft:
    """A scope lowered: ``__init__`` statements and ``forward`` steps, constants in place."""

    args: list[str]  # forward's arguments (IR names)
    inits: list[Statement]
    steps: list[Step]
    outputs: list[str]
    helpers: set[str]

    def exprs(self) -> Iterator[Expr]:
        for statement in self.inits:
            yield statement.expr
        for step in self.steps:
            yield step.expr

    def key(self) -> tuple:
        refs = self.refs()
        return (
            len(self.args),
            tuple(s.key() for s in self.inits),
            tuple(s.key() for s in self.steps),
            tuple(refs[o] for o in self.outputs),
        )

    def attrs(self) -> set[str]:
        """The attributes of ``self`` its ``__init__`` defines."""
        return {s.attr for s in self.inits if s.attr}

    def replace(self, fn: Callable[[Const], Expr]) -> Draft:
        """A copy with every Const c of its expressions replaced by fn(c)."""
        return Draft(
            self.args,
            [Statement(s.attr, s.expr.replace(fn), s.comment) for s in self.inits],
            [dataclasses.replace(s, expr=s.expr.replace(fn)) for s in self.steps],
            self.outputs,
            self.helpers,
        )

    def refs(self) -> dict[str, tuple]:
        refs: dict[str, tuple] = {name: ("arg", i) for i, name in enumerate(self.args)}
        for i, step in enumerate(self.steps):
            for j, name in enumerate(step.targets):
                refs[name] = ("step", i, j)
        return refs


def _where(position) -> str:
    if position is None:
        return ""
    return comment_text(f"{os.path.basename(position.file)}:{position.line}")


def _draft(net: Network, scope: Scope) -> Draft:
    args = list(scope.inputs)
    refs: dict[str, tuple] = {name: ("arg", i) for i, name in enumerate(args)}
    inits: list[Statement] = []
    steps: list[Step] = []
    helpers: set[str] = set()
    for item in scope.items:
        if isinstance(item, Layer) and isinstance(item, Input):
            continue
        index = len(steps)
        if isinstance(item, Scope):
            sub = item
            attr = _attr_name(sub.local)
            consts = (Const(v, p.name) for v, p in zip(sub.args, sub.cls.params))
            ctor = Call(ClassRef(sub.cls), tuple(consts))
            inits.append(Statement(attr, ctor, _where(sub.call.position)))
            expr = call(Attr(SELF, attr), *(Var(refs[name]) for name in sub.inputs))
            step = Step(list(sub.outputs), expr, list(sub.inputs), sub.local, None, tap=False)
        else:
            layer = item
            local = layer.name.removeprefix(scope.prefix)
            ctx = NodeContext(net, layer, _attr_name(local), _where(layer.position))
            handler = HANDLERS.get(type(layer))
            if handler is None:
                why = UNSUPPORTED.get(type(layer), f"no handler for {type(layer).__name__}")
                raise unsupported(net, layer, TARGET, why)
            expr = handler(ctx, [Var(refs[name]) for name in layer.inputs])
            inits.extend(ctx.inits)
            helpers |= ctx.helpers
            comment = None if ctx.inits else ctx.comment
            merge = isinstance(layer, (Add, Concat, Multiply))
            step = Step([layer.name], expr, list(layer.inputs), local, comment, merge)
        for j, name in enumerate(step.targets):
            refs[name] = ("step", index, j)
        steps.append(step)
    for sub in scope.items:
        if isinstance(sub, Scope):
            helpers |= sub.cls.helpers
    return Draft(args, inits, steps, list(scope.outputs), helpers)


# ================================================================ classes: anti-unification


@dataclass(eq=False)
class Param:
    """An ``__init__`` parameter of a block class; ``in_forward``: stored as ``self.<name>``."""

    name: str
    values: tuple  # one per call of the class
    in_forward: bool = False


@dataclass(eq=False)
class BlockClass:
    block: str
    draft: Draft  # the first call's draft, its differing constants replaced by parameters
    params: list[Param]
    calls: list[Scope]
    helpers: set[str]
    block_params: list[str]
    name: str = ""
    variant: str = ""  # e.g. "project=True", when the block has several classes


def _camel(name: str) -> str:
    parts = [p for p in py_identifier(name).split("_") if p]
    return "".join(p[:1].upper() + p[1:] for p in parts) or "Block"


def _derive(values: tuple, calls: list[Scope]) -> tuple[str, Any] | None:
    """A block parameter whose values (or a multiple, or a fraction) are `values` in every
    call: ("filters", None), ("filters", ("*", 4)) or ("filters", ("//", 2))."""
    if len(calls) < 2:
        return None
    names = list(calls[0].call.args)
    for name in names:
        if all(same(call.call.args.get(name), v) for call, v in zip(calls, values)):
            return name, None
    ints = all(isinstance(v, int) and not isinstance(v, bool) for v in values)
    if not ints:
        return None
    for name in names:
        ps = [call.call.args.get(name) for call in calls]
        if not all(isinstance(p, int) and not isinstance(p, bool) and p > 0 for p in ps):
            continue
        if values[0] % ps[0] == 0 and values[0] // ps[0] >= 2:
            k = values[0] // ps[0]
            if all(v == p * k for v, p in zip(values, ps)):
                return name, ("*", k)
        if values[0] > 0 and ps[0] % values[0] == 0 and ps[0] // values[0] >= 2:
            k = ps[0] // values[0]
            if all(p % k == 0 and v == p // k for v, p in zip(values, ps)):
                return name, ("//", k)
    return None


_FIRST_ROLES = ("in_channels", "in_features", "num_features")


def _unify(block: str, calls: list[Scope], drafts: list[Draft]) -> BlockClass:
    """One class for calls whose drafts have one structure: the constants that differ between
    the calls become parameters (one per distinct column of values)."""
    first = drafts[0]
    in_forward = {id(c) for step in first.steps for c in step.expr.consts()}
    block_params = list(calls[0].call.args)
    taken = set(block_params) | first.attrs() | _RESERVED_NAMES
    params: dict[str, Param] = {}  # by the literal of their values
    roles: list[Param] = []
    replacement: dict[int, Expr] = {}

    def param(name: str, values: tuple, role: bool = False) -> Param:
        key = repr([literal(v) for v in values])
        if key not in params:
            params[key] = Param(name, values)
            if role:
                roles.append(params[key])
        return params[key]

    columns = zip(*([c for e in d.exprs() for c in e.consts()] for d in drafts))
    for column in columns:
        const, values = column[0], tuple(c.value for c in column)
        if all(same(values[0], v) for v in values[1:]):
            continue  # one value in every call: stays a literal
        forward = id(const) in in_forward
        found = _derive(values, calls)
        if found is not None and found[1] is not None and not forward:
            name, (op, k) = found
            base = param(name, tuple(c.call.args[name] for c in calls))
            replacement[id(const)] = Operation(op, (Code(base.name), Code(str(k))))
            continue
        key = repr([literal(v) for v in values])
        if key in params:
            p = params[key]
        elif found is not None and found[1] is None:
            p = param(found[0], values)
        else:
            name, n = const.role, 2
            while name in taken or any(q.name == name for q in params.values()):
                name, n = f"{const.role}_{n}", n + 1
            p = param(name, values, role=True)
        p.in_forward |= forward
        replacement[id(const)] = Attr(SELF, p.name) if forward else Code(p.name)
    # in_channels first, then the block's parameters in its order, then other roles
    ordered = [p for p in roles if p.name.startswith(_FIRST_ROLES)]
    ordered += sorted(
        (p for p in params.values() if p not in roles), key=lambda p: block_params.index(p.name)
    )
    ordered += [p for p in roles if p not in ordered]
    draft = first.replace(lambda c: replacement.get(id(c), c))
    return BlockClass(block, draft, ordered, calls, first.helpers, block_params)


def _name_classes(classes: list[BlockClass], network_class: str) -> None:
    """Class names: the block's in CamelCase; a block with several classes distinguishes them
    by the parameter whose value separates them (BottleneckProject) or by a number."""
    by_block: dict[str, list[BlockClass]] = {}
    for cls in classes:
        by_block.setdefault(cls.block, []).append(cls)
    taken = {network_class, *HELPER_SOURCES, "Module"}
    for block, group in by_block.items():
        base = _camel(block)
        names = [base] * len(group)
        if len(group) > 1:
            names = _variant_names(base, group)
        for cls, name in zip(group, names):
            candidate, n = name, 2
            while candidate in taken:
                candidate, n = f"{name}{n}", n + 1
            taken.add(candidate)
            cls.name = candidate


def _flag(value: Any) -> bool | None:
    """A block argument as a boolean (``true``/``false`` are booleans; ``on``/``off``/``yes``/``no``
    stay words in block arguments)."""
    if isinstance(value, bool):
        return value
    return {"true": True, "on": True, "yes": True, "false": False, "off": False, "no": False}.get(
        value if isinstance(value, str) else ""
    )


def _variant_names(base: str, group: list[BlockClass]) -> list[str]:
    """Names for the classes of one block: after the first block parameter that has one value
    per class and a different one in each (``project``: Bottleneck, BottleneckProject;
    ``convs``: StageConvs2, StageConvs3), else numbered (Stage, Stage2)."""
    for param in group[0].block_params:
        values = []
        for cls in group:
            shown = {literal(c.call.args.get(param)) for c in cls.calls}
            if len(shown) != 1:
                break
            values.append(cls.calls[0].call.args.get(param))
        else:
            if len({literal(v) for v in values}) != len(group):
                continue
            flags = [_flag(v) for v in values]
            if len(group) == 2 and None not in flags:
                names = [base + (_camel(param) if v else "") for v in flags]
            elif all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values):
                names = [f"{base}{_camel(param)}{v}" for v in values]
            elif all(isinstance(v, str) and v.isidentifier() for v in values):
                names = [f"{base}{_camel(v)}" for v in values]
            else:
                continue
            for cls, v in zip(group, values):
                spec = v if isinstance(v, str) else str(v).lower() if isinstance(v, bool) else literal(v)
                cls.variant = f"{param}={spec}"
            return names
    return [base if i == 0 else f"{base}{i + 1}" for i in range(len(group))]


# ================================================================ the plan


@dataclass
class Plan:
    net: Network
    root: Scope
    root_draft: Draft
    classes: list[BlockClass]  # innermost first
    network_class: str
    helpers: list[str]

    def prefixes(self) -> list[tuple[str, str]]:
        """(module path, node-name prefix) of the network and of every block call."""
        result = [("", "")]

        def visit(scope: Scope, path: str) -> None:
            for item in scope.items:
                if isinstance(item, Scope):
                    sub = f"{path}{_attr_name(item.local)}"
                    result.append((sub, item.prefix))
                    visit(item, sub + ".")

        visit(self.root, "")
        return result

    def module_paths(self) -> dict[str, str]:
        paths: dict[str, str] = {}

        def visit(scope: Scope, draft: Draft, path: str) -> None:
            attrs = draft.attrs()
            for item in scope.items:
                if isinstance(item, Scope):
                    visit(item, item.cls.draft, f"{path}{_attr_name(item.local)}.")
                elif not isinstance(item, Input):
                    attr = _attr_name(item.name.removeprefix(scope.prefix))
                    if attr in attrs:
                        paths[item.name] = path + attr

        visit(self.root, self.root_draft, "")
        return paths


def _plan(net: Network) -> Plan:
    net.analysis  # noqa: B018  (raises located errors for specs that cannot compute)
    root = _scopes(net)
    network_class = _camel(net.name)
    if network_class in HELPER_SOURCES:
        network_class += "Net"
    calls = list(_walk(root))
    classes: list[BlockClass] = []
    for height in range(max((s.height for s in calls), default=-1) + 1):
        groups: dict[tuple, list[tuple[Scope, Draft]]] = {}
        for scope in calls:
            if scope.height == height:
                draft = _draft(net, scope)
                groups.setdefault((scope.call.block, draft.key()), []).append((scope, draft))
        for (block, _), members in groups.items():
            cls = _unify(block, [s for s, _ in members], [d for _, d in members])
            for i, (scope, _) in enumerate(members):
                scope.cls = cls
                scope.args = [p.values[i] for p in cls.params]
            classes.append(cls)
    _name_classes(classes, network_class)
    root_draft = _draft(net, root)
    helpers = [name for name in HELPER_SOURCES if name in root_draft.helpers]
    return Plan(net, root, root_draft, classes, network_class, helpers)


# ================================================================ rendering


def _variable_names(draft: Draft, arg_names: list[str]) -> dict[tuple, str]:
    """Names of forward's tensors.  A chain of single-use values shares one variable: ``x``
    when free, else ``out`` for the result, ``branch<k>`` for the k-th input of a merge, or
    the node's name.  A name is reused only once its previous value is dead."""
    refs = draft.refs()
    n = len(draft.steps)
    uses: dict[str, list[int]] = {name: [] for name in refs}
    for i, step in enumerate(draft.steps):
        for name in step.reads:
            uses[name].append(i)
    for name in draft.outputs:
        uses[name].append(n)
    last = {name: max(u, default=-1) for name, u in uses.items()}
    names: dict[tuple, str] = {}
    busy: dict[str, int] = {}
    for name, var in zip(draft.args, arg_names):
        names[refs[name]] = var
        busy[var] = last[name]
    taken = set(_RESERVED_NAMES) | set(arg_names)

    def chained(i: int) -> bool:
        step = draft.steps[i]
        if len(step.targets) != 1:
            return False
        u = uses[step.targets[0]]
        if i + 1 < n:
            return u == [i + 1] and len(draft.steps[i + 1].targets) == 1
        return u == [n] and len(draft.outputs) == 1

    def free(name: str, start: int) -> bool:
        return busy.get(name, -1) <= start

    def claim(candidates: list[str], start: int, end: int) -> str:
        for name in candidates:
            if name and free(name, start):
                busy[name] = end
                return name
        base = candidates[-1]
        k = 2
        while not free(f"{base}_{k}", start):
            k += 1
        busy[f"{base}_{k}"] = end
        return f"{base}_{k}"

    def local_name(step: Step) -> str:
        name = py_identifier(step.local)
        return name + "_" if name in taken or keyword.iskeyword(name) else name

    i = 0
    while i < n:
        step = draft.steps[i]
        if len(step.targets) != 1:
            for j, target in enumerate(step.targets):
                names[refs[target]] = claim([f"{local_name(step)}_{j + 1}"], i, last[target])
            i += 1
            continue
        j = i
        while chained(j) and j + 1 < n:
            j += 1
        final = draft.steps[j].targets[0]
        fan_out = len(uses[final]) > 1
        if fan_out and j > i:  # the chain up to the fan-out point, then the fan-out value
            run = range(i, j)
            name = claim(["x", local_name(draft.steps[j - 1])], i, j)
            for k in run:
                names[refs[draft.steps[k].targets[0]]] = name
            i = j
            continue
        candidates = [] if fan_out else ["x"]
        if final in draft.outputs and not fan_out:
            candidates.append("out")
        readers = [s for s in draft.steps if final in s.reads]
        if len(uses[final]) == 1 and readers and readers[0].merge:
            candidates.append(f"branch{readers[0].reads.index(final) + 1}")
        candidates.append(local_name(draft.steps[j]))
        name = claim(candidates, i, last[final])
        for k in range(i, j + 1):
            names[refs[draft.steps[k].targets[0]]] = name
        i = j + 1
    return names


def _wrap(head: str, expr: Expr, tail: str, width: int, names: dict) -> list[str]:
    """``head + expr + tail`` laid out as black would in `width` columns (lines unindented,
    continuation lines indented by four spaces)."""
    line = f"{head}{expr.text(names)}{tail}"
    if len(line) <= width or not isinstance(expr, (Call, Display, Operation)):
        return [line]
    if isinstance(expr, Operation):  # black's invisible parentheses, then one operand a line
        body = "    " + expr.text(names)
        if len(body) <= width:
            return [f"{head}(", body, f"){tail}"]
        operands = [o.text(names) for o in expr.operands]
        body = ["    " + operands[0]] + [f"    {expr.op} {o}" for o in operands[1:]]
        return [f"{head}(", *body, f"){tail}"]
    if isinstance(expr, Call):
        opening, parts, closing = expr.func.text(names) + "(", expr.args, ")"
        if head and len(head + opening) > width:  # black wraps the right-hand side instead
            return [
                f"{head}(",
                *("    " + t for t in _wrap("", expr, "", width - 4, names)),
                f"){tail}",
            ]
        kwargs = expr.shown_kwargs()
    else:
        opening, parts, closing, kwargs = "[", expr.items, "]", []
    texts = [p.text(names) for p in parts] + [f"{k}={v.text(names)}" for k, v in kwargs]
    hugged = "    " + ", ".join(texts)
    if len(hugged) <= width:
        return [f"{head}{opening}", hugged, f"{closing}{tail}"]
    lines = [f"{head}{opening}"]
    for p in parts:
        lines += ["    " + t for t in _wrap("", p, ",", width - 4, names)]
    for k, v in kwargs:
        lines += ["    " + t for t in _wrap(f"{k}=", v, ",", width - 4, names)]
    return lines + [f"{closing}{tail}"]


class _Renderer:
    def __init__(self, plan: Plan, taps: bool):
        self.plan = plan
        self.taps = taps
        self.out = SourceWriter()

    def emit(self, head: str, expr: Expr, names: dict, comment: str | None = None) -> None:
        """A statement, wrapped to the line length, with its comment at the end of its line
        (or on a line of its own above it when it would not fit)."""
        width = LINE_LENGTH - len(self.out._unit) * self.out._level
        lines = _wrap(head, expr, "", width, names)
        if comment:
            inline = f"{lines[0]}  # {comment}"
            if len(lines) == 1 and len(inline) <= width:
                lines = [inline]
            else:
                self.out.line(f"# {comment}")
        for text in lines:
            self.out.line(text)

    def module(self) -> str:
        plan, w = self.plan, self.out
        body = SourceWriter()
        self.out = body
        for name in plan.helpers:
            body.blank(2)
            body.lines(*HELPER_SOURCES[name].strip("\n").splitlines())
        for cls in plan.classes:
            body.blank(2)
            self.block_class(cls)
        body.blank(2)
        self.network_class()
        body.blank(2)
        body.line("def build_model():")
        with body.indented():
            body.line(f"return {plan.network_class}()")
        text = body.getvalue()
        self.out = w
        self.docstring()
        w.blank()
        w.line("import torch")
        if "F." in text:
            w.line("import torch.nn.functional as F")
        w.line("from torch import nn")
        if self.taps:
            w.blank(2)
            w.line("def _tap(module, name, value):")
            with w.indented():
                w.line("pass")
        return w.getvalue() + "\n\n" + text

    def docstring(self) -> None:
        net = self.plan.net
        a = net.analysis
        files = sorted({os.path.basename(l.position.file) for l in net.layers if l.position})
        source = f" from {', '.join(files)}" if files else ""
        w = self.out
        w.line(f'"""{docstring_text(f"{net.name} in PyTorch, generated by cnndsl{source}")}.')
        w.blank()
        shapes = lambda names: ", ".join(_nchw(a[n].output_shape) for n in names)  # noqa: E731
        inputs = shapes([layer.name for layer in net.inputs])
        w.line(f"Input: {inputs}, channels first.  Output: {shapes(net.outputs)}.")
        counts = f"{a.trainable_params:,} parameters"
        if a.non_trainable_params:
            counts += f", {a.non_trainable_params:,} batch-norm statistics"
        w.line(counts + ".")
        if any(
            _flattens_map(a[layer.name].input_shapes)
            for layer in net.layers
            if layer.kind == "flatten"
        ):
            w.line(
                "Flatten orders features as Keras does, (H, W, C), so that dense weights transfer."
            )
        w.line('"""')

    def block_class(self, cls: BlockClass) -> None:
        w = self.out
        w.line(f"class {cls.name}(nn.Module):")
        with w.indented():
            signature = f"{cls.block}({', '.join(cls.block_params)})"
            where = {os.path.basename(c.call.position.file) for c in cls.calls if c.call.position}
            doc = f"Block ``{signature}``" + (f" of {', '.join(sorted(where))}" if where else "")
            doc += f", with {cls.variant}" if cls.variant else ""
            self.docstring_lines(f"{doc}.")
            w.blank()
            params = ", ".join(["self", *(p.name for p in cls.params)])
            self.init(
                cls.draft, f"def __init__({params}):", [p.name for p in cls.params if p.in_forward]
            )
            w.blank()
            self.forward(cls.draft, _argument_names(cls))

    def docstring_lines(self, text: str) -> None:
        width = LINE_LENGTH - len(self.out._unit) * self.out._level - 6
        lines = textwrap.wrap(docstring_text(text), width, break_long_words=False) or [""]
        lines[0] = '"""' + lines[0]
        lines[-1] += '"""'
        self.out.lines(*lines)

    def network_class(self) -> None:
        plan, w = self.plan, self.out
        net = plan.net
        w.line(f"class {plan.network_class}(nn.Module):")
        with w.indented():
            w.line(f'"""The network {docstring_text(net.name)}."""')
            w.blank()
            self.init(plan.root_draft, "def __init__(self):", [])
            w.blank()
            names = ["x"] if len(net.inputs) == 1 else [_variable(l.name) for l in net.inputs]
            self.forward(plan.root_draft, names)

    def init(self, draft: Draft, signature: str, stored: list[str]) -> None:
        w = self.out
        w.line(signature)
        with w.indented():
            w.line("super().__init__()")
            for name in stored:
                w.line(f"self.{name} = {name}")
            for s in draft.inits:
                self.emit(f"self.{s.attr} = " if s.attr else "", s.expr, {}, s.comment)

    def forward(self, draft: Draft, arg_names: list[str]) -> None:
        w = self.out
        w.line(f"def forward({', '.join(['self', *arg_names])}):")
        names = _variable_names(draft, arg_names)
        refs = draft.refs()
        with w.indented():
            for i, step in enumerate(draft.steps):
                targets = [names[refs[t]] for t in step.targets]
                last = i == len(draft.steps) - 1
                if last and not self.taps and draft.outputs == step.targets and len(targets) == 1:
                    self.emit("return ", step.expr, names, step.comment)
                    return
                self.emit(f"{', '.join(targets)} = ", step.expr, names, step.comment)
                if self.taps and step.tap:
                    w.line(f'_tap(self, "{step.local}", {targets[0]})')
            w.line("return " + ", ".join(names[refs[o]] for o in draft.outputs))


def _argument_names(cls: BlockClass) -> list[str]:
    """forward's arguments: ``x``, then the block parameters that passed the other tensors."""
    names = []
    for k in range(len(cls.draft.args)):
        found = None
        if k > 0:
            for param in cls.block_params:
                if all(c.call.args.get(param) == c.inputs[k] for c in cls.calls):
                    found = _variable(param)
                    break
        names.append("x" if k == 0 else found if found and found not in names else f"x{k + 1}")
    return names


def _variable(name: str) -> str:
    ident = py_identifier(name)
    return ident + "_" if ident in _RESERVED_NAMES else ident


def _nchw(shape: tuple[int, ...]) -> str:
    if len(shape) == 3:
        h, w, c = shape
        return f"(N, {c}, {h}, {w})"
    return f"(N, {shape[0]})"
