"""Elaboration: syntax tree -> IR.

Evaluates block calls (with their arguments and defaults), arithmetic, ``repeat``/``for``/``if``,
layer defaults and imports, resolves tensor names, and emits IR nodes in topological order with
their source positions and block provenance.  Every failure is a located
:class:`~cnndsl.errors.CnnDslError`.

Limits (each gives a located error): a spec produces at most ``MAX_NODES`` nodes, block calls
nest at most ``MAX_CALL_DEPTH`` deep, ``repeat`` counts at most ``MAX_REPEAT``, a source file
holds at most ``MAX_SOURCE_BYTES``.
"""

from __future__ import annotations

import keyword
import os
from functools import lru_cache
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from . import syntax as S
from .errors import CnnDslError, Diagnostic, Location, did_you_mean
from .ir import LAYER_CLASSES, Activation, CallSite, Input, Layer, Network, Position
from .ir.base import fmt_float
from .parser import parse

MAX_NODES = 200_000
MAX_CALL_DEPTH = 64
MAX_REPEAT = 100_000
MAX_SOURCE_BYTES = 10_000_000
MAX_ERRORS = 20

POISONED = -1
"""The node id of a tensor whose statement failed: uses of it are skipped, not reported."""


class _Poisoned(Exception):
    """Raised when a statement uses a tensor whose own statement already failed."""

# ------------------------------------------------------------------------ layer kinds by word

KINDS: dict[str, tuple[type[Layer], dict[str, Any]]] = {}
"""Every word that selects a layer kind -> (class, preset fields)."""
for _cls in LAYER_CLASSES:
    for _word in _cls.spec_names:
        KINDS[_word] = (_cls, Activation.preset(_word) if _cls is Activation else {})
MERGES = {w for w, (c, _) in KINDS.items() if c.family == "merge"}
RESERVED = set(KINDS) | {"identity", "input"}

_BOOL_WORDS = {"on": True, "off": False, "true": True, "false": False, "yes": True, "no": False}


# ------------------------------------------------------------------------------ values


@dataclass(frozen=True, slots=True)
class Symbol:
    """A bare word that is neither a variable nor a tensor: ``relu``, ``same``, ``off``."""

    name: str

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class TensorRef:
    """A named tensor, by the id of the node that produced it."""

    node: int
    name: str


@dataclass(slots=True)
class _Frame:
    """One block call: becomes a :class:`CallSite` on every node it produces."""

    block: str
    args: dict[str, Any]
    loc: Location
    user_name: str | None
    parent: _Frame | None
    call: str = ""
    instance: str | None = None  # assigned when naming


@dataclass(slots=True)
class _Node:
    layer: Layer  # validated, with a placeholder name
    inputs: list[int]
    loc: Location
    frame: _Frame | None
    user_name: str | None
    name_loc: Location | None = None


@dataclass(slots=True)
class _Env:
    """A lexical scope: variables (block parameters, loop variables) and named tensors."""

    module: S.Module
    vars: dict[str, Any]
    tensors: dict[str, int]
    parent: _Env | None = None

    def lookup_var(self, name: str) -> tuple[bool, Any]:
        env: _Env | None = self
        while env is not None:
            if name in env.vars:
                return True, env.vars[name]
            env = env.parent
        return False, None

    def child(self, vars: dict[str, Any]) -> _Env:
        return _Env(self.module, vars, self.tensors, self)

    def all_vars(self) -> set[str]:
        names: set[str] = set()
        env: _Env | None = self
        while env is not None:
            names.update(env.vars)
            env = env.parent
        return names


def read_source(path: Path, at: Location | None = None) -> str:
    """Read a spec file as UTF-8 text, with clear errors for missing, binary or huge files."""
    shown = str(path)
    try:
        if path.is_dir():
            raise CnnDslError(f"{shown} is a directory, not a .cnn file", at)
        if path.exists() and not path.is_file():  # a device, a pipe: never read those
            raise CnnDslError(f"{shown} is not a regular file", at)
        with path.open("rb") as f:
            data = f.read(MAX_SOURCE_BYTES + 1)
    except FileNotFoundError:
        raise CnnDslError(f"no such file: {shown}", at) from None
    except OSError as e:
        raise CnnDslError(f"cannot read {shown}: {e.strerror}", at) from None
    if len(data) > MAX_SOURCE_BYTES:
        raise CnnDslError(f"{shown} is larger than {MAX_SOURCE_BYTES:,} bytes", at or Location(shown, 1, 1))
    if b"\x00" in data:
        line = data[: data.index(b"\x00")].count(b"\n") + 1
        raise CnnDslError(f"{shown} is a binary file, not a .cnn spec", at or Location(shown, line, 1))
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        col = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise CnnDslError(
            f"{shown} is not UTF-8 text (byte 0x{data[e.start]:02x})",
            Location(shown, line, col),
            hint="save the file as UTF-8",
        ) from None
    return text


# ---------------------------------------------------------------------------- elaborator


class Elaborator:
    def __init__(self) -> None:
        self.nodes: list[_Node] = []
        self.sources: dict[str, str] = {}
        self.namespaces: dict[str, dict[str, S.BlockDef]] = {}
        self.defaults: dict[str, dict[type[Layer], dict[str, tuple[Any, Location]]]] = {}
        self.active: list[tuple[S.BlockDef, Location]] = []
        self.frame: _Frame | None = None

    # ---- modules and imports
    def load_module(self, module: S.Module, importing: tuple[str, ...] = ()) -> None:
        """Register a parsed module's blocks and imports (recursively)."""
        self.sources[module.file] = module.source
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
        env = _Env(module, {}, {})
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
            fields, _ = self.layer_fields(cls, None, decl.args, env, decl.kind_loc)
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
        env = _Env(module, {}, {})
        current: int | None = None
        errors: list[Diagnostic] = []
        for stmt in module.program:
            # Each top-level statement is elaborated on its own: after an error the next
            # statement continues from the last good tensor, so independent mistakes are all
            # reported, and a tensor whose statement failed is quietly skipped where used.
            try:
                if isinstance(stmt, S.InputDecl):
                    current = self.input(stmt, env)
                else:
                    current = self.stmt(stmt, current, env)
            except _Poisoned:
                continue
            except CnnDslError as e:
                errors.extend(e.diagnostics)
                if isinstance(stmt, S.Assign):
                    env.tensors[stmt.target] = POISONED
                elif isinstance(stmt, S.InputDecl):
                    current = POISONED
                    if stmt.name:
                        env.tensors[stmt.name] = POISONED
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
        outputs = self.outputs(module, env, current)
        self.check_all_used(outputs)
        return self.finish(module, outputs)

    def check_all_used(self, outputs: list[int]) -> None:
        """Every node must lead to an output: report the ends of dead paths."""
        used = [False] * len(self.nodes)
        for i in outputs:
            used[i] = True
        for i in range(len(self.nodes) - 1, -1, -1):
            if used[i]:
                for j in self.nodes[i].inputs:
                    used[j] = True
        consumed = {j for node in self.nodes for j in node.inputs}
        errors = []
        for i, node in enumerate(self.nodes):
            if used[i] or i in consumed:
                continue
            what = (
                f"input '{node.user_name}'" if node.layer.kind == "input"
                else f"'{node.user_name}'" if node.user_name
                else f"this {node.layer.type_name} layer"
            )
            notes = []
            frame = node.frame
            while frame is not None:
                notes.append((f"in a call of {frame.block}", frame.loc))
                frame = frame.parent
            errors.append(
                Diagnostic(
                    f"{what} is computed but never used: it leads to no output",
                    node.loc,
                    "use it (`x -> ...`, `concat(x)`), list it in `output`, or remove it",
                    tuple(notes),
                )
            )
        if errors:
            raise CnnDslError(errors[:MAX_ERRORS])

    def input(self, decl: S.InputDecl, env: _Env) -> int:
        name = decl.name or "input"
        if name in env.tensors:
            raise CnnDslError(
                f"there is already a tensor named '{name}'" if decl.name else
                "a second input needs a name: `input NAME HxWxC`",
                decl.loc,
            )
        layer = self.validate(Input, {"shape": (decl.dims, decl.loc)}, {}, decl.loc)
        node = self.add(layer, [], decl.loc, name, decl.loc)
        env.tensors[name] = node
        return node

    def outputs(self, module: S.Module, env: _Env, current: int) -> list[int]:
        if module.outputs is None:
            return [current]
        result: list[int] = []
        for name, loc in module.outputs:
            if name not in env.tensors:
                raise CnnDslError(
                    f"unknown tensor '{name}' in output", loc,
                    hint=did_you_mean(name, env.tensors),
                )
            node = env.tensors[name]
            if node == POISONED:
                continue
            if node in result:
                raise CnnDslError(f"'{name}' is listed twice as an output", loc)
            result.append(node)
        return result

    # ---- statements
    def body(self, body: S.Body, current: int | None, env: _Env) -> int | None:
        for stmt in body.stmts:
            current = self.stmt(stmt, current, env)
        return current

    def stmt(self, stmt: S.Stmt, current: int | None, env: _Env) -> int | None:
        if isinstance(stmt, S.Assign):
            target = stmt.target
            if target in RESERVED:
                raise CnnDslError(
                    f"'{target}' is a layer kind and cannot name a tensor", stmt.loc
                )
            if target in self.namespaces[env.module.file]:
                raise CnnDslError(f"'{target}' is a block and cannot name a tensor", stmt.loc)
            if env.lookup_var(target)[0]:
                raise CnnDslError(f"'{target}' is a parameter and cannot name a tensor", stmt.loc)
            result = self.chain(stmt.chain, current, env, (target, stmt.loc))
            env.tensors[target] = result
            return result
        return self.chain(stmt, current, env, None)

    def chain(self, chain: S.Chain, current, env: _Env, assign) -> int | None:
        items = chain.items
        first = items[0]
        if isinstance(first, S.LayerItem) and first.is_bare_name and first.name in env.tensors:
            current = env.tensors[first.name]
            if current == POISONED:
                raise _Poisoned
            items = items[1:]
        for i, item in enumerate(items):
            current = self.item(item, current, env, assign if i == len(items) - 1 else None)
        return current

    def item(self, item: S.Item, current, env: _Env, assign) -> int | None:
        if isinstance(item, S.LayerItem):
            return self.layer_item(item, current, env, assign)
        if isinstance(item, S.Group):
            return self.group(item, current, env, assign)
        if isinstance(item, S.Repeat):
            count = self.eval_int(item.count, env, "a repeat count", minimum=0)
            if count > MAX_REPEAT:
                raise CnnDslError(f"repeat {count} is above the limit of {MAX_REPEAT:,}", item.count.loc)
            for _ in range(count):
                current = self.body(item.body, current, env.child({}))
            return current
        if isinstance(item, S.ForLoop):
            values = self.eval(item.iterable, env)
            if not isinstance(values, (list, tuple)):
                raise CnnDslError(
                    f"for loops run over a list such as [64, 128, 256], got {_show(values)}",
                    item.iterable.loc,
                )
            for value in values:
                current = self.body(item.body, current, env.child({item.var: value}))
            return current
        if isinstance(item, S.IfElse):
            if _truth(self.eval(item.cond, env), item.cond.loc):
                return self.body(item.then, current, env.child({}))
            if item.orelse is not None:
                return self.body(item.orelse, current, env.child({}))
            return current
        raise AssertionError(item)

    def need_input(self, current, loc: Location) -> int:
        if current == POISONED:
            raise _Poisoned
        if current is None:
            raise CnnDslError(
                "this layer has no input: declare one first, e.g. `input 224x224x3`", loc
            )
        return current

    def layer_item(self, item: S.LayerItem, current, env: _Env, assign) -> int | None:
        name = item.name
        if item.is_bare_name and name in env.tensors:
            raise CnnDslError(
                f"tensor '{name}' can only begin a chain",
                item.loc,
                hint=f"write `{name} -> ...` to continue from it",
            )
        blocks = self.namespaces[env.module.file]
        if name in blocks:
            return self.call(blocks[name], item, current, env, assign)
        if name == "identity":
            if item.args or item.kspec:
                raise CnnDslError("identity takes no arguments", item.loc)
            return self.need_input(current, item.loc)
        if name in MERGES:
            return self.merge_call(item, current, env, assign)
        if name in KINDS:
            cls, preset = KINDS[name]
            current = self.need_input(current, item.span)
            defaults = self.module_defaults(env.module).get(cls, {})
            fields, user_name = self.layer_fields(cls, item.kspec, item.args, env, item.loc)
            merged = {**defaults, **fields}
            layer = self.validate(cls, merged, preset, item.span)
            loc = item.span
            if user_name is not None:
                return self.add(layer, [current], loc, user_name[0], user_name[1])
            if assign is not None:
                return self.add(layer, [current], loc, assign[0], assign[1])
            return self.add(layer, [current], loc, None, None)
        candidates = [*KINDS, *blocks, "identity"]
        raise CnnDslError(
            f"unknown layer kind or block '{name}'", item.loc, hint=did_you_mean(name, candidates)
        )

    # ---- merges
    def merge_call(self, item: S.LayerItem, current, env: _Env, assign) -> int:
        cls, _ = KINDS[item.name]
        if item.kspec:
            raise CnnDslError(f"{item.name} takes no kernel notation", item.kspec.loc)
        current = self.need_input(current, item.loc)
        inputs = [current]
        user_name = assign
        for arg in item.args:
            if isinstance(arg, S.KwArg):
                if arg.name == "name":
                    user_name = (self.identifier(arg.value, env), arg.loc)
                    continue
                raise CnnDslError(f"{item.name} takes no option '{arg.name}'", arg.loc)
            value = self.eval(arg, env)
            if isinstance(value, Symbol):
                raise CnnDslError(
                    f"unknown tensor '{value.name}'",
                    arg.loc,
                    hint=did_you_mean(value.name, env.tensors)
                    or f"{item.name}(...) merges the current tensor with named tensors",
                )
            if not isinstance(value, TensorRef):
                raise CnnDslError(
                    f"{item.name}(...) merges the current tensor with named tensors;"
                    f" {_show(value)} is not a tensor",
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
        layer = self.validate(cls, {}, {}, item.span)
        return self.add(layer, inputs, item.span, *(user_name or (None, None)))

    def group(self, group: S.Group, current, env: _Env, assign) -> int:
        if group.merge not in MERGES:
            hint = "branches are merged by add, concat or multiply"
            raise CnnDslError(
                f"'{group.merge}' cannot merge branches", group.loc,
                hint=did_you_mean(group.merge, MERGES) or hint,
            )
        current = self.need_input(current, group.loc)
        outputs = []
        for branch in group.branches:
            out = self.body(branch, current, env.child({}))
            outputs.append(out)
        cls, _ = KINDS[group.merge]
        if len(outputs) < 2:
            raise CnnDslError(
                f"{group.merge} needs at least two branches, separated by '|'", group.loc,
                hint="for a residual connection add an `identity` branch",
            )
        layer = self.validate(cls, {}, {}, group.loc)
        return self.add(layer, outputs, group.loc, *(assign or (None, None)))

    # ---- block calls
    def call(self, block: S.BlockDef, item: S.LayerItem, current, env: _Env, assign) -> int | None:
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
        args, written = self.bind(block, item, env)
        frame = _Frame(
            block.name,
            args,
            item.span,
            assign[0] if assign else None,
            self.frame,
            call=f"{block.name}({', '.join(written)})",
        )
        inner = _Env(block.module, args, {})
        saved = self.frame
        self.frame = frame
        self.active.append((block, item.loc))
        try:
            return self.body(block.body, current, inner)
        finally:
            self.active.pop()
            self.frame = saved

    def bind(self, block: S.BlockDef, item: S.LayerItem, env: _Env) -> tuple[dict[str, Any], list[str]]:
        """Bind a call's arguments to the block's parameters.

        Returns every parameter's value (defaults included) and the arguments as written,
        evaluated (``["64", "k=7"]``).
        """
        params = {p.name: p for p in block.params}
        values: dict[str, Any] = {}
        positional = [a for a in item.args if not isinstance(a, S.KwArg)]
        keywords = [a for a in item.args if isinstance(a, S.KwArg)]
        if len(positional) > len(block.params):
            raise CnnDslError(
                f"{block.name}() takes {len(block.params)} argument"
                f"{'s' if len(block.params) != 1 else ''}, got {len(positional)}",
                positional[len(block.params)].loc,
                notes=[("defined", block.loc)],
            )
        written = []
        for param, arg in zip(block.params, positional):
            values[param.name] = self.eval(arg, env)
            written.append(_written(values[param.name]))
        for kw in keywords:
            if kw.name not in params:
                raise CnnDslError(
                    f"{block.name}() has no parameter '{kw.name}'", kw.loc,
                    hint=did_you_mean(kw.name, params), notes=[("defined", block.loc)],
                )
            if kw.name in values:
                raise CnnDslError(f"argument '{kw.name}' given twice", kw.loc)
            values[kw.name] = self.eval(kw.value, env)
            written.append(f"{kw.name}={_written(values[kw.name])}")
        bound: dict[str, Any] = {}
        def_env = _Env(block.module, bound, {})
        for param in block.params:
            if param.name in values:
                bound[param.name] = values[param.name]
            elif param.default is not None:
                bound[param.name] = self.eval(param.default, def_env)
            else:
                raise CnnDslError(
                    f"{block.name}() is missing argument '{param.name}'", item.loc,
                    notes=[("defined", block.loc)],
                )
        return bound, written

    # ---- layer options
    def layer_fields(
        self, cls: type[Layer], kspec: S.KernelSpec | None, args: list[S.Arg], env: _Env, where: Location
    ) -> tuple[dict[str, tuple[Any, Location]], tuple[str, Location] | None]:
        """Turn the kernel notation and arguments of a layer into {field: (value, location)}."""
        fields: dict[str, tuple[Any, Location]] = {}
        user_name = None
        kind = _kind_word(cls, {})

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
        known = set(cls.model_fields) - {"kind", "name", "inputs", "position", "calls"}
        for arg in args:
            if isinstance(arg, S.KwArg):
                if arg.name == "name":
                    user_name = (self.identifier(arg.value, env), arg.value.loc)
                    continue
                key = cls.aliases.get(arg.name, arg.name)
                if key not in known or (cls is Activation and key == "function"):
                    raise CnnDslError(
                        f"{kind} has no option '{arg.name}'", arg.loc,
                        hint=did_you_mean(arg.name, [*known, *cls.aliases, "name"]),
                    )
                put(key, self.eval(arg.value, env), arg.value.loc)
                continue
            value = self.eval(arg, env)
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
                what = f"'{value.name}'" if isinstance(value, Symbol) else _show(value)
                words = list(cls.flags)
                if cls.takes_activation:
                    words += [w for w, (c, _) in KINDS.items() if c is Activation]
                hint = did_you_mean(value.name, words + sorted(env.all_vars())) if isinstance(value, Symbol) else None
                raise CnnDslError(
                    f"{kind} does not take {what} here"
                    + (f" (its values: {', '.join(cls.positional)})" if cls.positional else ""),
                    arg.loc,
                    hint=hint,
                )
            put(positional.pop(0), value, arg.loc)
        return fields, user_name

    def validate(self, cls: type[Layer], fields: dict[str, tuple[Any, Location]], preset: dict, where: Location) -> Layer:
        data: dict[str, Any] = {"name": "_", **preset}
        for key, (value, loc) in fields.items():
            data[key] = _plain(value, key, cls, loc)
        try:
            return cls(**data)
        except ValidationError as e:
            err = e.errors()[0]
            key = err["loc"][0] if err["loc"] else None
            loc = fields[key][1] if key in fields else where
            raise CnnDslError(_explain(_kind_word(cls, preset), key, err, data.get(key)), loc) from None

    def identifier(self, expr: S.Expr, env: _Env) -> str:
        value = self.eval(expr, env)
        text = value.name if isinstance(value, (Symbol, TensorRef)) else value
        if not isinstance(text, str) or not text.isidentifier() or not text.isascii():
            raise CnnDslError(
                f"a layer name must be a plain identifier (letters, digits, _), got {_show(value)}",
                expr.loc,
            )
        if keyword.iskeyword(text):
            raise CnnDslError(f"'{text}' is a Python keyword and cannot name a layer", expr.loc)
        return text

    # ---- expressions
    def eval(self, expr: S.Expr, env: _Env) -> Any:
        if isinstance(expr, S.Num):
            return expr.value
        if isinstance(expr, S.Name):
            found, value = env.lookup_var(expr.id)
            if found:
                return value
            if expr.id in env.tensors:
                if env.tensors[expr.id] == POISONED:
                    raise _Poisoned
                return TensorRef(env.tensors[expr.id], expr.id)
            if expr.id in ("true", "false"):
                return expr.id == "true"
            return Symbol(expr.id)
        if isinstance(expr, S.Str):
            return expr.value
        if isinstance(expr, S.TupleExpr):
            return tuple(self.eval(i, env) for i in expr.items)
        if isinstance(expr, S.ListExpr):
            return [self.eval(i, env) for i in expr.items]
        if isinstance(expr, S.UnaryOp):
            value = self.eval(expr.operand, env)
            if expr.op == "not":
                return not _truth(value, expr.operand.loc)
            return -_number(value, expr.operand.loc, env)
        if isinstance(expr, S.BinOp):
            return self.binop(expr, env)
        raise AssertionError(expr)

    def binop(self, expr: S.BinOp, env: _Env) -> Any:
        op = expr.op
        if op == "and":
            return _truth(self.eval(expr.left, env), expr.left.loc) and _truth(self.eval(expr.right, env), expr.right.loc)
        if op == "or":
            return _truth(self.eval(expr.left, env), expr.left.loc) or _truth(self.eval(expr.right, env), expr.right.loc)
        left = self.eval(expr.left, env)
        right = self.eval(expr.right, env)
        if op in ("==", "!="):
            equal = left == right
            return equal if op == "==" else not equal
        if isinstance(left, list) and op == "+" and isinstance(right, list):
            return left + right
        if isinstance(left, list) and op == "*" and isinstance(right, int) and not isinstance(right, bool):
            if len(left) * right > MAX_REPEAT:
                raise CnnDslError("list too long", expr.loc)
            return left * right
        a = _number(left, expr.left.loc, env)
        b = _number(right, expr.right.loc, env)
        if op in ("<", "<=", ">", ">="):
            return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]
        if op in ("/", "//", "%") and b == 0:
            raise CnnDslError("division by zero", expr.right.loc)
        if op == "+":
            return a + b
        if op == "-":
            return a - b
        if op == "*":
            if abs(a) > 10**15 or abs(b) > 10**15:
                raise CnnDslError("number too large", expr.loc)
            return a * b
        if op == "/":
            q = a / b
            return int(q) if isinstance(a, int) and isinstance(b, int) and a % b == 0 else q
        if op == "//":
            return a // b
        if op == "%":
            return a % b
        raise AssertionError(op)

    def eval_int(self, expr: S.Expr, env: _Env, what: str, minimum: int = 0) -> int:
        value = self.eval(expr, env)
        if isinstance(value, bool) or not isinstance(value, int):
            raise CnnDslError(f"{what} must be an integer, got {_show(value)}", expr.loc)
        if value < minimum:
            raise CnnDslError(f"{what} must be at least {minimum}, got {value}", expr.loc)
        return value

    # ---- nodes
    def add(self, layer: Layer, inputs: list[int], loc: Location, user_name, name_loc) -> int:
        if len(self.nodes) >= MAX_NODES:
            raise CnnDslError(f"the spec makes more than {MAX_NODES:,} layers", loc)
        self.nodes.append(_Node(layer, inputs, loc, self.frame, user_name, name_loc))
        return len(self.nodes) - 1

    def finish(self, module: S.Module, outputs: list[int]) -> Network:
        names = _assign_names(self.nodes)
        layers = []
        call_sites: dict[int, CallSite] = {}

        def site(frame: _Frame) -> CallSite:
            key = id(frame)
            if key not in call_sites:
                call_sites[key] = CallSite(
                    block=frame.block,
                    instance=frame.instance or frame.block,
                    args={k: _json_value(v, names) for k, v in frame.args.items()},
                    call=frame.call,
                    named=frame.instance == _prefix(frame.parent) + (frame.user_name or "\0"),
                    position=_position(frame.loc),
                )
            return call_sites[key]

        for i, node in enumerate(self.nodes):
            frames = []
            frame = node.frame
            while frame is not None:
                frames.append(site(frame))
                frame = frame.parent
            layers.append(
                node.layer.model_copy(
                    update={
                        "name": names[i],
                        "inputs": tuple(names[j] for j in node.inputs),
                        "position": _position(node.loc),
                        "calls": tuple(reversed(frames)),
                    }
                )
            )
        name = module.network[0] if module.network else _stem(module.file)
        net = Network.model_construct(name=name, layers=layers, outputs=[names[i] for i in outputs])
        net = Network.model_validate(net.__dict__)
        net._sources = dict(self.sources)
        return net


# ------------------------------------------------------------------------------ naming


def _assign_names(nodes: list[_Node]) -> list[str]:
    """Unique identifiers for every node.

    Named tensors keep their names; other nodes are named by kind, counted within their block
    call: ``conv_1``, ``conv_2``, ``inception_1_conv_3``.  Block calls are ``<block>_<n>``
    (or the tensor name they were assigned to), prefixed by their enclosing call.
    """
    taken: set[str] = set()
    for node in nodes:
        if node.user_name is not None and node.frame is None:
            taken.add(node.user_name)
    counters: dict[tuple[str, str], int] = {}

    def fresh(prefix: str, base: str) -> str:
        key = (prefix, base)
        while True:
            counters[key] = counters.get(key, 0) + 1
            name = f"{prefix}{base}_{counters[key]}"
            if name not in taken:
                taken.add(name)
                return name

    def prefix_of(frame: _Frame | None) -> str:
        if frame is None:
            return ""
        if frame.instance is None:
            outer = prefix_of(frame.parent)
            if frame.user_name is not None and f"{outer}{frame.user_name}" not in taken:
                frame.instance = f"{outer}{frame.user_name}"
                taken.add(frame.instance)
            else:
                frame.instance = fresh(outer, frame.user_name or frame.block)
        return frame.instance + "_"

    names: list[str] = []
    for node in nodes:
        prefix = prefix_of(node.frame)
        if node.user_name is not None:
            candidate = f"{prefix}{node.user_name}"
            if node.frame is not None and candidate not in taken:
                taken.add(candidate)
                names.append(candidate)
                continue
            if node.frame is None and candidate not in names:
                names.append(candidate)
                continue
            names.append(fresh(prefix, node.user_name))
            continue
        layer = node.layer
        base = layer.type_name
        names.append(fresh(prefix, base))
    return names


# ------------------------------------------------------------------------------ helpers


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


def _position(loc: Location) -> Position:
    return Position(file=loc.file, line=loc.line, column=loc.column, end_column=loc.end_column)


def _stem(file: str) -> str:
    stem = Path(file).stem if file not in ("<string>", "<stdin>") else "network"
    return stem if stem.isidentifier() else "network"


def _json_value(value: Any, names: list[str]) -> Any:
    if isinstance(value, TensorRef):
        return names[value.node]
    if isinstance(value, Symbol):
        return value.name
    if isinstance(value, (list, tuple)):
        return [_json_value(v, names) for v in value]
    return value


def _prefix(frame: _Frame | None) -> str:
    return frame.instance + "_" if frame is not None and frame.instance else ""


def _written(value: Any) -> str:
    """An evaluated argument as the call would show it: 64, relu, enc4, (1, 2), 1e-5."""
    if isinstance(value, TensorRef):
        return value.name
    if isinstance(value, Symbol):
        return value.name
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return fmt_float(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_written(v) for v in value) + "]"
    if isinstance(value, tuple):
        return "(" + ", ".join(_written(v) for v in value) + ")"
    return str(value)


def _show(value: Any) -> str:
    if isinstance(value, Symbol):
        return f"'{value.name}'"
    if isinstance(value, TensorRef):
        return f"tensor '{value.name}'"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (list, tuple)):
        return "(" + ", ".join(_show(v) for v in value) + ")"
    return str(value)


def _truth(value: Any, loc: Location) -> bool:
    if isinstance(value, Symbol):
        if value.name in _BOOL_WORDS:
            return _BOOL_WORDS[value.name]
        raise CnnDslError(f"unknown name '{value.name}'", loc)
    if isinstance(value, TensorRef):
        raise CnnDslError(f"tensor '{value.name}' is not a condition", loc)
    return bool(value)


def _number(value: Any, loc: Location, env: _Env | None = None) -> int | float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        if isinstance(value, Symbol):
            hint = did_you_mean(value.name, env.all_vars()) if env else None
            raise CnnDslError(f"unknown name '{value.name}'", loc, hint=hint)
        raise CnnDslError(f"expected a number, got {_show(value)}", loc)
    return value


@lru_cache(maxsize=None)
def _field_takes(cls: type[Layer], key: str) -> tuple[bool, bool]:
    """(takes words or strings, takes booleans) for a field of a layer class."""
    annotation = str(cls.model_fields[key].annotation) if key in cls.model_fields else ""
    return ("Literal" in annotation or "str" in annotation), "bool" in annotation


def _plain(value: Any, key: str, cls: type[Layer], loc: Location) -> Any:
    """Evaluated value -> what the pydantic field takes."""
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, TensorRef):
        raise CnnDslError(f"{key} cannot be a tensor ('{value.name}')", loc)
    if isinstance(value, Symbol):
        words, booleans = _field_takes(cls, key)
        if value.name in _BOOL_WORDS and booleans:
            return _BOOL_WORDS[value.name]
        if words:
            return value.name
        raise CnnDslError(f"unknown name '{value.name}' for {key}", loc)
    if isinstance(value, str):
        if not _field_takes(cls, key)[0]:
            raise CnnDslError(f"{key} must be a number, not the string {value!r}", loc)
    if isinstance(value, list):
        return tuple(_plain(v, key, cls, loc) for v in value)
    if isinstance(value, tuple):
        return tuple(_plain(v, key, cls, loc) for v in value)
    return value


def _kind_word(cls: type[Layer], preset: dict) -> str:
    """How a layer kind is called in messages: its spec word (``conv``, ``relu``, ``input``)."""
    if cls is Activation:
        return preset.get("function", "activation")
    return cls.spec_names[0] if cls.spec_names else cls.model_fields["kind"].default


def _explain(kind: str, key: str | None, err: dict, value: Any) -> str:
    """A readable sentence for a pydantic validation error."""
    msg = err["msg"]
    typ = err["type"]
    shown = _show(value) if value is not None else None
    if key is None:
        msg = msg.removeprefix("Value error, ")
        return msg if msg.startswith(f"{kind} ") else f"{kind}: {msg}"
    if typ == "missing":
        return f"{kind} needs {_MISSING.get(key, key)}"
    if typ in ("greater_than_equal", "greater_than", "less_than", "less_than_equal"):
        bound = err["ctx"][_CTX[typ]]
        if isinstance(bound, float) and bound.is_integer():
            bound = int(bound)
        return f"{kind} {key} {_BOUND[typ]} {bound}, got {shown}"
    if typ.startswith("int") or typ.startswith("float") or typ.startswith("bool"):
        want = {"int": "an integer", "float": "a number", "bool": "on or off"}[typ.split("_")[0]]
        return f"{kind} {key} must be {want}, got {shown}"
    if typ == "literal_error":
        return f"{kind} {key} must be {err['ctx']['expected']}, got {shown}"
    if typ.startswith("tuple") or typ == "too_long" or typ == "too_short":
        return f"{kind} {key} has the wrong form: {shown} ({msg.lower()})"
    if typ == "value_error":
        msg = msg.removeprefix("Value error, ")
        return msg if msg.startswith(f"{kind} ") else f"{kind}: {msg}"
    return f"{kind} {key}: {msg} (got {shown})"


_BOUND = {
    "greater_than_equal": "must be at least",
    "greater_than": "must be above",
    "less_than": "must be below",
    "less_than_equal": "must be at most",
}
_CTX = {"greater_than_equal": "ge", "greater_than": "gt", "less_than": "lt", "less_than_equal": "le"}
_MISSING = {
    "filters": "a number of filters: `conv 64`",
    "kernel": "a kernel size: `3x3+1(S) conv 64` or `kernel=3`",
    "units": "a number of units: `dense 128`",
    "rate": "a rate: `dropout 0.5`",
    "padding": "an amount: `zeropad 1`",
    "pool": "a number of channels to pool: `depthmaxpool 3`",
}


def elaborate(module: S.Module) -> Network:
    """Turn a parsed module (and what it imports) into a :class:`Network`."""
    return Elaborator().elaborate(module)
