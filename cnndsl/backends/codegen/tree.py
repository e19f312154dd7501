"""The call tree: a network's nodes grouped by the block calls that made them.

Every IR node records its block provenance (``node.calls``: the block calls it came through,
outermost first).  :func:`call_tree` turns that into a tree of :class:`CallScope`: the
network, and in it one scope per block call, nested as the calls were.  Back ends write one
function or class per block from it; diagrams draw one cluster per scope.  (A call scope is a
part of the graph; the elaborator's :class:`~cnndsl.elaborate.values.Scope` is a lexical scope
of variables.)

The tree is built from what the IR guarantees, and nothing more: a network that validates may
come from a JSON file with any provenance.  So a scope is a contiguous run of nodes that name
one call instance at one depth (a call whose nodes are not contiguous becomes several scopes,
each a correct function of its inputs), and an input node is never inside a scope (its
provenance is ignored: a network's inputs are the arguments of the whole model).  Building the
tree is linear in the number of nodes times the depth of the calls.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ...ir import CallSite, Input, Layer, Network


@dataclass(eq=False)
class CallScope:
    """The network (``site`` None) or one block call: its items in order, nodes and nested
    scopes; the values it reads from outside (``inputs``, in order of first use) and those used
    outside it (``outputs``: read by a later node outside, or outputs of the network)."""

    site: CallSite | None
    prefix: str  # the prefix of its nodes' names: "block1_" ("" for the network)
    local: str  # its name in its caller: "block1" (the instance, after the caller's prefix)
    depth: int = 0  # how many block calls it is inside of, itself included (0: the network)
    items: list[Layer | CallScope] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    nodes: list[Layer] = field(default_factory=list)  # every node inside, nested ones too
    height: int = 0  # 0: calls no block
    parent: CallScope | None = None
    # set by the code generator: the function (or class) this call uses, with its arguments
    function: Any = None
    values: list = field(default_factory=list)
    draft: Any = None  # its own lowered body
    attr: str | None = None  # PyTorch: its module's attribute in its caller

    def scopes(self) -> Iterator[CallScope]:
        """Every scope inside this one (not itself), callers before the calls they make."""
        for item in self.items:
            if isinstance(item, CallScope):
                yield item
                yield from item.scopes()

    def path(self) -> tuple[str, ...]:
        """The instances of the calls down to this one."""
        scope, names = self, []
        while scope is not None and scope.site is not None:
            names.append(scope.site.instance)
            scope = scope.parent
        return tuple(reversed(names))


def local_name(name: str, prefix: str) -> str | None:
    """A name after a scope's prefix (``block1_conv_1`` in ``block1_``: ``conv_1``), or None."""
    return name[len(prefix) :] if name.startswith(prefix) and len(name) > len(prefix) else None


def call_tree(net: Network) -> CallScope:
    """The network's scope, each block call a scope in its caller's."""
    root = CallScope(None, "", "")
    _fill(root, net.layers, 0)
    users = net.consumers()
    outputs = set(net.outputs)
    for scope in reversed(list(root.scopes())):  # calls before their callers: heights known
        _connect(scope, users, outputs)
    root.inputs = [layer.name for layer in net.layers if isinstance(layer, Input)]
    root.outputs = list(net.outputs)
    root.height = max((s.height + 1 for s in root.items if isinstance(s, CallScope)), default=0)
    return root


def _calls(layer: Layer) -> tuple[CallSite, ...]:
    return () if isinstance(layer, Input) else layer.calls


def _fill(scope: CallScope, layers: list[Layer], depth: int) -> None:
    scope.nodes = list(layers)
    i = 0
    while i < len(layers):
        calls = _calls(layers[i])
        if len(calls) <= depth:
            scope.items.append(layers[i])
            i += 1
            continue
        site = calls[depth]
        j = i + 1
        while j < len(layers):
            inner = _calls(layers[j])
            if len(inner) <= depth or inner[depth].instance != site.instance:
                break
            j += 1
        local = local_name(site.instance, scope.prefix) or site.instance
        sub = CallScope(site, site.instance + "_", local, depth + 1, parent=scope)
        _fill(sub, layers[i:j], depth + 1)
        scope.items.append(sub)
        i = j


def _connect(scope: CallScope, users: dict[str, list[str]], outputs: set[str]) -> None:
    inside = {layer.name for layer in scope.nodes}
    seen: set[str] = set()
    for layer in scope.nodes:
        for name in layer.inputs:
            if name not in inside and name not in seen:
                seen.add(name)
                scope.inputs.append(name)
    scope.outputs = [
        layer.name
        for layer in scope.nodes
        if layer.name in outputs or any(u not in inside for u in users[layer.name])
    ] or [scope.nodes[-1].name]
    scope.height = max((s.height + 1 for s in scope.items if isinstance(s, CallScope)), default=0)
