"""A Keras functional model as units: one handler per Keras layer class.

The structure is read from ``model.get_config()`` (each layer's inbound tensors and constant
arguments), the weights and output shapes from the live layers (``model.operations``).  Nested
``Sequential`` models are expanded into their layers.  Keras is not imported here: the model
brings it.
"""

from __future__ import annotations

import re

from collections.abc import Callable
from dataclasses import dataclass
from math import prod
from typing import Any

from ...ir.geometry import transposed_output
from .units import ZERO_PADS, Builder, Graph, Unit, pads, resolve, transposed, values, window

__all__ = ["KERAS_HANDLERS", "keras_graph"]

# Keras activation names -> (cnndsl's function, alpha)
_ACTIVATIONS = {
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


def keras_graph(model, label: str = "the Keras model") -> Graph:
    """The units of a Keras functional model.  Raises ValueError for a layer that has no
    counterpart among cnndsl's kinds (naming the layer and its class), or one applied twice."""
    builder = Builder(label)
    config = model.get_config()
    operations = {op.name: op for op in model.operations}
    for entry in config["layers"]:
        nodes = entry.get("inbound_nodes") or []
        if len(nodes) > 1:
            raise ValueError(
                f"layer '{entry['name']}' is applied {len(nodes)} times; cnndsl matches layers"
                " applied once"
            )
        args = list(nodes[0]["args"]) if nodes else []
        refs = [builder.value[name] for name in _tensor_refs(args)]
        op = operations[entry["name"]]
        _add(builder, op, entry["class_name"], entry["config"], refs, _constants(args))
    return builder.graph(_names(config["input_layers"]), _names(config["output_layers"]))


def _names(layers) -> list[str]:
    """``input_layers`` / ``output_layers`` of a config: one [name, node, tensor] or a list."""
    return [layers[0]] if isinstance(layers[0], str) else [entry[0] for entry in layers]


def _tensor_refs(args) -> list[str]:
    """The names of the layers whose outputs a node's arguments read, in order."""
    refs: list[str] = []
    for arg in args:
        if isinstance(arg, (list, tuple)):
            refs += _tensor_refs(arg)
        elif isinstance(arg, dict) and arg.get("class_name") == "__keras_tensor__":
            name, node_index, tensor_index = arg["config"]["keras_history"]
            if node_index != 0 or tensor_index != 0:
                raise ValueError(f"layer '{name}' is applied twice or has several outputs")
            refs.append(name)
    return refs


def _constants(args) -> list[float]:
    return [a for a in args if isinstance(a, (int, float)) and not isinstance(a, bool)]


@dataclass
class KerasLayer:
    """What a handler sees: one Keras layer (or operation) reading units ``refs``."""

    builder: Builder
    op: Any
    cls: str
    cfg: dict
    refs: list[int]
    constants: list[float]

    @property
    def name(self) -> str:
        return self.op.name

    @property
    def in_shapes(self) -> list[tuple[int, ...]]:
        return [self.builder.units[i].shape for i in self.refs]

    @property
    def hw(self):
        shapes = self.in_shapes
        return shapes[0][:2] if shapes and len(shapes[0]) == 3 else None

    def unit(self, kind: str, settings: dict, inputs: list[int] | None = None, shape=None) -> int:
        """The layer's unit (it holds the layer's weights and parameter counts)."""
        roles, params = _weights(self.op)
        out = shape if shape is not None else _shape(self.op.output.shape)
        inputs = self.refs if inputs is None else inputs
        unit = Unit(kind, settings, list(inputs), out, params, self.name, self.cls, roles)
        return self.builder.add(unit)

    def helper(self, kind: str, settings: dict, inputs: list[int], shape, what: str) -> int:
        """A unit without weights that the layer also computes (a fused activation)."""
        unit = Unit(kind, settings, inputs, tuple(shape), (0, 0), self.name, f"{self.cls} {what}")
        return self.builder.add(unit)

    def activated(self, index: int, activation) -> int:
        """``index`` followed by the layer's fused activation, if any."""
        function, alpha = keras_activation(activation)
        if function == "linear":
            return index
        settings = {"function": function, "alpha": alpha}
        return self.helper(
            "activation", settings, [index], self.builder.units[index].shape, "activation"
        )

    def channels_last(self, axis) -> None:
        """Raises unless the layer works on the last axis (cnndsl's layers work on channels)."""
        rank = len(self.in_shapes[0]) + 1 if self.refs else 4
        axes = tuple(axis) if isinstance(axis, (list, tuple)) else (axis,)
        if len(axes) != 1 or axes[0] not in (-1, rank - 1):
            raise ValueError(
                f"layer '{self.name}' ({self.cls}) works on axis {axis}; cnndsl's layers work on"
                " the channels (the last axis)"
            )


def _add(builder: Builder, op, cls: str, cfg: dict, refs: list[int], constants) -> None:
    if cls == "Sequential":  # a nested model: its layers in order
        for inner in op.layers:
            _add(builder, inner, type(inner).__name__, inner.get_config(), refs, [])
            refs = [builder.value[inner.name]]
        builder.value[op.name] = refs[0]
        return
    handler = KERAS_HANDLERS.get(cls)
    if handler is None:
        raise ValueError(f"layer '{op.name}' ({cls}) has no counterpart among cnndsl's layer kinds")
    builder.value[op.name] = handler(KerasLayer(builder, op, cls, cfg, refs, constants))


def _weights(layer) -> tuple[dict[str, Any], tuple[int, int]]:
    """A Keras layer's variables by role (their names; a lone unnamed one is ``gamma``: the
    layer scale of keras.applications' ConvNeXt) and its parameter counts."""
    variables = list(getattr(layer, "weights", []))
    roles = {v.name: v for v in variables}
    # a lone unnamed variable is the gamma: Keras names it variable, variable_1... in the order
    # a session makes them
    if len(variables) == 1 and re.fullmatch(r"variable(_\d+)?", variables[0].name):
        roles = {"gamma": variables[0]}
    trainable = sum(prod(v.shape) for v in getattr(layer, "trainable_weights", []))
    total = sum(prod(v.shape) for v in variables)
    return roles, (trainable, total - trainable)


def _shape(tensor_shape) -> tuple[int, ...]:
    return tuple(int(d) if d is not None else -1 for d in tuple(tensor_shape)[1:])


def keras_activation(value) -> tuple[str, float | None]:
    """A Keras activation argument (a name or a serialized function) -> (function, alpha)."""
    if value is None:
        return ("linear", None)
    if isinstance(value, dict):  # a serialized function: its name is its config
        value = value.get("config", value.get("registered_name"))
    if isinstance(value, str) and value.startswith("cnndsl>"):  # registered by cnndsl
        fn = value.partition(">")[2]
        if fn in _CNNDSL_ACTIVATIONS:
            return _CNNDSL_ACTIVATIONS[fn]
    if isinstance(value, str) and value in _ACTIVATIONS:
        return _ACTIVATIONS[value]
    return (f"keras:{value}", None)


# ---------------------------------------------------------------------------- handlers

Handler = Callable[[KerasLayer], int]


def _input(k: KerasLayer) -> int:
    shape = tuple(k.cfg.get("batch_shape") or (None, *k.cfg["shape"]))[1:]
    return k.builder.add(Unit("input", {}, [], shape, name=k.name, source=k.cls))


def _conv(k: KerasLayer) -> int:
    """Conv2D, DepthwiseConv2D, SeparableConv2D; a Conv2D with as many groups as input
    channels is a depthwise convolution."""
    cfg = k.cfg
    kernel, strides, dilation = cfg["kernel_size"], cfg["strides"], cfg["dilation_rate"]
    padding = resolve(cfg["padding"], k.hw, kernel, strides, dilation)
    settings = window(kernel, strides, dilation, padding, k.hw) | {"bias": bool(cfg["use_bias"])}
    channels = k.in_shapes[0][-1]
    groups = cfg.get("groups", 1)
    if k.cls == "Conv2D" and groups > 1 and groups == channels:
        kind, settings["multiplier"] = "dwconv", cfg["filters"] // channels
    elif k.cls == "Conv2D":
        kind, settings["groups"] = "conv", groups
    else:
        kind = "dwconv" if k.cls == "DepthwiseConv2D" else "sepconv"
        settings["multiplier"] = cfg["depth_multiplier"]
    return k.activated(k.unit(kind, settings), cfg.get("activation"))


def _convtranspose(k: KerasLayer) -> int:
    """Conv2DTranspose: the full transposed convolution, its first rows and columns cropped
    as Keras's padding crops them (the output size says the rest)."""
    cfg = k.cfg
    kernel, strides, dilation = cfg["kernel_size"], cfg["strides"], cfg["dilation_rate"]
    extra = cfg.get("output_padding") or (None, None)
    crop = []
    for a in (0, 1):
        _, before = transposed_output(
            k.hw[a], kernel[a], strides[a], dilation[a], cfg["padding"], a, extra[a]
        )
        crop.append(before)
    settings = transposed(kernel, strides, dilation, crop) | {"bias": bool(cfg["use_bias"])}
    return k.activated(k.unit("convtranspose", settings), cfg.get("activation"))


def _dense(k: KerasLayer) -> int:
    settings = {"units": k.cfg["units"], "bias": bool(k.cfg["use_bias"])}
    return k.activated(k.unit("dense", settings), k.cfg.get("activation"))


def _batchnorm(k: KerasLayer) -> int:
    k.channels_last(k.cfg["axis"])
    return k.unit(
        "batchnorm", {key: k.cfg[key] for key in ("epsilon", "momentum", "center", "scale")}
    )


def _layernorm(k: KerasLayer) -> int:
    k.channels_last(k.cfg["axis"])
    if k.cfg.get("rms_scaling"):
        raise ValueError(
            f"layer '{k.name}' (LayerNormalization with rms_scaling) has no cnndsl kind"
        )
    return k.unit("layernorm", {key: k.cfg[key] for key in ("epsilon", "center", "scale")})


def _normalization(k: KerasLayer) -> int:
    k.channels_last(k.cfg["axis"])
    if k.cfg.get("invert"):
        raise ValueError(f"layer '{k.name}' (Normalization with invert) has no cnndsl kind")
    return k.unit(
        "normalization",
        {"mean": values(k.cfg.get("mean")), "variance": values(k.cfg.get("variance"))},
    )


def _rescaling(k: KerasLayer) -> int:
    return k.unit("rescaling", {"scale": values(k.cfg["scale"]), "offset": values(k.cfg["offset"])})


def _pool(k: KerasLayer) -> int:
    cfg = k.cfg
    kernel, strides = cfg["pool_size"], cfg["strides"] or cfg["pool_size"]
    settings = window(
        kernel, strides, (1, 1), resolve(cfg["padding"], k.hw, kernel, strides, (1, 1)), k.hw
    )
    if k.cls == "MaxPooling2D":
        return k.unit("maxpool", settings)
    # TensorFlow's SAME average counts only the cells inside the map
    padded = settings["pads"] != ZERO_PADS
    settings |= {"ceil_mode": False, "count_pad": False if padded else None}
    return k.unit("avgpool", settings)


def _global_pool(k: KerasLayer) -> int:
    kind = "globalavgpool" if k.cls == "GlobalAveragePooling2D" else "globalmaxpool"
    return k.unit(kind, {"keepdims": bool(k.cfg.get("keepdims", False))})


def _dropout(k: KerasLayer) -> int:
    """Dropout; with noise_shape (None, 1, 1, 1) it drops whole examples: stochastic depth."""
    rate = float(k.cfg["rate"])
    noise = tuple(k.cfg.get("noise_shape") or ())
    if rate == 0:
        return k.refs[0]
    if noise and all(d == 1 for d in noise[1:]):
        return k.unit("stochasticdepth", {"rate": rate, "mode": "row"})
    return k.unit("dropout", {"rate": rate})


def _activation(k: KerasLayer) -> int:
    function, alpha = keras_activation(k.cfg["activation"])
    if function == "linear":
        return k.refs[0]
    return k.unit("activation", {"function": function, "alpha": alpha})


def _relu(k: KerasLayer) -> int:
    cfg = k.cfg
    top, slope, threshold = (
        cfg.get("max_value"),
        cfg.get("negative_slope", 0.0),
        cfg.get("threshold", 0.0),
    )
    if threshold == 0 and slope == 0 and top in (None, 6):
        function, alpha = ("relu", None) if top is None else ("relu6", None)
    elif threshold == 0 and top is None:
        function, alpha = "leakyrelu", float(slope)
    else:
        function, alpha = (
            f"keras:ReLU(max_value={top}, negative_slope={slope}, threshold={threshold})",
            None,
        )
    return k.unit("activation", {"function": function, "alpha": alpha})


def _leaky_relu(k: KerasLayer) -> int:
    return k.unit("activation", {"function": "leakyrelu", "alpha": float(k.cfg["negative_slope"])})


def _elu(k: KerasLayer) -> int:
    return k.unit("activation", {"function": "elu", "alpha": float(k.cfg["alpha"])})


def _softmax(k: KerasLayer) -> int:
    k.channels_last(k.cfg.get("axis", -1))
    return k.unit("activation", {"function": "softmax", "alpha": None})


def _arithmetic(k: KerasLayer) -> int:
    """keras.ops on KerasTensors: x + c, x - c, x * c, x / c are rescaling; x + y, x * y
    merges."""
    if len(k.refs) >= 2 and k.cls in ("Add", "Multiply"):
        return k.unit(k.cls.lower(), {})
    if len(k.refs) != 1 or len(k.constants) != 1:
        raise ValueError(
            f"layer '{k.name}' ({k.cls}) has no counterpart among cnndsl's layer kinds"
        )
    c = float(k.constants[0])
    scale, offset = {"Add": (1.0, c), "Multiply": (c, 0.0), "Subtract": (1.0, -c)}.get(
        k.cls, (1 / c, 0.0)
    )
    return k.unit("rescaling", {"scale": scale, "offset": offset})


def _concat(k: KerasLayer) -> int:
    k.channels_last(k.cfg["axis"])
    return k.unit("concat", {})


def _custom_scale(k: KerasLayer) -> int:
    """keras.applications' InceptionResNetV2: CustomScaleLayer(scale)([x, r]) = x + r * scale."""
    settings = {"scale": float(k.cfg["scale"]), "offset": 0.0}
    scaled = k.helper("rescaling", settings, [k.refs[1]], k.in_shapes[1], "scale")
    return k.unit("add", {}, inputs=[k.refs[0], scaled])


def _layer_scale(k: KerasLayer) -> int:
    """keras.applications' ConvNeXt LayerScale(init_values, projection_dim)."""
    return k.unit("layerscale", {"init": float(k.cfg["init_values"])})


def _stochastic_depth(k: KerasLayer) -> int:
    """keras.applications' ConvNeXt StochasticDepth(drop_path_rate), per example, and
    cnndsl's, with its mode."""
    rate = float(k.cfg["drop_path_rate"])
    mode = k.cfg.get("mode", "row")
    return k.unit("stochasticdepth", {"rate": rate, "mode": mode}) if rate else k.refs[0]


def _padded_pool(k: KerasLayer) -> int:
    """cnndsl's PaddedAveragePooling2D and PaddedMaxPooling2D: PyTorch's padded pooling (the
    padding explicit or TensorFlow's SAME; a ceil mode's extra cells show in the output size)."""
    cfg = k.cfg
    kernel, strides = cfg["pool_size"], cfg["strides"]
    padding = resolve(cfg["padding"], k.hw, kernel, strides, (1, 1))
    settings = window(kernel, strides, (1, 1), padding, k.hw)
    if k.cls == "PaddedMaxPooling2D":
        return k.unit("maxpool", settings)
    count = bool(cfg["count_include_pad"]) if padding != ZERO_PADS else None
    return k.unit("avgpool", settings | {"ceil_mode": bool(cfg["ceil_mode"]), "count_pad": count})


def _simple(kind: str, **settings: Callable[[dict], Any]) -> Handler:
    """A handler for a layer that is one unit whose settings read its config."""
    return lambda k: k.unit(kind, {key: get(k.cfg) for key, get in settings.items()})


KERAS_HANDLERS: dict[str, Handler] = {
    "InputLayer": _input,
    "Conv2D": _conv,
    "DepthwiseConv2D": _conv,
    "SeparableConv2D": _conv,
    "Conv2DTranspose": _convtranspose,
    "Dense": _dense,
    "BatchNormalization": _batchnorm,
    "LayerNormalization": _layernorm,
    "Normalization": _normalization,
    "Rescaling": _rescaling,
    "MaxPooling2D": _pool,
    "AveragePooling2D": _pool,
    "GlobalAveragePooling2D": _global_pool,
    "GlobalMaxPooling2D": _global_pool,
    "AdaptiveAveragePooling2D": _simple(
        "adaptiveavgpool", output_size=lambda cfg: tuple(cfg["output_size"])
    ),
    "ZeroPadding2D": _simple("zeropad", pads=lambda cfg: pads(cfg["padding"])),
    "Cropping2D": _simple("crop", cropping=lambda cfg: pads(cfg["cropping"])),
    "Flatten": _simple("flatten"),
    "Reshape": _simple("reshape"),
    "UpSampling2D": _simple(
        "upsample",
        size=lambda cfg: tuple(cfg["size"]),
        interpolation=lambda cfg: cfg["interpolation"],
    ),
    "Dropout": _dropout,
    "Activation": _activation,
    "ReLU": _relu,
    "LeakyReLU": _leaky_relu,
    "ELU": _elu,
    "Softmax": _softmax,
    "Add": _arithmetic,
    "Multiply": _arithmetic,
    "Subtract": _arithmetic,
    "TrueDivide": _arithmetic,
    "Divide": _arithmetic,
    "Concatenate": _concat,
    # keras.applications' own layers
    "CustomScaleLayer": _custom_scale,
    "LayerScale": _layer_scale,
    "StochasticDepth": _stochastic_depth,
    # cnndsl's (cnndsl/backends/keras/layers.py); -inf padding is folded into its max pooling
    "NegInfPadding2D": _simple("neginfpad", pads=lambda cfg: pads(cfg["padding"])),
    "PaddedAveragePooling2D": _padded_pool,
    "PaddedMaxPooling2D": _padded_pool,
    "LocalResponseNormalization": _simple(
        "lrn",
        radius=lambda cfg: float(cfg["depth_radius"]),
        alpha=lambda cfg: float(cfg["alpha"]),
        beta=lambda cfg: float(cfg["beta"]),
        bias=lambda cfg: float(cfg["bias"]),
    ),
    "DepthMaxPooling2D": _simple("depthmaxpool", pool=lambda cfg: int(cfg["pool_size"])),
    "ChannelSplit": _simple("split", parts=lambda cfg: cfg["parts"], part=lambda cfg: cfg["part"]),
    "ChannelShuffle": _simple("shuffle", groups=lambda cfg: cfg["groups"]),
}
"""One handler per Keras layer class (or keras.ops operation): (the layer) -> the unit giving
its output, or the unit of its input for an identity."""
