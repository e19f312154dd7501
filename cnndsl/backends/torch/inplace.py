"""In-place operations in ``forward``, where they are safe (as torchvision writes them by hand).

``F.relu(x)`` and ``a + b`` allocate a new tensor; ``F.relu(x, inplace=True)`` and ``a += b``
write into their input's memory instead, which on CPU is what separates a plainly written
ResNet from torchvision's.  An operation may overwrite a tensor only when all of this holds:

1. **Made here.**  The tensor is made in this ``forward``: never an argument of ``forward``,
   which the caller may still use (a block's input is often its shortcut).
2. **Read once.**  Nothing else reads it: this step reads it once, and it is not a result of
   ``forward``.  So nothing else can hold it, or a view of it, either.
3. **Not needed for backward.**  What made it is a fresh tensor whose gradient does not read
   it: the output of a convolution, a dense layer or batch norm (their gradients read their
   inputs), of an addition, a product or a concatenation (:data:`FRESH_MODULES`,
   :func:`_fresh`).  Never an activation's (ReLU's gradient reads its output), a nested
   block's (its result may be anything), dropout's or identity's (in eval mode their output
   *is* their input), or a view (flatten, a slice).

Two forms are used:

- ``inplace=True`` for ReLU, ReLU6, SELU and SiLU (:data:`IN_PLACE_ACTIVATIONS`), whose
  in-place gradients accept every argument (ELU's and leaky ReLU's refuse negative slopes);
- ``a += b`` for an addition whose value takes the variable of the addend it overwrites, when
  the sum stays the same bit for bit: either of two addends, or the last of more
  (``(a + b) + c`` is ``c += a + b``; float addition commutes but does not associate).

With taps (a debugging aid) nothing is done in place: a tapped value must not change after the
tap has seen it.  Nothing here changes which values are computed, only where they are stored.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..codegen.expr import Attr, Call, Code, Expr, Operation, Var
from ..codegen.lower import Draft

FRESH_MODULES = frozenset(
    {
        "nn.Conv2d",
        "nn.ConvTranspose2d",
        "SeparableConv2d",
        "nn.Linear",
        "nn.BatchNorm1d",
        "nn.BatchNorm2d",
    }
)
"""Module classes whose output is a new tensor that their gradient does not read."""

IN_PLACE_ACTIVATIONS = frozenset({"F.relu", "F.relu6", "F.selu", "F.silu"})
"""Activations written with ``inplace=True`` when their input may be overwritten."""


@dataclass
class AugmentedAdd:
    """``target += value``: an addition that overwrites its addend ``target`` (a value)."""

    target: str
    value: Expr


def in_place(draft: Draft, names: dict[str, str]) -> dict[int, Expr | AugmentedAdd]:
    """The steps of ``forward`` written in place, by index: an activation's expression with
    ``inplace=True``, or an :class:`AugmentedAdd`.  ``names`` are the variables of ``forward``
    (value -> variable)."""
    positions = draft.positions()
    reads: dict[str, list[int]] = {name: [] for name in positions}
    for i, step in enumerate(draft.steps):
        for name in step.reads:
            reads[name].append(i)
    for name in draft.outputs:
        reads[name].append(len(draft.steps))
    modules = {
        s.attr: s.expr.func.code
        for s in draft.modules
        if s.attr and isinstance(s.expr, Call) and isinstance(s.expr.func, Code)
    }

    def overwritable(expr: Expr, i: int) -> bool:
        """Whether step i may overwrite the value of expr: a temporary of its own expression,
        or a variable made by an earlier step, that only step i reads."""
        if not isinstance(expr, Var):
            return _fresh(expr, modules)
        ref = positions[expr.name]
        if ref[0] != "step" or reads[expr.name] != [i]:
            return False
        maker = draft.steps[ref[1]]
        return len(maker.targets) == 1 and _fresh(maker.expr, modules)

    changes: dict[int, Expr | AugmentedAdd] = {}
    for i, step in enumerate(draft.steps):
        expr = step.expr
        if _is_activation(expr) and overwritable(expr.args[0], i):
            changes[i] = expr.keyword("inplace", Code("True"))
        elif isinstance(expr, Operation) and expr.op == "+" and len(step.targets) == 1:
            result = names[step.targets[0]]
            operands = list(expr.operands)
            last = len(operands) - 1
            for k in (last, 0) if last == 1 else (last,):  # the sum stays the same bit for bit
                target = operands[k]
                if not isinstance(target, Var) or names[target.name] != result:
                    continue  # x += y must leave the sum in the sum's variable
                if overwritable(target, i):
                    rest = operands[:k] + operands[k + 1 :]
                    value = rest[0] if len(rest) == 1 else Operation("+", tuple(rest))
                    changes[i] = AugmentedAdd(target.name, value)
                    break
    return changes


def _is_activation(expr: Expr) -> bool:
    return (
        isinstance(expr, Call)
        and isinstance(expr.func, Code)
        and expr.func.code in IN_PLACE_ACTIVATIONS
        and len(expr.args) == 1
        and not expr.kwargs
    )


def _fresh(expr: Expr, modules: dict[str, str]) -> bool:
    """Whether expr makes a new tensor that its gradient does not read."""
    if isinstance(expr, Operation):
        return expr.op in ("+", "*")
    if not isinstance(expr, Call):
        return False
    func = expr.func
    if isinstance(func, Code):
        return func.code == "torch.cat"
    return (
        isinstance(func, Attr)
        and isinstance(func.obj, Code)
        and func.obj.code == "self"
        and modules.get(func.name) in FRESH_MODULES
    )
