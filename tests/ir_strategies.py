"""Hypothesis strategies for IR nodes: every field of a layer class drawn from its type and
constraints (bounds, literals, pairs, padding, optional values; floats include infinities and
NaN where the field's bounds allow them), with small sizes so that most draws fit their input.

:func:`networks` draws a network of one input and one node of a given class; what the IR
refuses (a validation or shape error) is rejected, so every network drawn is one the IR
accepts.  The back ends' tests check that each builds, or is refused with a located error.
"""

from __future__ import annotations

import math
import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types
from hypothesis import assume
from hypothesis import strategies as st
from pydantic import ValidationError

import cnndsl
from cnndsl.ir import Input, Layer, Network, Position

BASE_FIELDS = {"kind", "name", "inputs", "position", "calls"}


def _bounds(metadata) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for item in metadata:
        for attribute in ("ge", "gt", "le", "lt"):
            if getattr(item, attribute, None) is not None:
                found[attribute] = getattr(item, attribute)
        if hasattr(item, "metadata"):  # a FieldInfo inside Annotated
            found.update(_bounds(item.metadata))
    return found


def strategy(annotation: Any, metadata=()) -> st.SearchStrategy:
    """Values of a field's type, within its constraints."""
    origin = get_origin(annotation)
    if origin is Annotated:
        inner, *more = get_args(annotation)
        return strategy(inner, (*metadata, *more))
    if origin in (Union, types.UnionType):
        return st.one_of(*(strategy(a, metadata) for a in get_args(annotation)))
    if origin is Literal:
        return st.sampled_from(get_args(annotation))
    if origin is tuple:
        args = get_args(annotation)
        if len(args) == 2 and args[1] is ...:
            return st.lists(strategy(args[0]), min_size=1, max_size=4).map(tuple)
        return st.tuples(*(strategy(a) for a in args))
    bounds = _bounds(metadata)
    if annotation is type(None):
        return st.none()
    if annotation is bool:
        return st.booleans()
    if annotation is int:
        low = bounds.get("ge", bounds.get("gt", -4) + 1)
        high = bounds.get("le", bounds.get("lt", low + 7) - 1)
        return st.integers(low, min(high, low + 6))
    if annotation is float:
        low = bounds.get("ge", bounds.get("gt"))
        high = bounds.get("le", bounds.get("lt"))
        finite = st.floats(
            low if low is not None else -4.0,
            high if high is not None else 4.0,
            exclude_min="gt" in bounds,
            exclude_max="lt" in bounds,
            allow_nan=False,
        )
        special = [v for v in (math.inf, -math.inf) if _within(v, bounds)]
        if not bounds:
            special.append(math.nan)
        return st.one_of(finite, st.sampled_from(special)) if special else finite
    if annotation is str:
        return st.sampled_from(["a", "b"])
    raise NotImplementedError(f"no strategy for {annotation!r}")


def _within(value: float, bounds: dict) -> bool:
    checks = {"ge": value >= bounds.get("ge", -math.inf), "gt": value > bounds.get("gt", -math.inf)}
    checks |= {"le": value <= bounds.get("le", math.inf), "lt": value < bounds.get("lt", math.inf)}
    return all(checks.values())


SHAPES = st.one_of(
    st.tuples(st.integers(1, 9), st.integers(1, 9), st.integers(1, 8)),
    st.tuples(st.integers(1, 12)),
)


@st.composite
def networks(draw, cls: type[Layer]) -> Network:
    """A network the IR accepts: an input, and one node of class ``cls`` (at line 2 of
    drawn.cnn) reading it (twice, for a merge)."""
    fields = {}
    for name, info in cls.model_fields.items():
        if name in BASE_FIELDS:
            continue
        value = strategy(info.annotation, info.metadata)
        if info.is_required():
            fields[name] = draw(value)
        elif draw(st.booleans()):
            fields[name] = draw(value)
    shape = draw(SHAPES)
    inputs = ("input",) * max(cls.min_inputs, 1)
    where = Position(file="drawn.cnn", line=2, column=1)
    try:
        node = cls(name="node", inputs=inputs, position=where, **fields)
        source = Input(name="input", shape=shape, position=Position(file="drawn.cnn", line=1, column=1))
        net = Network(name="drawn", layers=[source, node], outputs=["node"])
        net.analysis  # noqa: B018
    except (ValidationError, cnndsl.CnnDslError, ValueError):
        assume(False)
    return net
