"""Keras back end: an analysed IR network -> a Keras 3 functional model, as source and live.

    to_source(net) -> str         a standalone module (imports only keras) whose build_model()
                                  gives the model, one Python function per spec block
    build(net) -> keras.Model     the model itself: that module, run
    layer_names(net) -> dict      IR node -> the Keras layers it becomes (the last gives its output)

One lowering, two products: :func:`build` executes the source :func:`to_source` writes, so the
live model and the generated file are one model by construction.  The lowering is the shared
core's (:mod:`cnndsl.backends.codegen`); this package only says what each layer kind becomes in
Keras (:mod:`.generator`) and defines the custom layers Keras lacks (:mod:`.layers`:
NegInfPadding2D, PaddedAveragePooling2D, LocalResponseNormalization, DepthMaxPooling2D,
PaddedMaxPooling2D, LayerScale, StochasticDepth, ChannelSplit, ChannelShuffle, leaky_relu,
gelu_tanh), whose text generated files copy.

Only :func:`build` imports Keras (and TensorFlow under it).  Writing source needs nothing but
the IR, so ``cnndsl compile --target keras`` works, and is fast, where TensorFlow is not
installed.  The custom layer classes are importable from here all the same; the first access
imports ``layers.py``, hence Keras (``__getattr__`` below).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ...ir import Network
from ..codegen.generator import execute
from .generator import KerasGenerator

if TYPE_CHECKING:
    import keras

HANDLERS = KerasGenerator.HANDLERS
UNSUPPORTED = KerasGenerator.UNSUPPORTED

__all__ = [
    "HANDLERS",
    "UNSUPPORTED",
    "ChannelShuffle",
    "ChannelSplit",
    "DepthMaxPooling2D",
    "KerasGenerator",
    "LayerScale",
    "LocalResponseNormalization",
    "NegInfPadding2D",
    "PaddedAveragePooling2D",
    "PaddedMaxPooling2D",
    "StochasticDepth",
    "build",
    "gelu_tanh",
    "layer_names",
    "leaky_relu",
    "to_source",
]

_FROM_LAYERS = frozenset(
    {
        "CUSTOM_OBJECTS",
        "ChannelShuffle",
        "ChannelSplit",
        "DepthMaxPooling2D",
        "LayerScale",
        "LocalResponseNormalization",
        "NegInfPadding2D",
        "PaddedAveragePooling2D",
        "PaddedMaxPooling2D",
        "StochasticDepth",
        "gelu_tanh",
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


def to_source(net: Network) -> str:
    """A standalone Python module (it imports only keras) whose ``build_model()`` returns the
    network as a Keras functional model, written as a person would: one function per block of
    the spec, loops for repeated layers, the spec line of every layer.  Imports neither Keras
    nor TensorFlow.  Deterministic: the same network gives the same text, byte for byte.

    Raises :class:`cnndsl.CnnDslError` for what Keras cannot express.
    """
    return KerasGenerator(net).source()


def build(net: Network, *, training_outputs: bool = False) -> keras.Model:
    """The network as a live Keras functional model (untrained, Keras's initializers): the
    module :func:`to_source` writes, run.  Raises :class:`cnndsl.CnnDslError` for what Keras
    cannot express.

    A network with training outputs (``output logits, aux1 (training)``) gives its inference
    model, without the layers only those outputs need; with ``training_outputs``, the model
    that also builds them and returns every output, in the order of ``net.outputs`` (a
    functional model cannot change its outputs with the mode).  The inference model of a
    trained one is ``keras.Model(model.inputs, <its inference outputs>)``: it shares the
    layers."""
    import keras  # noqa: F401  (the framework first: a missing one is an ImportError here)

    build_model = execute(to_source(net), net.name)["build_model"]
    return build_model(training_outputs=True) if training_outputs else build_model()


def layer_names(net: Network) -> dict[str, list[str]]:
    """For every IR node, the names of the Keras layers it becomes, in order; the last one's
    output is the node's output (``conv_1`` -> ``["conv_1_pad", "conv_1"]``)."""
    gen = KerasGenerator(net)
    gen.program()
    return gen.layer_names
