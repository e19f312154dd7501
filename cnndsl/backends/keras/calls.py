"""The vocabulary of the plan: what a handler turns an IR node into.

A handler (``handlers.py``) turns one IR node into a list of :class:`KCall`, one per Keras layer:
its class, its constructor arguments (:class:`Arg`), its name and the values it reads.  ``build``
instantiates these calls; ``to_source`` prints them.  Nothing here imports Keras.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...ir import Layer, Network
from .. import unsupported

TARGET = "Keras"

NO_DEFAULT = object()


@dataclass(frozen=True)
class Sym:
    """A name defined in the generated module (a custom activation), not a literal."""

    name: str


@dataclass(frozen=True)
class Arg:
    """One argument of a Keras layer constructor.  Generated source leaves out a keyword
    argument whose value is its default in every call of the line."""

    key: str
    value: Any
    default: Any = NO_DEFAULT
    positional: bool = False


@dataclass(frozen=True)
class KCall:
    """One Keras layer: its class (in keras.layers, a custom class of ``layers.py``, or Input),
    constructor arguments, name, the values it reads (node or helper layer names), its node."""

    cls: str
    args: tuple[Arg, ...]
    name: str
    inputs: tuple[str, ...]
    node: Layer
    merge: bool = False  # takes a list of tensors


def pos(key: str, value: Any) -> Arg:
    return Arg(key, value, positional=True)


def kcall(cls: str, node: Layer, *args: Arg, name=None, inputs=None, merge=False) -> KCall:
    inputs = node.inputs if inputs is None else inputs
    return KCall(cls, args, name or node.name, tuple(inputs), node, merge)


class Planner:
    """What handlers share: the network (for errors) and the names taken."""

    def __init__(self, net: Network) -> None:
        self.net = net
        self.taken = {layer.name for layer in net.layers}

    def helper(self, node: str, suffix: str) -> str:
        """A fresh name for a helper layer: ``conv_1_pad`` (``conv_1_pad_2`` if a node has it)."""
        name, k = f"{node}_{suffix}", 1
        while name in self.taken:
            k += 1
            name = f"{node}_{suffix}_{k}"
        self.taken.add(name)
        return name

    def fail(self, layer: Layer, why: str):
        return unsupported(self.net, layer, TARGET, why)
