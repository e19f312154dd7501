"""The layers of a model as a graph of *units* in one vocabulary, and the structural matching
of two such graphs.

One network can be written in many ways that compute the same function: a cnndsl spec (its IR),
the Keras model cnndsl compiles from it, keras.applications' own model.  Their layer names
differ, and so do their spellings: SAME padding against a ZeroPadding2D before a VALID
convolution, an activation fused into a convolution against an Activation layer after it, a
depthwise convolution against a Conv2D with as many groups as channels, keras.applications'
``ReLU(6.0)(x + 3.0) * (1.0 / 6.0)`` against a hard sigmoid.  :func:`keras_graph` and
:func:`network_graph` reduce a Keras functional model and a cnndsl network to the same
vocabulary, where such spellings become one unit:

============== =========================================================================
unit           settings (what changes the function, beyond the shapes)
============== =========================================================================
input          --
conv           kernel, strides, dilation, pads (the padding the windows actually use,
               ((top, bottom), (left, right)): SAME, VALID, explicit padding and a zero
               padding layer before it all resolve to this), groups, bias
dwconv         kernel, strides, dilation, pads, multiplier, bias (also a Conv2D with
               groups = input channels)
sepconv        kernel, strides, dilation, pads, multiplier, bias
convtranspose  kernel, strides, dilation, padding, output_padding, bias
dense          units, bias (on a vector, or on every position of a map: ``pointwise``)
activation     function, alpha (``relu``, ``relu6``, ``leakyrelu``, ``silu``, ``gelu``,
               ``hardsigmoid``, ``hardswish``, ``softmax`` ...; a fused activation is a
               unit of its own after its layer)
batchnorm      epsilon, momentum, center, scale
layernorm      epsilon, center, scale
normalization  mean, variance (None when they are weights)
rescaling      scale, offset (also ``x + c``, ``x * c`` and InceptionResNetV2's scale)
layerscale     init
maxpool        kernel, strides, pads (padded cells never win: -inf padding, or zero padding
               of a non-negative input)
avgpool        kernel, strides, pads, ceil_mode, count_pad (whether padded cells count)
globalavgpool, globalmaxpool                                          keepdims
adaptiveavgpool  output_size;   depthmaxpool  pool;   lrn  radius, alpha, beta, bias
zeropad, crop  pads, cropping (a zero padding that only feeds a convolution is folded in)
flatten, reshape (target shape), upsample (size, interpolation), split (parts, part),
shuffle (groups), dropout (rate), stochasticdepth (rate, mode; Keras's Dropout with
noise_shape (None, 1, 1, 1) is one)
add, multiply, concat                                                  (merges)
============== =========================================================================

Layers that are the identity at inference and have no weights -- ``identity``, a linear
activation, dropout and stochastic depth of rate 0 -- are no units: their readers read their
input.  A reshape between a vector and a 1x1 map that only feeds a ``multiply`` (which
broadcasts either) is none either.

Each unit also has its output shape and its parameter counts (trainable, non-trainable), which
take part in the matching.

**Matching** (:func:`match`): a unit's *signature* is its kind, settings, output shape,
parameter counts and the signatures of its inputs -- as a multiset for ``add``, ``multiply``
and ``concat``, whose branches may come in any order.  Two graphs describe the same network
when their outputs have equal signatures.  Then the units are paired by a walk back from the
outputs: a unit's inputs are paired in order, a merge's by signature (branches with equal
signatures compute the same function of the same tensor, either pairing holds).  When the
signatures differ, the first unit of the other graph (in its topological order) that has no
counterpart is the divergence, reported with the layers ours has in its place and how they
differ.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from math import prod
from typing import Any

from ..ir.geometry import effective_kernel, same_padding

__all__ = ["Graph", "Matching", "Unit", "keras_graph", "match", "network_graph"]

MERGES = ("add", "multiply", "concat")
WINDOWED = ("conv", "dwconv", "sepconv", "maxpool", "avgpool")
_ZERO_PADS = ((0, 0), (0, 0))
# Activations whose output is never negative: zero padding after them is -inf padding for a
# max pooling.
_NON_NEGATIVE = ("relu", "relu6", "sigmoid", "softmax", "hardsigmoid")


@dataclass
class Unit:
    """One layer of a model in the common vocabulary (see the module docstring).

    ``name`` is the layer (Keras) or node (cnndsl) it comes from, ``source`` how it is written
    there; ``weights`` maps each weight's role (``kernel``, ``bias``, ``gamma``,
    ``moving_mean`` ...) to the Keras variable, for Keras models.  ``in_hw`` is the input's
    height and width for windowed units (their ``pads`` are normalized from it).
    """

    kind: str
    settings: dict[str, Any]
    inputs: list[int]
    shape: tuple[int, ...]
    params: tuple[int, int] = (0, 0)
    name: str = ""
    source: str = ""
    weights: dict[str, Any] = field(default_factory=dict)
    in_hw: tuple[int, int] | None = None

    def describe(self) -> str:
        shape = "x".join(str(d) for d in self.shape)
        params = sum(self.params)
        counts = f", {params:,} parameters" if params else ""
        return f"'{self.name}' ({self.source}) -> {shape}{counts}"


@dataclass
class Graph:
    """A model as units in topological order; ``label`` names the model in messages."""

    units: list[Unit]
    inputs: list[int]
    outputs: list[int]
    label: str

    def consumers(self) -> list[list[int]]:
        result: list[list[int]] = [[] for _ in self.units]
        for i, unit in enumerate(self.units):
            for j in unit.inputs:
                result[j].append(i)
        return result


@dataclass
class Matching:
    """The pairing of two graphs: ``pairs[i]`` is the unit of ``theirs`` paired with unit i of
    ``ours``; ``branches[i]`` gives, for a merge, the position in theirs' inputs of each of
    ours' inputs."""

    ours: Graph
    theirs: Graph
    pairs: dict[int, int]
    branches: dict[int, list[int]]


# ------------------------------------------------------------------------------- building


class _Builder:
    """Collects units; ``value`` maps a layer's (or node's) name to the unit giving its output."""

    def __init__(self, label: str):
        self.units: list[Unit] = []
        self.value: dict[str, int] = {}
        self.label = label

    def add(self, kind, settings, inputs, shape, params=(0, 0), name="", source="", **extra) -> int:
        self.units.append(
            Unit(kind, dict(settings), list(inputs), tuple(shape), tuple(params), name, source, **extra)
        )
        return len(self.units) - 1

    def graph(self, inputs: list[str], outputs: list[str]) -> Graph:
        graph = Graph(self.units, [self.value[n] for n in inputs], [self.value[n] for n in outputs], self.label)
        return _normalized(_simplified(graph))


def _pads(value) -> tuple[tuple[int, int], tuple[int, int]]:
    """Keras's padding/cropping argument (int, (h, w) or ((t, b), (l, r))) as ((t, b), (l, r))."""
    if isinstance(value, int):
        return ((value, value), (value, value))
    h, w = value
    return (
        (h, h) if isinstance(h, int) else (int(h[0]), int(h[1])),
        (w, w) if isinstance(w, int) else (int(w[0]), int(w[1])),
    )


def _resolve(padding, hw, kernel, strides, dilation) -> tuple[tuple[int, int], tuple[int, int]]:
    """'same', 'valid' or explicit pads -> explicit ((top, bottom), (left, right))."""
    if padding == "valid":
        return _ZERO_PADS
    if padding == "same":
        return tuple(  # type: ignore[return-value]
            same_padding(hw[a], effective_kernel(kernel[a], dilation[a]), strides[a]) for a in (0, 1)
        )
    return tuple(tuple(int(v) for v in side) for side in padding)  # type: ignore[return-value]


def _window(kernel, strides, dilation, pads, hw) -> dict[str, Any]:
    return {
        "kernel": tuple(kernel),
        "strides": tuple(strides),
        "dilation": tuple(dilation),
        "pads": pads,
        "_hw": tuple(hw),
    }


# ----------------------------------------------------------------------- from a Keras model


_KERAS_ACTIVATIONS = {
    "relu": ("relu", None),
    "relu6": ("relu6", None),
    "leaky_relu": ("leakyrelu", 0.2),
    "elu": ("elu", 1.0),
    "selu": ("selu", None),
    "tanh": ("tanh", None),
    "sigmoid": ("sigmoid", None),
    "softmax": ("softmax", None),
    "linear": ("linear", None),
    "silu": ("silu", None),
    "swish": ("silu", None),
    "gelu": ("gelu", None),
    "hard_sigmoid": ("hardsigmoid", None),
    "hard_silu": ("hardswish", None),
    "hard_swish": ("hardswish", None),
}
# functions registered by cnndsl's Keras back end (registered_name "cnndsl>NAME")
_CNNDSL_ACTIVATIONS = {"leaky_relu": ("leakyrelu", 0.3), "gelu_tanh": ("gelu_tanh", None)}


def _keras_activation(value) -> tuple[str, float | None]:
    """A Keras activation argument (a name or a serialized function) -> (function, alpha)."""
    if value is None:
        return ("linear", None)
    if isinstance(value, dict):
        registered = value.get("registered_name") or ""
        package, _, fn = registered.partition(">")
        if package == "cnndsl" and fn in _CNNDSL_ACTIVATIONS:
            return _CNNDSL_ACTIVATIONS[fn]
        value = value.get("config", registered)
    if isinstance(value, str) and value in _KERAS_ACTIVATIONS:
        return _KERAS_ACTIVATIONS[value]
    return (f"keras:{value}", None)


def _relu(config) -> tuple[str, float | None]:
    top, slope, threshold = config.get("max_value"), config.get("negative_slope", 0.0), config.get("threshold", 0.0)
    if threshold == 0 and slope == 0 and top is None:
        return ("relu", None)
    if threshold == 0 and slope == 0 and top == 6:
        return ("relu6", None)
    if threshold == 0 and top is None:
        return ("leakyrelu", float(slope))
    return (f"keras:ReLU(max_value={top}, negative_slope={slope}, threshold={threshold})", None)


def _tensor_refs(args) -> list[str]:
    """The names of the layers whose outputs a node's arguments read, in order."""
    refs: list[str] = []
    for arg in args:
        if isinstance(arg, (list, tuple)):
            refs += _tensor_refs(arg)
        elif isinstance(arg, dict) and arg.get("class_name") == "__keras_tensor__":
            name, node_index, tensor_index = arg["config"]["keras_history"]
            if node_index != 0 or tensor_index != 0:
                raise ValueError(f"layer '{name}' is applied more than once or has several outputs")
            refs.append(name)
    return refs


def _constants(args) -> list[Any]:
    return [a for a in args if isinstance(a, (int, float)) and not isinstance(a, bool)]


def _weights(layer) -> tuple[dict[str, Any], tuple[int, int]]:
    """A Keras layer's variables by role (their names; a lone unnamed one is ``gamma``: Keras
    names it ``variable``, ``variable_1``... in the order a session makes them) and its
    parameter counts."""
    variables = list(getattr(layer, "weights", []))
    roles = {v.name: v for v in variables}
    if len(variables) == 1 and re.fullmatch(r"variable(_\d+)?", variables[0].name):
        roles = {"gamma": variables[0]}
    trainable = sum(prod(v.shape) for v in getattr(layer, "trainable_weights", []))
    total = sum(prod(v.shape) for v in variables)
    return roles, (trainable, total - trainable)


def _shape(tensor_shape) -> tuple[int, ...]:
    return tuple(int(d) if d is not None else -1 for d in tuple(tensor_shape)[1:])


def keras_graph(model, label: str = "the Keras model") -> Graph:
    """The units of a Keras functional model (nested Sequential models are expanded).

    The structure is read from ``model.get_config()`` (each layer's inbound tensors), the
    weights and output shapes from the live layers.  Raises ValueError for a layer this module
    cannot describe (it names the layer and its class).
    """
    builder = _Builder(label)
    config = model.get_config()
    operations = {op.name: op for op in model.operations}
    for entry in config["layers"]:
        op = operations[entry["name"]]
        nodes = entry.get("inbound_nodes") or []
        if len(nodes) > 1:
            raise ValueError(f"layer '{op.name}' is applied {len(nodes)} times; cnndsl matches layers applied once")
        args = list(nodes[0]["args"]) if nodes else []
        refs = [builder.value[name] for name in _tensor_refs(args)]
        in_shapes = [builder.units[i].shape for i in refs]
        _keras_units(builder, op, entry["class_name"], entry["config"], refs, in_shapes, _constants(args))
    inputs = [name for name, _, _ in config["input_layers"]] if isinstance(config["input_layers"][0], list) else [config["input_layers"][0]]
    outputs = [name for name, _, _ in config["output_layers"]] if isinstance(config["output_layers"][0], list) else [config["output_layers"][0]]
    return builder.graph(inputs, outputs)


def _keras_units(b: _Builder, op, cls: str, cfg: dict, refs: list[int], in_shapes, constants) -> None:
    """Adds the units of one Keras layer (or operation) reading units ``refs``."""
    name = op.name
    if cls == "Sequential":
        for layer in op.layers:
            shape = in_shapes[0]
            _keras_units(b, layer, type(layer).__name__, layer.get_config(), refs, [shape], [])
            refs = [b.value[layer.name]]
            in_shapes = [b.units[refs[0]].shape]
        b.value[name] = refs[0]
        return
    if cls == "InputLayer":
        shape = tuple(cfg.get("batch_shape") or (None, *cfg["shape"]))[1:]
        b.value[name] = b.add("input", {}, [], shape, name=name, source="InputLayer")
        return
    out = _shape(op.output.shape)
    roles, params = _weights(op)

    def unit(kind, settings, inputs=refs, shape=out, **extra) -> int:
        return b.add(kind, settings, inputs, shape, params, name, cls, weights=roles, **extra)

    def activated(index: int, activation) -> int:
        function, alpha = _keras_activation(activation)
        if function == "linear":
            return index
        return b.add("activation", {"function": function, "alpha": alpha}, [index], out, name=name, source=f"{cls} activation")

    hw = in_shapes[0][:2] if in_shapes and len(in_shapes[0]) == 3 else None
    if cls in ("Conv2D", "DepthwiseConv2D", "SeparableConv2D"):
        kernel, strides, dilation = cfg["kernel_size"], cfg["strides"], cfg["dilation_rate"]
        pads = _resolve(cfg["padding"], hw, kernel, strides, dilation)
        settings = _window(kernel, strides, dilation, pads, hw) | {"bias": bool(cfg["use_bias"])}
        cin = in_shapes[0][-1]
        groups = cfg.get("groups", 1)
        if cls == "Conv2D" and groups > 1 and groups == cin:
            kind, settings["multiplier"] = "dwconv", cfg["filters"] // cin
        elif cls == "Conv2D":
            kind, settings["groups"] = "conv", groups
        elif cls == "DepthwiseConv2D":
            kind, settings["multiplier"] = "dwconv", cfg["depth_multiplier"]
        else:
            kind, settings["multiplier"] = "sepconv", cfg["depth_multiplier"]
        b.value[name] = activated(unit(kind, settings), cfg.get("activation"))
    elif cls == "Conv2DTranspose":
        settings = {
            "kernel": tuple(cfg["kernel_size"]), "strides": tuple(cfg["strides"]),
            "dilation": tuple(cfg["dilation_rate"]), "padding": cfg["padding"],
            "output_padding": tuple(cfg["output_padding"]) if cfg.get("output_padding") else None,
            "bias": bool(cfg["use_bias"]),
        }
        b.value[name] = activated(unit("convtranspose", settings), cfg.get("activation"))
    elif cls == "Dense":
        settings = {"units": cfg["units"], "bias": bool(cfg["use_bias"])}
        b.value[name] = activated(unit("dense", settings), cfg.get("activation"))
    elif cls == "BatchNormalization":
        _check_last_axis(name, cfg["axis"], len(in_shapes[0]))
        keys = ("epsilon", "momentum", "center", "scale")
        b.value[name] = unit("batchnorm", {k: cfg[k] for k in keys})
    elif cls == "LayerNormalization":
        _check_last_axis(name, cfg["axis"], len(in_shapes[0]))
        if cfg.get("rms_scaling"):
            raise ValueError(f"layer '{name}' (LayerNormalization with rms_scaling) has no cnndsl kind")
        b.value[name] = unit("layernorm", {k: cfg[k] for k in ("epsilon", "center", "scale")})
    elif cls == "Normalization":
        _check_last_axis(name, cfg["axis"], len(in_shapes[0]))
        if cfg.get("invert"):
            raise ValueError(f"layer '{name}' (Normalization with invert) has no cnndsl kind")
        b.value[name] = unit("normalization", {"mean": _values(cfg.get("mean")), "variance": _values(cfg.get("variance"))})
    elif cls == "Rescaling":
        b.value[name] = unit("rescaling", {"scale": _values(cfg["scale"]), "offset": _values(cfg["offset"])})
    elif cls in ("MaxPooling2D", "AveragePooling2D"):
        kernel, strides = cfg["pool_size"], cfg["strides"] or cfg["pool_size"]
        pads = _resolve(cfg["padding"], hw, kernel, strides, (1, 1))
        settings = _window(kernel, strides, (1, 1), pads, hw)
        if cls == "AveragePooling2D":
            settings |= {"ceil_mode": False, "count_pad": False if cfg["padding"] == "same" else None}
        b.value[name] = unit("maxpool" if cls == "MaxPooling2D" else "avgpool", settings)
    elif cls in ("GlobalAveragePooling2D", "GlobalMaxPooling2D"):
        kind = "globalavgpool" if cls == "GlobalAveragePooling2D" else "globalmaxpool"
        b.value[name] = unit(kind, {"keepdims": bool(cfg.get("keepdims", False))})
    elif cls == "ZeroPadding2D":
        b.value[name] = unit("zeropad", {"pads": _pads(cfg["padding"])})
    elif cls == "Cropping2D":
        b.value[name] = unit("crop", {"cropping": _pads(cfg["cropping"])})
    elif cls == "Flatten":
        b.value[name] = unit("flatten", {})
    elif cls == "Reshape":
        b.value[name] = unit("reshape", {})
    elif cls == "Dropout":
        rate = float(cfg["rate"])
        noise = tuple(cfg.get("noise_shape") or ())
        if rate == 0:
            b.value[name] = refs[0]
        elif noise and all(d == 1 for d in noise[1:]):
            b.value[name] = unit("stochasticdepth", {"rate": rate, "mode": "row"})
        else:
            b.value[name] = unit("dropout", {"rate": rate})
    elif cls == "Activation":
        function, alpha = _keras_activation(cfg["activation"])
        b.value[name] = refs[0] if function == "linear" else unit("activation", {"function": function, "alpha": alpha})
    elif cls == "ReLU":
        function, alpha = _relu(cfg)
        b.value[name] = unit("activation", {"function": function, "alpha": alpha})
    elif cls == "LeakyReLU":
        b.value[name] = unit("activation", {"function": "leakyrelu", "alpha": float(cfg["negative_slope"])})
    elif cls == "ELU":
        b.value[name] = unit("activation", {"function": "elu", "alpha": float(cfg["alpha"])})
    elif cls == "Softmax":
        _check_last_axis(name, cfg.get("axis", -1), len(out))
        b.value[name] = unit("activation", {"function": "softmax", "alpha": None})
    elif cls in ("Add", "Multiply", "Subtract", "TrueDivide", "Divide") and constants and len(refs) == 1:
        # keras.ops arithmetic with a constant on a KerasTensor: x + c, x * c, x - c, x / c
        c = float(constants[0])
        scale, offset = {"Add": (1.0, c), "Multiply": (c, 0.0), "Subtract": (1.0, -c)}.get(cls, (1.0 / c, 0.0))
        b.value[name] = unit("rescaling", {"scale": scale, "offset": offset})
    elif cls in ("Add", "Multiply") and len(refs) >= 2:
        b.value[name] = unit(cls.lower(), {})
    elif cls == "Concatenate":
        _check_last_axis(name, cfg["axis"], len(out))
        b.value[name] = unit("concat", {})
    elif cls == "CustomScaleLayer":  # keras.applications' InceptionResNetV2: x + r * scale
        scaled = b.add("rescaling", {"scale": float(cfg["scale"]), "offset": 0.0}, [refs[1]], in_shapes[1], name=name, source=cls)
        b.value[name] = unit("add", {}, inputs=[refs[0], scaled])
    elif cls == "LayerScale":  # keras.applications' ConvNeXt
        b.value[name] = unit("layerscale", {"init": float(cfg["init_values"])})
    elif cls == "StochasticDepth":  # keras.applications' ConvNeXt
        rate = float(cfg["drop_path_rate"])
        b.value[name] = unit("stochasticdepth", {"rate": rate, "mode": "row"}) if rate else refs[0]
    elif cls == "UpSampling2D":
        b.value[name] = unit("upsample", {"size": tuple(cfg["size"]), "interpolation": cfg["interpolation"]})
    elif cls == "NegInfPadding2D":  # cnndsl's: folded into the max pooling after it
        b.value[name] = unit("neginfpad", {"pads": _pads(cfg["padding"])})
    elif cls == "PaddedAveragePooling2D":  # cnndsl's: PyTorch's padded average pooling
        kernel, strides = cfg["pool_size"], cfg["strides"]
        pads = _pads(cfg["padding"])
        count = bool(cfg["count_include_pad"]) if pads != _ZERO_PADS else None
        settings = _window(kernel, strides, (1, 1), pads, hw) | {"ceil_mode": bool(cfg["ceil_mode"]), "count_pad": count}
        b.value[name] = unit("avgpool", settings)
    elif cls == "LocalResponseNormalization":  # cnndsl's
        keys = ("depth_radius", "alpha", "beta", "bias")
        b.value[name] = unit("lrn", {k.replace("depth_", ""): float(cfg[k]) for k in keys})
    elif cls == "DepthMaxPooling2D":  # cnndsl's
        b.value[name] = unit("depthmaxpool", {"pool": int(cfg["pool_size"])})
    else:
        raise ValueError(f"layer '{name}' ({cls}) has no counterpart among cnndsl's layer kinds")


def _check_last_axis(name: str, axis, rank: int) -> None:
    axes = tuple(axis) if isinstance(axis, (list, tuple)) else (axis,)
    if len(axes) != 1 or axes[0] not in (-1, rank):
        raise ValueError(f"layer '{name}' works on axis {axis}; cnndsl's layers work on the channels (the last axis)")


def _values(value):
    """A number or a list of numbers (one per channel) as a float or a tuple of floats."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        values = tuple(float(v) for v in value)
        return values[0] if len(set(values)) == 1 else values
    return float(value)


# ------------------------------------------------------------------- from a cnndsl network


def network_graph(net, label: str | None = None) -> Graph:
    """The units of a cnndsl network, from its IR and analysis (no framework is imported)."""
    from ..ir import geometry  # noqa: F401  (the IR's own arithmetic resolves the padding)

    builder = _Builder(label or f"cnndsl's network '{net.name}'")
    analysis = net.analysis
    for layer in net.layers:
        info = analysis[layer.name]
        refs = [builder.value[name] for name in layer.inputs]
        _network_units(builder, layer, info, refs)
    return builder.graph([layer.name for layer in net.inputs], list(net.outputs))


def _network_units(b: _Builder, layer, info, refs: list[int]) -> None:
    kind, name = layer.kind, layer.name
    where = f"{layer.notation()}, {_position(layer)}"
    out = tuple(info.output_shape)
    params = (info.trainable_params, info.non_trainable_params)
    in_shapes = [tuple(s) for s in info.input_shapes]
    hw = in_shapes[0][:2] if in_shapes and len(in_shapes[0]) == 3 else None

    def unit(kind, settings, inputs=refs, shape=out) -> int:
        return b.add(kind, settings, inputs, shape, params, name, where)

    def activated(index: int) -> int:
        function = getattr(layer, "activation", "linear")
        if function == "linear":
            return index
        alpha = {"leakyrelu": 0.3, "elu": 1.0}.get(function)
        return b.add("activation", {"function": function, "alpha": alpha}, [index], out, name=name, source=where)

    if kind == "input":
        b.value[name] = b.add("input", {}, [], tuple(layer.shape), name=name, source=where)
    elif kind in ("conv", "dwconv", "sepconv"):
        pads = layer.explicit_padding(list(info.input_shapes))
        settings = _window(layer.kernel, layer.stride, layer.dilation, pads, hw) | {"bias": bool(layer.bias)}
        cin = in_shapes[0][-1]
        if kind == "conv" and layer.groups > 1 and layer.groups == cin:
            kind, settings["multiplier"] = "dwconv", layer.filters // cin
        elif kind == "conv":
            settings["groups"] = layer.groups
        else:
            settings["multiplier"] = layer.depth_multiplier
        b.value[name] = activated(unit(kind, settings))
    elif kind == "convtranspose":
        padding = layer.padding if isinstance(layer.padding, str) else tuple(layer.padding)
        settings = {
            "kernel": tuple(layer.kernel), "strides": tuple(layer.stride), "dilation": tuple(layer.dilation),
            "padding": padding, "output_padding": layer.output_padding, "bias": bool(layer.bias),
        }
        b.value[name] = activated(unit("convtranspose", settings))
    elif kind in ("dense", "pointwise"):
        b.value[name] = activated(unit("dense", {"units": layer.units, "bias": bool(layer.bias)}))
    elif kind == "batchnorm":
        keys = ("epsilon", "momentum", "center", "scale")
        b.value[name] = unit("batchnorm", {k: getattr(layer, k) for k in keys})
    elif kind == "layernorm":
        b.value[name] = unit("layernorm", {k: getattr(layer, k) for k in ("epsilon", "center", "scale")})
    elif kind == "normalization":
        b.value[name] = unit("normalization", {"mean": _values(layer.mean), "variance": _values(layer.variance)})
    elif kind == "rescaling":
        b.value[name] = unit("rescaling", {"scale": _values(layer.scale), "offset": _values(layer.offset)})
    elif kind == "layerscale":
        b.value[name] = unit("layerscale", {"init": float(layer.init)})
    elif kind in ("maxpool", "avgpool"):
        pads = layer.explicit_padding(list(info.input_shapes))
        settings = _window(layer.kernel, layer.stride, (1, 1), pads, hw)
        if kind == "avgpool":
            count = bool(layer.include_pad) if pads != _ZERO_PADS else None
            settings |= {"ceil_mode": bool(layer.ceil_mode), "count_pad": count}
        b.value[name] = unit(kind, settings)
    elif kind in ("globalavgpool", "globalmaxpool"):
        b.value[name] = unit(kind, {"keepdims": bool(layer.keepdims)})
    elif kind == "adaptiveavgpool":
        b.value[name] = unit(kind, {"output_size": tuple(layer.output_size)})
    elif kind == "depthmaxpool":
        b.value[name] = unit(kind, {"pool": layer.pool})
    elif kind == "lrn":
        b.value[name] = unit(kind, {k: float(getattr(layer, k)) for k in ("radius", "alpha", "beta", "bias")})
    elif kind == "zeropad":
        b.value[name] = unit(kind, {"pads": tuple(tuple(s) for s in layer.padding)})
    elif kind == "crop":
        b.value[name] = unit(kind, {"cropping": tuple(tuple(s) for s in layer.cropping)})
    elif kind in ("flatten", "reshape", "add", "multiply", "concat"):
        b.value[name] = unit(kind, {})
    elif kind == "upsample":
        b.value[name] = unit(kind, {"size": tuple(layer.size), "interpolation": layer.interpolation})
    elif kind == "split":
        b.value[name] = unit(kind, {"parts": layer.parts, "part": layer.part})
    elif kind == "shuffle":
        b.value[name] = unit(kind, {"groups": layer.groups})
    elif kind == "dropout":
        b.value[name] = unit(kind, {"rate": float(layer.rate)}) if layer.rate else refs[0]
    elif kind == "stochasticdepth":
        settings = {"rate": float(layer.rate), "mode": layer.mode}
        b.value[name] = unit(kind, settings) if layer.rate else refs[0]
    elif kind == "activation":
        if layer.function == "linear":
            b.value[name] = refs[0]
        else:
            b.value[name] = unit(kind, {"function": layer.function, "alpha": layer.alpha})
    elif kind == "identity":
        b.value[name] = refs[0]
    else:
        raise ValueError(f"layer '{name}' ({where}): no unit for a '{kind}' node")


def _position(layer) -> str:
    position = getattr(layer, "position", None)
    if position is None:
        return "?"
    file = str(position.file).rsplit("/", 1)[-1]
    return f"{file}:{position.line}"


# ------------------------------------------------------------------------- simplification


def _simplified(graph: Graph) -> Graph:
    """Folds the spellings of one function into one unit: zero padding into the convolution
    (or average pooling, or max pooling of a non-negative input) that alone reads it, -inf
    padding into its max pooling, ``ReLU6(x + 3) * (1/6)`` into a hard sigmoid, a reshape
    between a vector and a 1x1 map into the ``multiply`` that alone reads it."""
    units = graph.units
    readers = graph.consumers()
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
        if unit.kind not in ("zeropad", "neginfpad", "reshape") or len(readers[i]) != 1:
            continue
        reader = units[readers[i][0]]
        if unit.kind == "reshape":
            if reader.kind == "multiply" and _vector_or_1x1(units[unit.inputs[0]].shape, unit.shape):
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
    return Graph(result, [index[source(i)] for i in graph.inputs], [index[source(i)] for i in graph.outputs], graph.label)


def _folds(units: list[Unit], pad: Unit, reader: Unit) -> bool:
    if reader.kind in ("conv", "dwconv", "sepconv"):
        return pad.kind == "zeropad"
    if reader.kind == "maxpool":
        if pad.kind == "neginfpad":
            return True
        before = units[pad.inputs[0]]
        return before.kind == "activation" and before.settings["function"] in _NON_NEGATIVE
    if reader.kind == "avgpool":
        return pad.kind == "zeropad" and reader.settings["count_pad"] in (None, True) and not reader.settings["ceil_mode"]
    return False


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
    flat = lambda s: s if len(s) == 1 else (s[2],) if len(s) == 3 and s[:2] == (1, 1) else None  # noqa: E731
    return flat(a) is not None and flat(a) == flat(b)


def _normalized(graph: Graph) -> Graph:
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
        dilation = settings.pop("dilation") if unit.kind in ("maxpool", "avgpool") else settings["dilation"]
        declared = settings["pads"]
        pads = []
        for a in (0, 1):
            before = declared[a][0]
            end = (unit.shape[a] - 1) * strides[a] + effective_kernel(kernel[a], dilation[a])
            pads.append((before, end - hw[a] - before))
        settings["pads"] = tuple(pads)
        if unit.kind == "avgpool":
            settings["ceil_mode"] = settings["ceil_mode"] and any(
                pads[a][1] > declared[a][1] for a in (0, 1)
            )
    return graph


# ------------------------------------------------------------------------------- matching


def _frozen(value) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return float(f"{value:.6g}")
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(v) for v in value)
    return repr(value)


def _key(unit: Unit) -> tuple:
    settings = tuple(sorted((k, _frozen(v)) for k, v in unit.settings.items()))
    return (unit.kind, settings, unit.shape, unit.params)


def _signatures(graph: Graph, table: dict) -> list[int]:
    sigs: list[int] = []
    for unit in graph.units:
        inputs = tuple(sigs[j] for j in unit.inputs)
        if unit.kind in MERGES:
            inputs = tuple(sorted(inputs))
        sigs.append(table.setdefault((_key(unit), inputs), len(table)))
    return sigs


def match(ours: Graph, theirs: Graph) -> Matching:
    """Pairs every unit of ``ours`` with one of ``theirs`` (see the module docstring); raises
    ValueError naming the first divergence."""
    table: dict = {}
    s_ours, s_theirs = _signatures(ours, table), _signatures(theirs, table)
    for what, a, b in (("inputs", ours.inputs, theirs.inputs), ("outputs", ours.outputs, theirs.outputs)):
        if len(a) != len(b):
            raise ValueError(f"{ours.label} has {len(a)} {what}, {theirs.label} {len(b)}")
    if any(s_ours[o] != s_theirs[t] for o, t in zip(ours.outputs, theirs.outputs)):
        raise ValueError(_divergence(ours, theirs, s_ours, s_theirs))
    pairs: dict[int, int] = {}
    taken: dict[int, int] = {}
    branches: dict[int, list[int]] = {}
    stack = list(zip(ours.outputs, theirs.outputs))
    while stack:
        o, t = stack.pop()
        if o in pairs or t in taken:
            if pairs.get(o) != t or taken.get(t) != o:
                a = ours.units[o] if o in pairs else ours.units[taken[t]]
                raise ValueError(
                    f"the models diverge in how they share layers: {ours.label}'s {a.describe()}"
                    f" stands for several layers of {theirs.label}, or the other way round"
                    f" ({theirs.label}'s {theirs.units[t].describe()})"
                )
            continue
        pairs[o], taken[t] = t, o
        ins_o, ins_t = ours.units[o].inputs, theirs.units[t].inputs
        if ours.units[o].kind in MERGES:
            free = list(range(len(ins_t)))
            order = []
            for j in ins_o:
                k = next(k for k in free if s_theirs[ins_t[k]] == s_ours[j])
                free.remove(k)
                order.append(k)
            branches[o] = order
            stack += [(j, ins_t[k]) for j, k in zip(ins_o, order)]
        else:
            stack += list(zip(ins_o, ins_t))
    for graph, done in ((ours, pairs), (theirs, taken)):
        left = [u for i, u in enumerate(graph.units) if i not in done]
        if left:
            raise ValueError(f"{graph.label}'s {left[0].describe()} reaches no output")
    return Matching(ours, theirs, pairs, branches)


def _divergence(ours: Graph, theirs: Graph, s_ours: list[int], s_theirs: list[int]) -> str:
    """The message for two graphs whose outputs differ: the first unit of theirs with no
    counterpart in ours (in theirs' order), and what ours has in its place."""
    first_t = _first_missing(theirs, s_theirs, s_ours)
    first_o = _first_missing(ours, s_ours, s_theirs)
    if first_t is None and first_o is None:  # every unit has a counterpart: the outputs differ
        return f"the models' outputs differ: {_at(ours, ours.units[ours.outputs[0]])}"
    if first_t is None:
        return (
            f"the models diverge at {_at(ours, ours.units[first_o])}, which has no counterpart"
            f" in {theirs.label}"
        )
    unit = theirs.units[first_t]
    lines = [f"the models diverge at {_at(theirs, unit)}"]
    wanted = sorted(s_theirs[j] for j in unit.inputs)
    if unit.inputs:
        candidates = [u for u in ours.units if u.inputs and sorted(s_ours[j] for j in u.inputs) == wanted]
    else:
        candidates = [ours.units[i] for i in ours.inputs]
    if candidates:
        lines.append(f"  {ours.label} has there:")
        lines += [f"    {c.describe()}: {_differences(c, unit)}" for c in candidates[:4]]
    else:
        lines.append(f"  {ours.label} has no layer that reads the same input")
    return "\n".join(lines)


def _at(graph: Graph, unit: Unit) -> str:
    shape = "x".join(str(d) for d in unit.shape)
    params = f", {sum(unit.params):,} parameters" if sum(unit.params) else ""
    reads = ", ".join(f"'{graph.units[j].name}'" for j in unit.inputs)
    reads = f", reading {reads}" if reads else ""
    return f"'{unit.name}' of {graph.label} ({unit.source} -> {shape}{params}{reads})"


def _first_missing(graph: Graph, sigs: list[int], other: list[int]) -> int | None:
    available = Counter(other)
    for i in range(len(graph.units)):
        if available[sigs[i]] > 0:
            available[sigs[i]] -= 1
        else:
            return i
    return None


def _differences(a: Unit, b: Unit) -> str:
    if a.kind != b.kind:
        return f"a {a.kind} against a {b.kind}"
    parts = []
    for key in sorted(set(a.settings) | set(b.settings)):
        x, y = a.settings.get(key), b.settings.get(key)
        if _frozen(x) != _frozen(y):
            parts.append(f"{key} {x} against {y}")
    if a.shape != b.shape:
        parts.append(f"output {a.shape} against {b.shape}")
    if a.params != b.params:
        parts.append(f"parameters (trainable, not) {a.params} against {b.params}")
    return "; ".join(parts) or "the same layer, after a different input"
