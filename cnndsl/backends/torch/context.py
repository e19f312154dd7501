"""What a handler sees: the node in context, and the helper classes it may ask for.

A handler gets a :class:`NodeContext` (the node, its input and output shapes) and the
expressions of its inputs.  It defines the node's module with ``ctx.module(...)`` (a
:class:`Statement` of ``__init__``) and returns the node's value as an expression of
``forward``.  What PyTorch cannot express raises ``ctx.unsupported(why)``.

Helper modules that PyTorch lacks are defined in :mod:`.runtime`; a handler asks for one by
name (``ctx.helper("SeparableConv2d")``) and the renderer copies its definition, read as text by
:func:`helper_sources`, into the generated file.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources

from ...ir import Layer, Network
from .. import unsupported
from .expr import SELF, Attr, Code, Expr

TARGET = "PyTorch"


@dataclass
class Statement:
    """A statement of ``__init__``: ``self.<attr> = expr``, or ``expr`` when attr is None."""

    attr: str | None
    expr: Expr
    comment: str | None

    def key(self):
        return (self.attr, self.expr.key(), self.comment)


class NodeContext:
    """What a handler sees: the node, its shapes, and ways to define modules and helpers."""

    def __init__(self, net: Network, layer: Layer, attr: str, comment: str):
        info = net.analysis[layer.name]
        self.net = net
        self.layer = layer
        self.in_shapes: list[tuple[int, ...]] = list(info.input_shapes)
        self.out_shape: tuple[int, ...] = info.output_shape
        self.attr = attr
        self.comment = comment
        self.inits: list[Statement] = []
        self.helpers: set[str] = set()

    @property
    def in_shape(self) -> tuple[int, ...]:
        return self.in_shapes[0]

    def module(self, expr: Expr) -> Expr:
        """Define the node's module, ``self.<attr> = expr``; returns ``self.<attr>``."""
        self.inits.append(Statement(self.attr, expr, self.comment))
        return Attr(SELF, self.attr)

    def init(self, expr: Expr) -> None:
        """One more ``__init__`` statement after the module's definition."""
        self.inits.append(Statement(None, expr, None))

    def helper(self, name: str) -> Code:
        """A helper class of :mod:`.runtime`, copied into the generated file."""
        if name not in helper_sources():
            raise AssertionError(f"runtime.py defines no class {name}")
        self.helpers.add(name)
        return Code(name)

    def unsupported(self, why: str):
        return unsupported(self.net, self.layer, TARGET, why)


Handler = Callable[[NodeContext, list[Expr]], Expr]


# ================================================================ helper modules


@functools.cache
def helper_sources() -> dict[str, str]:
    """The helper classes of :mod:`.runtime`, in the file's order: name -> source text.

    Read as text and cut out with :func:`ast.get_source_segment`, never imported: generating
    source needs no torch, and a generated file holds the very code that :mod:`.runtime` runs.
    """
    text = resources.files(__package__).joinpath("runtime.py").read_text(encoding="utf-8")
    return {
        node.name: ast.get_source_segment(text, node)
        for node in ast.parse(text).body
        if isinstance(node, ast.ClassDef)
    }
