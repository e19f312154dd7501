"""The elaborator: syntax tree -> IR.

Walks the statements of a module in order, keeping the *current* tensor; evaluates block calls
(binding arguments and defaults), ``repeat``/``for``/``if``, layer defaults and imports;
resolves named tensors; and emits IR nodes in topological order with their source positions
and block provenance.  Every failure is a located :class:`~cnndsl.errors.CnnDslError`; each
top-level statement is elaborated on its own, so that independent mistakes are all reported.
"""

from __future__ import annotations

import keyword
import os
import re
from pathlib import Path
from typing import Any

from .. import syntax as S
from ..errors import CnnDslError, Diagnostic, Location, did_you_mean
from ..ir import Input, Layer, Network, Origins
from ..parser import parse
from .limits import MAX_CALL_DEPTH, MAX_ERRORS, MAX_NODES, MAX_REPEAT
from .naming import Expansion, Frame, Nodes, place
from .options import KINDS, MERGES, RESERVED, identifier, layer_fields, validate
from .sources import read_source
from .values import (
    POISONED,
    Poisoned,
    Scope,
    Symbol,
    TensorRef,
    evaluate,
    evaluate_int,
    has_tensor,
    show,
    truth,
    written,
)


class Elaborator:
    def __init__(self, *, memoize: bool = True) -> None:
        self.memoize = memoize  # copy repeated block calls (see replay); off only for tests
        self.nodes = Nodes()
        self.sources: dict[str, str] = {}
        self.modules: dict[str, S.Module] = {}  # by file: where each block was defined
        self.namespaces: dict[str, dict[str, S.BlockDef]] = {}
        self.defaults: dict[str, dict[type[Layer], dict[str, tuple[Any, Location]]]] = {}
        self.active: list[tuple[S.BlockDef, Location]] = []
        self.frame: Frame | None = None
        self.expansions: dict[tuple, Expansion | tuple | None] = {}

    # ---- modules and imports
    def load_module(self, module: S.Module, importing: tuple[str, ...] = ()) -> None:
        """Register a parsed module's blocks and imports (recursively)."""
        self.sources[module.file] = module.source
        self.modules[module.file] = module
        namespace: dict[str, S.BlockDef] = {}
        for imp in module.imports:
            base = Path(module.file).parent if module.file not in ("<string>", "<stdin>") else Path.cwd()
            path = Path(os.path.normpath(base / imp.path))
            key = str(path)
            if key in importing or key == module.file:
                chain = " -> ".join([*importing, module.file, key])
                raise CnnDslError(f"import cycle: {chain}", imp.loc)
            if key not in self.namespaces:
                sub = parse(read_source(path, imp.loc), key)
                self.load_module(sub, (*importing, module.file))
            exported = self.namespaces[key]
            if imp.names is None:
                namespace.update(exported)
            else:
                for name, loc in imp.names:
                    if name not in exported:
                        raise CnnDslError(
                            f"{imp.path} has no block '{name}'",
                            loc,
                            hint=did_you_mean(name, exported),
                        )
                    namespace[name] = exported[name]
        for name, block in module.blocks.items():
            if name in RESERVED:
                raise CnnDslError(
                    f"a block cannot be named '{name}': it is a layer kind", block.loc
                )
            namespace[name] = block
        self.namespaces[module.file] = namespace

    def module_defaults(self, module: S.Module) -> dict[type[Layer], dict[str, tuple[Any, Location]]]:
        found = self.defaults.get(module.file)
        if found is not None:
            return found
        table: dict[type[Layer], dict[str, tuple[Any, Location]]] = {}
        scope = Scope(module, {}, {})
        for decl in module.defaults:
            if decl.kind not in KINDS:
                raise CnnDslError(
                    f"unknown layer kind '{decl.kind}' in defaults",
                    decl.kind_loc,
                    hint=did_you_mean(decl.kind, KINDS),
                )
            cls, preset = KINDS[decl.kind]
            if cls.family in ("merge", "input"):
                raise CnnDslError(f"{decl.kind} takes no defaults", decl.kind_loc)
            fields, _ = layer_fields(cls, None, decl.args, scope)
            entry = table.setdefault(cls, {})
            for key, value in fields.items():
                if key in entry and entry[key][0] != value[0]:
                    raise CnnDslError(
                        f"defaults for {decl.kind} set {key} twice", value[1],
                        notes=[("first set", entry[key][1])],
                    )
                entry[key] = value
        self.defaults[module.file] = table
        return table

    # ---- top level
    def elaborate(self, module: S.Module) -> Network:
        self.load_module(module)
        scope = Scope(module, {}, {})
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
                if len(errors) >= MAX_ERRORS:
                    break
        if errors:
            raise CnnDslError(_in_source_order(errors))
        if current is None or current == POISONED:
            loc = module.inputs[0].loc if module.inputs else Location(module.file, 1, 1, None, module.source.splitlines()[0] if module.source else "")
            raise CnnDslError(
                "the spec has no layers" if module.inputs else "the spec declares no input",
                loc,
                hint=None if module.inputs else "start with an input shape, e.g. `input 224x224x3`",
            )
        outputs = self.outputs(module, scope, current)
        self.check_all_used(outputs)
        return self.finish(module, outputs)

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
        layer = validate(Input, {"shape": (decl.dims, decl.loc)}, {}, decl.loc)
        node = self.add(layer, [], decl.loc, name)
        scope.tensors[name] = node
        return node

    def outputs(self, module: S.Module, scope: Scope, current: int) -> list[int]:
        if module.outputs is None:
            return [current]
        result: list[int] = []
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
        return result

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
            if target in self.namespaces[scope.module.file]:
                raise CnnDslError(f"'{target}' is a block and cannot name a tensor", stmt.loc)
            if scope.lookup_var(target)[0]:
                raise CnnDslError(f"'{target}' is a parameter and cannot name a tensor", stmt.loc)
            result = self.chain(stmt.chain, current, scope, (target, stmt.loc))
            scope.tensors[target] = result
            return result
        return self.chain(stmt, current, scope, None)

    def chain(self, chain: S.Chain, current, scope: Scope, assign) -> int | None:
        items = chain.items
        first = items[0]
        if type(first) is S.LayerItem and first.is_bare_name and first.name in scope.tensors:
            current = scope.tensors[first.name]
            if current == POISONED:
                raise Poisoned
            items = items[1:]
        for i, item in enumerate(items):
            current = self.item(item, current, scope, assign if i == len(items) - 1 else None)
        return current

    def item(self, item: S.Item, current, scope: Scope, assign) -> int | None:
        kind = type(item)
        if kind is S.LayerItem:
            return self.layer_item(item, current, scope, assign)
        if kind is S.Group:
            return self.group(item, current, scope, assign)
        if isinstance(item, S.Repeat):
            count = evaluate_int(item.count, scope, "a repeat count", minimum=0)
            if count > MAX_REPEAT:
                raise CnnDslError(f"repeat {count} is above the limit of {MAX_REPEAT:,}", item.count.loc)
            for _ in range(count):
                current = self.body(item.body, current, scope.child({}))
            return current
        if isinstance(item, S.ForLoop):
            values = evaluate(item.iterable, scope)
            if not isinstance(values, (list, tuple)):
                raise CnnDslError(
                    f"for loops run over a list such as [64, 128, 256], got {show(values)}",
                    item.iterable.loc,
                )
            for value in values:
                current = self.body(item.body, current, scope.child({item.var: value}))
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
        if item.is_bare_name and name in scope.tensors:
            raise CnnDslError(
                f"tensor '{name}' can only begin a chain",
                item.loc,
                hint=f"write `{name} -> ...` to continue from it",
            )
        blocks = self.namespaces[scope.module.file]
        if name in blocks:
            return self.call(blocks[name], item, current, scope, assign)
        if name == "identity":
            if item.args or item.kspec:
                raise CnnDslError("identity takes no arguments", item.loc)
            return self.need_input(current, item.loc)
        if name in MERGES:
            return self.merge_call(item, current, scope, assign)
        if name in KINDS:
            cls, preset = KINDS[name]
            current = self.need_input(current, item.span)
            defaults = self.module_defaults(scope.module).get(cls, {})
            fields, user_name = layer_fields(cls, item.kspec, item.args, scope)
            merged = {**defaults, **fields}
            layer = validate(cls, merged, preset, item.span)
            loc = item.span
            if user_name is not None:
                return self.add(layer, (current,), loc, user_name[0])
            return self.add(layer, (current,), loc, assign[0] if assign is not None else None)
        candidates = [*KINDS, *blocks, "identity"]
        raise CnnDslError(
            f"unknown layer kind or block '{name}'", item.loc, hint=did_you_mean(name, candidates)
        )

    # ---- merges
    def merge_call(self, item: S.LayerItem, current, scope: Scope, assign) -> int:
        cls, _ = KINDS[item.name]
        if item.kspec:
            raise CnnDslError(f"{item.name} takes no kernel notation", item.kspec.loc)
        current = self.need_input(current, item.loc)
        inputs = [current]
        user_name = assign
        for arg in item.args:
            if isinstance(arg, S.KwArg):
                if arg.name == "name":
                    user_name = (identifier(arg.value, scope), arg.loc)
                    continue
                raise CnnDslError(f"{item.name} takes no option '{arg.name}'", arg.loc)
            value = evaluate(arg, scope)
            if isinstance(value, Symbol):
                raise CnnDslError(
                    f"unknown tensor '{value.name}'",
                    arg.loc,
                    hint=did_you_mean(value.name, scope.tensors)
                    or f"{item.name}(...) merges the current tensor with named tensors",
                )
            if not isinstance(value, TensorRef):
                raise CnnDslError(
                    f"{item.name}(...) merges the current tensor with named tensors;"
                    f" {show(value)} is not a tensor",
                    arg.loc,
                    hint=f"to merge branches, write `{item.name} {{ ... | ... }}`",
                )
            inputs.append(value.node)
        if len(inputs) < 2:
            raise CnnDslError(
                f"{item.name} needs something to merge",
                item.loc,
                hint=f"`{item.name} {{ branch | branch }}` or `{item.name}(tensor)`",
            )
        layer = validate(cls, {}, {}, item.span)
        return self.add(layer, inputs, item.span, user_name[0] if user_name else None)

    def group(self, group: S.Group, current, scope: Scope, assign) -> int:
        if group.merge not in MERGES:
            hint = "branches are merged by add, concat or multiply"
            raise CnnDslError(
                f"'{group.merge}' cannot merge branches", group.loc,
                hint=did_you_mean(group.merge, MERGES) or hint,
            )
        current = self.need_input(current, group.loc)
        outputs = []
        for branch in group.branches:
            out = self.body(branch, current, scope.child({}))
            outputs.append(out)
        cls, _ = KINDS[group.merge]
        if len(outputs) < 2:
            raise CnnDslError(
                f"{group.merge} needs at least two branches, separated by '|'", group.loc,
                hint="for a residual connection add an `identity` branch",
            )
        layer = validate(cls, {}, {}, group.loc)
        return self.add(layer, outputs, group.loc, assign[0] if assign else None)

    # ---- block calls
    def call(self, block: S.BlockDef, item: S.LayerItem, current, scope: Scope, assign) -> int | None:
        if item.kspec:
            raise CnnDslError(
                f"the kernel notation applies to layers, not to block '{block.name}'", item.kspec.loc
            )
        for active, _ in self.active:
            if active is block:
                chain = " -> ".join([b.name for b, _ in self.active] + [block.name])
                raise CnnDslError(f"block '{block.name}' calls itself ({chain})", item.loc)
        if len(self.active) >= MAX_CALL_DEPTH:
            raise CnnDslError(f"block calls nest deeper than {MAX_CALL_DEPTH}", item.loc)
        args, shown_args = self.bind(block, item, scope)
        frame = Frame(
            block.name,
            args,
            item.span,
            assign[0] if assign else None,
            self.frame,
            call=f"{block.name}({', '.join(shown_args)})",
        )
        key = None
        if self.memoize and current is not None and current != POISONED:
            key = _memo_key(block, args)
        seen = self.expansions.get(key, _UNSEEN) if key is not None else _UNSEEN
        if seen is not _UNSEEN:
            expansion = seen
            if isinstance(expansion, tuple):  # first repeat: make the template now
                expansion = self.expansions[key] = Expansion.record(self.nodes, *expansion)
            if expansion is not None:
                self.room_for(len(expansion.layers), frame.loc)
                return expansion.replay(self.nodes, frame, current)
        start = len(self.nodes)
        inner = Scope(self.modules[block.file], args, {})
        saved = self.frame
        self.frame = frame
        self.active.append((block, item.loc))
        try:
            result = self.body(block.body, current, inner)
        finally:
            self.active.pop()
            self.frame = saved
        if key is not None and seen is _UNSEEN:
            # remembered cheaply; the template is made if the call comes again
            self.expansions[key] = (start, len(self.nodes), current, result, frame)
        return result

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
                bound[param.name] = evaluate(param.default, Scope(self.modules[block.file], bound, {}))
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
        return self.nodes.add(layer, tuple(inputs), loc, self.frame, user_name)

    def finish(self, module: S.Module, outputs: list[int]) -> Network:
        """Name every node and build the Network."""
        layers, names = place(self.nodes)
        name = module.network[0] if module.network else _stem(module.file)
        # Not validated again: every node was validated where it was made, names are unique
        # identifiers and inputs come first by construction (the tests and the fuzzer check
        # that every network they make passes Network's validation).
        net = Network.model_construct(name=name, layers=layers, outputs=[names[i] for i in outputs])
        net._sources = dict(self.sources)
        net._origins = Origins(self.nodes.layers, self.nodes.inputs)  # for net.analysis
        return net


_UNSEEN = object()


def _memo_key(block: S.BlockDef, args: dict[str, Any]) -> tuple | None:
    """What a block call's expansion depends on: the block and its arguments (None when an
    argument is a tensor, or not hashable)."""
    parts = []
    for k, v in args.items():
        kind = type(v)
        if kind is int or kind is float or kind is bool or kind is str:  # most arguments
            parts.append((k, kind, v))
        elif has_tensor(v):
            return None
        else:
            parts.append((k, kind, _frozen(v)))
    key = (id(block), tuple(parts))
    try:
        hash(key)
    except TypeError:
        return None
    return key


def _frozen(value: Any) -> Any:
    """A list or tuple as a hashable tuple that still tells them apart."""
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(_frozen(v) for v in value))
    return value


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


def elaborate(module: S.Module) -> Network:
    """Turn a parsed module (and what it imports) into a :class:`Network`."""
    return Elaborator().elaborate(module)
