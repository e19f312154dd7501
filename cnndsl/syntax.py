"""The syntax tree: what the parser produces and the elaborator consumes.

Plain, position-carrying dataclasses, one per construct of the grammar (grammars/cnn.lark).
Nothing here is evaluated: block parameters, arithmetic, repetition and defaults are resolved
by :mod:`cnndsl.elaborate`, which turns a :class:`Module` into the IR (:mod:`cnndsl.ir`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import Location

# ---------------------------------------------------------------------------- expressions


@dataclass(slots=True)
class Num:
    value: int | float
    loc: Location


@dataclass(slots=True)
class Name:
    id: str
    loc: Location


@dataclass(slots=True)
class Str:
    value: str
    loc: Location


@dataclass(slots=True)
class ListExpr:
    items: list[Expr]
    loc: Location


@dataclass(slots=True)
class TupleExpr:
    items: list[Expr]
    loc: Location


@dataclass(slots=True)
class BinOp:
    """Arithmetic (`+ - * / // %`), comparison (`== != < <= > >=`) or boolean (`and or`)."""

    op: str
    left: Expr
    right: Expr
    loc: Location


@dataclass(slots=True)
class UnaryOp:
    op: str  # "-" or "not"
    operand: Expr
    loc: Location


@dataclass(slots=True)
class Call:
    """`max(16, c // 4)`: a built-in function (:mod:`cnndsl.elaborate.functions`) applied."""

    func: str
    args: list[Arg]
    loc: Location  # the whole call
    func_loc: Location  # its name


@dataclass(slots=True)
class Index:
    """`cfg[i]`: an item of a list, tuple or string (negative indices count from the end)."""

    value: Expr
    index: Expr
    loc: Location


Expr = Num | Name | Str | ListExpr | TupleExpr | BinOp | UnaryOp | Call | Index


@dataclass(slots=True)
class KwArg:
    name: str
    value: Expr
    loc: Location


Arg = Expr | KwArg

# ---------------------------------------------------------------------------- statements


@dataclass(slots=True)
class KernelSpec:
    """The book's notation `KHxKW+S(P)`: kernel, optional stride, optional padding."""

    kernel: tuple[int, int]
    stride: int | None
    # "same", "valid", pixels on every side, (rows, columns) as `1x7(0,3)`, or not given
    padding: str | int | tuple[int, int] | None
    text: str
    loc: Location


@dataclass(slots=True)
class LayerItem:
    """`[KSPEC] NAME [(args)] [words]`: a layer, a block call, a merge or a tensor reference."""

    name: str
    kspec: KernelSpec | None
    call_args: list[Arg] | None  # None when written without parentheses
    words: list[Arg]
    loc: Location  # the NAME
    span: Location  # the whole item
    _args: list[Arg] | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def args(self) -> list[Arg]:
        """The call arguments, then the words (made once: the tree is not changed after
        parsing, and the elaborator reads this for every call)."""
        if self._args is None:
            self._args = [*(self.call_args or ()), *self.words]
        return self._args

    @property
    def is_bare_name(self) -> bool:
        return self.kspec is None and self.call_args is None and not self.words


@dataclass(slots=True)
class Group:
    """`merge { branch | branch ... }`: every branch starts from the group's input."""

    merge: str
    branches: list[Body]
    loc: Location


@dataclass(slots=True)
class Repeat:
    count: Expr
    body: Body
    loc: Location


@dataclass(slots=True)
class Unpack:
    """A tuple of loop targets, `(k, c)` in `for (k, c) in cfg`: each item unpacked into names."""

    targets: list[str | Unpack]
    loc: Location


@dataclass(slots=True)
class ForLoop:
    var: str | Unpack  # the loop variable, or the names each item is unpacked into
    iterable: Expr
    body: Body
    loc: Location


@dataclass(slots=True)
class IfElse:
    cond: Expr
    then: Body
    orelse: Body | None
    loc: Location


Item = LayerItem | Group | Repeat | ForLoop | IfElse


@dataclass(slots=True)
class Chain:
    items: list[Item]
    loc: Location


@dataclass(slots=True)
class Assign:
    target: str
    chain: Chain
    loc: Location  # the target name


Stmt = Chain | Assign


@dataclass(slots=True)
class Body:
    stmts: list[Stmt]
    loc: Location


# ---------------------------------------------------------------------------- declarations


@dataclass(slots=True)
class Param:
    name: str
    default: Expr | None
    loc: Location


@dataclass(slots=True)
class BlockDef:
    name: str
    params: list[Param]
    body: Body
    loc: Location
    file: str = ""  # the file it was defined in (set by the parser; a Module's `file`)


@dataclass(slots=True)
class InputDecl:
    name: str | None
    dims: tuple[int | None, ...]  # None: a height or width left open (`input ?x?x3`)
    loc: Location


@dataclass(slots=True)
class Import:
    path: str
    names: list[tuple[str, Location]] | None  # None: every block of the file
    loc: Location


@dataclass(slots=True)
class DefaultsDecl:
    kind: str
    args: list[Arg]
    loc: Location
    kind_loc: Location


@dataclass(slots=True)
class Module:
    """One parsed .cnn file."""

    file: str
    source: str
    network: tuple[str, Location] | None = None
    inputs: list[InputDecl] = field(default_factory=list)
    outputs: list[tuple[str, Location]] | None = None
    training_outputs: list[str] = field(default_factory=list)  # those marked `(training)`
    output_loc: Location | None = None
    defaults: list[DefaultsDecl] = field(default_factory=list)
    blocks: dict[str, BlockDef] = field(default_factory=dict)
    imports: list[Import] = field(default_factory=list)
    # top-level statements in source order, interleaved with input declarations
    program: list[Stmt | InputDecl] = field(default_factory=list)
