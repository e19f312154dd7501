"""Rendering a :class:`~.blocks.Plan` as the text of a standalone Python module.

Variables are named (``x`` along a chain, ``branch1``... for values waiting for a merge,
``out`` for a result computed while the input is still needed), activations and sums are
written in place where that is safe (:mod:`.inplace`), lines are wrapped as black wraps them at
100 columns, and each layer carries its spec line.  Helper classes are copied in
from :mod:`.runtime`.  Nothing here imports torch.
"""

from __future__ import annotations

import io
import keyword
import os
import textwrap
import tokenize

from .._source import SourceWriter, docstring_text, py_identifier
from .blocks import BlockClass, Plan
from .context import helper_sources
from .drafts import RESERVED_NAMES, Draft, Step
from .expr import Call, Display, Expr, Operation
from .handlers import flattens_map
from .inplace import AugmentedAdd, in_place

LINE_LENGTH = 100


def _variable_names(draft: Draft, arg_names: list[str]) -> dict[tuple, str]:
    """Names of forward's tensors.  A chain of single-use values shares one variable: ``x``
    when free, else ``out`` for the result, ``branch<k>`` for the k-th input of a merge, or
    the node's name.  A name is reused only once its previous value is dead."""
    refs = draft.refs()
    n = len(draft.steps)
    uses: dict[str, list[int]] = {name: [] for name in refs}
    for i, step in enumerate(draft.steps):
        for name in step.reads:
            uses[name].append(i)
    for name in draft.outputs:
        uses[name].append(n)
    last = {name: max(u, default=-1) for name, u in uses.items()}
    names: dict[tuple, str] = {}
    busy: dict[str, int] = {}
    for name, var in zip(draft.args, arg_names):
        names[refs[name]] = var
        busy[var] = last[name]
    taken = set(RESERVED_NAMES) | set(arg_names)

    def chained(i: int) -> bool:
        step = draft.steps[i]
        if len(step.targets) != 1:
            return False
        u = uses[step.targets[0]]
        if i + 1 < n:
            return u == [i + 1] and len(draft.steps[i + 1].targets) == 1
        return u == [n] and len(draft.outputs) == 1

    def free(name: str, start: int) -> bool:
        return busy.get(name, -1) <= start

    def claim(candidates: list[str], start: int, end: int) -> str:
        for name in candidates:
            if name and free(name, start):
                busy[name] = end
                return name
        base = candidates[-1]
        k = 2
        while not free(f"{base}_{k}", start):
            k += 1
        busy[f"{base}_{k}"] = end
        return f"{base}_{k}"

    def local_name(step: Step) -> str:
        name = py_identifier(step.local)
        return name + "_" if name in taken or keyword.iskeyword(name) else name

    i = 0
    while i < n:
        step = draft.steps[i]
        if len(step.targets) != 1:
            for j, target in enumerate(step.targets):
                names[refs[target]] = claim([f"{local_name(step)}_{j + 1}"], i, last[target])
            i += 1
            continue
        j = i
        while chained(j) and j + 1 < n:
            j += 1
        final = draft.steps[j].targets[0]
        fan_out = len(uses[final]) > 1
        if fan_out and j > i:  # the chain up to the fan-out point, then the fan-out value
            run = range(i, j)
            name = claim(["x", local_name(draft.steps[j - 1])], i, j)
            for k in run:
                names[refs[draft.steps[k].targets[0]]] = name
            i = j
            continue
        candidates = [] if fan_out else ["x"]
        if final in draft.outputs and not fan_out:
            candidates.append("out")
        readers = [s for s in draft.steps if final in s.reads]
        if len(uses[final]) == 1 and readers and readers[0].merge:
            candidates.append(f"branch{readers[0].reads.index(final) + 1}")
        candidates.append(local_name(draft.steps[j]))
        name = claim(candidates, i, last[final])
        for k in range(i, j + 1):
            names[refs[draft.steps[k].targets[0]]] = name
        i = j + 1
    return names


def _wrap(head: str, expr: Expr, tail: str, width: int, names: dict) -> list[str]:
    """``head + expr + tail`` laid out as black would in `width` columns (lines unindented,
    continuation lines indented by four spaces)."""
    line = f"{head}{expr.text(names)}{tail}"
    if len(line) <= width or not isinstance(expr, (Call, Display, Operation)):
        return [line]
    if isinstance(expr, Operation):  # black's invisible parentheses, then one operand a line
        body = "    " + expr.text(names)
        if len(body) <= width:
            return [f"{head}(", body, f"){tail}"]
        operands = [o.text(names) for o in expr.operands]
        body = ["    " + operands[0]] + [f"    {expr.op} {o}" for o in operands[1:]]
        return [f"{head}(", *body, f"){tail}"]
    if isinstance(expr, Call):
        opening, parts, closing = expr.func.text(names) + "(", expr.args, ")"
        if head and len(head + opening) > width:  # black wraps the right-hand side instead
            return [
                f"{head}(",
                *("    " + t for t in _wrap("", expr, "", width - 4, names)),
                f"){tail}",
            ]
        kwargs = expr.shown_kwargs()
    else:
        opening, parts, closing, kwargs = "[", expr.items, "]", []
    texts = [p.text(names) for p in parts] + [f"{k}={v.text(names)}" for k, v in kwargs]
    hugged = "    " + ", ".join(texts)
    if len(hugged) <= width:
        return [f"{head}{opening}", hugged, f"{closing}{tail}"]
    lines = [f"{head}{opening}"]
    for p in parts:
        lines += ["    " + t for t in _wrap("", p, ",", width - 4, names)]
    for k, v in kwargs:
        lines += ["    " + t for t in _wrap(f"{k}=", v, ",", width - 4, names)]
    return lines + [f"{closing}{tail}"]


class Renderer:
    """Writes a plan as a module: docstring, imports, helper classes, one class per block
    class, the network's class and ``build_model()``; with ``taps``, a ``_tap`` call after
    each node (and nothing in place)."""

    def __init__(self, plan: Plan, taps: bool):
        self.plan = plan
        self.taps = taps
        self.out = SourceWriter()

    def emit(self, head: str, expr: Expr, names: dict, comment: str | None = None) -> None:
        """A statement, wrapped to the line length, with its comment at the end of its line
        (or on a line of its own above it when it would not fit)."""
        width = LINE_LENGTH - len(self.out._unit) * self.out._level
        lines = _wrap(head, expr, "", width, names)
        if comment:
            inline = f"{lines[0]}  # {comment}"
            if len(lines) == 1 and len(inline) <= width:
                lines = [inline]
            else:
                self.out.line(f"# {comment}")
        for text in lines:
            self.out.line(text)

    def module(self) -> str:
        plan, w = self.plan, self.out
        body = SourceWriter()
        self.out = body
        for name in plan.helpers:
            body.blank(2)
            body.lines(*helper_sources()[name].strip("\n").splitlines())
        for cls in plan.classes:
            body.blank(2)
            self.block_class(cls)
        body.blank(2)
        self.network_class()
        body.blank(2)
        body.line("def build_model():")
        with body.indented():
            body.line(f"return {plan.network_class}()")
        text = body.getvalue()
        self.out = w
        self.docstring()
        w.blank()
        used = _names_used(text)
        if "torch" in used or self.taps:
            w.line("import torch")
        if "F" in used:
            w.line("import torch.nn.functional as F")
        w.line("from torch import nn")
        if self.taps:
            w.blank(2)
            w.line("def _tap(module, name, value):")
            with w.indented():
                w.line("pass")
        return w.getvalue() + "\n\n" + text

    def docstring(self) -> None:
        net = self.plan.net
        a = net.analysis
        files = sorted({os.path.basename(l.position.file) for l in net.layers if l.position})
        source = f" from {', '.join(files)}" if files else ""
        w = self.out
        w.line(f'"""{docstring_text(f"{net.name} in PyTorch, generated by cnndsl{source}")}.')
        w.blank()
        shapes = lambda names: ", ".join(_nchw(a[n].output_shape) for n in names)  # noqa: E731
        inputs = shapes([layer.name for layer in net.inputs])
        w.line(f"Input: {inputs}, channels first.  Output: {shapes(net.outputs)}.")
        counts = f"{a.trainable_params:,} parameters"
        if a.non_trainable_params:
            counts += f", {a.non_trainable_params:,} batch-norm statistics"
        w.line(counts + ".")
        if any(
            flattens_map(a[layer.name].input_shapes)
            for layer in net.layers
            if layer.kind == "flatten"
        ):
            w.line(
                "Flatten orders features as Keras does, (H, W, C), so that dense weights transfer."
            )
        w.line('"""')

    def block_class(self, cls: BlockClass) -> None:
        w = self.out
        w.line(f"class {cls.name}(nn.Module):")
        with w.indented():
            signature = f"{cls.block}({', '.join(cls.block_params)})"
            where = {os.path.basename(c.call.position.file) for c in cls.calls if c.call.position}
            doc = f"Block ``{signature}``" + (f" of {', '.join(sorted(where))}" if where else "")
            doc += f", with {cls.variant}" if cls.variant else ""
            self.docstring_lines(f"{doc}.")
            w.blank()
            params = ", ".join(["self", *(p.name for p in cls.params)])
            self.init(
                cls.draft, f"def __init__({params}):", [p.name for p in cls.params if p.in_forward]
            )
            w.blank()
            self.forward(cls.draft, _argument_names(cls))

    def docstring_lines(self, text: str) -> None:
        width = LINE_LENGTH - len(self.out._unit) * self.out._level - 6
        lines = textwrap.wrap(docstring_text(text), width, break_long_words=False) or [""]
        lines[0] = '"""' + lines[0]
        lines[-1] += '"""'
        self.out.lines(*lines)

    def network_class(self) -> None:
        plan, w = self.plan, self.out
        net = plan.net
        w.line(f"class {plan.network_class}(nn.Module):")
        with w.indented():
            w.line(f'"""The network {docstring_text(net.name)}."""')
            w.blank()
            shapes = [_channels_first(layer.shape) for layer in net.inputs]
            if len(shapes) == 1:
                w.line(f"input_shape = {shapes[0]}  # (C, H, W), without the batch axis")
            else:
                w.line(f"input_shapes = ({', '.join(map(str, shapes))})  # of each input, in forward's order")
            w.blank()
            self.init(plan.root_draft, "def __init__(self):", [])
            w.blank()
            names = ["x"] if len(net.inputs) == 1 else [_variable(l.name) for l in net.inputs]
            self.forward(plan.root_draft, names)

    def init(self, draft: Draft, signature: str, stored: list[str]) -> None:
        w = self.out
        w.line(signature)
        with w.indented():
            w.line("super().__init__()")
            for name in stored:
                w.line(f"self.{name} = {name}")
            for s in draft.inits:
                self.emit(f"self.{s.attr} = " if s.attr else "", s.expr, {}, s.comment)

    def forward(self, draft: Draft, arg_names: list[str]) -> None:
        w = self.out
        w.line(f"def forward({', '.join(['self', *arg_names])}):")
        names = _variable_names(draft, arg_names)
        refs = draft.refs()
        changes = {} if self.taps else in_place(draft, names)
        with w.indented():
            for i, step in enumerate(draft.steps):
                targets = [names[refs[t]] for t in step.targets]
                expr = changes.get(i, step.expr)
                if isinstance(expr, AugmentedAdd):  # x += y
                    self.emit(f"{names[expr.target]} += ", expr.value, names, step.comment)
                    continue
                last = i == len(draft.steps) - 1
                if last and not self.taps and draft.outputs == step.targets and len(targets) == 1:
                    self.emit("return ", expr, names, step.comment)
                    return
                self.emit(f"{', '.join(targets)} = ", expr, names, step.comment)
                if self.taps and step.tap:
                    w.line(f'_tap(self, "{step.local}", {targets[0]})')
            w.line("return " + ", ".join(names[refs[o]] for o in draft.outputs))


def _argument_names(cls: BlockClass) -> list[str]:
    """forward's arguments: ``x``, then the block parameters that passed the other tensors."""
    names = []
    for k in range(len(cls.draft.args)):
        found = None
        if k > 0:
            for param in cls.block_params:
                if all(c.call.args.get(param) == c.inputs[k] for c in cls.calls):
                    found = _variable(param)
                    break
        names.append("x" if k == 0 else found if found and found not in names else f"x{k + 1}")
    return names


def _variable(name: str) -> str:
    ident = py_identifier(name)
    return ident + "_" if ident in RESERVED_NAMES else ident


def _channels_first(shape: tuple[int, ...]) -> tuple[int, ...]:
    return (shape[2], shape[0], shape[1]) if len(shape) == 3 else tuple(shape)


def _nchw(shape: tuple[int, ...]) -> str:
    if len(shape) == 3:
        h, w, c = shape
        return f"(N, {c}, {h}, {w})"
    return f"(N, {shape[0]})"


def _names_used(source: str) -> set[str]:
    """The names a piece of generated Python uses (comments and strings aside)."""
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    return {tok.string for tok in tokens if tok.type == tokenize.NAME}
