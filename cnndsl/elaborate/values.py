"""Values and expressions: what block parameters, loop variables and layer arguments hold.

A value is a number, a string, a boolean, a list or tuple of values, a :class:`Symbol` (a bare
word that names nothing: ``relu``, ``same``, ``off``) or a :class:`TensorRef` (a named tensor).
:func:`evaluate` computes an expression in a :class:`Scope`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .. import syntax as S
from ..errors import CnnDslError, Location, did_you_mean
from ..ir.base import fmt_float
from .limits import MAX_REPEAT

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
    a new scope with its arguments and no tensors.
    """

    module: S.Module
    vars: dict[str, Any]
    tensors: dict[str, int]
    parent: Scope | None = None

    def lookup_var(self, name: str) -> tuple[bool, Any]:
        scope: Scope | None = self
        while scope is not None:
            if name in scope.vars:
                return True, scope.vars[name]
            scope = scope.parent
        return False, None

    def child(self, vars: dict[str, Any]) -> Scope:
        return Scope(self.module, vars, self.tensors, self)

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
        return tuple([evaluate(i, scope) for i in expr.items])
    if kind is S.ListExpr:
        return [evaluate(i, scope) for i in expr.items]
    if kind is S.UnaryOp:
        value = evaluate(expr.operand, scope)
        if expr.op == "not":
            return not truth(value, expr.operand.loc)
        return -number(value, expr.operand.loc, scope)
    if kind is S.BinOp:
        return _binop(expr, scope)
    raise AssertionError(expr)


def evaluate_int(expr: S.Expr, scope: Scope, what: str, minimum: int = 0) -> int:
    value = evaluate(expr, scope)
    if isinstance(value, bool) or not isinstance(value, int):
        raise CnnDslError(f"{what} must be an integer, got {show(value)}", expr.loc)
    if value < minimum:
        raise CnnDslError(f"{what} must be at least {minimum}, got {value}", expr.loc)
    return value


def _binop(expr: S.BinOp, scope: Scope) -> Any:
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
        return left + right
    if isinstance(left, list) and op == "*" and isinstance(right, int) and not isinstance(right, bool):
        if len(left) * right > MAX_REPEAT:
            raise CnnDslError(f"a list longer than {MAX_REPEAT:,} items", expr.loc)
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
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
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
