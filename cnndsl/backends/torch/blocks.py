"""Block classes: the calls of one block that agree in structure share one ``nn.Module`` class.

Anti-unification, innermost calls first: calls of one block whose drafts agree up to their
constants share a class; constants that differ between its calls become ``__init__``
parameters, named after the block parameter that carries them (``filters``), a multiple of one
(``filters * 4``) or their role (``in_channels``).  Calls that differ in structure get classes of
their own, named after the block parameter that tells them apart (``Bottleneck``,
``BottleneckProject``).  The result is a :class:`Plan`: everything :mod:`.render` writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...ir import Input, Network
from .. import refuse_training_outputs
from .._source import py_identifier
from .context import TARGET, helper_sources
from .drafts import RESERVED_NAMES, Draft, Scope, attr_name, lower, scope_tree, walk
from .expr import SELF, Attr, Code, Expr, Operation, literal, same

# ================================================================ classes: anti-unification


@dataclass(eq=False)
class Param:
    """An ``__init__`` parameter of a block class; ``in_forward``: stored as ``self.<name>``."""

    name: str
    values: tuple  # one per call of the class
    in_forward: bool = False


@dataclass(eq=False)
class BlockClass:
    """One ``nn.Module`` class of a block, shared by the calls whose drafts it unifies."""

    block: str
    draft: Draft  # the first call's draft, its differing constants replaced by parameters
    params: list[Param]
    calls: list[Scope]
    helpers: set[str]
    block_params: list[str]
    name: str = ""
    variant: str = ""  # e.g. "project=True", when the block has several classes


def _camel(name: str) -> str:
    parts = [p for p in py_identifier(name).split("_") if p]
    return "".join(p[:1].upper() + p[1:] for p in parts) or "Block"


def _derive(values: tuple, calls: list[Scope]) -> tuple[str, Any] | None:
    """A block parameter whose values (or a multiple, or a fraction) are `values` in every
    call: ("filters", None), ("filters", ("*", 4)) or ("filters", ("//", 2))."""
    if len(calls) < 2:
        return None
    names = list(calls[0].call.args)
    for name in names:
        if all(same(call.call.args.get(name), v) for call, v in zip(calls, values)):
            return name, None
    ints = all(isinstance(v, int) and not isinstance(v, bool) for v in values)
    if not ints:
        return None
    for name in names:
        ps = [call.call.args.get(name) for call in calls]
        if not all(isinstance(p, int) and not isinstance(p, bool) and p > 0 for p in ps):
            continue
        if values[0] % ps[0] == 0 and values[0] // ps[0] >= 2:
            k = values[0] // ps[0]
            if all(v == p * k for v, p in zip(values, ps)):
                return name, ("*", k)
        if values[0] > 0 and ps[0] % values[0] == 0 and ps[0] // values[0] >= 2:
            k = ps[0] // values[0]
            if all(p % k == 0 and v == p // k for v, p in zip(values, ps)):
                return name, ("//", k)
    return None


_FIRST_ROLES = ("in_channels", "in_features", "num_features")


def _unify(block: str, calls: list[Scope], drafts: list[Draft]) -> BlockClass:
    """One class for calls whose drafts have one structure: the constants that differ between
    the calls become parameters (one per distinct column of values)."""
    first = drafts[0]
    in_forward = {id(c) for step in first.steps for c in step.expr.consts()}
    block_params = list(calls[0].call.args)
    taken = set(block_params) | first.attrs() | RESERVED_NAMES
    params: dict[str, Param] = {}  # by the literal of their values
    roles: list[Param] = []
    replacement: dict[int, Expr] = {}

    def param(name: str, values: tuple, role: bool = False) -> Param:
        key = repr([literal(v) for v in values])
        if key not in params:
            params[key] = Param(name, values)
            if role:
                roles.append(params[key])
        return params[key]

    columns = zip(*([c for e in d.exprs() for c in e.consts()] for d in drafts))
    for column in columns:
        const, values = column[0], tuple(c.value for c in column)
        if all(same(values[0], v) for v in values[1:]):
            continue  # one value in every call: stays a literal
        forward = id(const) in in_forward
        found = _derive(values, calls)
        if found is not None and found[1] is not None and not forward:
            name, (op, k) = found
            base = param(name, tuple(c.call.args[name] for c in calls))
            replacement[id(const)] = Operation(op, (Code(base.name), Code(str(k))))
            continue
        key = repr([literal(v) for v in values])
        if key in params:
            p = params[key]
        elif found is not None and found[1] is None:
            p = param(found[0], values)
        else:
            name, n = const.role, 2
            while name in taken or any(q.name == name for q in params.values()):
                name, n = f"{const.role}_{n}", n + 1
            p = param(name, values, role=True)
        p.in_forward |= forward
        replacement[id(const)] = Attr(SELF, p.name) if forward else Code(p.name)
    # in_channels first, then the block's parameters in its order, then other roles
    ordered = [p for p in roles if p.name.startswith(_FIRST_ROLES)]
    ordered += sorted(
        (p for p in params.values() if p not in roles), key=lambda p: block_params.index(p.name)
    )
    ordered += [p for p in roles if p not in ordered]
    draft = first.replace(lambda c: replacement.get(id(c), c))
    return BlockClass(block, draft, ordered, calls, first.helpers, block_params)


def _name_classes(classes: list[BlockClass], network_class: str) -> None:
    """Class names: the block's in CamelCase; a block with several classes distinguishes them
    by the parameter whose value separates them (BottleneckProject) or by a number."""
    by_block: dict[str, list[BlockClass]] = {}
    for cls in classes:
        by_block.setdefault(cls.block, []).append(cls)
    taken = {network_class, *helper_sources(), "Module"}
    for block, group in by_block.items():
        base = _camel(block)
        names = [base] * len(group)
        if len(group) > 1:
            names = _variant_names(base, group)
        for cls, name in zip(group, names):
            candidate, n = name, 2
            while candidate in taken:
                candidate, n = f"{name}{n}", n + 1
            taken.add(candidate)
            cls.name = candidate


def _flag(value: Any) -> bool | None:
    """A block argument as a boolean (``true``/``false`` are booleans; ``on``/``off``/``yes``/``no``
    stay words in block arguments)."""
    if isinstance(value, bool):
        return value
    return {"true": True, "on": True, "yes": True, "false": False, "off": False, "no": False}.get(
        value if isinstance(value, str) else ""
    )


def _variant_names(base: str, group: list[BlockClass]) -> list[str]:
    """Names for the classes of one block: after the first block parameter that has one value
    per class and a different one in each (``project``: Bottleneck, BottleneckProject;
    ``convs``: StageConvs2, StageConvs3), else numbered (Stage, Stage2)."""
    for param in group[0].block_params:
        values = []
        for cls in group:
            shown = {literal(c.call.args.get(param)) for c in cls.calls}
            if len(shown) != 1:
                break
            values.append(cls.calls[0].call.args.get(param))
        else:
            if len({literal(v) for v in values}) != len(group):
                continue
            flags = [_flag(v) for v in values]
            if len(group) == 2 and None not in flags:
                names = [base + (_camel(param) if v else "") for v in flags]
            elif all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values):
                names = [f"{base}{_camel(param)}{v}" for v in values]
            elif all(isinstance(v, str) and v.isidentifier() for v in values):
                names = [f"{base}{_camel(v)}" for v in values]
            else:
                continue
            for cls, v in zip(group, values):
                if isinstance(v, bool):
                    cls.variant = f"{param}={str(v).lower()}"
                else:
                    cls.variant = f"{param}={v if isinstance(v, str) else literal(v)}"
            return names
    return [base if i == 0 else f"{base}{i + 1}" for i in range(len(group))]


# ================================================================ the plan


@dataclass
class Plan:
    """Everything the renderer writes: the classes (innermost first) and the network's."""

    net: Network
    root: Scope
    root_draft: Draft
    classes: list[BlockClass]  # innermost first
    network_class: str
    helpers: list[str]

    def prefixes(self) -> list[tuple[str, str]]:
        """(module path, node-name prefix) of the network and of every block call."""
        result = [("", "")]

        def visit(scope: Scope, path: str) -> None:
            for item in scope.items:
                if isinstance(item, Scope):
                    sub = f"{path}{attr_name(item.local)}"
                    result.append((sub, item.prefix))
                    visit(item, sub + ".")

        visit(self.root, "")
        return result

    def module_paths(self) -> dict[str, str]:
        """{node: path of its module in the model}, for nodes that own a module."""
        paths: dict[str, str] = {}

        def visit(scope: Scope, draft: Draft, path: str) -> None:
            attrs = draft.attrs()
            for item in scope.items:
                if isinstance(item, Scope):
                    visit(item, item.cls.draft, f"{path}{attr_name(item.local)}.")
                elif not isinstance(item, Input):
                    attr = attr_name(item.name.removeprefix(scope.prefix))
                    if attr in attrs:
                        paths[item.name] = path + attr

        visit(self.root, self.root_draft, "")
        return paths


def make_plan(net: Network) -> Plan:
    """Scopes, drafts and classes for the network: block calls of one height at a time,
    innermost first, so that a call's draft already names the classes of its nested calls."""
    net.analysis  # noqa: B018  (raises located errors for specs that cannot compute)
    refuse_training_outputs(net, TARGET)
    root = scope_tree(net)
    network_class = _camel(net.name)
    if network_class in helper_sources():
        network_class += "Net"
    calls = list(walk(root))
    classes: list[BlockClass] = []
    for height in range(max((s.height for s in calls), default=-1) + 1):
        groups: dict[tuple, list[tuple[Scope, Draft]]] = {}
        for scope in calls:
            if scope.height == height:
                draft = lower(net, scope)
                groups.setdefault((scope.call.block, draft.key()), []).append((scope, draft))
        for (block, _), members in groups.items():
            cls = _unify(block, [s for s, _ in members], [d for _, d in members])
            for i, (scope, _) in enumerate(members):
                scope.cls = cls
                scope.args = [p.values[i] for p in cls.params]
            classes.append(cls)
    _name_classes(classes, network_class)
    root_draft = lower(net, root)
    helpers = [name for name in helper_sources() if name in root_draft.helpers]
    return Plan(net, root, root_draft, classes, network_class, helpers)
