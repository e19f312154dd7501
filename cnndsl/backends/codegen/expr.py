"""The expressions of generated code: a small tree that renders as Python source.

A back end lowers a layer into these nodes instead of text, so that the calls of one block can
be compared (:meth:`Expr.key`: the structure without the constants) and their differing
:class:`Const` leaves turned into parameters (:meth:`Expr.replace`) before anything is written.
:meth:`Expr.text` renders a node in a :class:`Render` context, which knows the variables of the
function being written and how a layer's name is spelt there.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol


class Render(Protocol):
    """What rendering needs from the function being written."""

    def var(self, name: str) -> str:
        """The variable that holds a value of the function (see :class:`Var`)."""

    def layer_name(self, name: LayerName) -> str:
        """A layer's name as an expression (Keras: ``"conv_1"``, ``f"{name}_conv_1"``)."""


class Expr:
    """A Python expression of the generated code.  Layer arguments are :class:`Const` leaves,
    which anti-unification may turn into parameters."""

    def children(self) -> tuple[Expr, ...]:
        return ()

    def consts(self) -> Iterator[Const]:
        """The Const leaves, in the order the expression is written."""
        for child in self.children():
            yield from child.consts()

    def key(self, pos: Callable[[str], tuple]) -> tuple:
        """The structure with constants left out: equal keys, one function.  ``pos`` gives a
        value's position in its function (so that keys do not depend on node names)."""
        raise NotImplementedError

    def vars(self) -> Iterator[str]:
        """The values the expression reads, in order (repeats included)."""
        for child in self.children():
            yield from child.vars()

    def replace(self, fn: Callable[[Expr], Expr]) -> Expr:
        """A copy with every leaf that can change -- a Const or a LayerName -- replaced by
        fn(leaf)."""
        raise NotImplementedError

    def text(self, r: Render) -> str:
        raise NotImplementedError


@dataclass(frozen=True)
class Sym:
    """A name defined in the generated module (a custom activation), as a value."""

    name: str


@dataclass(eq=False)
class Code(Expr):
    """Fixed code: ``torch.cat``, ``self``, ``1``."""

    code: str

    def key(self, pos):
        return ("code", self.code)

    def replace(self, fn):
        return self

    def text(self, r):
        return self.code


@dataclass(eq=False)
class Const(Expr):
    """A layer argument.  ``role`` names it where it is passed (``out_channels``, ``units``);
    ``field`` is the IR field or block parameter it comes from (``filters``), if any; ``owner``
    the local name of the layer or call that takes it (set when the node is lowered)."""

    value: Any
    role: str
    field: str | None = None
    owner: str | None = None

    def consts(self):
        yield self

    def key(self, pos):
        return ("const",)

    def replace(self, fn):
        return fn(self)

    def text(self, r):
        return literal(self.value)


@dataclass(eq=False)
class Var(Expr):
    """A value of the function, by its name in the IR (a node's name, or the name of a helper
    value a node makes first)."""

    name: str

    def vars(self):
        yield self.name

    def key(self, pos):
        return ("var", pos(self.name))

    def replace(self, fn):
        return self

    def text(self, r):
        return r.var(self.name)


@dataclass(eq=False)
class Ref(Expr):
    """Something named only once everything is planned: a block's function or class, or a
    parameter (``prefix`` ``"self."`` where it is stored)."""

    target: Any  # has .name
    prefix: str = ""

    def key(self, pos):
        return ("ref", id(self.target), self.prefix)

    def replace(self, fn):
        return self

    def text(self, r):
        return self.prefix + self.target.name


@dataclass(eq=False)
class LayerName(Expr):
    """The name of a layer of the model: ``local`` after the prefix of the block call it is in
    (None when the name is not under it: then ``absolute``); in a loop, ``counter`` is
    (base, first count, step): the name counts up with the loop."""

    local: str | None
    absolute: str
    counter: tuple[str, int, int] | None = None

    def key(self, pos):
        if self.counter is not None:
            return ("name", "counted", *self.counter)
        return ("name", self.local) if self.local is not None else ("name", "abs", self.absolute)

    def replace(self, fn):
        return fn(self)

    def text(self, r):
        return r.layer_name(self)


@dataclass(eq=False)
class Attr(Expr):
    obj: Expr
    name: str

    def children(self):
        return (self.obj,)

    def key(self, pos):
        return ("attr", self.obj.key(pos), self.name)

    def replace(self, fn):
        return Attr(self.obj.replace(fn), self.name)

    def text(self, r):
        return f"{self.obj.text(r)}.{self.name}"


_KEEP = object()


@dataclass(eq=False)
class Call(Expr):
    """``func(args, name=value)``; a keyword whose value is a Const equal to its ``default``
    (or for which ``default(call)`` is true) is left out when rendered.  A keyword's name may
    be an object named later (a parameter of a generated function): its ``.name``."""

    func: Expr
    args: tuple[Expr, ...] = ()
    kwargs: tuple[tuple[str, Expr, Any], ...] = ()

    def children(self):
        return (self.func, *self.args, *(v for _, v, _ in self.kwargs))

    def key(self, pos):
        return (
            "call",
            self.func.key(pos),
            tuple(a.key(pos) for a in self.args),
            tuple((_keyword(k), v.key(pos)) for k, v, _ in self.kwargs),
        )

    def replace(self, fn):
        return Call(
            self.func.replace(fn),
            tuple(a.replace(fn) for a in self.args),
            tuple((k, v.replace(fn), d) for k, v, d in self.kwargs),
        )

    def keyword(self, name: Any, value: Expr) -> Call:
        """A copy with one more keyword argument, always shown."""
        return Call(self.func, self.args, (*self.kwargs, (name, value, _KEEP)))

    def shown_kwargs(self) -> list[tuple[str, Expr]]:
        shown = []
        for name, value, default in self.kwargs:
            if callable(default):
                if default(self):
                    continue
            elif default is not _KEEP and isinstance(value, Const) and same(value.value, default):
                continue
            shown.append((name if isinstance(name, str) else name.name, value))
        return shown

    def parts(self, r) -> list[str]:
        return [a.text(r) for a in self.args] + [f"{k}={v.text(r)}" for k, v in self.shown_kwargs()]

    def text(self, r):
        return f"{self.func.text(r)}({', '.join(self.parts(r))})"


def _keyword(name: Any) -> Any:
    return name if isinstance(name, str) else ("named", id(name))


def call(func: str | Expr, *args: Expr, **kwargs: Expr | tuple[Expr, Any]) -> Call:
    """Call(func, args, kwargs); a keyword given as (expr, default) is omitted at its default."""
    kw = []
    for name, value in kwargs.items():
        expr, default = value if isinstance(value, tuple) else (value, _KEEP)
        kw.append((name, expr, default))
    return Call(Code(func) if isinstance(func, str) else func, args, tuple(kw))


def method(obj: Expr, name: str, *args: Expr, **kwargs) -> Call:
    return call(Attr(obj, name), *args, **kwargs)


@dataclass(eq=False)
class Operation(Expr):
    """``a + b + c``: operands are atoms, calls or products, so no parentheses are needed."""

    op: str
    operands: tuple[Expr, ...]

    def children(self):
        return self.operands

    def key(self, pos):
        return ("op", self.op, tuple(o.key(pos) for o in self.operands))

    def replace(self, fn):
        return Operation(self.op, tuple(o.replace(fn) for o in self.operands))

    def text(self, r):
        return f" {self.op} ".join(o.text(r) for o in self.operands)


def plus(expr: Expr, k: int) -> Expr:
    """``expr + k``, folding a constant term: (n - 1) + 2 -> n + 1; 3 + 2 -> 5."""
    if k == 0:
        return expr
    if isinstance(expr, Const) and isinstance(expr.value, int):
        return Const(expr.value + k, expr.role, expr.field, expr.owner)
    if isinstance(expr, Code) and expr.code.lstrip("-").isdigit():
        return Code(str(int(expr.code) + k))
    if isinstance(expr, Operation) and expr.op in "+-" and len(expr.operands) == 2:
        first, second = expr.operands
        if isinstance(second, Code) and second.code.isdigit():
            total = int(second.code) * (1 if expr.op == "+" else -1) + k
            if total == 0:
                return first
            return Operation("+" if total > 0 else "-", (first, Code(str(abs(total)))))
    return Operation("+" if k > 0 else "-", (expr, Code(str(abs(k)))))


@dataclass(eq=False)
class Index(Expr):
    """``x[:, :, None, None]``"""

    obj: Expr
    index: str

    def children(self):
        return (self.obj,)

    def key(self, pos):
        return ("index", self.obj.key(pos), self.index)

    def replace(self, fn):
        return Index(self.obj.replace(fn), self.index)

    def text(self, r):
        return f"{self.obj.text(r)}[{self.index}]"


@dataclass(eq=False)
class Display(Expr):
    """A list display ``[a, b]``."""

    items: tuple[Expr, ...]

    def children(self):
        return self.items

    def key(self, pos):
        return ("list", tuple(i.key(pos) for i in self.items))

    def replace(self, fn):
        return Display(tuple(i.replace(fn) for i in self.items))

    def text(self, r):
        return "[" + ", ".join(i.text(r) for i in self.items) + "]"


SELF = Code("self")


# ---------------------------------------------------------------- values


def literal(value: Any) -> str:
    """A value as a Python literal, black-style: double quotes, floats exact (``repr``), and the
    non-finite ones as ``float("inf")``, ``float("-inf")``, ``float("nan")``."""
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isfinite(value):
            return repr(value)
        return 'float("nan")' if math.isnan(value) else f'float("{"-" if value < 0 else ""}inf")'
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, Sym):
        return value.name
    if isinstance(value, (tuple, list)):
        items = ", ".join(literal(v) for v in value)
        if isinstance(value, list):
            return f"[{items}]"
        return f"({items},)" if len(value) == 1 else f"({items})"
    raise TypeError(f"no literal for {value!r}")


def has_literal(value: Any) -> bool:
    """Whether :func:`literal` can write the value."""
    if value is None or isinstance(value, (bool, int, float, str, Sym)):
        return True
    return isinstance(value, (tuple, list)) and all(has_literal(v) for v in value)


def same(a: Any, b: Any) -> bool:
    """Equal values of compatible types (1 and 1.0 yes, True and 1 no, lists as tuples)."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b or (a != a and b != b)
    return type(a) is type(b) and a == b


def pair(value: tuple[int, int]) -> int | tuple[int, int]:
    """(3, 3) -> 3, as Keras and PyTorch arguments are usually written."""
    return value[0] if value[0] == value[1] else tuple(value)
