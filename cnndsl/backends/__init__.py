"""Back ends: one module per target, each reading only the analysed IR.

- :mod:`cnndsl.backends.keras`: ``build(net) -> keras.Model``, ``to_source(net) -> str``
- :mod:`cnndsl.backends.torch`: ``build(net) -> torch.nn.Module``, ``to_source(net) -> str``
- :mod:`cnndsl.backends.graphviz`: ``to_dot(net) -> str``, ``to_graphviz(net)``, ``render(net, fmt)``

Each back end dispatches on the node's class (one handler per layer kind) and raises
:func:`unsupported` -- a located :class:`~cnndsl.errors.CnnDslError` naming the layer and the
target -- for what it cannot express, never emitting a different model.  Importing this package
imports no framework; each module imports its framework itself.
"""

from __future__ import annotations

from ..analysis import layer_error
from ..errors import CnnDslError


def unhandled_activation(layer, functions: frozenset[str]) -> str | None:
    """Why a back end that cannot emit these activation ``functions`` yet cannot emit this
    layer (its own activation, or what it is), or None.  (The functions' definitions, in both
    frameworks, are in :class:`cnndsl.ir.Activation`.)"""
    function = getattr(layer, "function", None) or getattr(layer, "activation", None)
    if function in functions:
        return f"the activation {function} has no handler in this back end yet"
    return None


def refuse_training_outputs(net, target: str) -> None:
    """Raise for a network with outputs marked ``(training)``, which these back ends do not
    build yet: they would return those outputs in inference mode too (a different model)."""
    if net.training_outputs:
        layer = net[net.training_outputs[0]]
        why = "outputs marked (training) have no support in this back end yet"
        raise unsupported(net, layer, target, why)


def unsupported(net, layer, target: str, why: str) -> CnnDslError:
    """The error for a layer a target cannot express."""
    return layer_error(
        net, layer, f"{target} cannot express layer '{layer.name}' ({layer.notation()}): {why}"
    )
