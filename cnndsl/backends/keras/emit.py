"""Writing the source: the tree of bodies and block functions -> a standalone Python module.

:func:`to_source` plans the network (``handlers.py``), groups the plan by block call
(``tree.py``), decides the block functions (``blocks.py``) and folds the loops of the model body
(``loops.py``); :class:`_Emitter` then writes the module through a small writer that keeps every
line within LINE_LENGTH, split as black splits it.  Variables follow the data: a chain goes on in
one variable, a value that several layers read gets a name of its own.

The custom layers a model uses are defined in the module by copying their text from
``layers.py``, read as text (:func:`custom_definitions`): writing source imports neither Keras
nor TensorFlow.  Everything taken from the spec that reaches a docstring or a comment goes
through ``docstring_text`` / ``comment_text``; every other value is written by ``tree.lit``.
"""

from __future__ import annotations

import ast
import functools
import os
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources

from ...ir import Network
from .._source import SourceWriter, comment_text, docstring_text, py_identifier
from .blocks import MODULE_NAMES, RESERVED, block_functions, is_auto
from .calls import NO_DEFAULT, KCall, Sym
from .handlers import make_plan
from .loops import fold
from .tree import Body, Call, Flat, Function, Loop, Prim, body_tree, lit, slots_of

LINE_LENGTH = 100

# ---------------------------------------------------------------- the custom layers' text


@functools.cache
def custom_definitions() -> dict[str, str]:
    """The custom layers of ``layers.py`` as generated source defines them: name -> the text of
    its definition, decorators included, in file order.  Read as text with ``ast``, so that
    writing source imports neither ``layers.py`` nor Keras."""
    text = (resources.files(__package__) / "layers.py").read_text(encoding="utf-8")
    lines = text.splitlines()
    found = {}
    for node in ast.parse(text).body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)) and any(
            _registers(d) for d in node.decorator_list
        ):
            first = min(d.lineno for d in node.decorator_list)
            found[node.name] = "\n".join(lines[first - 1 : node.end_lineno])
    return found


def _registers(decorator: ast.expr) -> bool:
    """Whether a decorator is ``keras.saving.register_keras_serializable(...)``."""
    target = decorator.func if isinstance(decorator, ast.Call) else decorator
    return ast.unparse(target) == "keras.saving.register_keras_serializable"


# ---------------------------------------------------------------- the writer


class _EscapedWrapper(textwrap.TextWrapper):
    """Wraps docstring text that is already escaped: a word longer than a line is broken, but
    never between a backslash and the character it escapes (a line ending in a lone backslash
    would join the next line and escape its first character)."""

    def _handle_long_word(self, reversed_chunks, cur_line, cur_len, width):
        chunk = reversed_chunks[-1]
        end = 1 if width < 1 else width - cur_len
        head = chunk[:end]
        if (end > 1 or cur_line) and (len(head) - len(head.rstrip("\\"))) % 2:
            end -= 1  # leave the backslash to the next line, with what it escapes
        if end > 0:
            cur_line.append(chunk[:end])
            reversed_chunks[-1] = chunk[end:]


def _wrap_escaped(text: str, width: int) -> list[str]:
    """``textwrap.wrap(text, width, break_on_hyphens=False)``, escapes kept whole."""
    return _EscapedWrapper(width, break_on_hyphens=False).wrap(text)


class _Writer(SourceWriter):
    def docstring(self, text: str) -> None:
        """A docstring, wrapped within LINE_LENGTH (quotes and backslashes escaped)."""
        text = docstring_text(text)
        indent = len(self._unit) * self._level
        if indent + len(text) + 6 <= LINE_LENGTH:
            self.line(f'"""{text}"""')
            return
        lines = _wrap_escaped(text, LINE_LENGTH - indent - 3)
        self.line(f'"""{lines[0]}')
        for line in lines[1:]:
            self.line(line)
        self.line('"""')

    def statement(
        self, lhs: str, head: str, args: list[str], tail: str = "", comment: str | None = None
    ) -> None:
        """``lhs head(args)tail  # comment`` within LINE_LENGTH, split as black splits it."""
        indent = len(self._unit) * self._level
        note = f"  # {comment_text(comment)}" if comment else ""
        one = f"{lhs}{head}({', '.join(args)}){tail}"
        if indent + len(one) + len(note) <= LINE_LENGTH or not args:
            self.line(one + note)
            return
        self.line(f"{lhs}{head}(")
        with self.indented():
            hugged = ", ".join(args)
            if indent + len(self._unit) + len(hugged) <= LINE_LENGTH:
                self.line(hugged)
            else:
                for arg in args:
                    self.line(f"{arg},")
        self.line(f"){tail}{note}")


class _Scope:
    """The variables of one generated function: which hold a value still needed."""

    def __init__(self, reserved: set[str], live: list[str]) -> None:
        self.reserved = reserved
        self.live = set(live)
        self.branches = 0

    def free(self, var: str) -> bool:
        return var not in self.live and var not in self.reserved

    def branch(self) -> str:
        while True:
            self.branches += 1
            var = f"branch{self.branches}"
            if self.free(var):
                return var

    def named(self, text: str) -> str:
        var = candidate = py_identifier(text)
        k = 1
        while not self.free(var):
            k += 1
            var = f"{candidate}_{k}"
        return var


@dataclass
class _LoopContext:
    start: int  # the loop variable's first value
    unit_steps: bool  # every counter steps by one: the loop runs over the first item's count


class _Emitter:
    def __init__(self, net: Network, functions: list[Function], module_names: set[str]) -> None:
        self.net = net
        self.functions = functions
        self.module_names = module_names
        self.w = _Writer()
        self.loop: _LoopContext | None = None

    # ---- values
    @staticmethod
    def expr(entry: tuple, plus: int = 0) -> str:
        """A slot's value in source, plus a constant (for loop bounds)."""
        if entry[0] == "const":
            return lit(entry[1] + plus) if plus else lit(entry[1])
        if entry[0] == "param":
            text, offset = entry[1], plus
        elif entry[2] == "-":  # a count: n - k
            text, offset = entry[1], plus - entry[3]
        else:
            text, offset = f"{entry[1]} {entry[2]} {entry[3]}", plus
        if offset == 0:
            return text
        return f"{text} + {offset}" if offset > 0 else f"{text} - {-offset}"

    def counter(self, n0: int, step: int) -> str:
        loop = self.loop
        if loop.unit_steps:
            d = n0 - loop.start
            return "i" if d == 0 else f"i + {d}" if d > 0 else f"i - {-d}"
        scaled = "i" if step == 1 else f"{step} * i"
        return scaled if n0 == 0 else f"{scaled} + {n0}"

    def layer_name(self, item, prefix: bool) -> str:
        if item.counter is not None:
            base, n0, step = item.counter
            head = "{name}_" if prefix else ""
            return f'f"{head}{base}_{{{self.counter(n0, step)}}}"'
        if prefix and item.local is not None:
            return f'f"{{name}}_{item.local}"'
        return lit(item.call.name if isinstance(item, Prim) else item.site.instance)

    # ---- bodies
    def body(
        self,
        body: Body,
        scope: _Scope,
        ext_vars: list[str],
        plan: Iterator,
        prefix: bool,
        exported: set[str],
        force: str | None = None,
    ) -> dict[str, str]:
        """Write a body's items; give the variable that holds each value at its last use."""
        var = dict(zip(body.inputs, ext_vars))
        uses: dict[str, list[int]] = {}
        for idx, item in enumerate(body.items):
            for v in item.inputs:
                uses.setdefault(v, []).append(idx)
        count = {v: len(u) + (v in exported) for v, u in uses.items()}
        last = len(body.items) - 1

        def dies(v: str, idx: int) -> bool:
            return v not in exported and uses[v][-1] == idx

        for idx, item in enumerate(body.items):
            ins = list(dict.fromkeys(item.inputs))
            release = ins[:1] if isinstance(item, Loop) else ins
            released = [var[v] for v in release if dies(v, idx)]
            scope.live.difference_update(released)
            if force is not None and idx == last:
                targets = [force]
            else:
                important = count.get(item.outputs[0], 0) >= 2 or (
                    not prefix and item.outputs[0] in exported
                )
                targets = self.targets(item, ins, var, important, count, scope, released)
            if isinstance(item, Prim):
                self.prim(item, targets[0], var, plan, prefix)
            elif isinstance(item, Call):
                self.call(item, targets, var, plan, prefix)
            else:
                self.for_loop(item, targets[0], var, scope, plan, prefix)
                scope.live.difference_update(var[v] for v in ins[1:] if dies(v, idx))
            for v, target in zip(item.outputs, targets):
                var[v] = target
                scope.live.add(target)
        return var

    def targets(
        self, item, ins, var, important, count, scope: _Scope, released: list[str]
    ) -> list[str]:
        """The variable for an item's result: a chain goes on in its variable; a branch off a
        value that others read starts `x` when free, else a variable named after the spec's
        name for it, else `branch<n>`."""
        outs = item.outputs
        if len(outs) > 1:
            return [scope.branch() for _ in outs]
        if not ins:  # a network input
            name = item.call.name
            return [scope.named("inputs" if name == "input" else name)]
        named = (
            None
            if isinstance(item, Loop) or is_auto(item)
            else getattr(item, "node_local", item.local)
        )
        if named and important:
            return [scope.named(named)]  # a named value that several layers read, or an output
        if len(ins) == 1:
            src = var[ins[0]]
            if count[ins[0]] == 1:
                return [src]
            if src != "x" and scope.free("x"):
                return ["x"]
        elif scope.free("x"):
            return ["x"]
        elif released:
            return [released[0]]
        return [scope.named(named) if named else scope.branch()]

    def prim(self, item: Prim, target: str, var, plan: Iterator, prefix: bool) -> None:
        call = item.call
        args = []
        for a in call.args:
            entry = next(plan)
            if (
                entry[0] == "const"
                and a.default is not NO_DEFAULT
                and lit(entry[1]) == lit(a.default)
            ):
                continue
            text = self.expr(entry)
            args.append(text if a.positional else f"{a.key}={text}")
        args.append(f"name={self.layer_name(item, prefix)}")
        if call.cls == "Input":
            self.w.statement(f"{target} = ", "keras.Input", args, "", item.where)
            return
        head = call.cls if call.cls in custom_definitions() else f"layers.{call.cls}"
        ins = [var[v] for v in call.inputs]
        tail = f"([{', '.join(ins)}])" if call.merge else f"({ins[0]})"
        self.w.statement(f"{target} = ", head, args, tail, item.where)

    def call(self, item: Call, targets: list[str], var, plan: Iterator, prefix: bool) -> None:
        fn = item.func
        args = [var[v] for v in item.inputs]
        for param in fn.params:
            text = self.expr(next(plan))
            args.append(f"{param}={text}" if param in fn.keyword else text)
        args.append(f"name={self.layer_name(item, prefix)}")
        self.w.statement(f"{', '.join(targets)} = ", fn.name, args, "", item.where)

    def for_loop(
        self, item: Loop, target: str, var, scope: _Scope, plan: Iterator, prefix: bool
    ) -> None:
        entry, shared = item.inputs[0], item.inputs[1:]
        if target != var[entry]:
            self.w.line(f"{target} = {var[entry]}")
        count = next(plan)
        counters = [unit.counter for unit in item.unit.items]
        steps_one = all(step == 1 for _, _, step in counters)
        start = counters[0][1] if steps_one else 0
        bounds = f"{start}, {self.expr(count, start)}" if start else self.expr(count)
        self.w.line(f"for i in range({bounds}):")
        scope.live.add(target)
        saved, self.loop = (set(scope.live), self.loop), _LoopContext(start, steps_one)
        with self.w.indented():
            ext = [target, *(var[v] for v in shared)]
            self.body(item.unit, scope, ext, plan, prefix, set(shared), force=target)
        scope.live, self.loop = saved

    # ---- functions and the module
    def function(self, fn: Function) -> None:
        body = fn.calls[0].body
        reserved = set(RESERVED) | self.module_names | set(fn.params)
        scope = _Scope(reserved, fn.input_names)
        self.w.statement("def ", fn.name, [*fn.input_names, *fn.params, "name"], ":")
        with self.w.indented():
            self.w.docstring(_function_doc(fn))
            plan = iter(fn.plan)
            var = self.body(body, scope, fn.input_names, plan, True, set(body.outputs))
            self.w.line(f"return {', '.join(var[v] for v in body.outputs)}")
        self.w.blank(2)

    def build_model(self, root: Body, plan: list[tuple]) -> None:
        net = self.net
        inputs = [layer.name for layer in net.inputs]
        scope = _Scope(set(RESERVED) | self.module_names, [])
        self.w.line("def build_model():")
        with self.w.indented():
            self.w.docstring(
                f"The network `{comment_text(net.name)}`{_file_note(net)} as a Keras model."
            )
            var = self.body(root, scope, [], iter(plan), False, set(root.outputs) | set(inputs))
            ins = [var[v] for v in inputs]
            outs = [var[v] for v in root.outputs]
            model_in = ins[0] if len(ins) == 1 else f"[{', '.join(ins)}]"
            model_out = outs[0] if len(outs) == 1 else f"[{', '.join(outs)}]"
            self.w.statement(
                "return ", "keras.Model", [model_in, model_out, f"name={lit(net.name)}"]
            )


def _file_note(net: Network) -> str:
    files = sorted(
        {os.path.basename(layer.position.file) for layer in net.layers if layer.position}
    )
    return f" ({files[0]})" if len(files) == 1 else ""


def _function_doc(fn: Function) -> str:
    wheres = []

    def collect(items) -> None:
        for item in items:
            if isinstance(item, Loop):
                collect(item.unit.items)
            elif item.where:
                wheres.append(item.where.rsplit(":", 1))

    collect(fn.calls[0].body.items)
    text = f"Block `{fn.block}`"
    files = {f for f, _ in wheres}
    if len(files) == 1:
        lines = sorted(int(n) for _, n in wheres)
        span = str(lines[0]) if lines[0] == lines[-1] else f"{lines[0]}-{lines[-1]}"
        text += f" ({files.pop()}:{span})"
    if fn.variant:
        calls = [call.site.instance for call in fn.calls]
        more = f" and {len(calls) - 3} more" if len(calls) > 3 else ""
        text += f", as {', '.join(calls[:3])}{more} build{'s' if len(calls) == 1 else ''} it"
    return comment_text(text) + "."


def _used_objects(calls: list[KCall]) -> list[str]:
    custom = custom_definitions()
    used = {call.cls for call in calls if call.cls in custom}
    used |= {a.value.name for call in calls for a in call.args if isinstance(a.value, Sym)}
    return [name for name in custom if name in used]


def to_source(net: Network) -> str:
    """A standalone Python module (it imports only keras) whose ``build_model()`` returns the
    same model as :func:`~cnndsl.backends.keras.build`, written as a person would: the Keras
    functional API, one function per block of the spec, loops for repeated layers, the spec line
    of every layer.  Imports neither Keras nor TensorFlow.

    Deterministic: the same network gives the same text, byte for byte.  Raises
    :class:`cnndsl.CnnDslError` for what Keras cannot express.
    """
    plan = make_plan(net)
    custom = custom_definitions()
    customs = _used_objects(plan.calls)
    module_names = set(MODULE_NAMES) | set(customs)
    taken = set(module_names)
    try:
        root = body_tree(net, plan, flat=False)
        functions = block_functions(root, taken)
    except Flat:  # pragma: no cover - the elaborator keeps each block call contiguous
        root, functions = body_tree(net, plan, flat=True), []
    module_names |= {fn.name for fn in functions}
    fold(root, set(root.outputs))
    root_plan = [("const", value) for _, _, value in slots_of(root.items)]

    emitter = _Emitter(net, functions, module_names)
    w = emitter.w
    source = _file_note(net).strip(" ()")
    title = f"{comment_text(net.name)}: a Keras model generated by cnndsl"
    title += f" from {source}." if source else "."
    lines = _wrap_escaped(docstring_text(title), LINE_LENGTH - 3)
    w.line(f'"""{lines[0]}')
    w.lines(*lines[1:])
    w.blank()
    w.line("build_model() returns it.  Every layer has the name of its node in the spec, and the")
    w.line("comment after it gives the spec line it comes from.")
    w.line('"""')
    w.blank()
    w.line("import keras")
    if any(call.cls not in custom and call.cls != "Input" for call in plan.calls):
        w.line("from keras import layers")
    w.blank(2)
    for name in customs:
        for line in custom[name].split("\n"):
            w.line(line)
        w.blank(2)
    for fn in functions:
        emitter.function(fn)
    emitter.build_model(root, root_plan)
    w.blank(2)
    w.line('if __name__ == "__main__":')
    with w.indented():
        w.line("build_model().summary()")
    return w.getvalue()
