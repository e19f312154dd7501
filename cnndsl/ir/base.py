"""The base of every IR node: fields, provenance, and the per-kind facts the analysis reads.

One pydantic class per layer kind, each registered by its ``kind`` (the discriminator of the
union :data:`cnndsl.ir.AnyLayer`).  Besides its fields, a class declares how it is written in a
spec (``spec_names``, ``positional``, ``flags``) and computes, from its input shapes, its output
shape, parameters, multiply-accumulates and receptive-field window.  The analysis
(:mod:`cnndsl.analysis`) walks the graph and calls these; the back ends read the results.
"""

from __future__ import annotations

from fractions import Fraction
from math import prod
from types import UnionType
from typing import Annotated, Any, ClassVar, Literal, Union, get_args, get_origin

import keyword

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    model_validator,
)

from ..display import int_text
from .geometry import ShapeError

Shape = tuple[int, ...]
"""A tensor shape without the batch axis: (H, W, C) for maps, (N,) for vectors."""

# One spatial axis of a receptive-field window: (span = k_eff - 1, stride, padding before),
# in units of the layer's input: integers, or fractions for upsampling layers.  Stride 0 marks
# a global window: every output position reads the same input positions (global pooling).
Axis = tuple[int | Fraction, int | Fraction, int | Fraction]

ACTIVATIONS = (
    "linear",
    "relu",
    "relu6",
    "leakyrelu",
    "elu",
    "selu",
    "tanh",
    "sigmoid",
    "softmax",
    "silu",
    "gelu",
    "gelu_tanh",
    "hardsigmoid",
    "hardswish",
)
"""Activation functions a layer can carry (``activation=``) or be (``relu``, ``softmax`` ...).
Their exact definitions, in both frameworks, are in :class:`cnndsl.ir.Activation`."""


def _scalar(value: Any) -> bool:
    """Whether a value stands for one number (the field's own type check judges it: a
    boolean, a float or a string where an integer goes is refused there)."""
    return not isinstance(value, (list, tuple, dict))


def _pair(value: Any) -> Any:
    if _scalar(value) and not isinstance(value, str):
        return (value, value)
    if isinstance(value, list):
        return tuple(value)
    return value


def _padding(value: Any) -> Any:
    """same | valid | p | (ph, pw) | ((top, bottom), (left, right)) -> normal form."""
    if isinstance(value, str):
        return value.lower()
    if _scalar(value):
        return ((value, value), (value, value))
    if isinstance(value, (list, tuple)) and len(value) == 2:
        if all(_scalar(v) for v in value):
            return ((value[0], value[0]), (value[1], value[1]))
        return tuple(tuple(v) if isinstance(v, (list, tuple)) else v for v in value)
    if isinstance(value, (list, tuple)) and len(value) == 4:
        return ((value[0], value[1]), (value[2], value[3]))
    return value


def _identifier(name: str) -> str:
    if not (name.isidentifier() and name.isascii()) or keyword.iskeyword(name):
        raise ValueError(f"{name!r} is not a plain identifier (ASCII letters, digits and _)")
    return name


Identifier = Annotated[str, AfterValidator(_identifier)]
"""Node, tensor, block and network names: ASCII Python identifiers, never keywords, so that
back ends can use them in generated code as they are."""

# Numbers and booleans are strict, from a spec as from JSON: an integer field takes integers
# only (not true, 4.0 or "4"), a float field numbers (not booleans or strings), a boolean
# field true or false (not 1 or "true").  Every field of every layer class uses these (a
# test checks it).
Int = Annotated[int, Strict()]
Float = Annotated[float, Strict()]
"""A number: integers are taken as floats (``epsilon=1`` is 1.0)."""
Bool = Annotated[bool, Strict()]
PositiveInt = Annotated[int, Strict(), Field(ge=1)]
NonNegInt = Annotated[int, Strict(), Field(ge=0)]
Pair = Annotated[tuple[PositiveInt, PositiveInt], BeforeValidator(_pair)]
"""Per-axis (height, width) values; a single integer means both."""
NonNegPair = Annotated[tuple[NonNegInt, NonNegInt], BeforeValidator(_pair)]
Padding = Annotated[
    Literal["same", "valid"] | tuple[tuple[NonNegInt, NonNegInt], tuple[NonNegInt, NonNegInt]],
    BeforeValidator(_padding),
]
"""``same`` (TensorFlow), ``valid``, or explicit ((top, bottom), (left, right)) pixels."""


def value_forms(annotation: Any) -> frozenset[str]:
    """What a field's annotation takes, looking through Annotated, unions and tuples:
    ``int``, ``float``, ``bool``, ``str`` (a word or a literal), ``tuple`` (pairs, padding)."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return value_forms(get_args(annotation)[0])
    if origin is Literal:
        return frozenset({"str"})
    if origin is tuple:
        return frozenset({"tuple"}).union(*(value_forms(a) for a in get_args(annotation) if a is not ...))
    if origin in (Union, UnionType):
        return frozenset().union(*(value_forms(a) for a in get_args(annotation)))
    if annotation in (int, float, bool, str):
        return frozenset({annotation.__name__})
    return frozenset()


def _construct(cls: type[BaseModel], values: dict[str, Any], fields_set: set[str]) -> Any:
    """An instance of ``cls`` with these field values, its slots set as pydantic's own
    ``__copy__`` sets them, and no validation."""
    new = _new(cls)
    _setattr(new, "__dict__", values)
    _set_fields_set(new, fields_set)
    _set_extra(new, None)
    _set_private(new, None)
    return new


class Position(BaseModel):
    """Where a node was written: file, 1-based line and column."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    file: str
    line: Int
    column: Int
    end_column: Int | None = None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


class CallSite(BaseModel):
    """One block call on the way to a node: which block, which instance, with what arguments.

    ``instance`` names the call (``inception_3a``, or ``inception_1`` when unnamed) and is shared
    by every node the call produced, so back ends can group them into a function or a cluster.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    block: Identifier
    instance: Identifier
    args: dict[str, Any] = {}
    """Every parameter's value, defaults included (tensors by node name)."""
    call: str = ""
    """The call as written, arguments evaluated: ``conv_bn(64, k=7, s=2)``, ``up(512, enc4)``."""
    named: Bool = False
    """Whether the spec named the call (``stem = conv_bn(64)``): then ``instance`` is that name."""
    position: Position | None = None

    def signature(self) -> str:
        """The call as written, with its arguments evaluated: ``inception(64, 96, 128)``."""
        return self.call or f"{self.block}({', '.join(_fmt(v) for v in self.args.values())})"


class LoopSite(BaseModel):
    """One iteration of a ``repeat`` or ``for`` on the way to a node.

    ``position`` is where the loop statement is written; ``depth`` where it runs: in the body
    of the node's block call ``calls[depth - 1]``, or at the top level (0).  ``iteration``
    counts from 0 to ``count - 1``.  The nodes of one iteration of a loop share its site, so
    back ends can write the loop as a loop (Keras' ``for``) instead of guessing it from names.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    position: Position
    depth: NonNegInt = 0
    iteration: NonNegInt = 0
    count: PositiveInt = 1

    @model_validator(mode="after")
    def _iteration_in_range(self):
        if self.iteration >= self.count:
            raise ValueError(f"iteration {self.iteration} of a loop of {self.count}")
        return self


def _fmt(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "(" + ", ".join(_fmt(v) for v in value) + ")"
    if isinstance(value, float):
        return fmt_float(value)
    return str(value)


def fmt_float(value: float) -> str:
    """A float as a spec would write it: 0.5, 1e-5, 0.00002 -> 2e-5; every digit that is needed
    to read back the same float (1/255 -> 0.00392156862745098)."""
    text = f"{value:g}"
    if float(text) != value:
        text = repr(value)
    if "e" in text:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}e{int(exponent)}"
    return text


class Layer(BaseModel):
    """Base of all IR nodes.

    Fields shared by every node:
        kind: the discriminator (``conv``, ``maxpool`` ...)
        name: unique name of the node in its network (a Python identifier)
        inputs: names of the nodes it reads, in order
        position: where it was written in a spec
        calls: the block calls it was produced by, outermost first
        loops: the iterations of ``repeat`` and ``for`` it was produced in, outermost first
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: str
    name: Identifier
    inputs: tuple[Identifier, ...] = ()
    position: Position | None = None
    calls: tuple[CallSite, ...] = ()
    loops: tuple[LoopSite, ...] = ()

    @model_validator(mode="after")
    def _loops_in_calls(self):
        depth = 0
        for site in self.loops:
            if not depth <= site.depth <= len(self.calls):
                raise ValueError(
                    "loops are listed outermost first, none deeper than the node's block calls"
                )
            depth = site.depth
        return self

    # ---- how the kind is written in a spec (read by the elaborator)
    spec_names: ClassVar[tuple[str, ...]] = ()
    """The words that select this kind in a spec; the first is the canonical one."""
    positional: ClassVar[tuple[str, ...]] = ()
    """Fields filled, in order, by bare values after the kind: ``conv 64`` -> filters=64."""
    aliases: ClassVar[dict[str, str]] = {}
    """Extra keyword spellings: ``strides`` -> ``stride``."""
    flags: ClassVar[dict[str, tuple[str, Any]]] = {}
    """Bare words that set a field: ``same`` -> padding='same'."""
    foreign_options: ClassVar[dict[str, str]] = {}
    """Options of the frameworks' layers that this kind does not take, each with what to write
    instead (the hint of the error): ``approximate`` -> ``gelu_tanh``."""
    takes_kernel_spec: ClassVar[bool] = False
    takes_activation: ClassVar[bool] = False
    family: ClassVar[str] = "other"
    """conv | pool | norm | dense | merge | activation | reshape | regularization | input"""
    min_inputs: ClassVar[int] = 1
    max_inputs: ClassVar[int | None] = 1

    _registry: ClassVar[dict[str, type[Layer]]] = {}

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        kind = cls.model_fields["kind"].default
        if isinstance(kind, str) and kind:
            Layer._registry[kind] = cls

    @classmethod
    def registry(cls) -> dict[str, type[Layer]]:
        """Every layer class by its kind."""
        return dict(Layer._registry)

    # ---- facts computed from input shapes (each kind overrides what applies)
    def output_shape(self, inputs: list[Shape]) -> Shape:
        """The shape this node produces; raises ShapeError when it cannot apply."""
        return inputs[0]

    def param_counts(self, inputs: list[Shape]) -> tuple[int, int]:
        """(trainable, non-trainable) parameters, as Keras counts them."""
        return 0, 0

    def macs(self, inputs: list[Shape], output: Shape) -> int:
        """Multiply-accumulates of one forward pass of one example (conv and dense family)."""
        return 0

    def window(self, inputs: list[Shape]) -> tuple[Axis, Axis] | None:
        """Receptive-field window per spatial axis, or None for elementwise/merge nodes.

        A layer that reads its whole input map whatever the output position (global pooling,
        ``flatten``) returns :func:`whole_map_window`, whose stride is 0."""
        return None

    def windows(self, inputs: list[Shape]) -> tuple[tuple[Axis, Axis] | None, ...]:
        """The window through which this node reads each of its inputs (None: the same
        position, as elementwise layers and merges read).  Single-input layers give
        :meth:`window`; a merge that broadcasts an input overrides this."""
        if len(inputs) == 1:
            return (self.window(inputs),)
        return (None,) * len(inputs)

    def open_sizes(self, inputs: list[Shape], follow: list[tuple[bool, ...]]) -> tuple[bool, ...]:
        """Which sizes of this node's output follow the open sizes of the network's inputs
        (``input ?x?x3``), given which of its inputs' sizes do (``follow``: per input, per axis).

        A model of an open spec takes any size, so no layer may depend on one: this raises
        ShapeError where the layer's parameters change with a size that follows, or where it
        applies to its inputs at this size only.  The layer is asked at its input shapes and at
        the same shapes with every size that follows grown by :data:`GROWTH`; an output size
        follows where the two answers differ.  A kind whose sizes follow in another way
        overrides this."""
        grown = [
            tuple([d + GROWTH if f else d for d, f in zip(shape, marks)])
            for shape, marks in zip(inputs, follow)
        ]
        out = self.output_shape(inputs)
        try:
            other = self.output_shape(grown)
        except ShapeError:
            mixed = len(inputs) > 1 and len({any(marks) for marks in follow}) > 1
            raise ShapeError(
                f"this {self.type_name} layer applies only at this input size: "
                + ("it joins a map whose size follows the open height and width of the"
                   " network's input with one whose size does not" if mixed else
                   "its input's size follows the open height and width of the network's input"),
                hint=OPEN_HINT,
            ) from None
        if self.param_counts(grown) != self.param_counts(inputs):
            raise ShapeError(
                f"the parameters of this {self.type_name} layer depend on the size of its input,"
                " which follows the open height and width of the network's input",
                hint=OPEN_HINT,
            )
        return tuple([a != b for a, b in zip(out, other)])

    def placed(self, name: str, inputs: tuple[str, ...], position: Position | None,
               calls: tuple[CallSite, ...], loops: tuple[LoopSite, ...] = (),
               fields_set: set[str] | None = None) -> Layer:
        """This node with its place in a network: the elaborator makes its nodes from shared,
        validated layers this way (as ``model_copy(update=...)`` would, without its overhead:
        the values were validated where they were made).  ``fields_set``, when given, is
        :meth:`placed_fields` of this layer: callers placing one layer many times compute it
        once, and the nodes share it (they are frozen: nothing adds to it, and ``model_copy``
        copies it before it updates)."""
        return _construct(
            self.__class__,
            dict(
                self.__dict__, name=name, inputs=inputs, position=position, calls=calls, loops=loops
            ),
            fields_set if fields_set is not None else self.placed_fields(),
        )

    def placed_fields(self) -> set[str]:
        """The fields set explicitly on a node :meth:`placed` from this layer."""
        return self.__pydantic_fields_set__ | PLACEMENT

    # ---- presentation
    def notation(self) -> str:
        """The node in the spec's own notation, e.g. ``3x3+1(S) conv 64 relu``."""
        return self.spec_names[0] if self.spec_names else self.kind

    @property
    def type_name(self) -> str:
        """What summaries show as the layer's type."""
        return self.kind


PLACEMENT = frozenset({"name", "inputs", "position", "calls", "loops"})
"""The fields that place a node in its network (set by :meth:`Layer.placed`); the others are
the kind's, which a spec sets."""

GROWTH = 720720 * 2**10
"""How much :meth:`Layer.open_sizes` grows the sizes that follow an open input size: a multiple
of every stride, window and factor up to 16 (and of powers of two up to 2**14), so that a
layer that applies at one size applies at the grown one."""

OPEN_HINT = (
    "for a model that takes any size, make the map a fixed size before it (`globalavgpool`,"
    " `adaptiveavgpool 7`); or give the input a fixed size"
)
_new = object.__new__
_setattr = object.__setattr__
# BaseModel's slots, set as pydantic's own __copy__ sets them
_set_fields_set = BaseModel.__dict__["__pydantic_fields_set__"].__set__
_set_extra = BaseModel.__dict__["__pydantic_extra__"].__set__
_set_private = BaseModel.__dict__["__pydantic_private__"].__set__

# ------------------------------------------------------------------------ shared helpers


def require_map(layer: Layer, shape: Shape) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise ShapeError(
            f"{layer.notation()} needs a feature map (H x W x C), got a vector of {shape[0]}"
            if len(shape) == 1
            else f"{layer.notation()} needs a feature map (H x W x C), got {fmt_shape(shape)}"
        )
    return shape  # type: ignore[return-value]


def whole_map_window(shape: Shape) -> tuple[Axis, Axis]:
    """The window of a layer that reads its whole input map at every output position (global
    pooling, flatten, broadcasting): it spans the map, and its stride is 0, so the field it
    gives is global -- the same for every output position (see
    :mod:`cnndsl.analysis.receptive_field`)."""
    h, w = shape[0], shape[1]
    return ((h - 1, 0, 0), (w - 1, 0, 0))


def fmt_shape(shape: Shape) -> str:
    return "x".join(int_text(d) for d in shape)


def numel(shape: Shape) -> int:
    return prod(shape)


def kspec_notation(kernel, stride, padding) -> tuple[str, list[str]]:
    """The book's notation for a window, and keyword options for what it cannot say.

    ((3, 3), (2, 2), "same") -> ("3x3+2(S)", []);  stride (1, 2) -> ("3x3(S)", ["stride=(1, 2)"]).
    """
    text = f"{kernel[0]}x{kernel[1]}"
    extra = []
    if stride[0] == stride[1]:
        text += f"+{stride[0]}"
    else:
        extra.append(f"stride=({stride[0]}, {stride[1]})")
    if padding == "same":
        text += "(S)"
    elif padding == "valid":
        text += "(V)"
    else:
        (t, b), (l, r) = padding
        if t == b == l == r:
            text += f"({t})"
        else:
            extra.append(f"padding=(({t}, {b}), ({l}, {r}))")
    return text, extra
