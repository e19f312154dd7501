"""Weights of torchvision models (or any PyTorch model of the same layers) into cnndsl models.

:func:`load_torchvision` copies the parameters and batch-norm statistics of a torchvision model
into a cnndsl model of the same architecture -- ``net.to_torch()``, or the ``build_model()`` of
the file ``cnndsl compile --target torch`` writes -- so that both compute the same function, and
says where the two differ when they do not.  :func:`match_modules` is its first half: the
pairing of the two models' modules, which the tests also use to compare layer shapes.
"""

from __future__ import annotations

import contextlib
import math
import os
from dataclasses import dataclass, field
from typing import Any

from ..ir import Network

__all__ = ["Pair", "Unit", "load_torchvision", "match_modules"]

# Pooling functions and the names of their arguments after the input, as torch.nn.functional
# defines them: a pooling layer is recognised by the function it calls, whether the model
# calls it from a module (nn.MaxPool2d) or directly (torchvision's Inception blocks).
_POOLS = {
    "max_pool2d": ("kernel_size", "stride", "padding", "dilation", "ceil_mode"),
    "avg_pool2d": (
        "kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override",
    ),
    "adaptive_avg_pool2d": ("output_size",),
    "adaptive_max_pool2d": ("output_size",),
}
_POOL_DEFAULTS = {
    "stride": None, "padding": 0, "dilation": 1, "ceil_mode": False,
    "count_include_pad": True, "divisor_override": None,
}

# Module classes by the kind of layer they are, and the attributes that change their function
# beyond the shapes of their tensors.
_KINDS = {
    "Conv1d": "conv", "Conv2d": "conv", "ConvTranspose2d": "convtranspose", "Linear": "linear",
    "BatchNorm1d": "batchnorm", "BatchNorm2d": "batchnorm", "LayerNorm": "layernorm",
    "LayerNorm2d": "layernorm", "GroupNorm": "groupnorm", "LocalResponseNorm": "lrn",
}
_SETTINGS = {
    "conv": ("stride", "padding", "dilation", "groups", "padding_mode"),
    "convtranspose": ("stride", "padding", "output_padding", "dilation", "groups"),
    "batchnorm": ("eps", "momentum", "affine", "track_running_stats"),
    "layernorm": ("eps", "elementwise_affine"),
    "groupnorm": ("num_groups", "eps", "affine"),
    "lrn": ("size", "alpha", "beta", "k"),
    "linear": (),
}
# a dense layer's input and a 1x1 convolution's compute the same function pixel by pixel
_INTERCHANGEABLE = {frozenset({"linear", "conv"})}


@dataclass
class Unit:
    """One layer of a model as the matching sees it: a module owning tensors, or a call of a
    pooling function.  ``path`` is the module's path (for a pooling call, the path of the
    module that made it); ``tensors`` its own parameters and persistent buffers; ``settings``
    what changes its function beyond their shapes; ``hwc`` the (H, W, C) of the map a dense
    layer reads flattened in (H, W, C) order, as cnndsl flattens; ``kind`` is ``"conv"``,
    ``"linear"``, ``"batchnorm"``, ... , ``"max_pool2d"``, ... or the module's class name."""

    path: str
    kind: str
    module: Any = None
    tensors: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    input_shape: tuple[int, ...] | None = None
    output_shape: tuple[int, ...] | None = None
    hwc: tuple[int, int, int] | None = None
    leaf: bool = True
    origin: str | None = None  # the spec line of cnndsl's layer, when the network is known

    def describe(self) -> str:
        if self.module is not None and self.leaf:
            what = repr(self.module)
        elif self.module is not None:
            what = f"{type(self.module).__name__} with {_signature_text(self.tensors)}"
        elif self.kind in _POOLS:
            shown = ", ".join(f"{k}={v}" for k, v in self.settings.items())
            what = f"{self.kind}({shown})"
        else:
            what = _signature_text(self.tensors)
        where = f" ({self.origin})" if self.origin else ""
        return f"{self.path or '(root)'}{where}: {what}"


@dataclass
class Pair:
    """A layer of the cnndsl model (``ours``) and the torchvision layer it takes its weights
    from (``theirs``); ``node`` is the cnndsl node's name when the network is known."""

    ours: Unit
    theirs: Unit
    node: str | None = None


def load_torchvision(
    model,
    source,
    net: Network | None = None,
    *,
    input_shape: tuple[int, int, int] | None = None,
    check: bool = True,
    assign: bool = False,
) -> dict[str, str]:
    """Load the weights of ``source`` (a torchvision ``nn.Module`` or its ``state_dict()``)
    into ``model`` (``net.to_torch()``, or ``build_model()`` of a generated file); returns
    {our key: torchvision's key}.  Raises ``ValueError`` naming the first place where the two
    models differ.

    How layers are matched: not by name (cnndsl's follow the spec: ``layer1.bottleneck_1.
    conv_1``; torchvision's follow its code: ``layer1.0.conv1``) but by the order in which the
    models run them, checked layer by layer.

    - Each model is reduced to the sequence of its *layers*: the modules that own tensors
      (convolutions, linear layers, batch norms ...; parameters and persistent buffers, as the
      ``state_dict`` has them) and the calls of pooling functions (``max_pool2d``,
      ``avg_pool2d``, ``adaptive_avg_pool2d``; global and identity adaptive pools aside, since
      cnndsl computes global pooling as a mean), in the order of one forward pass (batch 1,
      at the spec's input shape) on the meta device: shapes only, no memory for activations
      and no arithmetic.  The pass runs the branches that run only in training (GoogLeNet's
      and Inception-v3's auxiliary heads), with every leaf module in inference mode, and
      leaves both models as it found them.  A module that owns tensors and has children
      (ConvNeXt's block and its layer scale) counts when it finishes.
    - The two sequences are paired in order.  Each pair must be of one kind (a 1x1
      convolution and a linear layer are interchangeable), with the same tensor names and
      shapes, and the same settings: for convolutions stride, padding, dilation, groups; for
      batch norm eps, momentum, affine; for pooling every argument of the call.  Two layers
      with one tensor each of one shape up to size-1 axes (a layer scale of shape (C,) and one
      of (C, 1, 1)) also pair.  The first pair that differs, or the first layer one model has
      and the other has not, raises ``ValueError`` naming both.
    - A state dict has no forward pass to watch: its modules are taken in registration order,
      by top-level child (``layer1``, ``aux1``, ``fc``), each child matched whole at the first
      place of our sequence where it fits -- so GoogLeNet's auxiliary heads, registered after
      the last inception module but run in the middle, find their place.  Only tensor names
      and shapes are checked.
    - cnndsl flattens feature maps in (H, W, C) order, torchvision in (C, H, W) order: the
      columns of a linear layer reading a flattened map larger than 1x1 (AlexNet's and VGG's
      classifier) are permuted accordingly.  The loader sees the flatten in the forward pass.
    - With ``check`` (the default) and a module as ``source``, both models then run on one
      random input, and every pair must see the same input and give the same output (up to
      1e-3 of the tensor's scale; a map one model holds channels last, as ConvNeXt's layer
      norms and linear layers do, in the other's layout): the first that does not raises
      ``ValueError`` naming it -- which catches what shapes cannot show, such as a missing
      activation or two concatenated branches of one shape in the other order.

    With ``assign``, ``model``'s tensors are replaced by the source's instead of copied into
    (as ``load_state_dict(assign=True)`` does): they share its memory, dtype and device, and
    keep their own ``requires_grad``; a tensor the loader rearranges (the permuted columns above)
    is a new one.  So ``model`` may be built on the meta device, taking no memory before it is
    loaded: ``with torch.device("meta"): model = net.to_torch()``.  Loaded so, VGG-16 and
    torchvision's take 964 MB together instead of 1.1 GB (its first dense layer's weight, 411
    MB, is permuted), two ResNet-50s 102 MB instead of 205.

    The input shape (C, H, W) is ``input_shape`` if given, else the network's (``net``, or the
    one ``net.to_torch()`` attached to the model), else the ``input_shape`` attribute of the
    generated model class.  ``net``, when known, also names cnndsl's layers in messages.
    """
    import torch

    pairs, by_key = _pairs(model, source, net, input_shape)
    mapping: dict[str, str] = {}
    with torch.no_grad():
        for pair in pairs:
            ours, theirs = pair.ours, pair.theirs
            for (name, tensor), (their_name, value) in zip(
                ours.tensors.items(), _aligned(ours, theirs).items()
            ):
                if name == "num_batches_tracked" and their_name != name:
                    continue
                permuted = ours.hwc is not None and name == "weight" and theirs.hwc is None
                if assign:
                    new = _hwc_columns(value, ours.hwc) if permuted else value.reshape(tensor.shape)
                    _replace(ours.module, name, tensor, new)
                elif permuted:
                    _copy_chw_columns_to_hwc(tensor, value, ours.hwc)
                else:
                    tensor.copy_(value.reshape(tensor.shape))
                mapping[_join(ours.path, name)] = _join(theirs.path, their_name)
    if assign:
        _counts_left_on_meta_are_zero(model)
    if check and by_key is None:
        _check_values(model, source, pairs, _input_shape(model, net, input_shape))
    return mapping


def match_modules(model, source, net: Network | None = None, *, input_shape=None) -> list[Pair]:
    """The layers of ``model`` paired with those of ``source`` as :func:`load_torchvision`
    pairs them (each with its input and output shapes from the pass), without copying
    anything.  Raises ``ValueError`` at the first difference."""
    return _pairs(model, source, net, input_shape)[0]


# ------------------------------------------------------------------------------ the pairing


def _pairs(model, source, net, input_shape):
    import torch

    net = net if net is not None else getattr(model, "_cnndsl_network", None)
    shape = _input_shape(model, net, input_shape)
    ours = _trace(model, shape)
    nodes = _node_names(net) if net is not None else {}
    for unit in ours:
        node = nodes.get(unit.path)
        position = net[node].position if node is not None else None
        if position is not None:
            unit.origin = f"{os.path.basename(position.file)}:{position.line}"
    if isinstance(source, torch.nn.Module):
        theirs = _trace(source, shape)
        pairs = _pair_in_order(ours, theirs)
        by_key = None
    else:
        by_key = dict(source)
        ours = [u for u in ours if u.tensors]
        pairs = _pair_state_dict(ours, _state_dict_groups(by_key))
    for pair in pairs:
        pair.node = nodes.get(pair.ours.path)
    return pairs, by_key


def _input_shape(model, net, given) -> tuple[int, int, int]:
    if given is not None:
        return tuple(given)
    if net is not None:
        if len(net.inputs) != 1 or len(net.inputs[0].shape) != 3:
            raise ValueError("load_torchvision needs a network with one image input")
        h, w, c = net.inputs[0].shape
        return (c, h, w)
    shape = getattr(model, "input_shape", None)
    if shape is None:
        raise ValueError(
            "the input shape is unknown: pass input_shape=(C, H, W) or net= (models made by"
            " cnndsl, net.to_torch() or a generated build_model(), know theirs)"
        )
    return tuple(shape)


def _node_names(net: Network) -> dict[str, str]:
    from .torch import module_paths

    return {path: node for node, path in module_paths(net).items()}


def _pair_in_order(ours: list[Unit], theirs: list[Unit]) -> list[Pair]:
    pairs = []
    for i, (a, b) in enumerate(zip(ours, theirs)):
        problem = _difference(a, b)
        if problem:
            raise ValueError(_diverge(i, a, b, problem))
        pairs.append(Pair(a, b))
    if len(ours) != len(theirs):
        i = min(len(ours), len(theirs))
        extra = ours[i] if len(ours) > i else theirs[i]
        who = "cnndsl's model" if len(ours) > i else "torchvision's model"
        raise ValueError(
            f"the models diverge after {i} matching layers: {who} goes on with"
            f" {extra.describe()} ({len(ours)} layers against {len(theirs)})"
        )
    return pairs


def _pair_state_dict(ours: list[Unit], groups: list[list[Unit]]) -> list[Pair]:
    pairs: list[Pair] = []
    unused = list(range(len(groups)))
    i = 0
    while i < len(ours):
        for g in unused:
            group = groups[g]
            if len(group) <= len(ours) - i and not any(
                _difference(a, b) for a, b in zip(ours[i:], group)
            ):
                pairs += [Pair(a, b) for a, b in zip(ours[i:], group)]
                i += len(group)
                unused.remove(g)
                break
        else:
            if not unused:
                raise ValueError(
                    f"the models diverge after {i} matching layers: cnndsl's model goes on"
                    f" with {ours[i].describe()}, and the state dict has nothing left"
                )
            group = groups[unused[0]]
            for k, (a, b) in enumerate(zip(ours[i:], group)):
                problem = _difference(a, b)
                if problem:
                    raise ValueError(_diverge(i + k, a, b, problem))
            raise ValueError(
                f"the models diverge after {i + len(ours) - i} layers: cnndsl's model ends"
                f" within the state dict's {group[0].path.split('.')[0]}"
            )
    if unused:
        left = ", ".join(groups[g][0].path.split(".")[0] or "(root)" for g in unused)
        raise ValueError(
            f"the models diverge after {len(pairs)} matching layers: the state dict has more"
            f" ({left}), cnndsl's model has nothing left"
        )
    return pairs


def _diverge(i: int, a: Unit, b: Unit, problem: str) -> str:
    return (
        f"the models diverge at layer {i + 1} (after {i} matching): {problem}\n"
        f"  cnndsl:      {a.describe()}\n"
        f"  torchvision: {b.describe()}"
    )


def _difference(a: Unit, b: Unit) -> str | None:
    """Why unit ``a`` of ours cannot take the weights of unit ``b``, or None."""
    if a.kind != b.kind and frozenset({a.kind, b.kind}) not in _INTERCHANGEABLE:
        if len(a.tensors) == len(b.tensors) == 1 and _squeezed(a.tensors) == _squeezed(b.tensors):
            return None  # one tensor each, of one shape: a layer scale or the like
        return f"a {_kind_text(a)} against a {_kind_text(b)}"
    if a.kind in _POOLS:
        for key, value in a.settings.items():
            if not _same(value, b.settings.get(key)):
                return f"{key} {value} against {b.settings.get(key)}"
        return None
    if a.kind != b.kind:  # a 1x1 convolution as a linear layer
        conv = a if a.kind == "conv" else b
        if conv.module is not None and (
            tuple(conv.module.kernel_size) != (1, 1) or conv.module.groups != 1
        ):
            return f"a {_kind_text(a)} against a {_kind_text(b)}"
        if _squeezed(a.tensors) != _squeezed(b.tensors):
            return f"tensors {_signature_text(a.tensors)} against {_signature_text(b.tensors)}"
        return None
    if _signature(a.tensors) != _signature(b.tensors):
        return f"tensors {_signature_text(a.tensors)} against {_signature_text(b.tensors)}"
    for key in _SETTINGS.get(a.kind, ()):
        if key in a.settings and key in b.settings and not _same(a.settings[key], b.settings[key]):
            return f"{key} {a.settings[key]} against {b.settings[key]}"
    return None


_POOL_NAMES = {
    "max_pool2d": "max pooling", "avg_pool2d": "average pooling",
    "adaptive_avg_pool2d": "adaptive average pooling",
    "adaptive_max_pool2d": "adaptive max pooling",
}


def _kind_text(unit: Unit) -> str:
    return _POOL_NAMES.get(unit.kind, unit.kind)


def _same(x, y) -> bool:
    if isinstance(x, float) or isinstance(y, float):
        return x is not None and y is not None and math.isclose(x, y, rel_tol=1e-6)
    return x == y


def _aligned(ours: Unit, theirs: Unit) -> dict[str, Any]:
    """Theirs' tensors in the order of ours' (by name when the kinds agree)."""
    if ours.kind == theirs.kind and set(ours.tensors) == set(theirs.tensors):
        return {name: theirs.tensors[name] for name in ours.tensors}
    return theirs.tensors


# ------------------------------------------------------------------------- tracing a model


def _signature(tensors: dict[str, Any]) -> list[tuple[str, tuple[int, ...]]]:
    return [(k, tuple(v.shape)) for k, v in tensors.items() if k != "num_batches_tracked"]


def _squeezed(tensors: dict[str, Any]) -> list[tuple[int, ...]]:
    return [
        tuple(d for d in v.shape if d != 1)
        for k, v in tensors.items()
        if k != "num_batches_tracked"
    ]


def _signature_text(tensors: dict[str, Any]) -> str:
    return ", ".join(f"{k} {tuple(v.shape)}" for k, v in tensors.items()) or "no tensors"


def _own_tensors(module) -> dict[str, Any]:
    tensors = {k: v for k, v in module._parameters.items() if v is not None}
    tensors.update(
        (k, v)
        for k, v in module._buffers.items()
        if v is not None and k not in module._non_persistent_buffers_set
    )
    return tensors


def _module_unit(path: str, module) -> Unit:
    kind = _KINDS.get(type(module).__name__)
    if kind is None:
        for cls in type(module).__mro__:
            kind = _KINDS.get(cls.__name__)
            if kind:
                break
    settings = {}
    for key in _SETTINGS.get(kind, ()):
        value = getattr(module, key, None)
        settings[key] = tuple(value) if isinstance(value, list) else value
    return Unit(
        path, kind or type(module).__name__, module, _own_tensors(module), settings,
        leaf=not any(True for _ in module.children()),
    )


@contextlib.contextmanager
def _running(model):
    """Every branch that runs in training (containers in training mode), with inference
    numerics (leaf modules in eval mode: batch norm uses its statistics, no dropout); the
    modes are restored afterwards."""
    modes = [(m, m.training) for m in model.modules()]
    try:
        for m in model.modules():
            m.training = any(True for _ in m.children())
        yield
    finally:
        for m, mode in modes:
            m.training = mode


class _Stop(Exception):
    """Ends a forward pass early (the values check found its answer)."""


def _trace(model, shape, *, x=None, seen=None) -> list[Unit]:
    """The layers of ``model`` in the order one forward pass runs them, with their input and
    output shapes.  The pass runs on the meta device (shapes only, no arithmetic:
    ``torch.func.functional_call`` with meta copies of the tensors); given an input ``x``, it
    runs for real and calls ``seen(i, input, output)`` as layer i finishes (which may raise
    :class:`_Stop` to end the pass)."""
    import torch
    from torch.overrides import TorchFunctionMode

    units: list[Unit] = []
    stack: list[str] = []
    flattened: list[tuple[int, int, int] | None] = [None]
    paths = {id(m): path for path, m in model.named_modules()}
    owners = {id(m) for m in model.modules() if _own_tensors(m)}

    def record(unit: Unit, value_in, value_out) -> None:
        if hasattr(value_in, "shape"):
            unit.input_shape = tuple(value_in.shape)
        if hasattr(value_out, "shape"):
            unit.output_shape = tuple(value_out.shape)
        units.append(unit)
        if seen is not None:
            seen(len(units) - 1, value_in, value_out)

    def enter(module, args):
        stack.append(paths[id(module)])

    def leave(module, args, output):
        path = stack.pop()
        if id(module) not in owners:
            return
        unit = Unit(path, "", module)  # completed after the pass, with the real tensors
        if isinstance(module, torch.nn.Linear) and flattened[0] is not None:
            h, w, c = flattened[0]
            if h * w * c == module.in_features:
                unit.hwc = flattened[0]
        flattened[0] = None
        record(unit, args[0] if args else None, output)

    class Watch(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            result = func(*args, **kwargs)
            name = getattr(func, "__name__", "")
            if name in _POOLS and args:
                settings = _pool_settings(name, args, kwargs, result)
                if settings is not None:
                    unit = Unit(stack[-1] if stack else "", name, settings=settings)
                    record(unit, args[0], result)
                    flattened[0] = None
            elif name == "flatten" and args and _is_channels_last_view(args[0]):
                n, h, w, c = args[0].shape
                flattened[0] = (h, w, c) if h * w > 1 else None
            return result

    handles = []
    for m in model.modules():
        handles.append(m.register_forward_pre_hook(enter))
        handles.append(m.register_forward_hook(leave))
    parameter = next(model.parameters(), None)
    dtype = parameter.dtype if parameter is not None else torch.float32
    try:
        with _running(model), torch.no_grad(), Watch():
            if x is None:
                meta = {
                    name: torch.empty_like(t, device="meta")
                    for name, t in [*model.named_parameters(), *model.named_buffers()]
                }
                zeros = torch.zeros(1, *shape, dtype=dtype, device="meta")
                torch.func.functional_call(model, meta, (zeros,), strict=False)
            else:
                device = parameter.device if parameter is not None else None
                model(x.to(dtype=dtype, device=device))
    except _Stop:
        raise
    except Exception as error:
        raise ValueError(
            f"{type(model).__name__} does not run on a {tuple(shape)} input: {error}"
        ) from error
    finally:
        for handle in handles:
            handle.remove()
    for i, unit in enumerate(units):
        if unit.module is not None:
            done = _module_unit(unit.path, unit.module)
            done.input_shape, done.output_shape, done.hwc = (
                unit.input_shape, unit.output_shape, unit.hwc,
            )
            units[i] = done
    return units


def _clone(x):
    return x.detach().clone() if hasattr(x, "detach") else None


def _pool_settings(name, args, kwargs, result) -> dict[str, Any] | None:
    """The arguments of a pooling call, normalised; None for a global or identity adaptive pool."""
    names = _POOLS[name]
    settings = {k: _POOL_DEFAULTS.get(k) for k in names}
    settings.update(zip(names, args[1:]))
    settings.update((k, v) for k, v in kwargs.items() if k in settings)
    for key, value in settings.items():
        if isinstance(value, int) and not isinstance(value, bool):
            settings[key] = (value, value)
        elif isinstance(value, list):
            settings[key] = tuple(value)
    if "stride" in settings and settings["stride"] in (None, ()):
        settings["stride"] = settings["kernel_size"]
    if name.startswith("adaptive"):
        size = tuple(args[0].shape[-2:])
        out = tuple(result.shape[-2:]) if hasattr(result, "shape") else None
        if out == (1, 1) or out == size:
            return None
    return settings


def _is_channels_last_view(x) -> bool:
    """An (N, H, W, C) view of a contiguous (N, C, H, W) map: ``x.permute(0, 2, 3, 1)``."""
    if not hasattr(x, "stride") or x.dim() != 4:
        return False
    n, h, w, c = x.shape
    return x.stride() == (c * h * w, w, 1, h * w) and c > 1


def _state_dict_groups(state_dict) -> list[list[Unit]]:
    """The units of a state dict in registration order, grouped by top-level child."""
    modules: dict[str, dict[str, Any]] = {}
    for key, value in state_dict.items():
        path, _, name = key.rpartition(".")
        modules.setdefault(path, {})[name] = value
    groups: dict[str, list[Unit]] = {}
    for path, tensors in modules.items():
        names = set(tensors)
        weight = tensors.get("weight")
        if "running_mean" in names:
            kind = "batchnorm"
        elif weight is not None and weight.dim() == 4:
            kind = "conv"
        elif weight is not None and weight.dim() == 2:
            kind = "linear"
        else:
            kind = "tensors"
        groups.setdefault(path.split(".")[0], []).append(Unit(path, kind, tensors=tensors))
    return list(groups.values())


# ----------------------------------------------------------------------- the values check


def _check_values(model, source, pairs: list[Pair], shape) -> None:
    """Runs both models on one random input; raises ValueError at the first pair whose
    output differs, saying whether its input already did."""
    import torch

    x = torch.randn(1, *shape, generator=torch.Generator().manual_seed(0))
    theirs: list = []
    _trace(source, shape, x=x, seen=lambda i, a, b: theirs.append((_clone(a), _clone(b))))
    found: list[str] = []

    def compare(i: int, a_in, a_out) -> None:
        pair = pairs[i]
        if not (pair.ours.leaf and pair.theirs.leaf):
            return
        b_in, b_out = theirs[i]
        if _value_difference(a_out, b_out) is None:
            return
        if pair.ours.hwc is not None and pair.theirs.hwc is None and b_in is not None:
            h, w, c = pair.ours.hwc
            b_in = b_in.reshape(b_in.shape[0], c, h, w).permute(0, 2, 3, 1).flatten(1)
        before = _value_difference(a_in, b_in)
        where = (
            f"before this layer, whose inputs differ ({before})"
            if before
            else f"at this layer, whose outputs differ ({_value_difference(a_out, b_out)})"
        )
        agreed = [p for p in pairs[:i] if p.ours.leaf and p.theirs.leaf]
        after = f"; they agree up to {agreed[-1].ours.describe()}" if agreed else ""
        found.append(
            f"the models compute different values {where}{after}\n"
            f"  cnndsl:      {pair.ours.describe()}\n"
            f"  torchvision: {pair.theirs.describe()}"
        )
        raise _Stop

    try:
        _trace(model, shape, x=x, seen=compare)
    except _Stop:
        raise ValueError(found[0]) from None


def _value_difference(a, b) -> str | None:
    """How tensor ``a`` (ours) differs from ``b`` (theirs), or None.  A map that one model holds
    channels last (ConvNeXt's layer norm and linear layers run on (N, H, W, C)) is compared
    in the other's layout, and a 1 x 1 map with its vector."""
    if a is None or b is None:
        return None
    b = _same_layout(b, tuple(a.shape))
    if a.numel() != b.numel():
        return f"shapes {tuple(a.shape)} and {tuple(b.shape)}"
    a, b = a.reshape(-1).double(), b.reshape(-1).double()
    scale = max(b.abs().max().item(), 1e-6)
    diff = (a - b).abs().max().item()
    if diff > 1e-3 * scale:
        return f"max abs difference {diff:.3g} at scale {scale:.3g}"
    return None


def _same_layout(x, shape: tuple[int, ...]):
    """``x`` in the layout of ``shape`` when that is x's channels-first or channels-last
    transpose ((N, C, H, W) against (N, H, W, C)); else ``x`` itself."""
    if x.dim() == 4 and len(shape) == 4 and tuple(x.shape) != shape:
        if tuple(x.permute(0, 3, 1, 2).shape) == shape:
            return x.permute(0, 3, 1, 2)
        if tuple(x.permute(0, 2, 3, 1).shape) == shape:
            return x.permute(0, 2, 3, 1)
    return x


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _hwc_columns(value, shape: tuple[int, int, int]):
    """A new dense weight (out, H*W*C) from ``value``, which reads (C, H, W)-flattened
    features: :func:`_copy_chw_columns_to_hwc` into a tensor of its own."""
    h, w, c = shape
    return value.reshape(value.shape[0], c, h, w).permute(0, 2, 3, 1).reshape(value.shape[0], -1)


def _counts_left_on_meta_are_zero(model) -> None:
    """A batch norm's count that the source did not have (an older state dict) stays ours, as
    without ``assign``; on the meta device that is the count a model is built with, 0.  Any
    other tensor still on the meta device would be a tensor nothing loaded: refused."""
    import torch

    for key, tensor in model.state_dict(keep_vars=True).items():
        if tensor.is_meta:
            path, _, name = key.rpartition(".")
            if name != "num_batches_tracked":
                raise ValueError(f"{key} was not loaded: it is still on the meta device")
            _replace(model.get_submodule(path), name, tensor, torch.zeros_like(tensor, device="cpu"))


def _replace(module, name: str, old, new) -> None:
    """``module``'s parameter or buffer ``name`` (now ``old``) becomes ``new``."""
    import torch

    if isinstance(old, torch.nn.Parameter):
        new = torch.nn.Parameter(new, requires_grad=old.requires_grad)
    setattr(module, name, new)


def _copy_chw_columns_to_hwc(weight, value, shape: tuple[int, int, int]) -> None:
    """Copies a dense weight (out, C*H*W) that reads (C, H, W)-flattened features into
    ``weight``, which reads them in (H, W, C) order (through views: no copy of the matrix)."""
    h, w, c = shape
    out = weight.shape[0]
    weight.view(out, h, w, c).copy_(value.reshape(out, c, h, w).permute(0, 2, 3, 1))
