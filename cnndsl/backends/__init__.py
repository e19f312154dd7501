"""Back ends: one module per target, each reading only the analysed IR, and the registry of
targets (:data:`TARGETS`) that ``cnndsl compile --target``, :meth:`Network.to_source` and
:meth:`Network.to_model` look targets up in.

- :mod:`cnndsl.backends.keras`: ``to_source(net) -> str``, ``build(net) -> keras.Model``
- :mod:`cnndsl.backends.torch`: ``to_source(net) -> str``, ``build(net) -> torch.nn.Module``
- :mod:`cnndsl.backends.graphviz`: ``to_dot(net) -> str``, ``to_graphviz(net)``, ``render(net, fmt)``

The model back ends share one code generator (:mod:`cnndsl.backends.codegen`).  Each back end
dispatches on the node's class (one handler per layer kind) and raises :func:`unsupported` -- a
located :class:`~cnndsl.errors.CnnDslError` naming the layer and the target -- for what it
cannot express, never emitting a different model.  Importing this package imports no framework
and no back end: each target's module is imported when the target is used.

Adding a target is one entry in :data:`TARGETS` (and its module); nothing else changes.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..errors import CnnDslError

__all__ = ["TARGETS", "Target", "build", "emit", "source", "unsupported"]


def unsupported(net, layer, target: str, why: str) -> CnnDslError:
    """The error for a layer a target cannot express."""
    from ..analysis import layer_error

    return layer_error(
        net, layer, f"{target} cannot express layer '{layer.name}' ({layer.notation()}): {why}"
    )


@dataclass(frozen=True)
class Target:
    """One target: what it writes, and the function of its module that writes it,
    ``write(net, *args, **options) -> str | bytes``; a model target also builds the model
    live (``build(net)``, which needs its framework: ``framework`` names it and its extra)."""

    name: str
    description: str
    module: str
    write: str
    args: tuple = ()
    build: str | None = None
    framework: tuple[str, str] | None = None  # (what build needs, the pip extra)
    diagram: bool = False  # takes the diagram options (collapse, rankdir, shapes, params)

    def function(self, name: str):
        return getattr(importlib.import_module(self.module), name)


TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target(
            "keras",
            "a Keras model (standalone Python source)",
            "cnndsl.backends.keras",
            "to_source",
            build="build",
            framework=("TensorFlow and Keras", "keras"),
        ),
        Target(
            "torch",
            "a PyTorch module (standalone Python source)",
            "cnndsl.backends.torch",
            "to_source",
            build="build",
            framework=("PyTorch", "torch"),
        ),
        Target("json", "the IR as JSON", "cnndsl.backends", "json_text"),
        Target("dot", "a diagram, DOT text", "cnndsl.backends.graphviz", "to_dot", diagram=True),
        *(
            Target(
                fmt,
                f"a diagram, {fmt.upper()}",
                "cnndsl.backends.graphviz",
                "render",
                (fmt,),
                diagram=True,
            )
            for fmt in ("svg", "png", "pdf")
        ),
    )
}
"""Every target, by name, in the order ``cnndsl compile --help`` lists them."""


def target(name: str) -> Target:
    try:
        return TARGETS[name]
    except KeyError:
        raise ValueError(f"unknown target {name!r}: choose one of {', '.join(TARGETS)}") from None


def emit(net, name: str, *, logits: bool = False, **options: Any) -> str | bytes:
    """What target ``name`` writes for a network (text, or bytes for rendered diagrams); with
    ``logits``, for the network without its outputs' final softmax (:mod:`.logits`)."""
    t = target(name)
    return t.function(t.write)(_head(net, logits), *t.args, **options)


def _head(net, logits: bool):
    """The network, or (``logits``) the network that returns its outputs' logits."""
    if not logits:
        return net
    from .logits import logits as without_softmax

    return without_softmax(net)


def _model_target(name: str) -> Target:
    t = target(name)
    if t.build is None:
        models = ", ".join(n for n, m in TARGETS.items() if m.build)
        raise ValueError(f"{name!r} is not a model target: choose one of {models}")
    return t


def source(net, name: str, *, logits: bool = False) -> str:
    """The standalone Python source of a model target (``keras``, ``torch``)."""
    t = _model_target(name)
    return t.function(t.write)(_head(net, logits))


def build(net, name: str, *, logits: bool = False, **options: Any) -> Any:
    """The live model of a model target (needs its framework).  With ``logits``, the outputs'
    final softmax (or sigmoid) is left out; ``options`` go to the target's ``build`` (Keras:
    ``training_outputs``)."""
    t = _model_target(name)
    return t.function(t.build)(_head(net, logits), **options)


def json_text(net) -> str:
    """The ``json`` target: the IR, lossless."""
    return net.to_json() + "\n"
