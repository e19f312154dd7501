"""A cnndsl network as units, from its IR and analysis: one handler per IR layer kind.  No
framework is imported."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .units import ZERO_PADS, Builder, Graph, Unit, transposed, values, window

__all__ = ["NETWORK_HANDLERS", "network_graph"]


def network_graph(net, label: str | None = None) -> Graph:
    """The units of a cnndsl network (its layers, shapes and parameter counts)."""
    builder = Builder(label or f"cnndsl's network '{net.name}'")
    analysis = net.analysis
    for layer in net.layers:
        handler = NETWORK_HANDLERS.get(layer.kind)
        if handler is None:
            raise ValueError(
                f"layer '{layer.name}' ({layer.notation()}): no unit for a '{layer.kind}' node"
            )
        node = Node(builder, layer, analysis[layer.name], [builder.value[n] for n in layer.inputs])
        builder.value[layer.name] = handler(node)
    return builder.graph([layer.name for layer in net.inputs], list(net.outputs))


@dataclass
class Node:
    """What a handler sees: one IR node, its analysis, and the units it reads."""

    builder: Builder
    layer: Any
    info: Any
    refs: list[int]

    @property
    def source(self) -> str:
        position = getattr(self.layer, "position", None)
        where = f"{str(position.file).rsplit('/', 1)[-1]}:{position.line}" if position else "?"
        return f"{self.layer.notation()}, {where}"

    @property
    def hw(self):
        shapes = self.info.input_shapes
        return tuple(shapes[0][:2]) if shapes and len(shapes[0]) == 3 else None

    def unit(self, kind: str, settings: dict) -> int:
        info = self.info
        params = (info.trainable_params, info.non_trainable_params)
        unit = Unit(
            kind,
            settings,
            list(self.refs),
            tuple(info.output_shape),
            params,
            self.layer.name,
            self.source,
        )
        return self.builder.add(unit)

    def activated(self, index: int) -> int:
        """``index`` followed by the node's activation (``conv 64 relu``), if any."""
        function = getattr(self.layer, "activation", "linear")
        if function == "linear":
            return index
        settings = {"function": function, "alpha": {"leakyrelu": 0.3, "elu": 1.0}.get(function)}
        shape = tuple(self.info.output_shape)
        return self.builder.add(
            Unit("activation", settings, [index], shape, name=self.layer.name, source=self.source)
        )


Handler = Callable[[Node], int]


def _input(n: Node) -> int:
    return n.builder.add(
        Unit("input", {}, [], tuple(n.layer.shape), name=n.layer.name, source=n.source)
    )


def _conv(n: Node) -> int:
    """conv, dwconv, sepconv; a conv with as many groups as input channels is a depthwise
    convolution."""
    layer, kind = n.layer, n.layer.kind
    padding = layer.explicit_padding(list(n.info.input_shapes))
    settings = window(layer.kernel, layer.stride, layer.dilation, padding, n.hw) | {
        "bias": bool(layer.bias)
    }
    channels = n.info.input_shapes[0][-1]
    if kind == "conv" and layer.groups > 1 and layer.groups == channels:
        kind, settings["multiplier"] = "dwconv", layer.filters // channels
    elif kind == "conv":
        settings["groups"] = layer.groups
    else:
        settings["multiplier"] = layer.depth_multiplier
    return n.activated(n.unit(kind, settings))


def _convtranspose(n: Node) -> int:
    layer = n.layer
    (top, _), (left, _) = layer.explicit_padding(list(n.info.input_shapes))
    settings = transposed(layer.kernel, layer.stride, layer.dilation, (top, left))
    return n.activated(n.unit("convtranspose", settings | {"bias": bool(layer.bias)}))


def _dense(n: Node) -> int:
    """dense and pointwise (a dense layer on every position of a map)."""
    return n.activated(n.unit("dense", {"units": n.layer.units, "bias": bool(n.layer.bias)}))


def _pool(n: Node) -> int:
    layer = n.layer
    padding = layer.explicit_padding(list(n.info.input_shapes))
    settings = window(layer.kernel, layer.stride, (1, 1), padding, n.hw)
    if layer.kind == "avgpool":
        count = bool(layer.include_pad) if padding != ZERO_PADS else None
        settings |= {"ceil_mode": bool(layer.ceil_mode), "count_pad": count}
    return n.unit(layer.kind, settings)


def _rate(n: Node) -> int:
    """dropout and stochastic depth; of rate 0, the identity."""
    layer = n.layer
    if not layer.rate:
        return n.refs[0]
    settings = {"rate": float(layer.rate)}
    if layer.kind == "stochasticdepth":
        settings["mode"] = layer.mode
    return n.unit(layer.kind, settings)


def _activation(n: Node) -> int:
    if n.layer.function == "linear":
        return n.refs[0]
    return n.unit("activation", {"function": n.layer.function, "alpha": n.layer.alpha})


def _fields(kind: str | None = None, **settings: Callable[[Any], Any]) -> Handler:
    """A handler for a node that is one unit (of its own kind, or ``kind``) whose settings
    read its fields."""
    return lambda n: n.unit(
        kind or n.layer.kind, {key: get(n.layer) for key, get in settings.items()}
    )


def _pairs(value) -> tuple:
    return tuple(tuple(side) for side in value)


NETWORK_HANDLERS: dict[str, Handler] = {
    "input": _input,
    "conv": _conv,
    "dwconv": _conv,
    "sepconv": _conv,
    "convtranspose": _convtranspose,
    "dense": _dense,
    "pointwise": _dense,
    "batchnorm": _fields(
        epsilon=lambda x: x.epsilon,
        momentum=lambda x: x.momentum,
        center=lambda x: x.center,
        scale=lambda x: x.scale,
    ),
    "layernorm": _fields(
        epsilon=lambda x: x.epsilon, center=lambda x: x.center, scale=lambda x: x.scale
    ),
    "normalization": _fields(mean=lambda x: values(x.mean), variance=lambda x: values(x.variance)),
    "rescaling": _fields(scale=lambda x: values(x.scale), offset=lambda x: values(x.offset)),
    "layerscale": _fields(init=lambda x: float(x.init)),
    "maxpool": _pool,
    "avgpool": _pool,
    "globalavgpool": _fields(keepdims=lambda x: bool(x.keepdims)),
    "globalmaxpool": _fields(keepdims=lambda x: bool(x.keepdims)),
    "adaptiveavgpool": _fields(output_size=lambda x: tuple(x.output_size)),
    "depthmaxpool": _fields(pool=lambda x: x.pool),
    "lrn": _fields(
        radius=lambda x: float(x.radius),
        alpha=lambda x: float(x.alpha),
        beta=lambda x: float(x.beta),
        bias=lambda x: float(x.bias),
    ),
    "zeropad": _fields(pads=lambda x: _pairs(x.padding)),
    "crop": _fields(cropping=lambda x: _pairs(x.cropping)),
    "flatten": _fields(),
    "reshape": _fields(),
    "add": _fields(),
    "multiply": _fields(),
    "concat": _fields(),
    "upsample": _fields(size=lambda x: tuple(x.size), interpolation=lambda x: x.interpolation),
    "split": _fields(parts=lambda x: x.parts, part=lambda x: x.part),
    "shuffle": _fields(groups=lambda x: x.groups),
    "dropout": _rate,
    "stochasticdepth": _rate,
    "activation": _activation,
}
"""One handler per IR layer kind: (the node) -> the unit giving its output, or the unit of its
input for an identity."""
