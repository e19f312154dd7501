"""Block calls as scopes, and each scope lowered to a draft.

1. **Scopes.**  Nodes are grouped by block call (``CallSite.instance``) into a tree: each block
   call becomes a sub-module of its caller, with the values it reads from outside as the
   arguments of its ``forward`` and the values used outside as its results.
2. **Drafts.**  Each node of a scope is lowered by its handler into ``__init__`` statements and
   one ``forward`` step; a nested call is one step calling the sub-module.  Layer arguments stay
   :class:`~.expr.Const` leaves, so :mod:`.blocks` can compare the drafts of one block's calls.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ...ir import Add, CallSite, Concat, Input, Layer, Multiply, Network
from .. import unhandled_activation, unsupported
from .._source import comment_text, py_identifier
from .context import TARGET, NodeContext, Statement
from .expr import SELF, Attr, Call, ClassRef, Const, Expr, Var, call
from .handlers import HANDLERS, UNSUPPORTED, UNSUPPORTED_ACTIVATIONS

if TYPE_CHECKING:
    from .blocks import BlockClass


# ================================================================ scopes: block calls


@dataclass(eq=False)
class Scope:
    """The network, or one block call: its nodes and nested calls, in order."""

    call: CallSite | None
    prefix: str  # prefix of its nodes' names: "block1_" ("" for the network)
    local: str  # its attribute in the caller: "block1"
    items: list[Layer | Scope] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)  # values read from outside
    outputs: list[str] = field(default_factory=list)  # values used outside
    height: int = 0
    layers: list[Layer] = field(default_factory=list)  # every node inside, nested too
    cls: BlockClass | None = None
    args: list[Any] = field(default_factory=list)  # its class's parameters for this call


def scope_tree(net: Network) -> Scope:
    """The network's scope, every block call a scope nested in its caller's, with the values
    each reads from outside (its inputs) and those used outside (its outputs)."""
    root = Scope(None, "", "")
    _fill(root, net.layers, 0)
    users = net.consumers()
    outputs = set(net.outputs)

    def connect(scope: Scope) -> None:
        inside = {layer.name for layer in scope.layers}
        seen: set[str] = set()
        for layer in scope.layers:
            for name in layer.inputs:
                if name not in inside and name not in seen:
                    seen.add(name)
                    scope.inputs.append(name)
        scope.outputs = [
            layer.name
            for layer in scope.layers
            if layer.name in outputs or any(u not in inside for u in users[layer.name])
        ] or [scope.layers[-1].name]
        for item in scope.items:
            if isinstance(item, Scope):
                connect(item)
                scope.height = max(scope.height, item.height + 1)

    for item in root.items:
        if isinstance(item, Scope):
            connect(item)
    root.inputs = [layer.name for layer in net.inputs]
    root.outputs = list(net.outputs)
    return root


def _fill(scope: Scope, layers: list[Layer], depth: int) -> None:
    scope.layers = list(layers)
    done: set[str] = set()
    i = 0
    while i < len(layers):
        layer = layers[i]
        if len(layer.calls) <= depth:
            scope.items.append(layer)
            i += 1
            continue
        site = layer.calls[depth]
        j = i
        while (
            j < len(layers)
            and len(layers[j].calls) > depth
            and layers[j].calls[depth].instance == site.instance
        ):
            j += 1
        if site.instance in done:
            raise AssertionError(f"the nodes of block call {site.instance} are not contiguous")
        done.add(site.instance)
        local = site.instance.removeprefix(scope.prefix)
        sub = Scope(site, site.instance + "_", local)
        _fill(sub, layers[i:j], depth + 1)
        scope.items.append(sub)
        i = j


def walk(scope: Scope) -> Iterator[Scope]:
    """Every scope below `scope` (not itself), parents before children."""
    for item in scope.items:
        if isinstance(item, Scope):
            yield item
            yield from walk(item)


# ================================================================ drafts


# Names an attribute must not take (nn.Module's own) and a variable must not take.
_MODULE_ATTRS = frozenset(
    """T_destination add_module apply bfloat16 buffers call_super_init children compile cpu cuda
    double dump_patches eval extra_repr float forward get_buffer get_extra_state get_parameter
    get_submodule half ipu load_state_dict modules mtia named_buffers named_children
    named_modules named_parameters parameters register_backward_hook register_buffer
    register_forward_hook register_forward_pre_hook register_full_backward_hook
    register_full_backward_pre_hook register_load_state_dict_post_hook
    register_load_state_dict_pre_hook register_module register_parameter
    register_state_dict_post_hook register_state_dict_pre_hook requires_grad_ set_extra_state
    set_submodule share_memory state_dict to to_empty train training type xpu zero_grad""".split()
)
RESERVED_NAMES = frozenset({"self", "torch", "nn", "F", "super", "_tap", "build_model"})


def attr_name(local: str) -> str:
    name = py_identifier(local)
    while name.startswith("__"):  # no name mangling
        name = name[1:]
    while name in _MODULE_ATTRS:
        name += "_"
    return name


@dataclass
class Step:
    """One statement of ``forward``: the values it defines (IR names), its expression."""

    targets: list[str]
    expr: Expr
    reads: list[str]
    local: str  # the node's or call's name inside the scope
    comment: str | None  # the spec line, when no module definition carries it
    merge: bool = False
    tap: bool = True  # a node's value (not a nested call's)

    def key(self):
        return (len(self.targets), self.expr.key(), self.comment, self.merge, self.tap, self.local)


@dataclass
class Draft:
    """A scope lowered: ``__init__`` statements and ``forward`` steps, constants in place."""

    args: list[str]  # forward's arguments (IR names)
    inits: list[Statement]
    steps: list[Step]
    outputs: list[str]
    helpers: set[str]

    def exprs(self) -> Iterator[Expr]:
        for statement in self.inits:
            yield statement.expr
        for step in self.steps:
            yield step.expr

    def key(self) -> tuple:
        refs = self.refs()
        return (
            len(self.args),
            tuple(s.key() for s in self.inits),
            tuple(s.key() for s in self.steps),
            tuple(refs[o] for o in self.outputs),
        )

    def attrs(self) -> set[str]:
        """The attributes of ``self`` its ``__init__`` defines."""
        return {s.attr for s in self.inits if s.attr}

    def replace(self, fn: Callable[[Const], Expr]) -> Draft:
        """A copy with every Const c of its expressions replaced by fn(c)."""
        return Draft(
            self.args,
            [Statement(s.attr, s.expr.replace(fn), s.comment) for s in self.inits],
            [dataclasses.replace(s, expr=s.expr.replace(fn)) for s in self.steps],
            self.outputs,
            self.helpers,
        )

    def refs(self) -> dict[str, tuple]:
        refs: dict[str, tuple] = {name: ("arg", i) for i, name in enumerate(self.args)}
        for i, step in enumerate(self.steps):
            for j, name in enumerate(step.targets):
                refs[name] = ("step", i, j)
        return refs


def _where(position) -> str:
    if position is None:
        return ""
    return comment_text(f"{os.path.basename(position.file)}:{position.line}")


def lower(net: Network, scope: Scope) -> Draft:
    """The draft of one scope: each node by its handler, each nested call (whose class is
    already known) as a call of its sub-module."""
    args = list(scope.inputs)
    refs: dict[str, tuple] = {name: ("arg", i) for i, name in enumerate(args)}
    inits: list[Statement] = []
    steps: list[Step] = []
    helpers: set[str] = set()
    for item in scope.items:
        if isinstance(item, Layer) and isinstance(item, Input):
            continue
        index = len(steps)
        if isinstance(item, Scope):
            sub = item
            attr = attr_name(sub.local)
            consts = (Const(v, p.name) for v, p in zip(sub.args, sub.cls.params))
            ctor = Call(ClassRef(sub.cls), tuple(consts))
            inits.append(Statement(attr, ctor, _where(sub.call.position)))
            expr = call(Attr(SELF, attr), *(Var(refs[name]) for name in sub.inputs))
            step = Step(list(sub.outputs), expr, list(sub.inputs), sub.local, None, tap=False)
        else:
            layer = item
            local = layer.name.removeprefix(scope.prefix)
            ctx = NodeContext(net, layer, attr_name(local), _where(layer.position))
            handler = HANDLERS.get(type(layer))
            if handler is None:
                why = UNSUPPORTED.get(type(layer), f"no handler for {type(layer).__name__}")
                raise unsupported(net, layer, TARGET, why)
            why = unhandled_activation(layer, UNSUPPORTED_ACTIVATIONS)
            if why:
                raise unsupported(net, layer, TARGET, why)
            expr = handler(ctx, [Var(refs[name]) for name in layer.inputs])
            inits.extend(ctx.inits)
            helpers |= ctx.helpers
            comment = None if ctx.inits else ctx.comment
            merge = isinstance(layer, (Add, Concat, Multiply))
            step = Step([layer.name], expr, list(layer.inputs), local, comment, merge)
        for j, name in enumerate(step.targets):
            refs[name] = ("step", index, j)
        steps.append(step)
    for sub in scope.items:
        if isinstance(sub, Scope):
            helpers |= sub.cls.helpers
    return Draft(args, inits, steps, list(scope.outputs), helpers)
