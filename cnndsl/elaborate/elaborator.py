"""The elaborator: syntax tree -> IR.

Walks the statements of a module in order, keeping the *current* tensor; evaluates block calls
(binding arguments and defaults), ``repeat``/``for``/``if`` and layer defaults; resolves named
tensors; and emits IR nodes in topological order with their source positions and block
provenance.  The files, imports and defaults of a load are :mod:`.modules`; a block call
made before with the same arguments is copied by :mod:`.replay`.  Every failure is a located :class:`~cnndsl.errors.CnnDslError`; each
top-level statement is elaborated on its own, so that independent mistakes are all reported.
"""

from __future__ import annotations

import keyword
import os
import re
from dataclasses import replace
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .. import syntax as S
from ..errors import CnnDslError, Diagnostic, Location, did_you_mean, split_lines
from ..ir import Input, Layer, Network, Origins
from .limits import CALL_STEPS, MAX_CALL_DEPTH, MAX_ERRORS, MAX_NODES, MAX_REPEAT, Work
from .modules import ImportPolicy, Modules, kind_key
from .naming import Frame, LoopFrame, Nodes, place
from .options import KINDS, MERGES, RESERVED, identifier, layer_fields, validate
from .replay import SHAPED, UNSEEN, Expansion, call_key
from .shapes import Shapes
from .values import (
    POISONED,
    Poisoned,
    Scope,
    Symbol,
    TensorRef,
    bind,
    evaluate,
    evaluate_int,
    show,
    truth,
    written,
)


InputSizes = Sequence[int] | Mapping[str, Sequence[int]] | None
"""Sizes that replace the spec's input sizes: one shape for its only input, or shapes by input
name (``{"image": (512, 512, 3)}``)."""


class Elaborator:
    def __init__(
        self,
        *,
        memoize: bool = True,
        import_path: Iterable[str | os.PathLike] = (),
        input: InputSizes = None,
    ) -> None:
        self.memoize = memoize  # copy repeated block calls (see replay); off only for tests
        self.import_path = tuple(import_path)
        self.input_sizes = input
        self.given: dict[str, tuple] = {}  # input name -> the size given for it (made by elaborate)
        self.modules: Modules | None = None  # made by elaborate(), for the spec's file
        self.nodes = Nodes()
        self.active: list[tuple[S.BlockDef, Location]] = []
        self.frame: Frame | None = None
        self.loop: LoopFrame | None = None  # the iteration of repeat/for being elaborated
        # Memos of this load (a load depends on its text alone): validated layers by their
        # class and fields (see options.validate), block expansions by block and arguments.
        self.validated: dict[tuple, Layer] = {}
        self.expansions: dict[tuple, Expansion | tuple | None] = {}
        self.work = Work()  # steps taken, against limits.MAX_STEPS
        self.shapes = Shapes(self.nodes)  # shapes asked for while elaborating (channels())

    # ---- top level
    def elaborate(self, module: S.Module) -> Network:
        self.modules = Modules(ImportPolicy(module.file, self.import_path))
        self.modules.load(module)
        self.given = self.sizes_given(module)
        scope = Scope(module, {}, {}, work=self.work, shapes=self.shapes)
        current: int | None = None
        errors: list[Diagnostic] = []
        for stmt in module.program:
            # Each top-level statement is elaborated on its own: after an error the next
            # statement continues from the last good tensor, so independent mistakes are all
            # reported, and a tensor whose statement failed is quietly skipped where used.
            try:
                if isinstance(stmt, S.InputDecl):
                    current = self.input(stmt, scope)
                else:
                    current = self.stmt(stmt, current, scope)
            except Poisoned:
                continue
            except CnnDslError as e:
                errors.extend(e.diagnostics)
                if isinstance(stmt, S.Assign):
                    scope.tensors[stmt.target] = POISONED
                elif isinstance(stmt, S.InputDecl):
                    current = POISONED
                    if stmt.name:
                        scope.tensors[stmt.name] = POISONED
                elif _is_input_attempt(stmt):
                    current = POISONED
                if len(errors) >= MAX_ERRORS or self.work.exhausted:
                    break
        if not errors:
            # Every `defaults` line is checked, in this file and every file it imports, even
            # where no layer asks for it: a wrong one (an unknown kind, an option the kind lacks,
            # a name) is an error, never silently ignored (issue 10 §6).
            try:
                self.modules.defaults_of(module, self.work)
            except CnnDslError as e:
                errors.extend(e.diagnostics)
        if errors:
            raise CnnDslError(_in_source_order(errors))
        if current is None or current == POISONED:
            loc = module.inputs[0].loc if module.inputs else Location(module.file, 1, 1, None, (split_lines(module.source) or [""])[0])
            raise CnnDslError(
                "the spec has no layers" if module.inputs else "the spec declares no input",
                loc,
                hint=None if module.inputs else "start with an input shape, e.g. `input 224x224x3`",
            )
        outputs, training = self.outputs(module, scope, current)
        self.check_all_used(outputs)
        return self.finish(module, outputs, training)

    def check_all_used(self, outputs: list[int]) -> None:
        """Every node must lead to an output: report the ends of dead paths."""
        inputs = self.nodes.inputs
        used = [False] * len(inputs)
        for i in outputs:
            used[i] = True
        for i in range(len(inputs) - 1, -1, -1):
            if used[i]:
                for j in inputs[i]:
                    used[j] = True
        if all(used):
            return
        consumed = {j for ids in inputs for j in ids}
        errors = []
        nodes = self.nodes
        for i in range(len(inputs)):
            if used[i] or i in consumed:
                continue
            layer, user_name = nodes.layers[i], nodes.user_names[i]
            what = (
                f"input '{user_name}'" if layer.kind == "input"
                else f"'{user_name}'" if user_name
                else f"this {layer.type_name} layer"
            )
            notes = []
            frame = nodes.frames[i]
            while frame is not None:
                notes.append((f"in a call of {frame.block}", frame.loc))
                frame = frame.parent
            errors.append(
                Diagnostic(
                    f"{what} is computed but never used: it leads to no output",
                    nodes.locs[i],
                    "use it (`x -> ...`, `concat(x)`), list it in `output`, or remove it",
                    tuple(notes),
                )
            )
        if errors:
            raise CnnDslError(errors[:MAX_ERRORS])

    def input(self, decl: S.InputDecl, scope: Scope) -> int:
        name = decl.name or "input"
        if name in scope.tensors:
            raise CnnDslError(
                f"there is already a tensor named '{name}'" if decl.name else
                "a second input needs a name: `input NAME HxWxC`",
                decl.loc,
            )
        dims = decl.dims
        if name in self.given:
            dims = self.given[name]
            if len(dims) != len(decl.dims):
                raise CnnDslError(
                    f"the size given for input '{name}' ({_size(dims)}) has {len(dims)}"
                    f" dimension{'s' if len(dims) != 1 else ''}; the spec declares"
                    f" {_size(decl.dims)}, with {len(decl.dims)}",
                    decl.loc,
                    hint="give H x W x C for an image, N for a vector",
                )
        # `input ?x?x3`: the model leaves those sizes open, whatever size it is analysed at
        opened = tuple(d is None for d in decl.dims[:2]) if len(decl.dims) == 3 else (False, False)
        fields = {"name": (name, decl.loc), "shape": (dims, decl.loc), "open": (opened, decl.loc)}
        layer = validate(Input, fields, {}, decl.loc, self.validated)
        node = self.add(layer, [], decl.loc, name)
        scope.tensors[name] = node
        return node

    def sizes_given(self, module: S.Module) -> dict[str, tuple]:
        """The input sizes given to the load (``--input``, ``input=``), by input name."""
        sizes = self.input_sizes
        if sizes is None:
            return {}
        names = [decl.name or "input" for decl in module.inputs]
        where = module.inputs[0].loc if module.inputs else None
        if not isinstance(sizes, Mapping):
            if len(names) != 1:
                raise CnnDslError(
                    f"an input size is given, but the spec has {len(names)} inputs"
                    + (f" ({', '.join(names)}): give the sizes by name" if names else ""),
                    module.inputs[1].loc if len(names) > 1 else where,
                    hint=f"--input {names[0]}=... in a command, input={{'{names[0]}': (...)}} in Python"
                    if names else None,
                )
            sizes = {names[0]: sizes}
        for name in sizes:
            if name not in names:
                raise CnnDslError(
                    f"a size is given for input '{name}', but the spec has no input by that name",
                    where,
                    hint=did_you_mean(name, names) or f"its inputs: {', '.join(names) or 'none'}",
                )
        return {name: tuple(size) for name, size in sizes.items()}

    def outputs(self, module: S.Module, scope: Scope, current: int) -> tuple[list[int], list[int]]:
        """The output nodes, and those of them marked ``(training)``."""
        if module.outputs is None:
            return [current], []
        result: list[int] = []
        training: list[int] = []
        for name, loc in module.outputs:
            if name not in scope.tensors:
                raise CnnDslError(
                    f"unknown tensor '{name}' in output", loc,
                    hint=did_you_mean(name, scope.tensors),
                )
            node = scope.tensors[name]
            if node == POISONED:
                continue
            if node in result:
                raise CnnDslError(f"'{name}' is listed twice as an output", loc)
            result.append(node)
            if name in module.training_outputs:
                training.append(node)
        if result and len(training) == len(result):
            raise CnnDslError(
                "every output is marked (training): a network needs an output for inference",
                module.output_loc,
                hint="mark only the auxiliary outputs: `output logits, aux (training)`",
            )
        return result, training

    # ---- statements
    def body(self, body: S.Body, current: int | None, scope: Scope) -> int | None:
        for stmt in body.stmts:
            current = self.stmt(stmt, current, scope)
        return current

    def stmt(self, stmt: S.Stmt, current: int | None, scope: Scope) -> int | None:
        if type(stmt) is S.Assign:
            target = stmt.target
            if target in RESERVED:
                raise CnnDslError(
                    f"'{target}' is a layer kind and cannot name a tensor", stmt.loc
                )
            if target in self.modules.namespace(scope.module.file):
                raise CnnDslError(f"'{target}' is a block and cannot name a tensor", stmt.loc)
            if scope.lookup_var(target)[0]:
                raise CnnDslError(f"'{target}' is a parameter and cannot name a tensor", stmt.loc)
            result = self.chain(stmt.chain, current, scope, (target, stmt.loc))
            scope.tensors[target] = result
            return result
        return self.chain(stmt, current, scope, None)

    def chain(self, chain: S.Chain, current, scope: Scope, assign) -> int | None:
        items = chain.items
        self.work.charge(len(items), chain.loc)
        first = items[0]
        if type(first) is S.LayerItem and first.is_bare_name:
            start = _tensor_named(first.name, scope)
            if start is not None:  # `skip -> ...`: a named tensor, or a parameter holding one
                if start == POISONED:
                    raise Poisoned
                current = start
                items = items[1:]
        for i, item in enumerate(items):
            current = self.item(item, current, scope, assign if i == len(items) - 1 else None)
        return current

    def item(self, item: S.Item, current, scope: Scope, assign) -> int | None:
        self.shapes.current = current  # what channels() reads while this item is elaborated
        kind = type(item)
        if kind is S.LayerItem:
            return self.layer_item(item, current, scope, assign)
        if kind is S.Group:
            return self.group(item, current, scope, assign)
        if isinstance(item, S.Repeat):
            count = evaluate_int(item.count, scope, "a repeat count", minimum=0)
            if count > MAX_REPEAT:
                raise CnnDslError(f"repeat {count} is above the limit of {MAX_REPEAT:,}", item.count.loc)
            outer = self.loop
            try:
                for k in range(count):
                    self.work.charge(1, item.loc)
                    self.loop = LoopFrame(item.loc, k, count, self.frame, outer)
                    current = self.body(item.body, current, scope.child({}))
            finally:
                self.loop = outer
            return current
        if isinstance(item, S.ForLoop):
            values = evaluate(item.iterable, scope)
            if not isinstance(values, (list, tuple)):
                raise CnnDslError(
                    f"for loops run over a list such as [64, 128, 256], got {show(values)}",
                    item.iterable.loc,
                )
            outer = self.loop
            try:
                for k, value in enumerate(values):
                    self.work.charge(1, item.loc)
                    self.loop = LoopFrame(item.loc, k, len(values), self.frame, outer)
                    current = self.body(item.body, current, scope.child(bind(item.var, value, item.iterable.loc)))
            finally:
                self.loop = outer
            return current
        if isinstance(item, S.IfElse):
            if truth(evaluate(item.cond, scope), item.cond.loc):
                return self.body(item.then, current, scope.child({}))
            if item.orelse is not None:
                return self.body(item.orelse, current, scope.child({}))
            return current
        raise AssertionError(item)

    def need_input(self, current, loc: Location) -> int:
        if current == POISONED:
            raise Poisoned
        if current is None:
            raise CnnDslError(
                "this layer has no input: declare one first, e.g. `input 224x224x3`", loc
            )
        return current

    def layer_item(self, item: S.LayerItem, current, scope: Scope, assign) -> int | None:
        name = item.name
        if item.is_bare_name and _tensor_named(name, scope) is not None:
            raise CnnDslError(
                f"tensor '{name}' can only begin a chain",
                item.loc,
                hint=f"write `{name} -> ...` to continue from it",
            )
        blocks = self.modules.namespace(scope.module.file)
        found, value = scope.lookup_var(name) if name not in blocks and name not in KINDS else (False, None)
        if found:  # a parameter or loop variable naming a layer kind or a block: `-> act`
            if not (isinstance(value, Symbol) and (value.name in KINDS or value.name in blocks
                                                    or value.name == "identity")):
                raise CnnDslError(
                    f"'{name}' holds {show(value)}, which is not a layer kind or a block",
                    item.loc,
                    hint="a parameter used as a layer names one: `block b(act=relu) { ... -> act }`",
                )
            name = value.name
        if name in blocks:
            return self.block_call(blocks[name], item, current, scope, assign)
        if name == "identity":
            if item.args or item.kspec:
                raise CnnDslError("identity takes no arguments", item.loc)
            return self.need_input(current, item.loc)
        if name in MERGES:
            return self.merge_call(item, name, current, scope, assign)
        if name in KINDS:
            cls, preset = KINDS[name]
            current = self.need_input(current, item.span)
            defaults = self.modules.defaults_of(scope.module, self.work).get(kind_key(cls, preset), {})
            fields, user_name = layer_fields(cls, item.kspec, item.args, scope, preset, item.call_args)
            merged = {**defaults, **fields}
            layer = validate(cls, merged, preset, item.span, self.validated)
            loc = item.span
            if user_name is not None:
                return self.add(layer, (current,), loc, user_name[0])
            return self.add(layer, (current,), loc, assign[0] if assign is not None else None)
        if name == "input":  # not an input declaration: its sizes did not read as one
            raise CnnDslError(
                "an input is declared as `input [NAME] HxWxC` or `input [NAME] N`, with sizes"
                " that are positive integers",
                item.span,
                hint="e.g. `input 224x224x3`, `input meta 10`",
            )
        candidates = [*KINDS, *blocks, "identity"]
        raise CnnDslError(
            f"unknown layer kind or block '{name}'", item.loc, hint=did_you_mean(name, candidates)
        )

    # ---- merges
    def merge_call(self, item: S.LayerItem, word: str, current, scope: Scope, assign) -> int:
        """A merge with named tensors, ``concat(skip)``; ``word`` is the merge (add, concat ...)."""
        cls, _ = KINDS[word]
        if item.kspec:
            raise CnnDslError(f"{word} takes no kernel notation", item.kspec.loc)
        current = self.need_input(current, item.loc)
        inputs = [current]
        user_name = assign
        for arg in item.args:
            if isinstance(arg, S.KwArg):
                if arg.name == "name":
                    user_name = (identifier(arg.value, scope), arg.loc)
                    continue
                raise CnnDslError(f"{word} takes no option '{arg.name}'", arg.loc)
            value = evaluate(arg, scope)
            if isinstance(value, Symbol):
                raise CnnDslError(
                    f"unknown tensor '{value.name}'",
                    arg.loc,
                    hint=did_you_mean(value.name, scope.tensors)
                    or f"{word}(...) merges the current tensor with named tensors",
                )
            if not isinstance(value, TensorRef):
                raise CnnDslError(
                    f"{word}(...) merges the current tensor with named tensors;"
                    f" {show(value)} is not a tensor",
                    arg.loc,
                    hint=f"to merge branches, write `{word} {{ ... | ... }}`",
                )
            inputs.append(value.node)
        if len(inputs) < 2:
            raise CnnDslError(
                f"{word} needs something to merge",
                item.loc,
                hint=f"`{word} {{ branch | branch }}` or `{word}(tensor)`",
            )
        layer = validate(cls, {}, {}, item.span, self.validated)
        return self.add(layer, inputs, item.span, user_name[0] if user_name else None)

    def group(self, group: S.Group, current, scope: Scope, assign) -> int:
        merge = group.merge
        found, value = scope.lookup_var(merge) if merge not in MERGES else (False, None)
        if found and isinstance(value, Symbol):  # `block b(op=add) { op { ... | ... } }`
            merge = value.name
        if merge not in MERGES:
            hint = "branches are merged by add, concat or multiply"
            raise CnnDslError(
                f"'{merge}' cannot merge branches", group.loc,
                hint=did_you_mean(merge, MERGES) or hint,
            )
        current = self.need_input(current, group.loc)
        outputs = []
        for branch in group.branches:
            out = self.body(branch, current, scope.child({}))
            outputs.append(out)
        cls, _ = KINDS[merge]
        if len(outputs) < 2:
            raise CnnDslError(
                f"{merge} needs at least two branches, separated by '|'", group.loc,
                hint="for a residual connection add an `identity` branch",
            )
        layer = validate(cls, {}, {}, group.loc, self.validated)
        return self.add(layer, outputs, group.loc, assign[0] if assign else None)

    # ---- block calls
    def block_call(self, block: S.BlockDef, item: S.LayerItem, current, scope: Scope, assign) -> int | None:
        if item.kspec:
            raise CnnDslError(
                f"the kernel notation applies to layers, not to block '{block.name}'", item.kspec.loc
            )
        for active, _ in self.active:
            if active is block:
                chain = " -> ".join([b.name for b, _ in self.active] + [block.name])
                raise CnnDslError(f"block '{block.name}' calls itself ({chain})", item.loc)
        self.work.charge(CALL_STEPS, item.loc)
        if len(self.active) >= MAX_CALL_DEPTH:
            raise CnnDslError(f"block calls nest deeper than {MAX_CALL_DEPTH}", item.loc)
        args, shown_args = self.bind(block, item, scope)
        frame = Frame(
            block.name,
            args,
            item.span,
            assign[0] if assign else None,
            self.frame,
            written=f"{block.name}({', '.join(shown_args)})",
        )
        key = None
        if self.memoize and current is not None and current != POISONED:
            key = call_key(block, args)
        seen = self.expansions.get(key, UNSEEN) if key is not None else UNSEEN
        shaped = seen is SHAPED
        if shaped:  # its nodes depend on its input's shape: one memo per input shape
            key, seen = self.shaped_key(key, current)
        if seen is not UNSEEN:
            expansion = seen
            if isinstance(expansion, tuple):  # first repeat: make the template now
                expansion = self.expansions[key] = Expansion.record(self.nodes, *expansion)
            if expansion is not None:
                self.room_for(len(expansion.layers), frame.loc)
                return expansion.replay(self.nodes, frame, self.loop, current)
        start = len(self.nodes)
        reads = self.shapes.reads
        inner = Scope(self.modules[block.file], args, {}, work=self.work, shapes=self.shapes)
        saved = self.frame
        self.frame = frame
        self.active.append((block, item.loc))
        try:
            result = self.body(block.body, current, inner)
        except CnnDslError as e:  # say which call it happened in, as the analysis does
            raise CnnDslError([
                d if id(d) in self.shapes.placed else replace(d, notes=(*d.notes, (f"in {frame.written}, called", frame.loc)))
                for d in e.diagnostics
            ]) from None
        finally:
            self.active.pop()
            self.frame = saved
        if key is not None and seen is UNSEEN:
            if self.shapes.reads != reads and not shaped:  # it read a shape: see shaped_key
                self.expansions[key] = SHAPED
                key, _ = self.shaped_key(key, current)
            if key is not None:
                # remembered cheaply; the template is made if the call comes again
                self.expansions[key] = (start, len(self.nodes), current, result, frame, self.loop)
        return result

    def shaped_key(self, key: tuple, current: int) -> tuple[tuple | None, Any]:
        """The memo key of a block call whose nodes depend on its input's shape (it reads
        shapes: ``channels()``), and what the memo holds for it."""
        try:
            key = (key, self.shapes.of(current))
        except CnnDslError:  # the input cannot be computed: elaborate the call afresh
            return None, UNSEEN
        return key, self.expansions.get(key, UNSEEN)

    def bind(self, block: S.BlockDef, item: S.LayerItem, scope: Scope) -> tuple[dict[str, Any], list[str]]:
        """Bind a call's arguments to the block's parameters.

        Returns every parameter's value (defaults included) and the arguments as written,
        evaluated (``["64", "k=7"]``).
        """
        values: dict[str, Any] = {}
        positional = []
        keywords = []
        for arg in item.args:
            (keywords if type(arg) is S.KwArg else positional).append(arg)
        if len(positional) > len(block.params):
            raise CnnDslError(
                f"{block.name}() takes {len(block.params)} argument"
                f"{'s' if len(block.params) != 1 else ''}, got {len(positional)}",
                positional[len(block.params)].loc,
                notes=[("defined", block.loc)],
            )
        shown_args = []
        for param, arg in zip(block.params, positional):
            values[param.name] = evaluate(arg, scope)
            shown_args.append(written(values[param.name]))
        params = {p.name: p for p in block.params} if keywords else {}
        for kw in keywords:
            if kw.name not in params:
                raise CnnDslError(
                    f"{block.name}() has no parameter '{kw.name}'", kw.loc,
                    hint=did_you_mean(kw.name, params), notes=[("defined", block.loc)],
                )
            if kw.name in values:
                raise CnnDslError(f"argument '{kw.name}' given twice", kw.loc)
            values[kw.name] = evaluate(kw.value, scope)
            shown_args.append(f"{kw.name}={written(values[kw.name])}")
        bound: dict[str, Any] = {}
        for param in block.params:
            if param.name in values:
                bound[param.name] = values[param.name]
            elif param.default is not None:  # in a scope of the parameters bound so far
                bound[param.name] = evaluate(
                    param.default, Scope(self.modules[block.file], bound, {}, work=self.work, shapes=self.shapes)
                )
            else:
                raise CnnDslError(
                    f"{block.name}() is missing argument '{param.name}'", item.loc,
                    notes=[("defined", block.loc)],
                )
        return bound, shown_args

    # ---- nodes
    def room_for(self, count: int, loc: Location) -> None:
        """Refuse to make ``count`` more nodes beyond the limit of MAX_NODES."""
        if len(self.nodes.layers) + count > MAX_NODES:
            raise CnnDslError(f"the spec makes more than {MAX_NODES:,} layers", loc)

    def add(self, layer: Layer, inputs: tuple[int, ...] | list[int], loc: Location,
            user_name: str | None) -> int:
        self.room_for(1, loc)
        return self.nodes.add(layer, tuple(inputs), loc, self.frame, self.loop, user_name)

    def finish(self, module: S.Module, outputs: list[int], training: list[int]) -> Network:
        """Name every node and build the Network."""
        layers, names = place(self.nodes)
        name = module.network[0] if module.network else _stem(module.file)
        # Not validated again: every node was validated where it was made, names are unique
        # identifiers and inputs come first by construction (the tests and the fuzzer check
        # that every network they make passes Network's validation).
        net = Network.model_construct(
            name=name,
            layers=layers,
            outputs=[names[i] for i in outputs],
            training_outputs=[names[i] for i in training],
        )
        net._sources = dict(self.modules.sources)
        net._origins = Origins(self.nodes.layers, self.nodes.inputs)  # for net.analysis
        return net


def _tensor_named(name: str, scope: Scope) -> int | None:
    """The node of the tensor a name stands for: a named tensor, or a parameter holding one."""
    node = scope.tensors.get(name)
    if node is not None:
        return node
    found, value = scope.lookup_var(name)
    return value.node if found and isinstance(value, TensorRef) else None


def _is_input_attempt(stmt: S.Stmt) -> bool:
    """Whether a statement is an input declaration that did not parse as one
    (``input -1x8x3``): the statements after it are not reported for lack of an input."""
    first = stmt.items[0] if isinstance(stmt, S.Chain) and stmt.items else None
    return isinstance(first, S.LayerItem) and first.name == "input"


def _in_source_order(diagnostics: list[Diagnostic]) -> list[Diagnostic]:
    """Drop repeats (one faulty block called twice) and sort by file, line and column."""
    seen: set = set()
    unique = []
    files: dict[str, int] = {}
    for d in diagnostics:
        key = (d.message, d.location and (d.location.file, d.location.line, d.location.column))
        if key in seen:
            continue
        seen.add(key)
        unique.append(d)
        if d.location:
            files.setdefault(d.location.file, len(files))

    def order(d: Diagnostic):
        loc = d.location
        return (files[loc.file], loc.line, loc.column) if loc else (len(files), 0, 0)

    return sorted(unique, key=order)


def _stem(file: str) -> str:
    """The network's name from its file: ``my-net.cnn`` -> ``my_net``, ``import.cnn`` ->
    ``import_`` (names reach generated code: ASCII identifiers, never keywords)."""
    if file in ("<string>", "<stdin>", "<fuzz>"):
        return "network"
    stem = re.sub(r"[^0-9A-Za-z_]", "_", Path(file).stem) or "network"
    if stem[0].isdigit():
        stem = "_" + stem
    return stem + "_" if keyword.iskeyword(stem) else stem


def elaborate(
    module: S.Module, import_path: Iterable[str | os.PathLike] = (), input: InputSizes = None
) -> Network:
    """Turn a parsed module (and what it imports) into a :class:`Network`; imports are also
    looked up in the directories of ``import_path``; ``input`` replaces the input sizes."""
    return Elaborator(import_path=import_path, input=input).elaborate(module)


def _size(dims: Sequence) -> str:
    return "x".join(str(d) for d in dims)
