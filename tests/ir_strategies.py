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

from hypothesis import assume
from hypothesis import strategies as st
from pydantic import ValidationError

import cnndsl
from cnndsl.ir import Input, Layer, Network, Position
from cnndsl.ir.base import PLACEMENT

BASE_FIELDS = PLACEMENT | {"kind"}


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


PROVENANCE_BASES = {
    "blocks": """
        input 8x8x4
        block unit(f) { 3x3(S) conv f relu }
        block pair(f) { add { unit(f) -> unit(f) | identity } }
        pair(4)
        x = pair(4)
        y = 3x3+1(S) maxpool -> 1x1 conv 8
        concat(x) -> repeat 2 { unit(8) } -> repeat 3 { 1x1 conv 8 relu } -> gap -> dense 3
    """,
    "dag": """
        input a 6x6x3
        input v 5
        b = a -> 3x3(S) conv 4 -> bn
        c = b -> relu -> add(b)
        d = v -> dense 4 relu
        c -> gap -> concat(d) -> dense 2
    """,
}

_ARGS = st.dictionaries(
    st.sampled_from(["f", "g", "x", "self", "name"]),
    st.one_of(
        st.integers(-2, 9),
        st.floats(allow_nan=True, allow_infinity=True),
        st.booleans(),
        st.none(),
        st.sampled_from(["relu", "input", "a", "b", "c_1"]),
        st.lists(st.integers(0, 3), max_size=3),
        st.dictionaries(st.sampled_from(["k"]), st.integers(0, 3), max_size=1),
    ),
    max_size=3,
)
_SITES = st.builds(
    lambda block, instance, args: {"block": block, "instance": instance, "args": args},
    st.sampled_from(["unit", "pair", "b", "F", "_1"]),
    st.sampled_from(["pair_1", "x", "unit_1", "pair_1_unit_1", "i", "self", "x_unit_2"]),
    _ARGS,
)


def _loop_sites(calls: int):
    """Loop sites a node with ``calls`` block calls may record: at most that deep, in order."""
    site = st.builds(
        lambda line, depth, iteration, more: {
            "position": {"file": "drawn.cnn", "line": line, "column": 1},
            "depth": depth,
            "iteration": iteration,
            "count": iteration + 1 + more,
        },
        st.integers(1, 3),
        st.integers(0, calls),
        st.integers(0, 3),
        st.integers(0, 2),
    )
    return st.lists(site, max_size=2).map(lambda sites: sorted(sites, key=lambda s: s["depth"]))


@st.composite
def scrambled(draw, base: str) -> tuple[Network, Network]:
    """A network of PROVENANCE_BASES and the same network with any provenance on its nodes
    (block calls that need not nest, be contiguous, name their nodes, or have literal
    arguments; loop iterations kept from the spec where they still fit, or any others):
    every one the IR validates."""
    import json
    import textwrap

    net = cnndsl.loads(textwrap.dedent(PROVENANCE_BASES[base]), f"{base}.cnn")
    data = json.loads(net.to_json())
    for layer in data["layers"]:
        if layer["kind"] != "input":
            calls = layer["calls"] = draw(st.lists(_SITES, max_size=3))
            kept = [site for site in layer["loops"] if site["depth"] <= len(calls)]
            layer["loops"] = draw(st.one_of(st.just(kept), _loop_sites(len(calls))))
    try:
        other = Network.model_validate_json(json.dumps(data))
    except ValidationError:
        assume(False)
    return net, other
