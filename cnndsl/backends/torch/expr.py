"""The expressions of generated code: a small tree that renders as Python source.

A handler lowers a layer into these nodes instead of text, so that the calls of one block can be
compared (:meth:`Expr.key`, the structure without the constants) and their differing
:class:`Const` leaves turned into parameters (:meth:`Expr.replace`) before anything is written.
:meth:`Expr.text` renders a node, given the names of ``forward``'s variables.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .blocks import BlockClass


class Expr:
    """A Python expression of the generated code.  Layer arguments are :class:`Const` leaves,
    which anti-unification may turn into parameters."""

    def children(self) -> tuple[Expr, ...]:
        return ()

    def consts(self) -> Iterator[Const]:
        for child in self.children():
            yield from child.consts()

    def key(self) -> tuple:
        """The structure with constants left out: equal keys, one class."""
        raise NotImplementedError

    def replace(self, fn: Callable[[Const], Expr]) -> Expr:
        """A copy with every Const c replaced by fn(c)."""
        raise NotImplementedError

    def text(self, names: dict) -> str:
        raise NotImplementedError


@dataclass(eq=False)
class Code(Expr):
    """Fixed code: ``torch.cat``, ``self``, ``float("-inf")``."""

    code: str

    def key(self):
        return ("code", self.code)

    def replace(self, fn):
        return self

    def text(self, names):
        return self.code


@dataclass(eq=False)
class Const(Expr):
    """A layer argument; ``role`` names a parameter made of it (``in_channels``)."""

    value: Any
    role: str

    def consts(self):
        yield self

    def key(self):
        return ("const",)

    def replace(self, fn):
        return fn(self)

    def text(self, names):
        return literal(self.value)


@dataclass(eq=False)
class Var(Expr):
    """A tensor of ``forward``: ("arg", i) for an argument, ("step", i, j) for the j-th value
    of step i."""

    ref: tuple

    def key(self):
        return ("var", self.ref)

    def replace(self, fn):
        return self

    def text(self, names):
        return names[self.ref]


@dataclass(eq=False)
class Attr(Expr):
    obj: Expr
    name: str

    def children(self):
        return (self.obj,)

    def key(self):
        return ("attr", self.obj.key(), self.name)

    def replace(self, fn):
        return Attr(self.obj.replace(fn), self.name)

    def text(self, names):
        return f"{self.obj.text(names)}.{self.name}"


_KEEP = object()


@dataclass(eq=False)
class Call(Expr):
    """``func(args, name=value)``; a keyword whose value is a Const equal to its ``default``
    (or for which ``default(call)`` is true) is left out when rendered."""

    func: Expr
    args: tuple[Expr, ...] = ()
    kwargs: tuple[tuple[str, Expr, Any], ...] = ()

    def children(self):
        return (self.func, *self.args, *(v for _, v, _ in self.kwargs))

    def key(self):
        return (
            "call",
            self.func.key(),
            tuple(a.key() for a in self.args),
            tuple((k, v.key()) for k, v, _ in self.kwargs),
        )

    def replace(self, fn):
        return Call(
            self.func.replace(fn),
            tuple(a.replace(fn) for a in self.args),
            tuple((k, v.replace(fn), d) for k, v, d in self.kwargs),
        )

    def keyword(self, name: str, value: Expr) -> Call:
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
            shown.append((name, value))
        return shown

    def parts(self, names) -> list[str]:
        return [a.text(names) for a in self.args] + [
            f"{k}={v.text(names)}" for k, v in self.shown_kwargs()
        ]

    def text(self, names):
        return f"{self.func.text(names)}({', '.join(self.parts(names))})"


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
    """``a + b + c``: operands are atoms or calls, so no parentheses are needed."""

    op: str
    operands: tuple[Expr, ...]

    def children(self):
        return self.operands

    def key(self):
        return ("op", self.op, tuple(o.key() for o in self.operands))

    def replace(self, fn):
        return Operation(self.op, tuple(o.replace(fn) for o in self.operands))

    def text(self, names):
        return f" {self.op} ".join(o.text(names) for o in self.operands)


@dataclass(eq=False)
class Index(Expr):
    """``x[:, :, None, None]``"""

    obj: Expr
    index: str

    def children(self):
        return (self.obj,)

    def key(self):
        return ("index", self.obj.key(), self.index)

    def replace(self, fn):
        return Index(self.obj.replace(fn), self.index)

    def text(self, names):
        return f"{self.obj.text(names)}[{self.index}]"


@dataclass(eq=False)
class Display(Expr):
    """A list display ``[a, b]``."""

    items: tuple[Expr, ...]

    def children(self):
        return self.items

    def key(self):
        return ("list", tuple(i.key() for i in self.items))

    def replace(self, fn):
        return Display(tuple(i.replace(fn) for i in self.items))

    def text(self, names):
        return "[" + ", ".join(i.text(names) for i in self.items) + "]"


@dataclass(eq=False)
class ClassRef(Expr):
    """A block class, named only once every class is known."""

    cls: BlockClass

    def key(self):
        return ("class", id(self.cls))

    def replace(self, fn):
        return self

    def text(self, names):
        return self.cls.name


SELF = Code("self")


def literal(value: Any) -> str:
    """A Python literal, black-style (double quotes, no float noise: 1 - 0.99 -> 0.01)."""
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(float(f"{value:.15g}"))
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (tuple, list)):
        items = ", ".join(literal(v) for v in value)
        if isinstance(value, list):
            return f"[{items}]"
        return f"({items},)" if len(value) == 1 else f"({items})"
    raise TypeError(f"no literal for {value!r}")


def same(a: Any, b: Any) -> bool:
    """Equal values of compatible types (1 and 1.0 yes, True and 1 no, lists as tuples)."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    return type(a) is type(b) and a == b


def pair(value: tuple[int, int]) -> int | tuple[int, int]:
    """(3, 3) -> 3, as PyTorch arguments are usually written."""
    return value[0] if value[0] == value[1] else tuple(value)
