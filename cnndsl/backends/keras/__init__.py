"""Keras back end: an analysed IR network -> a Keras 3 functional model, live or as source.

    build(net) -> keras.Model     the model itself
    to_source(net) -> str         a standalone module (imports only keras) whose build_model()
                                  gives the same model, one Python function per spec block
    layer_names(net) -> dict      IR node -> the Keras layers it becomes (the last gives its output)

Every IR node becomes one Keras layer with the node's name.  A few nodes need a helper layer,
named after the node: ``<name>_pad`` (ZeroPadding2D, or NegInfPadding2D before max pooling) for
explicit padding that is not TensorFlow's SAME, ``<name>_crop`` (Cropping2D) after a transposed
convolution with explicit padding, ``<name>_reshape`` (a channel vector to 1x1xC) before a
multiply.  Semantics are kept exactly; what Keras cannot express raises
:func:`cnndsl.backends.unsupported`.

The package, in the order of the pipeline:

    calls.py      the plan's vocabulary: KCall (one Keras layer), Arg (one constructor argument)
    handlers.py   one handler per IR layer kind (HANDLERS, UNSUPPORTED) and the plan they make
    layers.py     the custom Keras layers (NegInfPadding2D, PaddedAveragePooling2D,
                  LocalResponseNormalization, DepthMaxPooling2D, leaky_relu)
    build         (here) instantiates the plan as a live model
    tree.py       to_source, 1: the plan grouped by block call into a tree of bodies
    loops.py      to_source, 2: runs of layers whose names count up -> ``for`` loops
    blocks.py     to_source, 3: the calls of a block -> one function (anti-unification)
    emit.py       to_source, 4: the module's text, and ``to_source`` itself

Only :func:`build` imports Keras (and TensorFlow under it).  Writing source needs nothing but the
IR: the generated module defines the custom layers it uses with their text, which ``emit.py``
reads from ``layers.py`` with ``ast`` instead of importing it.  So ``cnndsl compile --target
keras`` works, and is fast, where TensorFlow is not installed.  The custom layer classes are
importable from here all the same; the first access imports ``layers.py``, hence Keras
(``__getattr__`` below).  ``import keras`` in this package is an absolute import: it always means
Keras itself, never this package.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ...ir import Network
from .calls import Sym
from .emit import to_source
from .handlers import HANDLERS, UNSUPPORTED, layer_names, make_plan

if TYPE_CHECKING:
    import keras

__all__ = [
    "HANDLERS",
    "UNSUPPORTED",
    "DepthMaxPooling2D",
    "LocalResponseNormalization",
    "NegInfPadding2D",
    "PaddedAveragePooling2D",
    "build",
    "layer_names",
    "leaky_relu",
    "to_source",
]

_FROM_LAYERS = frozenset(
    {
        "CUSTOM_OBJECTS",
        "DepthMaxPooling2D",
        "LocalResponseNormalization",
        "NegInfPadding2D",
        "PaddedAveragePooling2D",
        "leaky_relu",
    }
)


def __getattr__(name: str) -> Any:
    """The custom layers, from ``layers.py``, imported (with Keras) on first use."""
    if name not in _FROM_LAYERS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.layers"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | _FROM_LAYERS)


def build(net: Network) -> keras.Model:
    """The network as a live Keras functional model (untrained, Keras's initializers).

    Raises :class:`cnndsl.CnnDslError` for what Keras cannot express.
    """
    import keras

    from .layers import CUSTOM_OBJECTS

    def value(v: Any) -> Any:
        return CUSTOM_OBJECTS[v.name] if isinstance(v, Sym) else v

    tensors: dict[str, Any] = {}
    plan = make_plan(net)
    for call in plan.calls:
        if call.cls == "Input":
            tensors[call.name] = keras.Input(shape=call.args[0].value, name=call.name)
            continue
        cls = getattr(keras.layers, call.cls, None) or CUSTOM_OBJECTS[call.cls]
        positional = [value(a.value) for a in call.args if a.positional]
        keywords = {a.key: value(a.value) for a in call.args if not a.positional}
        layer = cls(*positional, **keywords, name=call.name)
        inputs = [tensors[name] for name in call.inputs]
        tensors[call.name] = layer(inputs if call.merge else inputs[0])
    inputs = [tensors[layer.name] for layer in net.inputs]
    outputs = [tensors[name] for name in plan.outputs(net)]
    return keras.Model(
        inputs[0] if len(inputs) == 1 else inputs,
        outputs[0] if len(outputs) == 1 else outputs,
        name=net.name,
    )
