"""Weights between the Keras and the PyTorch models of one network.

    keras_to_torch(net, keras_model, torch_model) -> None
    torch_to_keras(net, torch_model, keras_model) -> None

``keras_model`` is a model built by :func:`cnndsl.backends.keras.build` (or by the
``build_model()`` of the generated Keras source) and ``torch_model`` one built by
:func:`cnndsl.backends.torch.build` (or the generated PyTorch source), both for ``net``.  After
a transfer both compute the same function (in inference mode; tests/test_equivalence.py checks
it for every spec of the zoo and hand-written specs of every layer kind).

Weights are matched node by node through the IR, never by order: the Keras layer named after
the node (helper layers ``<name>_pad``, ``<name>_crop``, ``<name>_reshape`` have no weights)
and the PyTorch module at ``cnndsl.backends.torch.module_paths(net)[node]``.  Every weight of
both models must be accounted for: a tensor of a node that has no counterpart, a tensor of no
node, a missing layer or module, or a shape that does not match raises ``ValueError`` naming
the node (layer) and the tensor.

Layout conventions (Keras channels-last variables -> PyTorch NCHW parameters):

==================  ===================================  ====================================
node                Keras                                PyTorch
==================  ===================================  ====================================
conv                kernel (kh, kw, cin/groups, cout)    weight (cout, cin/groups, kh, kw)
                    bias (cout,)                         bias (cout,)
dwconv              kernel (kh, kw, cin, mult)           weight (cin*mult, 1, kh, kw), a conv
                                                         with groups=cin; Keras's output
                                                         channel c*mult + m is PyTorch's
                                                         channel c*mult + m (group c)
                    bias (cin*mult,)                     bias (cin*mult,)
sepconv             depthwise_kernel (kh, kw, cin, m)    depthwise.weight (cin*m, 1, kh, kw)
                    pointwise_kernel (1, 1, cin*m, out)  pointwise.weight (out, cin*m, 1, 1)
                    bias (out,)                          pointwise.bias (out,)
convtranspose       kernel (kh, kw, cout, cin)           weight (cin, cout, kh, kw), no
                                                         spatial flip: both scatter input
                                                         pixel i to outputs i*s + t*d with
                                                         kernel tap t
                    bias (cout,)                         bias (cout,)
dense               kernel (in, out)                     weight (out, in); a flatten of an
                                                         H x W x C map orders features
                                                         (H, W, C) in both back ends, so no
                                                         column permutation
                    bias (out,)                          bias (out,)
bn                  gamma, beta                          weight, bias (absent in both
                                                         without scale / center)
                    moving_mean, moving_variance         running_mean, running_var
pointwise           kernel (in, out), bias (out,)        weight (out, in), bias (out,): a
                                                         linear layer on the channels
layernorm           gamma, beta                          weight, bias (as bn's)
layerscale          gamma (C,)                           gamma (C,)
normalization       mean (C,), variance (C,), count ()   mean, variance, count (buffers of
                                                         the same shapes); none with
                                                         constant statistics
==================  ===================================  ====================================

PyTorch's ``num_batches_tracked`` has no Keras counterpart: it is neither read nor written.
Keras's ``Normalization`` computes with copies of its statistics: after writing them,
:func:`torch_to_keras` calls its ``finalize_state()`` (as Keras's ``load_weights`` does).
Batch-norm ``epsilon`` and ``momentum`` are not weights: both back ends take them from the IR.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..ir import Layer, Network

__all__ = ["finalize", "keras_to_torch", "torch_to_keras"]

# ---------------------------------------------------------------- layouts
# Each layout converts a Keras array to PyTorch's layout and back; the target shape is given
# (the depthwise inverse needs it to split cin*mult).

Convert = Callable[[np.ndarray, tuple[int, ...]], np.ndarray]


@dataclass(frozen=True)
class _Layout:
    to_torch: Convert
    to_keras: Convert


def _split_channels(a: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """(kh, kw, c*m, 1) -> (kh, kw, c, m) when the sizes agree (else left for the check)."""
    if a.ndim == 4 and len(shape) == 4 and a.shape[:2] == shape[:2] and a.size == np.prod(shape):
        return a.reshape(shape)
    return a


_SAME = _Layout(lambda a, shape: a, lambda a, shape: a)
# (kh, kw, in, out) <-> (out, in, kh, kw); transposed: (kh, kw, out, in) <-> (in, out, kh, kw)
_CONV = _Layout(
    lambda a, shape: a.transpose(3, 2, 0, 1),
    lambda a, shape: a.transpose(2, 3, 1, 0),
)
# (kh, kw, c, m) <-> (c*m, 1, kh, kw): Keras's output channel c*m + m' is PyTorch's
_DEPTHWISE = _Layout(
    lambda a, shape: a.reshape(a.shape[0], a.shape[1], -1, 1).transpose(2, 3, 0, 1),
    lambda a, shape: _split_channels(a.transpose(2, 3, 0, 1), shape),
)
_DENSE = _Layout(lambda a, shape: a.T, lambda a, shape: a.T)


@dataclass(frozen=True)
class _Slot:
    keras: str  # the variable's name in the Keras layer
    torch: str  # the tensor's name in the PyTorch module (state_dict key below the module)
    layout: _Layout


def _slots(layer: Layer) -> list[_Slot] | None:
    """The weights of a node, or None for a kind this module does not know."""
    kind = layer.kind
    if kind in ("conv", "convtranspose", "dwconv", "dense", "pointwise"):
        layout = {"conv": _CONV, "convtranspose": _CONV, "dwconv": _DEPTHWISE}.get(kind, _DENSE)
        bias = [_Slot("bias", "bias", _SAME)] if layer.bias else []
        return [_Slot("kernel", "weight", layout), *bias]
    if kind == "sepconv":
        bias = [_Slot("bias", "pointwise.bias", _SAME)] if layer.bias else []
        return [
            _Slot("depthwise_kernel", "depthwise.weight", _DEPTHWISE),
            _Slot("pointwise_kernel", "pointwise.weight", _CONV),
            *bias,
        ]
    if kind in ("batchnorm", "layernorm"):
        slots = [_Slot("gamma", "weight", _SAME)] if layer.scale else []
        slots += [_Slot("beta", "bias", _SAME)] if layer.center else []
        if kind == "layernorm":
            return slots
        return slots + [
            _Slot("moving_mean", "running_mean", _SAME),
            _Slot("moving_variance", "running_var", _SAME),
        ]
    if kind == "layerscale":
        return [_Slot("gamma", "gamma", _SAME)]
    if kind == "normalization":
        if layer.mean is not None:  # constants, in both frameworks
            return []
        return [_Slot(name, name, _SAME) for name in ("mean", "variance", "count")]
    return None


# ---------------------------------------------------------------- pairing


@dataclass
class _Pair:
    node: Layer
    slot: _Slot
    keras: Any  # the Keras variable
    torch: Any  # the PyTorch tensor (a Parameter or a buffer)
    layer: Any = None  # the Keras layer that holds it


_UNTRACKED = "num_batches_tracked"


def _describe(layer: Layer) -> str:
    return f"layer '{layer.name}' ({layer.notation()})"


def _pairs(net: Network, keras_model, torch_model) -> list[_Pair]:
    """Every weight of both models, paired through the IR; raises ValueError for any weight
    without a counterpart."""
    from .torch import module_paths

    paths = module_paths(net)
    torch_model = getattr(torch_model, "_orig_mod", torch_model)  # torch.compile's wrapper
    state = torch_model.state_dict(keep_vars=True)
    used_torch: set[str] = set()
    used_keras: set[int] = set()
    pairs: list[_Pair] = []
    for layer in net.layers:
        if layer.kind == "input":
            continue
        slots = _slots(layer)
        if slots is None:
            if net.analysis[layer.name].params:
                raise ValueError(f"{_describe(layer)}: no weight mapping for a '{layer.kind}' node")
            slots = []
        try:
            klayer = keras_model.get_layer(layer.name)
        except ValueError:
            klayer = None
        if klayer is None:
            if slots:
                why = f"{_describe(layer)}: the Keras model has no layer of this name"
                if layer.name in net.training_only():
                    why += " (it is built for a training output: build the Keras model with"
                    why += " training_outputs=True)"
                raise ValueError(why)
            kvars = {}
        else:
            kvars = {v.name: v for v in klayer.weights}
        path = paths.get(layer.name)
        if path is None and slots:
            raise ValueError(f"{_describe(layer)}: the PyTorch model has no module for it")
        prefix = f"{path}." if path else None
        tkeys = {k for k in state if prefix and k.startswith(prefix)}
        if slots and not tkeys:
            raise ValueError(f"{_describe(layer)}: the PyTorch model has no module '{path}'")
        for slot in slots:
            if slot.keras not in kvars:
                raise ValueError(
                    f"{_describe(layer)}: the Keras layer has no '{slot.keras}' weight"
                    f" (it has {sorted(kvars) or 'none'})"
                )
            key = prefix + slot.torch
            if key not in state:
                raise ValueError(
                    f"{_describe(layer)}: the PyTorch module '{path}' has no '{slot.torch}'"
                    f" tensor (it has {sorted(k[len(prefix):] for k in tkeys) or 'none'})"
                )
            pairs.append(_Pair(layer, slot, kvars[slot.keras], state[key], klayer))
            used_keras.add(id(kvars[slot.keras]))
            used_torch.add(key)
        extra_keras = [name for name, v in kvars.items() if id(v) not in used_keras]
        extra_torch = [
            k[len(prefix) :] for k in sorted(tkeys - used_torch) if not k.endswith(_UNTRACKED)
        ]
        if extra_keras or extra_torch:
            raise ValueError(
                f"{_describe(layer)}: weights with no counterpart: "
                + "; ".join(
                    part
                    for part in (
                        extra_keras and f"Keras {extra_keras}",
                        extra_torch and f"PyTorch {extra_torch}",
                    )
                    if part
                )
            )
    for v in keras_model.weights:
        if id(v) not in used_keras:
            raise ValueError(f"Keras weight '{v.path}' belongs to no node of network '{net.name}'")
    for key in state:
        if key not in used_torch and not key.endswith(_UNTRACKED):
            raise ValueError(f"PyTorch tensor '{key}' belongs to no node of network '{net.name}'")
    return pairs


def _check(pair: _Pair, source: tuple[int, ...], value: np.ndarray, to_torch: bool) -> None:
    keras_name, torch_name = f"Keras '{pair.slot.keras}'", f"PyTorch '{pair.slot.torch}'"
    given, taken = (keras_name, torch_name) if to_torch else (torch_name, keras_name)
    shape = tuple(pair.torch.shape) if to_torch else tuple(pair.keras.shape)
    if tuple(value.shape) != shape:
        raise ValueError(
            f"{_describe(pair.node)}: {given} {source} is {tuple(value.shape)} in"
            f" {'PyTorch' if to_torch else 'Keras'}'s layout, but {taken} is {shape}"
        )


# ---------------------------------------------------------------- the API


def _in_torch_layout(pair: _Pair) -> np.ndarray:
    """The Keras weight in PyTorch's layout, without its values: the check of every shape comes
    before anything is copied, and holding every converted weight until then was a third copy
    of the model (VGG-16: 553 MB).  (``np.empty`` pages never written take no memory.)"""
    empty = np.empty(tuple(pair.keras.shape), pair.keras.dtype)
    return pair.slot.layout.to_torch(empty, tuple(pair.torch.shape))


def keras_to_torch(net: Network, keras_model, torch_model) -> None:
    """Copy every weight of ``keras_model`` (from ``cnndsl.backends.keras.build(net)``) into
    ``torch_model`` (from ``cnndsl.backends.torch.build(net)``), node by node.

    Raises ValueError, naming the layer, for a weight without a counterpart or of another
    shape; nothing is copied then.  One weight at a time is converted.
    """
    import torch

    pairs = _pairs(net, keras_model, torch_model)
    for pair in pairs:
        _check(pair, tuple(pair.keras.shape), _in_torch_layout(pair), to_torch=True)
    with torch.no_grad():
        for pair in pairs:
            if not _copy_in_slices(pair):
                value = pair.slot.layout.to_torch(np.asarray(pair.keras.numpy()), tuple(pair.torch.shape))
                pair.torch.copy_(torch.from_numpy(np.require(value, requirements="W")))
                del value


_SLICE = 2**24
"""Values a slice of a large Keras weight holds, in :func:`_copy_in_slices`."""


def _copy_in_slices(pair: _Pair) -> bool:
    """Copy a large Keras weight into its PyTorch tensor 16 million values (a slice of its
    first axis) at a time, when the PyTorch tensor seen in Keras's layout is a view of it
    (False, copying nothing, when not): ``numpy()`` of a Keras weight is a whole copy for a
    moment (VGG-16's first dense kernel: 411 MB)."""
    shape = tuple(pair.keras.shape)
    if not shape or int(np.prod(shape)) <= _SLICE:
        return False
    try:
        target = pair.torch.detach().numpy()
    except (TypeError, RuntimeError):  # a dtype numpy lacks (bfloat16)
        return False
    view = pair.slot.layout.to_keras(target, shape)
    if view.shape != shape or not np.shares_memory(view, target):
        return False
    rows = max(1, _SLICE // max(1, int(np.prod(shape[1:]))))
    # A TensorFlow variable that was assigned by slices copies itself whole at every dense read
    # (a slice included); its sparse_read reads the rows alone.
    sparse_read = getattr(pair.keras.value, "sparse_read", None)
    for start in range(0, shape[0], rows):
        stop = min(start + rows, shape[0])
        if sparse_read is not None:
            view[start:stop] = np.asarray(sparse_read(np.arange(start, stop)))
        else:
            view[start:stop] = np.asarray(pair.keras[start:stop])
    return True


def _in_keras_layout(pair: _Pair) -> np.ndarray:
    """The PyTorch tensor in Keras's layout, without its values (:func:`_in_torch_layout`'s
    inverse)."""
    empty = np.empty(tuple(pair.torch.shape), np.float32)
    return pair.slot.layout.to_keras(empty, tuple(pair.keras.shape))


def torch_to_keras(net: Network, torch_model, keras_model) -> None:
    """Copy every weight of ``torch_model`` into ``keras_model`` (the inverse of
    :func:`keras_to_torch`).  PyTorch's ``num_batches_tracked`` is not copied.

    Raises ValueError, naming the layer, for a weight without a counterpart or of another
    shape; nothing is copied then.  One weight at a time is converted (all at once were a
    second copy of the model beside it: a float64 ResNet-152, 480 MB)."""
    import torch

    pairs = _pairs(net, keras_model, torch_model)
    for pair in pairs:
        _check(pair, tuple(pair.torch.shape), _in_keras_layout(pair), to_torch=False)
    for pair in pairs:
        tensor = pair.torch.detach().cpu()
        if tensor.dtype == torch.bfloat16:
            tensor = tensor.float()
        value = pair.slot.layout.to_keras(tensor.numpy(), tuple(pair.keras.shape))
        pair.keras.assign(np.asarray(value, dtype=pair.keras.dtype))
        del value
    finalize(pair.layer for pair in pairs)


def finalize(layers) -> None:
    """Let Keras layers that cache their weights take the values just assigned: a
    ``Normalization`` computes with copies of its mean and variance that ``finalize_state()``
    makes (``load_weights`` calls it; assigning a variable does not)."""
    done: set[int] = set()
    for layer in layers:
        if id(layer) not in done and hasattr(layer, "finalize_state"):
            done.add(id(layer))
            layer.finalize_state()
