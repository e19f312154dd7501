"""Weights of keras.applications models (or any Keras functional model of the same
architecture) into cnndsl's Keras models.

:func:`load_keras_applications` copies the weights of a Keras model -- keras.applications'
``ResNet50(weights=...)`` or any functional model -- into a cnndsl Keras model of the same
network (``net.to_keras()``, or the ``build_model()`` of the file ``cnndsl compile --target
keras`` writes), so that both compute the same function, and says where the two differ when
they do not.  :func:`match_keras_applications` is its first half, the pairing of the two
models' layers, which also takes a cnndsl network (its IR, no framework model) and is what the
zoo's tests use to compare every layer's shape and parameters.

The layers are matched through the graph structure (:mod:`cnndsl.backends.unitgraph`), never
by name or by the order of the weights: each model is reduced to units in one vocabulary --
kind, the settings that change the function (epsilon, momentum, padding, strides, dilation,
groups, activation, use_bias, ...), output shape and parameter counts -- and the units are
paired by their place in the graph.  The branches of an ``add`` or a ``concat`` may come in
any order: each branch is paired with the one that computes the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..ir import Network
from .transfer import finalize
from .unitgraph import Graph, Matching, Unit, keras_graph, match, network_graph

__all__ = ["Pair", "load_keras_applications", "match_keras_applications"]

REFERENCE = "keras.applications' model"


@dataclass
class Pair:
    """A unit of our model (``ours``) and the reference's unit it corresponds to."""

    ours: Unit
    theirs: Unit


def match_keras_applications(model, reference, *, label: str = REFERENCE) -> list[Pair]:
    """Pairs every layer of ``model`` -- a cnndsl :class:`~cnndsl.ir.Network` or a Keras
    functional model -- with the layer of ``reference`` (a Keras functional model) it
    corresponds to, as :func:`load_keras_applications` pairs them; the units are in ``model``'s
    order.  Raises ``ValueError`` naming the first layer where the two differ: its kind,
    settings, output shape or parameter counts, with what ``model`` has in its place."""
    matching = _matching(model, reference, label)
    return [
        Pair(matching.ours.units[o], matching.theirs.units[t])
        for o, t in sorted(matching.pairs.items())
    ]


def load_keras_applications(model, reference, *, label: str = REFERENCE) -> dict[str, str]:
    """Copy the weights of ``reference`` (keras.applications' model, or any Keras functional
    model of the same architecture) into ``model`` (``net.to_keras()``, or ``build_model()``
    of a generated file); returns {our layer: the reference's layer} for the layers with
    weights.  Raises ``ValueError`` naming the first place where the two models differ;
    nothing is copied then.

    How layers are matched -- by the graph's structure, not by names (cnndsl's follow the spec,
    ``conv2_bottleneck_1_conv_1``; keras.applications' its code, ``conv2_block1_1_conv``) nor by
    the order of ``get_weights()`` (which follows the order of the branches of every merge):

    - each model is reduced to *units* (:mod:`cnndsl.backends.unitgraph`): a layer with its
      kind, the settings that change its function, its output shape and parameter counts.
      Spellings of one function become one unit: SAME padding and a ZeroPadding2D before a
      VALID convolution; an activation fused into a layer and an Activation layer after it;
      a depthwise convolution and a Conv2D with as many groups as channels; ``x + 3.0``,
      ``x * c`` and keras.applications' residual scale as ``rescaling``; ``ReLU6(x + 3) / 6``
      as ``hardsigmoid``.  Identities (linear activations, dropout of rate 0) are no units;
    - the units are paired by a walk back from the outputs, each unit's inputs with the
      reference's; an ``add``, ``multiply`` or ``concat`` pairs its branches by what they
      compute, in whatever order each model lists them.  Two models whose graphs differ
      anywhere -- a kind, a setting (batch-norm epsilon or momentum, strides, padding,
      dilation, groups, an activation, a bias), a shape, a parameter count, a missing or extra
      layer -- raise ``ValueError`` at the first layer of the reference (in its order) that
      has no counterpart, listing what ``model`` has there and how it differs;
    - weights are copied by role (kernel, bias, gamma, beta, moving statistics, ...), each
      checked for shape.  Where the branches of a ``concat`` come in another order, its output
      channels do too: the weights of the layers that read them (their input channels: a
      convolution's or dense layer's kernel, a batch norm's vectors ...) are permuted to
      match, so that the loaded model computes the reference's function; then each loaded
      layer's ``finalize_state()`` runs, as in Keras's ``load_weights`` (a ``Normalization``
      computes with copies of its mean and variance that only it refreshes).
    """
    matching = _matching(model, reference, label)
    orders = _channel_orders(matching)
    copies: list[tuple[Unit, Unit, Any]] = []
    mapping: dict[str, str] = {}
    for o, t in sorted(matching.pairs.items()):
        ours, theirs = matching.ours.units[o], matching.theirs.units[t]
        if not ours.weights and not theirs.weights:
            continue
        _check_weights(ours, theirs, label)
        copies.append((ours, theirs, orders.get(ours.inputs[0]) if ours.inputs else None))
        mapping[ours.name] = theirs.name
    _check_every_weight(model, reference, [u for u, _, _ in copies], matching, label)
    # every check is done: nothing can fail from here, so a failed load leaves the model as it was
    for ours, theirs, order in copies:
        for role, variable in ours.weights.items():
            value = np.asarray(theirs.weights[role].numpy())
            value = _reordered(ours, role, value, order, tuple(variable.shape))
            variable.assign(value.astype(variable.dtype))
    # a Normalization computes with copies of its mean and variance: refresh them, as Keras's
    # load_weights does (it would keep computing with 0 and 1 whatever its weights say)
    finalize(model.get_layer(ours.name) for ours, _, _ in copies)
    return mapping


def _check_every_weight(
    model, reference, units: list[Unit], matching: Matching, label: str
) -> None:
    """Every variable of both models belongs to a paired unit (a layer whose weights no unit
    holds would otherwise keep its values silently)."""
    written = {id(v) for unit in units for v in unit.weights.values()}
    read = {
        id(v) for t in matching.pairs.values() for v in matching.theirs.units[t].weights.values()
    }
    for what, variables, done in (
        ("cnndsl's model", model.weights, written),
        (label, reference.weights, read),
    ):
        left = [v.path for v in variables if id(v) not in done]
        if left:
            raise ValueError(
                f"cannot load: the weight '{left[0]}' of {what} belongs to no matched layer"
            )


def _matching(model, reference, label: str) -> Matching:
    if isinstance(model, Network):
        ours: Graph = network_graph(model)
    else:
        ours = keras_graph(model, "cnndsl's model")
    return match(ours, keras_graph(reference, label))


# ------------------------------------------------------------------------ channel orders


def _channels(unit: Unit) -> int:
    return unit.shape[-1]


def _expand(order: np.ndarray, multiplier: int) -> np.ndarray:
    """Input channel order -> the order of a depthwise layer's output (channel c*m + k)."""
    return (order[:, None] * multiplier + np.arange(multiplier)[None, :]).reshape(-1)


_PASS_THROUGH = {
    "batchnorm",
    "layernorm",
    "layerscale",
    "normalization",
    "rescaling",
    "activation",
    "maxpool",
    "avgpool",
    "globalavgpool",
    "globalmaxpool",
    "adaptiveavgpool",
    "dropout",
    "stochasticdepth",
    "zeropad",
    "crop",
    "upsample",
}
_MIXING = {"conv", "dense", "sepconv", "convtranspose"}


def _channel_orders(matching: Matching) -> dict[int, np.ndarray | None]:
    """For each unit of ours, the order of its output channels against the reference's:
    ``order[j]`` is the reference's channel that our channel j holds (None: the same order).
    Only a ``concat`` whose branches come in another order makes one; the layers after it
    carry it until a convolution or dense layer absorbs it into its weights."""
    ours, theirs = matching.ours, matching.theirs
    orders: dict[int, np.ndarray | None] = {}
    for o, unit in enumerate(ours.units):
        ins = [orders.get(j) for j in unit.inputs]
        first = ins[0] if ins else None
        kind = unit.kind
        if kind == "concat":
            t = theirs.units[matching.pairs[o]]
            offsets = np.cumsum([0] + [_channels(theirs.units[k]) for k in t.inputs])
            parts = []
            for j, position, order in zip(unit.inputs, matching.branches[o], ins):
                n = _channels(ours.units[j])
                inner = np.arange(n) if order is None else order
                parts.append(offsets[position] + inner)
            result = np.concatenate(parts)
            orders[o] = None if np.array_equal(result, np.arange(len(result))) else result
        elif kind in ("add", "multiply"):
            known = [order for order in ins if order is not None]
            if known and (
                len(known) < len(ins) or any(not np.array_equal(known[0], k) for k in known)
            ):
                raise ValueError(
                    f"cannot load: the inputs of {unit.describe()} hold their channels in"
                    " different orders against the reference's (a concatenation upstream lists"
                    " its branches in another order on one path only)"
                )
            orders[o] = first
        elif first is None or kind in _MIXING and unit.settings.get("groups", 1) == 1:
            orders[o] = None
        elif kind == "dwconv":
            orders[o] = _expand(first, unit.settings["multiplier"])
        elif kind == "flatten":
            h, w, c = ours.units[unit.inputs[0]].shape
            orders[o] = (np.arange(h * w)[:, None] * c + first[None, :]).reshape(-1)
        elif kind == "reshape" and _channels(unit) == len(first):
            orders[o] = first
        elif kind in _PASS_THROUGH and not _per_channel_constants(unit):
            orders[o] = first
        else:
            raise ValueError(
                f"cannot load: {unit.describe()} reads channels in another order than the"
                " reference's layer (a concatenation upstream lists its branches in another"
                " order), and cnndsl cannot reorder them through this layer"
            )
    return orders


def _per_channel_constants(unit: Unit) -> bool:
    return any(
        isinstance(unit.settings.get(k), tuple) for k in ("scale", "offset", "mean", "variance")
    )


# ------------------------------------------------------------------------------- weights


def _check_weights(ours: Unit, theirs: Unit, label: str) -> None:
    """The two units hold weights of the same roles and sizes (a depthwise kernel may be laid
    out (kh, kw, C, m) on one side, (kh, kw, 1, C*m) on the other; reordering channels keeps
    every shape)."""
    if set(ours.weights) != set(theirs.weights):
        raise ValueError(
            f"cannot load {ours.describe()}: its weights are {sorted(ours.weights) or 'none'},"
            f" those of {label}'s {theirs.describe()} {sorted(theirs.weights) or 'none'}"
        )
    for role, variable in ours.weights.items():
        mine, given = tuple(variable.shape), tuple(theirs.weights[role].shape)
        relaid = ours.kind == "dwconv" and role == "kernel" and np.prod(mine) == np.prod(given)
        if mine != given and not relaid:
            raise ValueError(
                f"cannot load {ours.describe()}: its {role} is {mine}, that of {label}'s"
                f" {theirs.describe()} {given}"
            )


def _reordered(unit: Unit, role: str, value: np.ndarray, order, shape) -> np.ndarray:
    """The reference's weight in our layout, its input channels in our order."""
    kind = unit.kind
    if kind == "dwconv" and role == "kernel" and value.size == int(np.prod(shape)):
        kh, kw = value.shape[:2]
        value = value.reshape(kh, kw, -1, unit.settings["multiplier"])  # (kh, kw, C, m)
        if order is not None:
            value = value[:, :, order, :]
        return value.reshape(shape)
    if order is None or role == "count":
        return value
    if (kind, role) in (("conv", "kernel"), ("sepconv", "depthwise_kernel")):
        return value[:, :, order, :]
    if kind == "sepconv" and role == "pointwise_kernel":
        return value[:, :, _expand(order, unit.settings["multiplier"]), :]
    if kind == "convtranspose" and role == "kernel":
        return value[:, :, :, order]
    if kind == "dense" and role == "kernel":
        return value[order, :]
    if kind == "dwconv" and role == "bias":
        return value[_expand(order, unit.settings["multiplier"])]
    if kind in _MIXING:  # a bias: of the output channels, in the reference's order
        return value
    return value[order]
