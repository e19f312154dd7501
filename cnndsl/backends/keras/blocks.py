"""Block functions: the calls of each spec block become one Python function, or a few.

:func:`block_functions` decides them, innermost blocks first.  In every call of a block it folds
loops (``loops.py``); the calls whose bodies have one structure (``tree.body_key``) share a
function, by anti-unification (:func:`_resolve`): a slot equal in every call stays a literal, a
slot that differs becomes a parameter, named after the block parameter that gives it where there
is one (equal to it, a product or quotient of two, a multiple or fraction of one, one less for a
loop count), else after the argument or the layer.  The most common structure of a block gets
the block's name; the others (variants) a name that says how they differ
(``bottleneck_project``, ``inverted_residual_expansion_1``).

Also here: the names generated source must not shadow (:data:`RESERVED`, :data:`MODULE_NAMES`)
and which names the elaborator made up (:func:`is_auto`), that generated code does not show.
"""

from __future__ import annotations

import builtins
import keyword
import re
from typing import Any

from .._source import py_identifier
from .calls import Sym
from .loops import align, fold
from .tree import Body, Call, Function, Loop, Prim, body_key, lit, slots_of

# ---------------------------------------------------------------- names

MODULE_NAMES = frozenset({"keras", "layers", "build_model"})
RESERVED = (
    frozenset(keyword.kwlist)
    | frozenset(keyword.softkwlist)
    | frozenset(dir(builtins))
    | {"i", "name"}
)


def is_auto(item) -> bool:
    """Whether the elaborator made up the item's name (``conv_3``, ``inception_2``)."""
    if item.local is None:
        return True
    if isinstance(item, Prim):
        node = item.call.node
        return (
            item.node_local is None
            or re.fullmatch(rf"{re.escape(node.type_name)}_\d+", item.node_local) is not None
        )
    return re.fullmatch(rf"{re.escape(item.site.block)}_\d+", item.local) is not None


def _user_locals(items) -> list[str]:
    names = []
    for item in items:
        if isinstance(item, Loop):
            names += _user_locals(item.unit.items)
        elif not is_auto(item):
            names.append(item.node_local if isinstance(item, Prim) else item.local)
    return list(dict.fromkeys(names))


def _unique(candidate: str, taken: set[str]) -> str:
    name, k = candidate, 1
    while name in taken or name in RESERVED:
        k += 1
        name = f"{candidate}_{k}"
    taken.add(name)
    return name


# ---------------------------------------------------------------- block functions


def block_functions(root: Body, taken: set[str]) -> list[Function]:
    """Decide the block functions, innermost blocks first; fold loops in every block body."""
    calls: list[Call] = []
    inner: dict[str, set[str]] = {}

    def walk(body: Body, block: str | None) -> None:
        for item in body.items:
            if isinstance(item, Call):
                calls.append(item)
                inner.setdefault(item.site.block, set())
                if block is not None:
                    inner[block].add(item.site.block)
                walk(item.body, item.site.block)

    walk(root, None)
    by_block: dict[str, list[Call]] = {}
    for call in calls:
        by_block.setdefault(call.site.block, []).append(call)
    block_names = {py_identifier(b) for b in by_block}
    order: list[str] = []
    while len(order) < len(by_block):  # blocks after the blocks they call (there is no recursion)
        order.append(next(b for b in by_block if b not in order and inner[b] <= set(order)))

    functions = []
    for block in order:
        for call in by_block[block]:
            fold(call.body, set(call.body.outputs))
        align(by_block[block])
        groups: dict[tuple, list[Call]] = {}
        for call in by_block[block]:
            groups.setdefault(body_key(call.body), []).append(call)
        members = list(groups.values())
        main = max(range(len(members)), key=lambda g: (len(members[g]), -g))
        number = 1
        for g, group in enumerate(members):
            if g == main:
                candidate = py_identifier(block)
                if candidate in taken:
                    candidate += "_block"
            else:
                names = [
                    n
                    for n in _variant_names(block, group, members[main])
                    if n not in taken | block_names
                ]
                if names:
                    candidate = names[0]
                else:
                    number += 1
                    candidate = py_identifier(f"{block}_{number}")
            functions.append(_resolve(_unique(candidate, taken), block, group, taken))
            functions[-1].variant = len(members) > 1
    return functions


# ---------------------------------------------------------------- variants

_TRUE, _FALSE = {True, "true", "on", "yes"}, {False, "false", "off", "no"}


def _variant_names(block: str, group: list[Call], main: list[Call]) -> list[str]:
    """Names for calls of a block whose structure differs from its most common one, best first:
    after a parameter that is constant in both and differs (``bottleneck_project``,
    ``inverted_residual_expansion_1``), a name given only in them, a layer kind they add or lack."""
    names = []
    for p in group[0].site.args:
        mine = {lit(_norm(call.site.args.get(p))) for call in group}
        theirs = {lit(_norm(call.site.args.get(p))) for call in main}
        if len(mine) == 1 and len(theirs) == 1 and mine != theirs:
            value = _norm(group[0].site.args.get(p))
            if isinstance(value, (bool, str)) and value in _TRUE:
                names.append(f"{block}_{p}")
            elif isinstance(value, (bool, str)) and value in _FALSE:
                names.append(f"{block}_no_{p}")
            elif _int(value) or (isinstance(value, str) and value.isidentifier()):
                names.append(f"{block}_{p}_{value}")
    main_names = set(_user_locals(main[0].body.items))
    names += [f"{block}_{n}" for n in _user_locals(group[0].body.items) if n not in main_names]
    mine, theirs = _kinds(group[0].body.items), _kinds(main[0].body.items)
    names += [f"{block}_with_{k}" for k in mine if k not in theirs]
    names += [f"{block}_no_{k}" for k in theirs if k not in mine]
    return [py_identifier(n) for n in names]


def _kinds(items) -> list[str]:
    """The layer kinds and blocks a body uses, in order."""
    kinds: list[str] = []
    for item in items:
        if isinstance(item, Loop):
            kinds += _kinds(item.unit.items)
        elif isinstance(item, Call):
            kinds.append(item.site.block)
        elif item.call.name == item.call.node.name:
            kinds.append(item.call.node.type_name)
    return list(dict.fromkeys(kinds))


# ---------------------------------------------------------------- anti-unification


def _resolve(name: str, block: str, group: list[Call], module: set[str]) -> Function:
    """Anti-unify the calls of one structure: slots equal in every call stay literals, the others
    become parameters, named after the block parameter that gives them where there is one.
    ``module``: the names a parameter must not shadow (modules, classes, functions)."""
    first = group[0]
    args = [call.site.args for call in group]
    block_params = list(first.site.args)
    avoid = RESERVED | module | {"x"}
    pyname = {
        p: p if p.isidentifier() and p not in avoid else f"{py_identifier(p)}_"
        for p in block_params
    }

    # tensors: the block parameter naming the tensor in every call, else x, x2, ...
    input_params: list[str | None] = []
    for k in range(len(first.body.inputs)):
        values = [call.body.inputs[k] for call in group]
        input_params.append(
            next(
                (
                    p
                    for p in block_params
                    if p not in input_params and [a.get(p) for a in args] == values
                ),
                None,
            )
        )
    value_params = [p for p in block_params if p not in input_params]
    given = {p: [_norm(a.get(p)) for a in args] for p in value_params}

    slots = [list(slots_of(call.body.items)) for call in group]
    plan: list[tuple] = []
    derived: dict[tuple, tuple[str, str]] = {}  # its literal in each call -> (key, hint)
    for k, (key, hint, value) in enumerate(slots[0]):
        vector = [s[k][2] for s in slots]
        if len({lit(v) for v in vector}) == 1:
            # the same in every call: a literal, unless a block parameter of the same name gives
            # it (and it is not a value like 1 or off, which might just as well be a constant)
            plain = value is None or isinstance(value, (bool, Sym)) or (_int(value) and value <= 1)
            word = (
                None
                if plain
                else next(
                    (p for p in value_params if _same_word(key, p) and _equal(given[p], vector)),
                    None,
                )
            )
            plan.append(("param", word) if word else ("const", value))
            continue
        entry = _match(vector, value_params, given, key == "repeats")
        if entry is None:
            lits = tuple(lit(v) for v in vector)
            entry = ("derived", derived.setdefault(lits, (key, hint)), k)
        plan.append(entry)

    used = {e[1] for e in plan if e[0] in ("param", "expr")} | {
        e[3] for e in plan if e[0] == "expr"
    }
    params = [p for p in value_params if p in used]
    taken = {pyname[p] for p in params} | module
    inputs, unnamed = [], 0
    for p in input_params:
        unnamed += p is None
        inputs.append(_unique(pyname[p] if p else "x" if unnamed == 1 else f"x{unnamed}", taken))
    # a derived parameter is named after its argument (units), or where two would be, the layer
    keys = [key for key, _ in derived.values()]
    derived_names = {
        (key, hint): _unique(py_identifier(key if keys.count(key) == 1 else hint), taken)
        for key, hint in derived.values()
    }
    derived_first: dict[str, int] = {}  # parameter -> the first slot that gives it
    final_plan = []
    for entry in plan:
        if entry[0] == "derived":
            derived_first.setdefault(derived_names[entry[1]], entry[2])
            final_plan.append(("param", derived_names[entry[1]]))
        elif entry[0] == "param":
            final_plan.append(("param", pyname[entry[1]]))
        elif entry[0] == "expr":
            _, left, op, right = entry
            final_plan.append(("expr", pyname[left], op, pyname.get(right, right)))
        else:
            final_plan.append(entry)
    fn = Function(
        name=name,
        block=block,
        calls=group,
        input_names=inputs,
        params=[pyname[p] for p in params] + list(derived_first),
        keyword=set(derived_first),
        plan=final_plan,
    )
    for call, call_slots in zip(group, slots):
        call.func = fn
        call.values = [_norm(call.site.args[p]) for p in params]
        call.values += [call_slots[k][2] for k in derived_first.values()]
    return fn


def _same_word(key: str, param: str) -> bool:
    """``filters`` and ``filters``, ``strides`` and ``stride``: a slot and a block parameter
    that name one thing."""
    return key == param or key.rstrip("s") == param.rstrip("s")


def _equal(given: list, vector: list) -> bool:
    return [_mtok(g) for g in given] == [_mtok(v) for v in vector]


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _match(vector, value_params, given, count: bool) -> tuple | None:
    """How a slot that differs between calls follows from the block's parameters: equal to one,
    a product or quotient of two, a multiple or fraction of one, or (a loop count) one less."""
    for p in value_params:
        if _equal(given[p], vector):
            return ("param", p)
    if not all(_int(v) for v in vector):
        return None
    ints = [p for p in value_params if all(_int(g) and g > 0 for g in given[p])]
    for p in ints:
        for q in ints:
            if p != q and all(v == a * b for v, a, b in zip(vector, given[p], given[q])):
                return ("expr", p, "*", q)
            if p != q and all(v == a // b for v, a, b in zip(vector, given[p], given[q])):
                return ("expr", p, "//", q)
    for p in ints:
        a0, v0 = given[p][0], vector[0]
        if (
            v0 % a0 == 0
            and v0 // a0 >= 2
            and all(v == a * (v0 // a0) for v, a in zip(vector, given[p]))
        ):
            return ("expr", p, "*", v0 // a0)
        if v0 > 0 and a0 // v0 >= 2 and all(v == a // (a0 // v0) for v, a in zip(vector, given[p])):
            return ("expr", p, "//", a0 // v0)
        if count and all(v == a - 1 for v, a in zip(vector, given[p])):
            return ("expr", p, "-", 1)
    return None


def _norm(value: Any) -> Any:
    """A block argument in the form the plan writes values: lists as tuples, (n, n) as n."""
    if isinstance(value, list):
        value = tuple(_norm(v) for v in value)
    if (
        isinstance(value, tuple)
        and len(value) == 2
        and value[0] == value[1]
        and not isinstance(value[0], (tuple, bool))
    ):
        return value[0]
    return value


def _mtok(value: Any) -> Any:
    """A value for matching with block arguments: by type and value (6 is not 6.0 nor True)."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, (int, float)):
        return (type(value).__name__, value)
    if isinstance(value, (list, tuple)):
        return ("tuple", tuple(_mtok(v) for v in value))
    if isinstance(value, Sym):
        return ("sym", value.name)
    return (type(value).__name__, value)
