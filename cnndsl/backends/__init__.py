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


def unsupported(net, layer, target: str, why: str) -> CnnDslError:
    """The error for a layer a target cannot express."""
    return layer_error(
        net, layer, f"{target} cannot express layer '{layer.name}' ({layer.notation()}): {why}"
    )
