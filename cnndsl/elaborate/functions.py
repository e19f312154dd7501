"""The built-in functions of expressions: ``max(16, c // 4)``, ``make_divisible(c * w, 8)``.

One registry, :data:`FUNCTIONS`: a function is one entry, made by the :func:`builtin`
decorator, with its parameters (for arity and keyword checks, and for messages), its
documentation, and whether it reads the evaluation context (``scope=True``: it is called with
the :class:`~cnndsl.elaborate.values.Scope` first, for functions of the current tensor).
An implementation receives evaluated values and reports a bad argument by raising
:class:`ArgumentError` with the argument's position, which the caller turns into an error
located at that argument.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .limits import MAX_REPEAT

__all__ = ["FUNCTIONS", "ArgumentError", "Function", "builtin"]


class ArgumentError(Exception):
    """A function's argument is wrong; ``index`` is its position (None: the call itself);
    ``hint``, advice (by default the error shows the function's signature)."""

    def __init__(self, message: str, index: int | None = None, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.index = index
        self.hint = hint


@dataclass(frozen=True)
class Function:
    """A built-in function: ``impl(*positional, **keywords)`` (``impl(scope, ...)`` if it
    reads the scope) on evaluated values."""

    name: str
    impl: Callable[..., Any]
    params: tuple[str, ...]  # its parameters in order, the optional ones after ``required``
    required: int  # how many parameters must be given
    variadic: bool  # whether more positional values may follow (min, max)
    doc: str
    scope: bool = False

    @property
    def signature(self) -> str:
        parts = [p if i < self.required else f"{p}=None" for i, p in enumerate(self.params)]
        return f"{self.name}({', '.join(parts)}{', ...' if self.variadic else ''})"


FUNCTIONS: dict[str, Function] = {}
"""Every built-in function, by name."""


def builtin(name: str, params: str, doc: str, *, required: int | None = None, variadic: bool = False,
            scope: bool = False):
    """Register the decorated implementation as the function ``name``: ``params`` names its
    parameters (``"v, divisor, min_value"``), of which the first ``required`` (all, if not
    given) must be passed."""
    names = tuple(p.strip() for p in params.split(",") if p.strip())

    def register(impl: Callable[..., Any]) -> Callable[..., Any]:
        assert name not in FUNCTIONS, name
        FUNCTIONS[name] = Function(
            name, impl, names, len(names) if required is None else required, variadic, doc, scope
        )
        return impl

    return register


# ---------------------------------------------------------------------------- argument checks


def _number(value: Any, index: int, what: str = "a number") -> int | float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ArgumentError(f"expected {what}, got {_shown(value)}", index)
    return value


def _integer(value: Any, index: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ArgumentError(f"expected an integer, got {_shown(value)}", index)
    return value


def _shown(value: Any) -> str:
    from .values import show  # (values imports this module)

    return show(value)


def _numbers(values: tuple, name: str) -> list[int | float]:
    """``min(a, b, ...)`` or ``min(list)``, as Python's: the numbers compared."""
    if len(values) == 1:
        (items,) = values
        if not isinstance(items, (list, tuple)):
            raise ArgumentError(f"one value must be a list of numbers, got {_shown(items)}", 0)
        if not items:
            raise ArgumentError(f"the list is empty: it has no {name}imum", 0)
        for item in items:
            _number(item, 0, "numbers in the list")
        return list(items)
    return [_number(v, i) for i, v in enumerate(values)]


# ------------------------------------------------------------------------------ the functions


@builtin("min", "values", "The smallest of the numbers given, or of one list of numbers.", variadic=True)
def _min(*values):
    return min(_numbers(values, "min"))


@builtin("max", "values", "The largest of the numbers given, or of one list of numbers.", variadic=True)
def _max(*values):
    return max(_numbers(values, "max"))


@builtin("abs", "x", "The absolute value of a number.")
def _abs(x):
    return abs(_number(x, 0))


@builtin(
    "round", "x, ndigits",
    "A number rounded to an integer, or to `ndigits` decimals, as Python rounds: halves to the"
    " even neighbour (round(2.5) is 2, round(3.5) is 4), as torchvision's code does.",
    required=1,
)
def _round(x, ndigits=None):
    x = _number(x, 0)
    if ndigits is None:
        return round(x)
    ndigits = _integer(ndigits, 1)
    if abs(ndigits) > 100:  # round(7, -10**20) would compute 10**(10**20)
        raise ArgumentError(f"ndigits must be between -100 and 100, got {ndigits}", 1)
    return round(x, ndigits)


@builtin("int", "x", "A number without its fraction (towards zero), as Python's int().")
def _int(x):
    return int(_number(x, 0))


@builtin("ceil", "x", "The smallest integer at least x.")
def _ceil(x):
    return math.ceil(_number(x, 0))


@builtin("floor", "x", "The largest integer at most x.")
def _floor(x):
    return math.floor(_number(x, 0))


@builtin("log", "x, base", "The logarithm of x, natural or to the base given.", required=1)
def _log(x, base=None):
    x = _number(x, 0)
    if x <= 0:
        raise ArgumentError(f"the logarithm of {x} is not a number", 0)
    if base is None:
        return math.log(x)
    base = _number(base, 1)
    if base <= 0 or base == 1:
        raise ArgumentError(f"a logarithm's base is positive and not 1, got {base}", 1)
    return math.log(x, base)


@builtin("pow", "x, y", "x to the power y, as Python's pow (an integer for integers, y >= 0).")
def _pow(x, y):
    x, y = _number(x, 0), _number(y, 1)
    if x == 0 and y < 0:
        raise ArgumentError("0 to a negative power is not a number", 1)
    if x < 0 and not float(y).is_integer():
        raise ArgumentError(f"{x} to the power {y} is not a real number", 1)
    # Out of range: beyond the largest float (1.8e308), as the result of any arithmetic is.
    # The logarithm turns away what is far beyond without computing it (2 ** 10**9 would take
    # a while); what is near the edge is computed and compared.
    out_of_range = ArgumentError(f"{x} to the power {y} is out of range")
    if x != 0 and y * math.log10(abs(x)) > 309:
        raise out_of_range
    try:
        result = x**y
    except OverflowError:  # a float's power
        raise out_of_range from None
    if abs(result) > sys.float_info.max:  # an integer's
        raise out_of_range
    return result


@builtin("len", "items", "The number of items of a list or tuple (or characters of a string).")
def _len(items):
    if not isinstance(items, (list, tuple, str)):
        raise ArgumentError(f"expected a list, a tuple or a string, got {_shown(items)}", 0)
    return len(items)


@builtin(
    "range", "start, stop, step",
    "The list of integers from start (0 if only one value is given) up to stop, excluded,"
    " by step (1), as Python's range().",
    required=1,
)
def _range(start, stop=None, step=1):
    if stop is None:
        start, stop = 0, start
    start, stop, step = _integer(start, 0), _integer(stop, 1), _integer(step, 2)
    if step == 0:
        raise ArgumentError("the step must not be zero", 2)
    # (len(range(...)) overflows beyond sys.maxsize items: count them here)
    count = (stop - start + step - (1 if step > 0 else -1)) // step
    if count > MAX_REPEAT:
        raise ArgumentError(f"a list longer than {MAX_REPEAT:,} items")
    return list(range(start, stop, step))


@builtin(
    "make_divisible", "v, divisor, min_value",
    "torchvision's `_make_divisible` (models/_utils.py, from TensorFlow's MobileNet): v rounded"
    " to the nearest multiple of divisor, at least min_value (default: divisor), and never more"
    " than 10% below v.",
    required=2,
)
def _make_divisible(v, divisor, min_value=None):
    v = _number(v, 0)
    divisor = _integer(divisor, 1)
    if divisor < 1:
        raise ArgumentError(f"the divisor must be at least 1, got {divisor}", 1)
    if min_value is None:
        min_value = divisor
    min_value = _number(min_value, 2)
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    # Make sure that round down does not go down by more than 10%.
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v
