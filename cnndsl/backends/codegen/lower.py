"""Lowering: each scope of the call tree becomes a :class:`Draft`, the body of one function.

A node is lowered by its back end's handler (:class:`NodeContext` is what the handler sees) into
expressions: the layers it makes (:class:`Module`: statements of PyTorch's ``__init__``; Keras
makes its layers where they are applied) and the steps that compute its value (:class:`Step`:
``target = expression``).  A nested block call is one step that calls the callee's function or
module.  Layer arguments stay :class:`~.expr.Const` leaves, so that the drafts of one block's
calls can be compared and anti-unified (:mod:`.unify`) before anything is written.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ...ir import Input, Layer, LoopSite
from .expr import Const, Expr, LayerName, Var
from .names import comment_text
from .tree import CallScope, local_name

if TYPE_CHECKING:
    from .generator import Generator


@dataclass
class Module:
    """A layer made before the steps that use it: ``self.<attr> = <expr>`` in PyTorch's
    ``__init__`` (or, with ``attr`` None, another statement of it)."""

    attr: str | None
    expr: Expr
    comment: str | None
    node: str | None = None  # the IR node it is for (None: a block call's module)

    def key(self, pos) -> tuple:
        return (self.attr, self.expr.key(pos), self.comment)


@dataclass
class Step:
    """One statement of a function body: ``targets = expr``.  ``targets`` are the values it
    defines (IR node names; a helper value of a node is ``<node>:<k>``); ``local`` the name of
    what it computes in its scope (a node, a helper layer, a block call)."""

    targets: list[str]
    expr: Expr
    local: str
    comment: str | None
    merge: bool = False  # merges its inputs (their variables may be named branch1, branch2...)
    node: str | None = None  # the node whose value it gives (a tap reports it)
    hint: str | None = None  # a preferred variable name for its value
    kind: str | None = None  # the node's kind or the block called (names variants)
    auto: bool = True  # its local name was made up by the elaborator (conv_3, inception_2)
    loops: tuple[LoopSite, ...] = ()  # the loop iterations in its scope's body that made it

    @functools.cached_property
    def reads(self) -> list[str]:
        """The values it reads, in order (repeats included)."""
        return list(self.expr.vars())

    def key(self, pos) -> tuple:
        return (len(self.targets), self.expr.key(pos), self.comment, self.merge, self.local)


@dataclass
class Loop:
    """``count`` repetitions of ``unit``, each reading the previous one's result (folded from
    the iterations of a ``repeat`` or ``for``: :mod:`.loops`).  The unit's arguments: the
    carried value, then values from before the loop that every repetition reads."""

    unit: Draft
    count: Expr  # a Const, until anti-unification makes it a parameter
    targets: list[str]
    comment = None
    merge = False
    node = None
    hint = None
    kind = None
    auto = True

    @property
    def reads(self) -> list[str]:
        return list(self.unit.args)

    @property
    def local(self) -> str | None:
        """What it repeats: ``res`` for res_1, res_2..."""
        last = self.unit.steps[-1].local
        return last.rpartition("_")[0] if last else None

    @property
    def expr(self) -> Expr:  # for what walks expressions: the count
        return self.count

    def key(self, pos) -> tuple:
        return ("loop", self.unit.key(), tuple(pos(v) for v in self.reads))


@dataclass
class Draft:
    """A scope lowered: its arguments (IR values from outside), modules, steps and outputs."""

    args: list[str]
    modules: list[Module]
    steps: list[Step | Loop]
    outputs: list[str]
    live_out: list[str] = field(default_factory=list)  # values needed after the last step too

    def positions(self) -> dict[str, tuple]:
        refs: dict[str, tuple] = {name: ("arg", i) for i, name in enumerate(self.args)}
        for i, step in enumerate(self.steps):
            for j, name in enumerate(step.targets):
                refs[name] = ("step", i, j)
        return refs

    def key(self) -> tuple:
        refs = self.positions()
        pos = refs.__getitem__
        return (
            len(self.args),
            tuple(m.key(pos) for m in self.modules),
            tuple(s.key(pos) for s in self.steps),
            tuple(refs[o] for o in self.outputs),
        )

    def consts(self) -> Iterator[Const]:
        """Every Const, in a fixed order: the modules', then the steps' (a loop's count, then
        its unit's)."""
        for module in self.modules:
            yield from module.expr.consts()
        for step in self.steps:
            if isinstance(step, Loop):
                yield step.count
                yield from step.unit.consts()
            else:
                yield from step.expr.consts()

    def replace(self, fn: Callable[[Expr], Expr]) -> Draft:
        """A copy with every Const and LayerName leaf replaced by fn(leaf)."""
        steps: list[Step | Loop] = []
        for step in self.steps:
            if isinstance(step, Loop):
                steps.append(Loop(step.unit.replace(fn), fn(step.count), step.targets))
            else:
                steps.append(dataclasses.replace(step, expr=step.expr.replace(fn)))
        modules = [dataclasses.replace(m, expr=m.expr.replace(fn)) for m in self.modules]
        return Draft(self.args, modules, steps, self.outputs, self.live_out)

    def attrs(self) -> set[str]:
        return {m.attr for m in self.modules if m.attr}


def where(position) -> str | None:
    """A node's spec line as generated code cites it: ``vgg16.cnn:8``."""
    if position is None:
        return None
    return comment_text(f"{os.path.basename(position.file)}:{position.line}")


class NodeContext:
    """What a handler sees: the node, its input and output shapes, the expressions of its
    inputs (``xs``), and ways to make its layers and helper values."""

    def __init__(self, gen: Generator, draft: Draft, scope: CallScope, layer: Layer):
        info = gen.net.analysis[layer.name]
        self.gen = gen
        self.draft = draft
        self.net = gen.net
        self.layer = layer
        self.scope = scope
        self.local = local_name(layer.name, scope.prefix) or layer.name
        self.in_shapes: list[tuple[int, ...]] = list(info.input_shapes)
        self.out_shape: tuple[int, ...] = info.output_shape
        self.comment = where(layer.position)
        self.loops = loops_in(layer, scope)
        self.xs: list[Expr] = [Var(name) for name in layer.inputs]
        self.modules: list[Module] = []
        self.lets: list[Step] = []
        self._last: str | None = None

    @property
    def x(self) -> Expr:
        return self.xs[0]

    @property
    def in_shape(self) -> tuple[int, ...]:
        return self.in_shapes[0]

    def module(self, ctor: Expr, suffix: str | None = None) -> Expr:
        """Make one layer of the node (a helper layer with ``suffix``: ``conv_1_pad``); returns
        the expression that applies it (see :meth:`Generator.define`)."""
        name = self.layer.name if suffix is None else self.gen.helper_name(self.layer, suffix)
        self._last = local_name(name, self.scope.prefix) or name
        return self.gen.define(self, ctor, LayerName(local_name(name, self.scope.prefix), name))

    def init(self, expr: Expr) -> None:
        """One more statement after the node's module (PyTorch's ``__init__``)."""
        self.modules.append(Module(None, expr, None, self.layer.name))

    def let(self, expr: Expr) -> Expr:
        """A helper value computed in a statement of its own; returns it."""
        name = f"{self.layer.name}:{len(self.lets)}"
        local = self._last or f"{self.local}_{len(self.lets) + 1}"
        self.lets.append(Step([name], expr, local, self.comment, loops=self.loops))
        return Var(name)

    def helper(self, name: str) -> str:
        """A name the back end's runtime module defines (a custom layer, a helper function),
        copied into the generated file."""
        self.gen.use_helper(name)
        return name

    def unsupported(self, why: str):
        """The located error for what the target cannot express; raise it."""
        return self.gen.unsupported(self.layer, why)


def lower(gen: Generator, scope: CallScope, args: list[str]) -> Draft:
    """The draft of one scope: each node by its handler, each nested call (whose function is
    already decided) as one step."""
    draft = Draft(list(args), [], [], list(scope.outputs))
    for item in scope.items:
        if isinstance(item, CallScope):
            gen.lower_call(draft, scope, item)
        elif not (isinstance(item, Input) and item.name in draft.args):
            _lower_node(gen, draft, scope, item)
    return draft


def _lower_node(gen: Generator, draft: Draft, scope: CallScope, layer: Layer) -> None:
    ctx = NodeContext(gen, draft, scope, layer)
    expr = gen.handler(type(layer))(gen, ctx)
    lets = [step.expr for step in ctx.lets]
    for e in (*(m.expr for m in ctx.modules), *lets, expr):
        for c in e.consts():
            c.owner = c.owner or ctx.local
    draft.modules.extend(ctx.modules)
    draft.steps.extend(ctx.lets)
    comment = None if ctx.modules else ctx.comment
    merge = layer.max_inputs is None
    kind = layer.type_name
    auto = local_name(layer.name, scope.prefix) is None or _counted(ctx.local, kind)
    hint = gen.variable_hint(layer)
    draft.steps.append(
        Step([layer.name], expr, ctx.local, comment, merge, layer.name, hint, kind, auto, ctx.loops)
    )


def call_step(scope: CallScope, sub: CallScope, expr: Expr, comment: str | None) -> Step:
    """The step of a nested block call: its values are the callee's outputs; its loops, those
    of the caller's body that every node of the call was made in."""
    block = sub.site.block
    auto = local_name(sub.site.instance, scope.prefix) is None or _counted(sub.local, block)
    loops = loops_in(sub.nodes[0], scope)
    for node in sub.nodes[1:]:
        if loops:
            inner = loops_in(node, scope)
            while inner[: len(loops)] != loops:
                loops = loops[:-1]
    return Step(list(sub.outputs), expr, sub.local, comment, kind=block, auto=auto, loops=loops)


def loops_in(layer: Layer, scope: CallScope) -> tuple[LoopSite, ...]:
    """The iterations of the loops of a scope's own body that made a node, outermost first."""
    return tuple([site for site in layer.loops if site.depth == scope.depth])


def _counted(local: str, made: str) -> bool:
    """Whether a name is one the elaborator made up: ``conv_3`` for a conv, ``inception_2``
    for a call of inception."""
    head, _, number = local.rpartition("_")
    return head == made and number.isdigit()
