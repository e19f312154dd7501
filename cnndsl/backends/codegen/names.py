"""Every identifier generated code writes, and the names it must not take.

A generated file reserves names at three levels, per target (:class:`Reserved`):

- **module**: what it imports and defines besides the blocks (``keras``, ``layers``, ``torch``,
  ``nn``, ``F``, ``build_model``, the runtime helpers it may copy in), with Python's keywords and
  builtins.  Block functions and classes get names outside these, and outside each other.
- **locals**: what its function bodies use for their own purposes (``self``, ``name``, ``i``).
  Parameters and variables avoid these, the module names, and each other.
- **attributes** (PyTorch): what ``nn.Module`` itself defines (``forward``, ``training``,
  ``_modules``...).  A layer's attribute never shadows one.

:class:`Namespace` hands out unique names under those rules; :func:`variables` names the values
of one function body.  Text that reaches a comment or a docstring goes through
:func:`comment_text` / :func:`docstring_text`.
"""

from __future__ import annotations

import builtins
import keyword
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .lower import Draft

PYTHON = frozenset(keyword.kwlist) | frozenset(keyword.softkwlist) | frozenset(dir(builtins))
"""Keywords, soft keywords and builtins: never the name of anything generated."""


@dataclass(frozen=True)
class Reserved:
    """The names a target's generated files reserve (see the module's docstring)."""

    module: frozenset[str]
    locals: frozenset[str] = frozenset()
    attributes: frozenset[str] = frozenset()

    @property
    def globals(self) -> frozenset[str]:
        return PYTHON | self.module


_NOT_IDENT = re.compile(r"[^0-9A-Za-z_]")


def identifier(name: str) -> str:
    """A plain Python identifier for any text (IR names already are; this is the guard):
    other characters become ``_``, a leading digit gets a ``_`` before it, a keyword one after,
    and two leading underscores become one (Python mangles such names in a class, and
    ``__class__`` is the cell ``super()`` reads)."""
    ident = _NOT_IDENT.sub("_", name) or "_"
    if ident[0].isdigit():
        ident = "_" + ident
    if ident.startswith("__"):
        ident = "_" + ident.lstrip("_")
    if keyword.iskeyword(ident) or keyword.issoftkeyword(ident):
        ident += "_"
    return ident


def camel(name: str, fallback: str) -> str:
    """A class name in CamelCase: ``inverted_residual`` -> ``InvertedResidual``; one that would
    start with a digit (``_1``, ``123``) gets ``fallback`` in front (``Network123``)."""
    parts = [p for p in identifier(name).split("_") if p]
    text = "".join(p[:1].upper() + p[1:] for p in parts)
    return text if text and not text[0].isdigit() else fallback + text


def attribute(name: str, reserved: frozenset[str]) -> str:
    """A layer's attribute (PyTorch): its name, without leading underscores (``nn.Module`` keeps
    its internals there, and double ones would be mangled) and outside ``reserved``."""
    ident = identifier(name)
    if ident.startswith("_"):
        ident = ident.lstrip("_") + "_"
        if not ident[0].isalpha():
            ident = "layer" + ident
    while ident in reserved:
        ident += "_"
    return ident


class Namespace:
    """Names in one scope of the generated file: each :meth:`claim` returns a name that is an
    identifier, not reserved, and not claimed before (a reserved word gets ``_`` after it, a
    duplicate ``_2``, ``_3``... or, with ``sep=""``, ``2``, ``3``)."""

    def __init__(self, reserved: Iterable[str], taken: Iterable[str] = ()) -> None:
        self.reserved = frozenset(reserved)
        self.taken = set(taken)

    def __contains__(self, name: object) -> bool:
        return name in self.taken or name in self.reserved

    def claim(self, candidate: str, sep: str = "_") -> str:
        name = identifier(candidate)
        while name in self.reserved:
            name += "_"
        base, k = name, 1
        while name in self:
            k += 1
            name = f"{base}{sep}{k}"
        self.taken.add(name)
        return name

    def child(self, reserved: Iterable[str] = ()) -> Namespace:
        """A namespace inside this one: it avoids everything this one has."""
        return Namespace(self.reserved | self.taken | frozenset(reserved))


# ---------------------------------------------------------------- the variables of a body


def variables(
    draft: Draft, arg_names: list[str], avoid: frozenset[str], force: str | None = None
) -> dict[str, str]:
    """The variable of every value of a function body (IR value -> variable).

    A chain of values each read only by the next step shares one variable: ``x`` when free,
    else ``out`` for a result of the function, ``branch<k>`` for the k-th input of a merge, or
    the name of what makes it.  A name is reused only once its previous value is dead.
    Arguments listed in ``draft.live_out`` stay alive to the end; ``force`` names the (single)
    output, which must be the first argument's variable (a loop's carried value)."""
    steps = draft.steps
    n = len(steps)
    uses: dict[str, list[int]] = {name: [] for name in draft.args}
    reads = [step.reads for step in steps]
    for step in steps:
        for name in step.targets:
            uses[name] = []
    for i, names in enumerate(reads):
        for name in names:
            uses[name].append(i)
    for name in (*draft.outputs, *draft.live_out):
        uses[name].append(n)
    last = {name: max(u, default=-1) for name, u in uses.items()}
    var: dict[str, str] = {}
    busy: dict[str, int] = {}
    for name, v in zip(draft.args, arg_names):
        var[name] = v
        busy[v] = max(busy.get(v, -1), last[name])
    taken = set(avoid) | set(arg_names)

    def chained(i: int) -> bool:
        step = steps[i]
        if len(step.targets) != 1:
            return False
        u = uses[step.targets[0]]
        if i + 1 < n:  # (a step with a name of its own starts a variable; the next step may
            # read the value more than once: its expression is computed before it is assigned)
            return set(u) == {i + 1} and len(steps[i + 1].targets) == 1 and not steps[i + 1].hint
        return u == [n] and len(draft.outputs) == 1 and not draft.live_out

    def free(name: str, start: int) -> bool:
        return name not in avoid and busy.get(name, -1) <= start

    def claim(candidates: list[str], start: int, end: int) -> str:
        for name in candidates:
            if name and free(name, start):
                busy[name] = end
                return name
        base, k = candidates[-1], 2
        while not free(f"{base}_{k}", start):
            k += 1
        busy[f"{base}_{k}"] = end
        return f"{base}_{k}"

    def own(step) -> str:
        name = identifier(step.hint or step.local or "value")
        return name + "_" if name in taken else name

    i = 0
    while i < n:
        step = steps[i]
        if len(step.targets) != 1:
            for j, target in enumerate(step.targets):
                var[target] = claim([f"{own(step)}_{j + 1}"], i, last[target])
            i += 1
            continue
        j = i
        while j + 1 < n and chained(j):
            j += 1
        final = steps[j].targets[0]
        fan_out = len(uses[final]) > 1
        if fan_out and j > i:  # the chain up to the fan-out point, then the fan-out value
            candidates = ["x"]
            if steps[j].merge:
                candidates.append(f"branch{reads[j].index(steps[j - 1].targets[0]) + 1}")
            name = claim([*candidates, own(steps[j - 1])], i, j)
            for k in range(i, j):
                var[steps[k].targets[0]] = name
            i = j
            continue
        candidates = [own(steps[i])] if steps[i].hint else []
        candidates += [] if fan_out else ["x"]
        if final in draft.outputs and not fan_out:
            candidates.append("out")
        if len(uses[final]) == 1 and uses[final][0] < n and steps[uses[final][0]].merge:
            reader = uses[final][0]
            candidates.append(f"branch{reads[reader].index(final) + 1}")
        candidates.append(own(steps[j]))
        name = claim(candidates, i, last[final])
        for k in range(i, j + 1):
            var[steps[k].targets[0]] = name
        i = j + 1
    if force is not None:
        var[draft.outputs[0]] = force
    return var


# ---------------------------------------------------------------- comments and docstrings


def comment_text(text: str) -> str:
    """Text made safe for a single-line ``#`` comment: one line, no control characters."""
    return " ".join("".join(c if c.isprintable() else " " for c in str(text)).split())


def docstring_text(text: str) -> str:
    """Text made safe inside a triple-quoted docstring: one line, quotes and backslashes
    escaped, so that nothing in it can end the string."""
    return comment_text(text).replace("\\", "\\\\").replace('"', '\\"')
