"""Layer kinds and their options: from the words of a spec to a validated IR node.

``3x3+2(S) conv 64 relu bias=off`` -> ``Conv2D(kernel=(3, 3), stride=(2, 2), padding="same",
filters=64, activation="relu", bias=False)``.  Each layer class declares how it is written
(``spec_names``, ``positional``, ``aliases``, ``flags``); this module reads those, so adding a
layer kind needs no change here.  pydantic's validation errors become located sentences.
"""

from __future__ import annotations

import keyword
from functools import lru_cache
from typing import Any

from pydantic import ValidationError

from .. import syntax as S
from ..errors import CnnDslError, Location, did_you_mean
from ..ir import ACTIVATIONS, LAYER_CLASSES, Activation, Layer
from ..ir.base import value_forms
from .values import BOOL_WORDS, Scope, Symbol, TensorRef, evaluate, show, value_key, written

KINDS: dict[str, tuple[type[Layer], dict[str, Any]]] = {}
"""Every word that selects a layer kind -> (class, preset fields)."""
for _cls in LAYER_CLASSES:
    for _word in _cls.spec_names:
        KINDS[_word] = (_cls, Activation.preset(_word) if _cls is Activation else {})
MERGES = {w for w, (c, _) in KINDS.items() if c.family == "merge"}
"""The words of merge kinds: add, concat, multiply."""
ACTIVATION_WORDS = [w for w, (c, _) in KINDS.items() if c is Activation]
"""Every word that names an activation function (``relu``, ``swish`` ...)."""
RESERVED = set(KINDS) | {"identity", "input"}
"""Words that cannot name a tensor or a block."""

Fields = dict[str, tuple[Any, Location]]
"""Layer fields as written: {field: (value, where it was written)}."""


def layer_fields(
    cls: type[Layer],
    kspec: S.KernelSpec | None,
    args: list[S.Arg],
    scope: Scope,
    preset: dict,
    call: list[S.Arg] | None = None,
) -> tuple[Fields, tuple[str, Location] | None]:
    """The kernel notation and arguments of a layer as fields, and its ``name=`` if any
    (``preset``: the fields its word sets, for messages; ``call``: the part of ``args`` written
    in parentheses after the kind, if any)."""
    fields: Fields = {}
    user_name = None
    kind = kind_word(cls, preset)

    def put(key: str, value: Any, loc: Location) -> None:
        if key in fields:
            raise CnnDslError(f"{key} is given twice", loc, notes=[("first given", fields[key][1])])
        fields[key] = (value, loc)

    if kspec is not None:
        if not cls.takes_kernel_spec:
            raise CnnDslError(
                f"the kernel notation '{kspec.text}' applies to convolution and pooling"
                f" layers, not to {kind}",
                kspec.loc,
            )
        put("kernel", kspec.kernel, kspec.loc)
        if kspec.stride is not None:
            put("stride", kspec.stride, kspec.loc)
        if kspec.padding is not None:
            put("padding", kspec.padding, kspec.loc)
    positional = list(cls.positional)
    known = _options(cls)
    for arg in args:
        if type(arg) is S.KwArg:
            if arg.name == "name":
                user_name = (identifier(arg.value, scope), arg.value.loc)
                continue
            key = cls.aliases.get(arg.name, arg.name)
            if key in preset:  # `linear function=tanh`: the word already chose it
                raise CnnDslError(
                    f"{kind} has no option '{arg.name}': the word `{kind}` sets the {key}",
                    arg.loc,
                    hint=f"write the {key} you want as the layer's word, e.g. `tanh`",
                )
            if key not in known:
                what = f"the activation {kind}" if cls is Activation else kind
                hint = _foreign_option(cls, arg.name) or did_you_mean(
                    arg.name, [*(known - set(preset)), *cls.aliases, "name"]
                )
                raise CnnDslError(f"{what} has no option '{arg.name}'", arg.loc, hint=hint)
            put(key, evaluate(arg.value, scope), arg.value.loc)
            continue
        value = evaluate(arg, scope)
        if isinstance(value, Symbol):
            word = value.name
            if cls.takes_activation and word in KINDS and KINDS[word][0] is Activation:
                put("activation", KINDS[word][1]["function"], arg.loc)
                continue
            if word in cls.flags:
                key, flag = cls.flags[word]
                put(key, flag, arg.loc)
                continue
        while positional and positional[0] in fields:
            positional.pop(0)
        if not positional:
            error = _unexpected_value(cls, kind, value, arg.loc, scope)
            if error.hint is None and call and any(arg is a for a in call):
                error = _one_value_in_parentheses(cls, call, scope, error)
            raise error
        key = positional.pop(0)
        if isinstance(value, tuple) and not _field_takes(cls, key)[2]:
            hint = None
            if cls.takes_kernel_spec and len(value) == 2:
                hint = f"the kernel notation goes in front: `{value[0]}x{value[1]} {kind} ...`"
            raise CnnDslError(f"{kind} {key} must be a number, got {show(value)}", arg.loc, hint=hint)
        put(key, value, arg.loc)
    return fields, user_name


def _unexpected_value(cls, kind: str, value: Any, loc: Location, scope: Scope) -> CnnDslError:
    what = f"'{value.name}'" if isinstance(value, Symbol) else show(value)
    hint = None
    if isinstance(value, Symbol):
        hint = did_you_mean(value.name, [*cls.flags, *sorted(scope.all_vars())])
        if hint is None and cls.takes_activation:
            # a bare word after the values is an activation (or a flag): say which exist
            close = did_you_mean(value.name, ACTIVATION_WORDS)
            flags = f"; its flags: {', '.join(cls.flags)}" if cls.flags else ""
            return CnnDslError(
                f"unknown activation '{value.name}' for {kind}",
                loc,
                hint=(close + " " if close else "")
                + f"The activations: {', '.join(ACTIVATIONS)}{flags}.",
            )
    elif cls.takes_kernel_spec and isinstance(value, (int, tuple)) and not isinstance(value, bool):
        shape = value if isinstance(value, tuple) else (value, value)
        if len(shape) == 2 and all(isinstance(v, int) and 0 < v <= 11 for v in shape):
            hint = (
                f"for a {shape[0]}x{shape[1]} kernel write `{shape[0]}x{shape[1]} {kind} ...`"
                f" or `kernel={show(value)}`"
            )
    return CnnDslError(
        f"{kind} does not take {what} here"
        + (f" (its values: {', '.join(cls.positional)})" if cls.positional else ""),
        loc,
        hint=hint,
    )


def _one_value_in_parentheses(cls, call: list[S.Arg], scope: Scope, error: CnnDslError) -> CnnDslError:
    """`zeropad ((0, 1), (0, 1))`: a parenthesis after the kind starts the layer's arguments,
    so the pairs are two values; say so, and how to write the one value meant."""
    values = [a for a in call if type(a) is not S.KwArg]
    if len(values) < 2 or not cls.positional:
        return error
    kind = kind_word(cls, {})
    meant = "(" + ", ".join(written(evaluate(a, scope)) for a in values) + ")"
    return CnnDslError(
        error.message,
        error.location,
        hint=f"`{kind} (...)` reads the parentheses as the layer's arguments, {len(values)} values"
        f" here; to give one value write `{kind} {cls.positional[0]}={meant}`",
    )


def validate(
    cls: type[Layer], fields: Fields, preset: dict, where: Location, memo: dict[tuple, Layer] | None = None
) -> Layer:
    """The IR node (with a placeholder name) for these fields; pydantic errors, located.

    ``memo`` (one per load, kept by the elaborator) holds the nodes validated so far by their
    class and fields, each value keyed with its type at every depth (``(1, 1)``, ``(true, 1)``
    and ``(1.0, 1)`` are three keys): specs repeat layers (blocks, ``repeat``), and a frozen
    node with a placeholder name can stand for every identical one until naming.
    """
    if memo is None:
        return _validate(cls, fields, preset, where)
    try:
        # in the order written: the same layer written another way is validated once more
        key = (cls, tuple([(k, value_key(v)) for k, (v, _) in fields.items()]), tuple(preset.items()))
        cached = memo.get(key)
    except TypeError:  # a value that is not hashable: not cached
        key = cached = None
    if cached is not None:
        return cached
    layer = _validate(cls, fields, preset, where)
    if key is not None:
        memo[key] = layer
    return layer


def _validate(cls: type[Layer], fields: Fields, preset: dict, where: Location) -> Layer:
    data: dict[str, Any] = {"name": "_", **preset}
    for key, (value, loc) in fields.items():
        data[key] = _plain(value, key, cls, loc)
    try:
        return cls(**data)
    except ValidationError as e:
        raise _located(cls, e.errors(), data, fields, preset, where) from None


def check_defaults(cls: type[Layer], fields: Fields, preset: dict) -> None:
    """Check the values a ``defaults`` line gives, one by one, as the layers they would go to
    check them (``defaults conv kernel=true`` is an error where it is written, even when no
    conv follows).  The fields the line leaves out, and what depends on several fields, are
    the layers' to check."""
    if not fields:
        return
    data: dict[str, Any] = {"name": "_", **preset}
    for key, (value, loc) in fields.items():
        data[key] = _plain(value, key, cls, loc)
    try:
        cls(**data)
    except ValidationError as e:
        errors = [err for err in e.errors() if err["loc"] and err["loc"][0] in fields and err["type"] != "missing"]
        if errors:
            where = next(iter(fields.values()))[1]
            raise _located(cls, errors, data, fields, preset, where) from None


def _located(cls: type[Layer], errors: list[dict], data: dict, fields: Fields, preset: dict, where: Location) -> CnnDslError:
    """The located error for pydantic's validation ``errors`` of a layer's fields."""
    err = _first(errors, data)
    key = err["loc"][0] if err["loc"] else None
    loc = fields[key][1] if key in fields else where
    value = _as_written(fields[key][0], data[key]) if key in fields else data.get(key)
    hint = None
    if err["type"] == "int_type" and isinstance(err.get("input"), float) and err["input"].is_integer():
        hint = "arithmetic with a float gives a float: write an integer, or divide with `//`"
    if _wrong_form(err) and key in _FORMS:
        words = [f"'{word}', " for word, (field, _) in cls.flags.items() if field == key]
        hint = f"{key} is {''.join(words)}{_FORMS[key]}"
    return CnnDslError(_explain(kind_word(cls, preset), key, err, value), loc, hint=hint)


def _foreign_option(cls: type[Layer], name: str) -> str | None:
    """What a framework's option that the kind does not take is in cnndsl (``gelu
    approximate=...``), read from the class's ``foreign_options`` and, for a layer with an
    activation, the activation's."""
    hints = dict(cls.foreign_options)
    if cls.takes_activation:
        hints = Activation.foreign_options | hints
    return hints.get(name)


def _as_written(written: Any, plain: Any) -> Any:
    """A field's value as the pydantic field took it, with the lists the spec wrote as lists
    again (``kernel=[2]`` is shown ``[2]``, not as the tuple ``(2)``)."""
    same = isinstance(written, (list, tuple)) and isinstance(plain, tuple)
    if same and len(written) == len(plain):
        items = [_as_written(w, v) for w, v in zip(written, plain)]
        return items if isinstance(written, list) else tuple(items)
    return plain


def identifier(expr: S.Expr, scope: Scope) -> str:
    """A layer name given with ``name=``: an ASCII identifier that is not a Python keyword."""
    value = evaluate(expr, scope)
    text = value.name if isinstance(value, (Symbol, TensorRef)) else value
    if not isinstance(text, str) or not text.isidentifier() or not text.isascii():
        raise CnnDslError(
            f"a layer name must be a plain identifier (letters, digits, _), got {show(value)}",
            expr.loc,
        )
    if keyword.iskeyword(text):
        raise CnnDslError(f"'{text}' is a Python keyword and cannot name a layer", expr.loc)
    return text


def kind_word(cls: type[Layer], preset: dict) -> str:
    """How a layer kind is called in messages: its spec word (``conv``, ``relu``, ``input``)."""
    if cls is Activation:
        return preset.get("function", "activation")
    return cls.spec_names[0] if cls.spec_names else cls.model_fields["kind"].default


@lru_cache(maxsize=None)
def _options(cls: type[Layer]) -> frozenset[str]:
    """The fields of a layer class that a spec may set."""
    return frozenset(cls.model_fields) - {"kind", "name", "inputs", "position", "calls"}


@lru_cache(maxsize=None)
def _field_takes(cls: type[Layer], key: str) -> tuple[bool, bool, bool]:
    """(takes words or strings, takes booleans, takes tuples) for a field of a layer class."""
    field = cls.model_fields.get(key)
    forms = value_forms(field.annotation) if field is not None else frozenset()
    return "str" in forms, "bool" in forms, "tuple" in forms


def _plain(value: Any, key: str, cls: type[Layer], loc: Location) -> Any:
    """An evaluated value as the pydantic field takes it."""
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, TensorRef):
        raise CnnDslError(f"{key} cannot be a tensor ('{value.name}')", loc)
    if isinstance(value, Symbol):
        words, booleans, _ = _field_takes(cls, key)
        if value.name in BOOL_WORDS and booleans:
            return BOOL_WORDS[value.name]
        if key == "activation" and cls.takes_activation and value.name in ACTIVATION_WORDS:
            return KINDS[value.name][1]["function"]  # `activation=swish` is silu, as `swish` is
        if words:
            return value.name
        raise CnnDslError(f"unknown name '{value.name}' for {key}", loc)
    if isinstance(value, str) and not _field_takes(cls, key)[0]:
        raise CnnDslError(f"{key} must be a number, not the string {value!r}", loc)
    if isinstance(value, (list, tuple)):
        return tuple(_plain(v, key, cls, loc) for v in value)
    return value


def _first(errors: list[dict], data: dict) -> dict:
    """The error to report.  A field that takes a word or numbers (``padding``) fails on
    every alternative: report the word's error for a word, the numbers' for numbers."""
    err = errors[0]
    key = err["loc"][0] if err["loc"] else None
    if isinstance(data.get(key), str):
        return err
    for other in errors:
        tag = other["loc"][1] if len(other["loc"]) > 1 else None
        if other["loc"][:1] == (key,) and not (isinstance(tag, str) and tag.startswith("literal[")):
            return other
    return err


def _explain(kind: str, key: str | None, err: dict, value: Any) -> str:
    """A readable sentence for a pydantic validation error."""
    msg = err["msg"]
    typ = err["type"]
    shown = show(value) if value is not None else None
    if key is None or typ == "value_error":
        msg = msg.removeprefix("Value error, ")
        return msg if msg.startswith(f"{kind} ") else f"{kind}: {msg}"
    if typ == "missing" and len(err["loc"]) > 1:  # an item of a pair or a padding
        return f"{kind} {key} has the wrong form: {shown} (a value is missing)"
    if typ == "missing":
        return f"{kind} needs {_MISSING.get(key, key)}"
    if typ == "too_long":
        most = err["ctx"]["max_length"]
        return f"{kind} {key} has the wrong form: {shown} (at most {most} value{'s' * (most != 1)})"
    if typ in _BOUND:
        bound = err["ctx"][_BOUND[typ][1]]
        if isinstance(bound, float) and bound.is_integer():
            bound = int(bound)
        return f"{kind} {key} {_BOUND[typ][0]} {bound}, got {shown}"
    if typ.startswith(("int", "float", "bool")):
        form = typ.split("_")[0]
        if isinstance(value, (tuple, list)) and len(err["loc"]) > 1:  # an item of a pair
            want = {"int": "integers", "float": "numbers", "bool": "on or off"}[form]
            return f"{kind} {key} takes {want}, got {shown}"
        want = {"int": "an integer", "float": "a number", "bool": "on or off"}[form]
        return f"{kind} {key} must be {want}, got {shown}"
    if typ == "literal_error":
        return f"{kind} {key} must be {err['ctx']['expected']}, got {shown}"
    if _wrong_form(err):
        if key in _FORMS:  # the hint gives the forms
            return f"{kind} {key} has the wrong form: {shown}"
        return f"{kind} {key} has the wrong form: {shown} ({msg.lower()})"
    return f"{kind} {key}: {msg} (got {shown})"


def _wrong_form(err: dict) -> bool:
    return err["type"].startswith("tuple") or err["type"] in ("too_long", "too_short")


# How the fields written in several forms are written (the hint of their form errors).
_FORMS = dict.fromkeys(
    ("padding", "cropping"),
    "n (every side), (h, w) (both sides of each axis) or ((top, bottom), (left, right))",
) | {"shape": "n (a vector) or HxWxC, (h, w, c) (a map): integers, one of which may be -1"}
_BOUND = {
    "greater_than_equal": ("must be at least", "ge"),
    "greater_than": ("must be above", "gt"),
    "less_than": ("must be below", "lt"),
    "less_than_equal": ("must be at most", "le"),
}
_MISSING = {
    "filters": "a number of filters: `conv 64`",
    "kernel": "a kernel size: `3x3+1(S) conv 64` or `kernel=3`",
    "units": "a number of units: `dense 128`",
    "rate": "a rate: `dropout 0.5`",
    "padding": "an amount: `zeropad 1`",
    "scale": "a scale: `rescaling 1/255` (y = x * scale + offset)",
    "shape": "a target shape: `reshape 1000`, `reshape 1x1x1024` or `reshape shape=(7, 7, -1)`",
    "cropping": "an amount: `crop 1` or `crop cropping=((0, 1), (0, 1))`",
    "pool": "a number of channels to pool: `depthmaxpool 3`",
}
