"""Anti-unification: the calls of one block become one function (or module class) each
structure.

The drafts of a block's calls that have one key (one structure, the constants aside) share a
:class:`Function`.  Column by column over their constants (:func:`unify`):

- a constant equal in every call stays a literal, unless a block parameter of the same name
  gives it (``filters`` for a layer's ``filters``), it is not a value like 0, 1, on or off,
  which might just as well be a constant, and the target infers its layers' input sizes (a
  Keras function stays valid for other values of that parameter; a PyTorch class would not);
- a constant that differs becomes a parameter: the block parameter equal to it where there is
  one, else an expression of them -- a product or quotient of two (``f * e``), a multiple or
  fraction of one (``filters * 4``, ``c // 2``), one less for a loop count (``blocks - 1``) --
  else a parameter of its own, named after its role (``in_channels``, ``units``).

Calls of a block whose structures differ get functions of their own (variants): the most
common structure is named after the block, the others after what tells them apart
(:func:`name_functions`: ``bottleneck_project``, ``inverted_residual_expansion_1``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .expr import Code, Expr, Operation, Ref, Sym, has_literal, literal
from .lower import Draft, Loop
from .names import Namespace
from .tree import CallScope


@dataclass(eq=False)
class Param:
    """A parameter of a function: a block parameter (``kind`` "block"), or a value of its own
    ("derived"); its value in each call of the function."""

    source: str  # the block parameter, or the role of a derived value
    values: list
    kind: str = "block"
    owner: str | None = None  # derived: the layer or call it is an argument of
    first: bool = False  # derived from the input's shape: written first (in_channels)
    stored: bool = False  # read where the function runs (PyTorch's forward): self.<name>
    name: str = ""


@dataclass(eq=False)
class Function:
    """One generated function or module class: the calls of a block that have one structure."""

    block: str
    draft: Draft  # the first call's draft, with its parameters in place of the constants
    params: list[Param]
    inputs: list[str | None]  # for each tensor argument, the block parameter that passes it
    calls: list[CallScope]
    name: str = ""
    arg_names: list[str] = field(default_factory=list)  # the tensor arguments' names
    variant: str = ""  # "project=true", when its block has several functions
    variants: int = 1  # how many functions its block has


def unify(
    block: str,
    calls: list[CallScope],
    drafts: list[Draft],
    in_forward: Callable[[Draft], set[int]] | None = None,
    first_roles: tuple[str, ...] = (),
    named_constants: bool = True,
) -> Function:
    """One function for calls whose drafts have one key.  ``in_forward(draft)``: the ids of the
    constants read where the function runs rather than where it is built (PyTorch's forward):
    those become stored parameters (``self.slope``), never expressions.  ``named_constants``:
    whether a constant equal in every call may be written as the block parameter of its name
    (only where the framework infers the layers' input sizes, as Keras does: a PyTorch class
    parameterized so would not be valid for other values of that parameter)."""
    first = drafts[0]
    args = [call.site.args for call in calls]
    block_params = list(args[0])

    inputs: list[str | None] = []  # the block parameter naming each tensor argument
    for k in range(len(first.args)):
        tensors = [d.args[k] for d in drafts]
        inputs.append(
            next(
                (
                    p
                    for p in block_params
                    if p not in inputs and [a.get(p) for a in args] == tensors
                ),
                None,
            )
        )
    value_params = [p for p in block_params if p not in inputs]
    given = {p: [_norm(a.get(p)) for a in args] for p in value_params}
    params: dict[str, Param] = {p: Param(p, given[p]) for p in value_params}
    forward = in_forward(first) if in_forward else set()
    derived: dict[tuple, Param] = {}
    resolved: dict[tuple, Expr] = {}  # the values of a column that differs -> its expression
    replacement: dict[int, Expr] = {}
    used: list[Param] = []

    def ref(param: Param, stored: bool) -> Expr:
        if param not in used:
            used.append(param)
        param.stored |= stored
        return Ref(param, "self." if stored else "")

    columns = list(zip(*(list(d.consts()) for d in drafts)))
    # the values the spec gives first, then those the input's shape gives (which reuse theirs)
    columns.sort(key=lambda column: column[0].role in first_roles)
    for column in columns:
        const, vector = column[0], [c.value for c in column]
        stored = id(const) in forward
        texts = [literal(v) for v in vector]
        if len(set(texts)) == 1:
            # the same in every call: a literal, unless a block parameter of the same name gives
            # it (and it is not a value like 1 or off, which might just as well be a constant)
            value = vector[0]
            plain = value is None or isinstance(value, (bool, Sym)) or (_int(value) and value <= 1)
            word = None if plain or not named_constants else const.field or const.role
            match = (
                next(
                    (p for p in value_params if _same_word(word, p) and _equal(given[p], vector)),
                    None,
                )
                if word
                else None
            )
            if match is not None:
                replacement[id(const)] = ref(params[match], stored)
            continue
        key = tuple(texts)
        if key in resolved and not (stored and isinstance(resolved[key], Operation)):
            replacement[id(const)] = _reuse(resolved[key], stored, ref)
            continue
        # a value the input's shape gives (in_channels) follows the block's parameters as one
        # of them or a multiple, never as a product of two (that would be a coincidence),
        # unless a value the spec gives has the same values in every call (c // r)
        shaped = const.role in first_roles
        entry = _match(vector, value_params, given, const.role == "repeats", not shaped)
        if entry is not None and (entry[0] == "param" or not stored):
            if entry[0] == "param":
                replacement[id(const)] = ref(params[entry[1]], stored)
            else:
                _, p, op, q = entry
                right = ref(params[q], False) if isinstance(q, str) else Code(str(q))
                replacement[id(const)] = Operation(op, (ref(params[p], False), right))
        else:
            if key not in derived:
                derived[key] = Param(const.role, vector, "derived", const.owner, shaped)
            replacement[id(const)] = ref(derived[key], stored)
        resolved.setdefault(key, replacement[id(const)])

    # the shape's first (in_channels), then the block's in its order, then the others
    ordered = [p for p in derived.values() if p.first and p in used]
    ordered += [params[p] for p in value_params if params[p] in used]
    ordered += [p for p in derived.values() if not p.first and p in used]
    draft = first.replace(lambda c: replacement.get(id(c), c))
    fn = Function(block, draft, ordered, inputs, calls)
    for i, call in enumerate(calls):
        call.function = fn
        call.values = [p.values[i] for p in ordered]
    return fn


def _reuse(expr: Expr, stored: bool, ref: Callable[[Param, bool], Expr]) -> Expr:
    """An expression found for one column, for another column of the same values."""
    if isinstance(expr, Ref):
        return ref(expr.target, stored)
    return expr


def _same_word(word: str | None, param: str) -> bool:
    """``filters`` and ``filters``, ``strides`` and ``stride``: a value and a block parameter
    that name one thing."""
    return word is not None and (word == param or word.rstrip("s") == param.rstrip("s"))


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _equal(given: list, vector: list) -> bool:
    return [_token(g) for g in given] == [_token(v) for v in vector]


def _match(vector, value_params, given, count: bool, pairs: bool = True) -> tuple | None:
    """How a constant that differs between calls follows from the block's parameters: equal to
    one, a product or quotient of two (with ``pairs``), a multiple or fraction of one, or (a
    loop count) one less: ("param", p), ("expr", p, op, q or k)."""
    for p in value_params:
        if _equal(given[p], vector):
            return ("param", p)
    if not all(_int(v) for v in vector):
        return None
    ints = [p for p in value_params if all(_int(g) and g > 0 for g in given[p])]
    for p in ints if pairs else ():
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
    """A block argument as generated code writes values: lists as tuples, (n, n) as n."""
    if isinstance(value, list):
        value = tuple(_norm(v) for v in value)
    if (
        isinstance(value, tuple)
        and len(value) == 2
        and not isinstance(value[0], (tuple, bool))
        and _token(value[0]) == _token(value[1])
    ):
        return value[0]
    return value


def _token(value: Any) -> Any:
    """A value for matching: by type and value (6 is not 6.0 nor True)."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, (int, float)):
        return (type(value).__name__, repr(value))
    if isinstance(value, (list, tuple)):
        return ("tuple", tuple(_token(v) for v in value))
    if isinstance(value, Sym):
        return ("sym", value.name)
    if isinstance(value, (str, type(None))):
        return (type(value).__name__, value)
    return ("other", repr(value))


# ---------------------------------------------------------------- names


def name_functions(
    functions: list[Function], module: Namespace, style: Callable[[str], str], sep: str = "_"
) -> None:
    """Name every function: a block's most common structure after the block (``style`` makes a
    candidate a name of the target's style, e.g. CamelCase), the others after what tells them
    apart from it, else numbered."""
    by_block: dict[str, list[Function]] = {}
    for fn in functions:
        by_block.setdefault(fn.block, []).append(fn)
    block_names = {style(b) for b in by_block}
    for block, group in by_block.items():
        main = max(range(len(group)), key=lambda g: (len(group[g].calls), -g))
        number = 1
        for g, fn in enumerate(group):
            fn.variants = len(group)
            if g == main:
                candidate = style(block)
                if candidate in module:
                    candidate = style(f"{block}_block")
            else:
                names = [style(n) for n in _variant_names(block, fn, group[main])]
                names = [n for n in names if n not in module and n not in block_names]
                if names:
                    candidate = names[0]
                else:
                    number += 1
                    candidate = style(f"{block}_{number}")
            fn.name = module.claim(candidate, sep)
        if len(group) > 1:
            _describe_variants(group)


_TRUE, _FALSE = {True, "true", "on", "yes"}, {False, "false", "off", "no"}


def _variant_names(block: str, fn: Function, main: Function) -> list[str]:
    """Names for calls of a block whose structure differs from its most common one, best first:
    after a parameter that is constant in both and differs (``bottleneck_project``,
    ``inverted_residual_expansion_1``), a name given only in them, a layer kind they add or lack."""
    names = []
    mine_calls, their_calls = fn.calls, main.calls
    for p in fn.calls[0].site.args:
        mine = {literal(_norm(c.site.args.get(p))) for c in mine_calls if _literal(c, p)}
        theirs = {literal(_norm(c.site.args.get(p))) for c in their_calls if _literal(c, p)}
        if len(mine) == 1 and len(theirs) == 1 and mine != theirs:
            value = _norm(mine_calls[0].site.args.get(p))
            if isinstance(value, (bool, str)) and value in _TRUE:
                names.append(f"{block}_{p}")
            elif isinstance(value, (bool, str)) and value in _FALSE:
                names.append(f"{block}_no_{p}")
            elif (_int(value) and value >= 0) or (isinstance(value, str) and value.isidentifier()):
                names.append(f"{block}_{p}_{value}")
    main_names = set(_user_locals(main.draft))
    names += [f"{block}_{n}" for n in _user_locals(fn.draft) if n not in main_names]
    mine_kinds, their_kinds = _kinds(fn.draft), _kinds(main.draft)
    names += [f"{block}_with_{k}" for k in mine_kinds if k not in their_kinds]
    names += [f"{block}_no_{k}" for k in their_kinds if k not in mine_kinds]
    return names


def _literal(call: CallScope, p: str) -> bool:
    return p in call.site.args and has_literal(_norm(call.site.args[p]))


def _describe_variants(group: list[Function]) -> None:
    """``variant``: the first block parameter that has one value in each function of the block
    and tells them apart (``project=true``)."""
    for p in group[0].calls[0].site.args:
        values = []
        for fn in group:
            shown = {literal(_norm(c.site.args.get(p))) for c in fn.calls if _literal(c, p)}
            if len(shown) != 1 or not all(_literal(c, p) for c in fn.calls):
                break
            values.append(_norm(fn.calls[0].site.args[p]))
        else:
            if len({literal(v) for v in values}) > 1:
                for fn, value in zip(group, values):
                    text = value if isinstance(value, str) else literal(value)
                    fn.variant = f"{p}={text.lower() if isinstance(value, bool) else text}"
                return


def _steps(draft: Draft):
    for step in draft.steps:
        if isinstance(step, Loop):
            yield from _steps(step.unit)
        else:
            yield step


def _user_locals(draft: Draft) -> list[str]:
    """The names the spec gave to layers and calls of a body (not the ones made up)."""
    return list(dict.fromkeys(s.local for s in _steps(draft) if not s.auto))


def _kinds(draft: Draft) -> list[str]:
    """The layer kinds and blocks a body uses, in order."""
    return list(dict.fromkeys(s.kind for s in _steps(draft) if s.kind))


def name_params(fn: Function, names: Namespace) -> None:
    """Name a function's tensor arguments (after the block parameter that passes the tensor,
    else ``x``, ``x2``...), then its parameters (after the block parameter, or a derived
    value's role, or where two would share one, ``<layer>_<role>``), in ``names``, the
    function's local namespace.  A parameter never takes an argument's name."""
    unnamed = 0
    fn.arg_names = []
    for p in fn.inputs:
        if p is None:
            unnamed += 1
        fn.arg_names.append(names.claim(p or ("x" if unnamed == 1 else f"x{unnamed}")))
    inner = names.child()
    roles = [p.source for p in fn.params if p.kind == "derived"]
    for p in fn.params:
        shared = p.kind == "derived" and roles.count(p.source) > 1 and p.owner
        p.name = inner.claim(f"{p.owner}_{p.source}" if shared else p.source)
    names.taken |= inner.taken
