"""The files of one load: the spec, what it imports, their blocks and their layer defaults.

Imports follow a policy (see README, "Imports"), so that a spec cannot read arbitrary files:

- an import names a ``.cnn`` file by a relative path;
- it is looked up next to the importing file, then in each directory of the import path
  (``--import-path DIR``, ``import_path=[...]``), in order;
- the file, its symbolic links resolved, must lie under the directory of the spec being
  loaded or under a directory of the import path, and be a ``.cnn`` file there too.

A refused import is never opened, so no line of it can appear in an error.  Files are known
by their resolved paths: one file reached by several paths is read once, and importing a file
from itself, by any path, is a cycle.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .. import syntax as S
from ..errors import CnnDslError, Location, did_you_mean
from ..ir import Layer
from ..parser import parse
from .options import KINDS, RESERVED, check_defaults, kind_word, layer_fields
from .limits import Work
from .sources import read_source
from .values import Scope, value_key, written

SUFFIX = ".cnn"

KindKey = tuple[type[Layer], Any]
"""What a ``defaults`` declaration applies to: a layer class, and for activations the function
(``defaults leakyrelu alpha=0.2`` is not for ``elu``)."""

Defaults = dict[KindKey, dict[str, tuple[Any, Location]]]
"""Layer defaults: kind -> {field: (value, where it was set)}."""


def kind_key(cls: type[Layer], preset: dict) -> KindKey:
    return (cls, preset.get("function"))


def is_pseudo(file: str) -> bool:
    """Whether a module's file name stands for no file: ``<string>``, ``<stdin>``."""
    return file.startswith("<") and file.endswith(">")


def resolved(file: str) -> str | None:
    """A file's absolute path with symbolic links and ``..`` resolved (None for
    ``<string>``)."""
    if is_pseudo(file):
        return None
    try:
        return str(Path(file).resolve())
    except (OSError, RuntimeError):  # a symbolic-link loop: its own name is its key
        return os.path.abspath(file)
    except ValueError:  # a NUL character: no file has that name
        return None


class ImportPolicy:
    """Which files the imports of one load may read (see the module docstring).

    ``spec_file`` is the file being loaded (its directory is the first root; the current
    directory for ``<string>``); ``import_path`` the other directories, in search order.
    """

    def __init__(self, spec_file: str, import_path: Iterable[str | os.PathLike] = ()) -> None:
        home = Path.cwd() if is_pseudo(spec_file) else Path(spec_file).parent
        self.path = [Path(p) for p in import_path]
        for directory in self.path:
            if not os.path.isdir(directory):
                raise ValueError(f"import path {str(directory)!r} is not a directory")
        self.roots = [Path(resolved(str(d)) or d) for d in (home, *self.path)]
        self.shown = [str(d) for d in (home, *self.path)]  # as given, for messages

    def allows(self, real: Path) -> bool:
        return any(real.is_relative_to(root) for root in self.roots)

    def locate(self, imp: S.Import, importing: str) -> Path:
        """The file an import reads (it may not exist: reading it says so), or a located
        error when the policy refuses it."""
        text = imp.path
        if "\0" in text:  # no file name holds one (the operating system refuses the path)
            raise CnnDslError(f"an import path cannot hold a NUL character: {text!r}", imp.loc)
        if os.path.isabs(text) or text.startswith("~"):
            raise CnnDslError(
                f"an import names a file by a relative path, not '{text}'",
                imp.loc,
                hint="to import from another directory, add it to the import path"
                " (`--import-path DIR`, or import_path=[...] in Python)",
            )
        if not text.endswith(SUFFIX) or text.endswith("/" + SUFFIX) or text == SUFFIX:
            raise CnnDslError(f"only .cnn specs can be imported, not '{text}'", imp.loc)
        here = Path.cwd() if is_pseudo(importing) else Path(importing).parent
        first = None
        for base in (here, *self.path):
            candidate = Path(os.path.normpath(base / text))
            real = Path(resolved(str(candidate)) or candidate)
            if not self.allows(real):
                if first is None:  # as written, from the importing file: refused
                    raise CnnDslError(
                        f"import '{text}' leads outside the directories imports may read",
                        imp.loc,
                        hint="imports read .cnn files under the spec's directory and the"
                        f" import path ({', '.join(self.shown)});"
                        " add a directory with `--import-path DIR`",
                    )
                continue
            if real.suffix != SUFFIX:
                raise CnnDslError(
                    f"import '{text}' is a link to a file that is not a .cnn spec", imp.loc
                )
            first = first or candidate
            if os.path.isfile(real):  # (False for a name too long, where Path.is_file raises)
                return candidate
        return first  # type: ignore[return-value]  (the first root always allows or raises)


class Modules:
    """The parsed files of one load by file name, their block namespaces and their defaults.

    ``load`` reads a module's imports (recursively, through the policy); ``namespace(file)``
    is then every block visible in that file: its own and those it imports.
    """

    def __init__(self, policy: ImportPolicy) -> None:
        self.policy = policy
        self.by_file: dict[str, S.Module] = {}  # where each block was defined
        self.sources: dict[str, str] = {}
        self.namespaces: dict[str, dict[str, S.BlockDef]] = {}
        self.files: dict[str, str] = {}  # resolved path -> the file name its module has
        self.imported: dict[str, list[tuple[str, Location]]] = {}  # file -> (file, import) it imports
        self.defaults: dict[str, Defaults] = {}  # each file's conventions (see defaults_of)

    def __getitem__(self, file: str) -> S.Module:
        return self.by_file[file]

    def load(self, module: S.Module, importing: tuple[tuple[str | None, str], ...] = ()) -> None:
        """Register a parsed module's blocks and imports.  ``importing`` holds the (resolved
        path, file name) of the modules whose imports are being read, to find cycles."""
        self.sources[module.file] = module.source
        self.by_file[module.file] = module
        here = (resolved(module.file), module.file)
        if here[0] is not None:
            self.files.setdefault(here[0], module.file)
        namespace: dict[str, S.BlockDef] = {}
        imported = self.imported[module.file] = []
        for imp in module.imports:
            path = self.policy.locate(imp, module.file)
            key = resolved(str(path)) or str(path)
            if key == here[0] or key in [k for k, _ in importing]:
                chain = " -> ".join([*(f for _, f in importing), module.file, str(path)])
                raise CnnDslError(f"import cycle: {chain}", imp.loc)
            file = self.files.get(key)
            if file is None:
                sub = parse(read_source(path, imp.loc), str(path))
                self.files[key] = file = sub.file
                self.load(sub, (*importing, here))
            imported.append((file, imp.loc))
            exported = self.namespaces[file]
            if imp.names is None:
                namespace.update(exported)
            else:
                for name, loc in imp.names:
                    if name not in exported:
                        raise CnnDslError(
                            f"{imp.path} has no block '{name}'", loc, hint=did_you_mean(name, exported)
                        )
                    namespace[name] = exported[name]
        for name, block in module.blocks.items():
            if name in RESERVED:
                raise CnnDslError(f"a block cannot be named '{name}': it is a layer kind", block.loc)
            namespace[name] = block
        self.namespaces[module.file] = namespace

    def namespace(self, file: str) -> dict[str, S.BlockDef]:
        return self.namespaces[file]

    def defaults_of(self, module: S.Module, work: Work) -> Defaults:
        """A file's conventions: the layer defaults of the files it imports, then its own
        ``defaults`` declarations, which win field by field.  Two imported files that set one
        field of one kind differently are an error, unless the file sets that field itself.
        (An imported file's conventions are its own, by the same rule, so they travel along
        chains of imports.)  Evaluated once per file."""
        found = self.defaults.get(module.file)
        if found is not None:
            return found
        own = self.declared(module, work)
        table: Defaults = {}
        source: dict[tuple[KindKey, str], tuple[str, Location]] = {}  # (kind, field) -> import
        for file, where in self.imported.get(module.file, ()):
            for kind, entry in self.defaults_of(self.by_file[file], work).items():
                mine = own.get(kind, {})
                merged = table.setdefault(kind, {})
                for key, value in entry.items():
                    if key in mine:
                        continue
                    if key in merged and value_key(merged[key][0]) != value_key(value[0]):
                        first_file, first_where = source[(kind, key)]
                        word = _kind_word(kind)
                        raise CnnDslError(
                            f"the imported defaults disagree: {first_file} sets {word} {key}="
                            f"{written(merged[key][0])}, {file} sets {key}={written(value[0])}",
                            where,
                            hint=f"choose one in this file: `defaults {word} {key}=...`",
                            notes=[("the first import", first_where)],
                        )
                    if key not in merged:
                        merged[key] = value
                        source[(kind, key)] = (file, where)
        for kind, entry in own.items():
            table.setdefault(kind, {}).update(entry)
        self.defaults[module.file] = table
        return table

    def declared(self, module: S.Module, work: Work) -> Defaults:
        """The layer defaults a file declares itself (``defaults conv kernel=3``)."""
        table: Defaults = {}
        scope = Scope(module, {}, {}, work=work)
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
            fields, user_name = layer_fields(cls, None, decl.args, scope, preset)
            if user_name is not None:
                raise CnnDslError(
                    "defaults cannot set a name: names are unique to one layer",
                    user_name[1],
                    hint="name a layer where it is written: `conv 64 name=stem` or `stem = conv 64`",
                )
            check_defaults(cls, fields, preset)
            entry = table.setdefault(kind_key(cls, preset), {})
            for key, value in fields.items():
                if key in entry and value_key(entry[key][0]) != value_key(value[0]):
                    raise CnnDslError(
                        f"defaults for {decl.kind} set {key} twice", value[1],
                        notes=[("first set", entry[key][1])],
                    )
                entry[key] = value
        return table


def _kind_word(kind: KindKey) -> str:
    cls, function = kind
    return function or kind_word(cls, {})
