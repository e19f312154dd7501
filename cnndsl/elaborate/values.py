"""Values and expressions: what block parameters, loop variables and layer arguments hold.

A value is a number, a string, a boolean, a list or tuple of values, a :class:`Symbol` (a bare
word that names nothing: ``relu``, ``same``, ``off``) or a :class:`TensorRef` (a named tensor).
:func:`evaluate` computes an expression in a :class:`Scope`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import syntax as S
from ..errors import CnnDslError, Location, did_you_mean
from ..ir.base import fmt_float
from .functions import FUNCTIONS, ArgumentError
from .limits import MAX_REPEAT, Work

if TYPE_CHECKING:
    from .shapes import Shapes

BOOL_WORDS = {"on": True, "off": False, "true": True, "false": False, "yes": True, "no": False}
"""Words a boolean option takes (``bias=off``)."""

POISONED = -1
"""The node id of a tensor whose statement failed: uses of it are skipped, not reported."""


class Poisoned(Exception):
    """Raised when a statement uses a tensor whose own statement already failed."""


@dataclass(frozen=True, slots=True)
class Symbol:
    """A bare word that is neither a variable nor a tensor: ``relu``, ``same``, ``off``."""

    name: str

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class TensorRef:
    """A named tensor, by the id of the node that produced it."""

    node: int
    name: str


@dataclass(slots=True)
class Scope:
    """A lexical scope: variables (block parameters, loop variables) and named tensors.

    Child scopes (loop and branch bodies) share their parent's tensors; a block call starts
    a new scope with its arguments and no tensors.  Every scope of a load counts its steps
    in the load's ``work`` (see limits.MAX_STEPS).
    """

    module: S.Module
    vars: dict[str, Any]
    tensors: dict[str, int]
    parent: Scope | None = None
    work: Work | None = None
    shapes: Shapes | None = None  # the load's shapes, for channels() (see shapes.py)

    def lookup_var(self, name: str) -> tuple[bool, Any]:
        scope: Scope | None = self
        while scope is not None:
            if name in scope.vars:
                return True, scope.vars[name]
            scope = scope.parent
        return False, None

    def child(self, vars: dict[str, Any]) -> Scope:
        return Scope(self.module, vars, self.tensors, self, self.work, self.shapes)

    def all_vars(self) -> set[str]:
        names: set[str] = set()
        scope: Scope | None = self
        while scope is not None:
            names.update(scope.vars)
            scope = scope.parent
        return names


# ----------------------------------------------------------------------------- evaluation


def evaluate(expr: S.Expr, scope: Scope) -> Any:
    """The value of an expression; raises a located CnnDslError (or Poisoned)."""
    kind = type(expr)  # syntax classes have no subclasses: `is` is the cheapest dispatch
    if kind is S.Num:
        return expr.value
    if kind is S.Name:
        found, value = scope.lookup_var(expr.id)
        if found:
            return value
        if expr.id in scope.tensors:
            if scope.tensors[expr.id] == POISONED:
                raise Poisoned
            return TensorRef(scope.tensors[expr.id], expr.id)
        if expr.id in ("true", "false"):
            return expr.id == "true"
        return Symbol(expr.id)
    if kind is S.Str:
        return expr.value
    if kind is S.TupleExpr:
        return _built(tuple([evaluate(i, scope) for i in expr.items]), expr.loc, scope)
    if kind is S.ListExpr:
        return _built([evaluate(i, scope) for i in expr.items], expr.loc, scope)
    if kind is S.UnaryOp:
        if scope.work is not None:
            scope.work.charge(1, expr.loc)
        value = evaluate(expr.operand, scope)
        if expr.op == "not":
            return not truth(value, expr.operand.loc)
        return -number(value, expr.operand.loc, scope)
    if kind is S.BinOp:
        return _binop(expr, scope)
    if kind is S.Call:
        return _call(expr, scope)
    if kind is S.Index:
        return _index(expr, scope)
    raise AssertionError(expr)


def _call(expr: S.Call, scope: Scope) -> Any:
    """A built-in function applied (the registry: :mod:`cnndsl.elaborate.functions`)."""
    function = FUNCTIONS.get(expr.func)
    if function is None:
        raise CnnDslError(
            f"unknown function '{expr.func}'",
            expr.func_loc,
            hint=did_you_mean(expr.func, FUNCTIONS) or f"the functions are {', '.join(sorted(FUNCTIONS))}",
        )
    positional = [a for a in expr.args if type(a) is not S.KwArg]
    keywords = [a for a in expr.args if type(a) is S.KwArg]
    params = function.params
    most = None if function.variadic else len(params)
    given = len(positional)
    for i, kw in enumerate(keywords):
        if kw.name not in params or (function.variadic and kw.name == params[0]):
            raise CnnDslError(
                f"{expr.func}() has no parameter '{kw.name}'", kw.loc,
                hint=f"it is {function.signature}",
            )
        if params.index(kw.name) < given or any(k.name == kw.name for k in keywords[:i]):
            raise CnnDslError(f"{expr.func}() gets '{kw.name}' twice", kw.loc)
    named = {kw.name for kw in keywords}
    missing = [p for p in params[given:function.required] if p not in named]
    if missing or given < min(function.required, 1) or (most is not None and given > most):
        count = f"{function.required}" if most == function.required else (
            f"{function.required} or more" if most is None else f"{function.required} to {most}"
        )
        raise CnnDslError(
            f"{expr.func}() takes {count} value{'' if count == '1' else 's'},"
            f" got {given + len(keywords)}",
            expr.loc,
            hint=f"it is {function.signature}",
        )
    if scope.work is not None:
        scope.work.charge(1, expr.loc)
    args = [evaluate(a, scope) for a in positional]
    kwargs = {kw.name: evaluate(kw.value, scope) for kw in keywords}
    try:
        value = function.impl(scope, *args, **kwargs) if function.scope else function.impl(*args, **kwargs)
    except ArgumentError as e:
        where = expr.loc
        if e.index is not None:
            where = (positional[e.index] if e.index < given else next(
                (kw.value for kw in keywords if kw.name == params[e.index]), expr
            )).loc
        hint = e.hint or f"it is {function.signature}"
        raise CnnDslError(f"{expr.func}(): {e.message}", where, hint=hint) from None
    if isinstance(value, float) and not math.isfinite(value):
        raise CnnDslError("this number is out of range", expr.loc)
    if type(value) is list or type(value) is tuple:  # range(): bounded, and charged as built
        _room(items(value), expr.loc, scope)
    return value


def _index(expr: S.Index, scope: Scope) -> Any:
    """``items[i]``, with Python's negative indices."""
    items = evaluate(expr.value, scope)
    if not isinstance(items, (list, tuple, str)):
        raise CnnDslError(f"only lists, tuples and strings have items, not {show(items)}", expr.value.loc)
    i = evaluate(expr.index, scope)
    if isinstance(i, bool) or not isinstance(i, int):
        raise CnnDslError(f"an index is an integer, got {show(i)}", expr.index.loc)
    if not -len(items) <= i < len(items):
        what = "string" if isinstance(items, str) else type(items).__name__
        raise CnnDslError(
            f"index {i} is out of range for a {what} of {_items(len(items))}", expr.index.loc,
            hint=f"indices go from 0 to {len(items) - 1}, or from -{len(items)} to -1"
            if items else None,
        )
    return items[i]


def _items(count: int) -> str:
    return f"{count} item{'' if count == 1 else 's'}"


def bind(target: str | S.Unpack, value: Any, loc: Location) -> dict[str, Any]:
    """The variables a loop target binds to an item (``loc``: the item's loop, for errors):
    one name, or a tuple of targets that unpacks the item as Python does."""
    if isinstance(target, str):
        return {target: value}
    if not isinstance(value, (list, tuple)) or len(value) != len(target.targets):
        count = len(value) if isinstance(value, (list, tuple)) else None
        raise CnnDslError(
            f"cannot unpack {show(value)} into {len(target.targets)} names"
            + (f": it has {_items(count)}" if count is not None else ": it is not a list or tuple"),
            target.loc,
            notes=[("iterating over the list", loc)],
        )
    names: dict[str, Any] = {}
    for part, item in zip(target.targets, value):
        names.update(bind(part, item, loc))
    return names


def evaluate_int(expr: S.Expr, scope: Scope, what: str, minimum: int = 0) -> int:
    value = evaluate(expr, scope)
    if isinstance(value, bool) or not isinstance(value, int):
        raise CnnDslError(f"{what} must be an integer, got {show(value)}", expr.loc)
    if value < minimum:
        raise CnnDslError(f"{what} must be at least {minimum}, got {value}", expr.loc)
    return value


def _binop(expr: S.BinOp, scope: Scope) -> Any:
    if scope.work is not None:
        scope.work.charge(1, expr.loc)
    value = _arithmetic(expr, scope)
    if isinstance(value, float) and not math.isfinite(value):
        raise CnnDslError("this number is out of range", expr.loc)
    return value


def _arithmetic(expr: S.BinOp, scope: Scope) -> Any:
    op = expr.op
    if op in ("and", "or"):
        left = truth(evaluate(expr.left, scope), expr.left.loc)
        if (op == "and") != left:  # short circuit: `and` on false, `or` on true
            return left
        return truth(evaluate(expr.right, scope), expr.right.loc)
    left = evaluate(expr.left, scope)
    right = evaluate(expr.right, scope)
    if op in ("==", "!="):
        return (left == right) == (op == "==")
    if isinstance(left, list) and op == "+" and isinstance(right, list):
        _room(items(left) + items(right), expr.loc, scope)
        return left + right
    if isinstance(left, list) and op == "*" and isinstance(right, int) and not isinstance(right, bool):
        if right > MAX_REPEAT:  # even for an empty list: Python cannot repeat one 10**23 times
            raise CnnDslError(f"a list repeated {right:,} times: at most {MAX_REPEAT:,}", expr.right.loc)
        _room(items(left) * max(right, 0), expr.loc, scope)
        return left * right
    a = number(left, expr.left.loc, scope)
    b = number(right, expr.right.loc, scope)
    if op in ("<", "<=", ">", ">="):
        return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]
    if op in ("/", "//", "%") and b == 0:
        raise CnnDslError("division by zero", expr.right.loc)
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        if abs(a) > 10**15 or abs(b) > 10**15:
            raise CnnDslError("number too large", expr.loc)
        return a * b
    if op == "/":  # exact when it divides: 64 / 2 is 32, an integer
        if isinstance(a, int) and isinstance(b, int) and a % b == 0:
            return a // b
        return a / b
    if op == "//":
        return a // b
    if op == "%":
        return a % b
    raise AssertionError(op)


def items(value: list | tuple, limit: int = MAX_REPEAT) -> int:
    """How many items a list or tuple holds, counting the items of the lists and tuples in
    it (a list that holds one list many times counts it each time); stops counting past
    ``limit``."""
    count = len(value)
    for v in value:
        if count > limit:
            break
        if type(v) is list or type(v) is tuple:
            count += items(v, limit - count)
    return count


def _room(count: int, loc: Location, scope: Scope) -> None:
    """Refuse to build a list of ``count`` items beyond MAX_REPEAT; charge building it."""
    if count > MAX_REPEAT:
        raise CnnDslError(
            f"a list of more than {MAX_REPEAT:,} items (counting the items of the lists in it)",
            loc,
        )
    if scope.work is not None:
        scope.work.charge(count, loc)


def _built(value: list | tuple, loc: Location, scope: Scope) -> list | tuple:
    """A list or tuple just written (``[a, b]``): within the size limit when it nests lists."""
    for v in value:
        if type(v) is list or type(v) is tuple:
            _room(items(value), loc, scope)
            break
    return value


def truth(value: Any, loc: Location) -> bool:
    if isinstance(value, Symbol):
        if value.name in BOOL_WORDS:
            return BOOL_WORDS[value.name]
        raise CnnDslError(f"unknown name '{value.name}'", loc)
    if isinstance(value, TensorRef):
        raise CnnDslError(f"tensor '{value.name}' is not a condition", loc)
    return bool(value)


def number(value: Any, loc: Location, scope: Scope | None = None) -> int | float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        if isinstance(value, Symbol):
            hint = did_you_mean(value.name, scope.all_vars()) if scope else None
            if hint is None and value.name == "x":  # `reshape 1x1x-1` reads 1x1, then x - 1
                hint = (
                    "if this x is part of a size: sizes written with x (1x1x1024) take whole"
                    " numbers only; write a negative or computed size in a tuple, as in"
                    " `reshape shape=(1, 1, -1)`"
                )
            raise CnnDslError(f"unknown name '{value.name}'", loc, hint=hint)
        raise CnnDslError(f"expected a number, got {show(value)}", loc)
    return value


# ------------------------------------------------------------------------------- showing


def written(value: Any) -> str:
    """A value as a call would show it in a spec: 64, relu, enc4, (1, 2), 1e-5, "s"."""
    if isinstance(value, (TensorRef, Symbol)):
        return value.name
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return fmt_float(value)
    if isinstance(value, str):  # JSON's escapes are a spec's too
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(written(v) for v in value) + "]"
    if isinstance(value, tuple):
        return "(" + ", ".join(written(v) for v in value) + ")"
    return str(value)


def show(value: Any) -> str:
    """A value as an error message quotes it."""
    if isinstance(value, Symbol):
        return f"'{value.name}'"
    if isinstance(value, TensorRef):
        return f"tensor '{value.name}'"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "(" + ", ".join(show(v) for v in value) + ")"
    return str(value)


def has_tensor(value: Any) -> bool:
    """Whether a value is, or holds, a tensor."""
    if isinstance(value, (list, tuple)):
        return any(has_tensor(v) for v in value)
    return isinstance(value, TensorRef)


def json_value(value: Any, names: list[str]) -> Any:
    """A value as the IR keeps it in ``CallSite.args``: tensors by node name."""
    if isinstance(value, TensorRef):
        return names[value.node]
    if isinstance(value, Symbol):
        return value.name
    if isinstance(value, (list, tuple)):
        return [json_value(v, names) for v in value]
    return value


def value_key(value: Any) -> Any:
    """A hashable key for a value that tells apart what ``==`` does not: its type at every
    depth (``True == 1 == 1.0``, ``[2] == [2.0]``, ``(1, 1) == [1, 1]``) and the sign of a
    zero.  Memos of the elaborator key on it, so that a load depends on its text alone.
    Raises TypeError for a value that cannot be a key."""
    kind = type(value)
    if kind is list or kind is tuple:
        return (kind, tuple([value_key(v) for v in value]))
    if kind is float and value == 0:
        return (kind, str(value))  # 0.0 and -0.0
    hash(value)
    return (kind, value)
