"""The generator every back end that writes Python extends: one lowering, two products.

A back end is a subclass of :class:`Generator`, as a dialect of sqlglot is a subclass of its
Generator and an ibis backend extends its compiler.  It maps each IR layer kind to its
framework's code, and says how a layer, a block call and the module are written:

- ``TRANSFORMS``: the trivial kinds, ``{LayerClass: handler}``;
- a method ``lower_<kind>(self, ctx)`` for the others (``lower_conv``, ``lower_maxpool``);
- ``UNSUPPORTED``: ``{LayerClass: why}`` for a kind it cannot express at all.  A kind with
  neither a handler nor an entry here is an error (a test checks every back end).

A handler gets a :class:`~.lower.NodeContext` and returns the node's value as an expression
(:mod:`.expr`), making its layers with ``ctx.module(...)``; for a value the framework cannot
build it raises ``ctx.unsupported(why)``, a located error naming the layer and the target.

Everything else is shared (:meth:`Generator.program`): the call tree (:mod:`.tree`), lowering
(:mod:`.lower`), loops (:mod:`.loops`, where the target writes them), anti-unification of each
block's calls into functions (:mod:`.unify`), names (:mod:`.names`) and the writer
(:mod:`.writer`).  The subclass then writes the module (:meth:`Generator.write`); its live model
is that module, executed (:func:`execute`): the file and the model are one by construction.
"""

from __future__ import annotations

import ast
import functools
import gc
import hashlib
import io
import linecache
import tokenize
import types
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any, ClassVar

from ...errors import CnnDslError
from ...ir import LAYER_CLASSES, Layer, Network
from .. import unsupported
from .expr import Expr, literal
from .loops import align, fold
from .lower import Draft, NodeContext, lower
from .names import Namespace, Reserved, identifier
from .tree import CallScope, call_tree
from .unify import Function, name_functions, unify
from .writer import Writer

Handler = Callable[["Generator", NodeContext], Expr]


@dataclass
class Program:
    """Everything a generator writes: the call tree, the network's draft, the functions of
    the blocks (innermost first, named) and the runtime helpers used."""

    root: CallScope
    draft: Draft
    functions: list[Function]
    helpers: list[str]


class Generator:
    """The shared core of the Keras and PyTorch back ends (see the module's docstring)."""

    TARGET: ClassVar[str] = ""
    """The target's name in messages: ``Keras``, ``PyTorch``."""
    RESERVED: ClassVar[Reserved] = Reserved(frozenset())
    """The names its generated files reserve (:mod:`.names`)."""
    TRANSFORMS: ClassVar[dict[type[Layer], Handler]] = {}
    UNSUPPORTED: ClassVar[dict[type[Layer], str]] = {}
    HANDLERS: ClassVar[dict[type[Layer], Handler]] = {}
    """Every handler, by layer class: ``TRANSFORMS`` and the ``lower_<kind>`` methods."""
    RUNTIME: ClassVar[tuple[str, str] | None] = None
    """(package, file) of the module whose definitions generated files copy when they use
    them (custom layers, helper modules and functions)."""
    LOOPS: ClassVar[bool] = False
    """Whether repeated layers become ``for`` loops."""
    FIRST_ROLES: ClassVar[tuple[str, ...]] = ()
    """Roles of values the input's shape gives (PyTorch's ``in_channels``): their parameters
    are written first."""
    SHAPES_INFERRED: ClassVar[bool] = False
    """Whether the framework infers its layers' input sizes (Keras does, PyTorch does not):
    see :func:`~.unify.unify`'s ``named_constants``."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        handlers = dict(cls.TRANSFORMS)
        for layer_cls in LAYER_CLASSES:
            method = getattr(cls, f"lower_{layer_cls.model_fields['kind'].default}", None)
            if method is not None:
                handlers[layer_cls] = method
        cls.HANDLERS = handlers

    def __init__(self, net: Network) -> None:
        self.net = net
        self.used: set[str] = set()
        self._program: Program | None = None

    # ---------------------------------------------------------------- dispatch

    def handler(self, cls: type[Layer]) -> Handler:
        return self.HANDLERS[cls]

    def unsupported(self, layer: Layer, why: str) -> CnnDslError:
        return unsupported(self.net, layer, self.TARGET, why)

    def check(self) -> None:
        """Raise the located error for the first node of a kind this target cannot express."""
        for layer in self.net.layers:
            cls = type(layer)
            if cls in self.UNSUPPORTED or cls not in self.HANDLERS:
                why = self.UNSUPPORTED.get(cls, f"no handler for {cls.__name__}")
                raise self.unsupported(layer, why)

    def use_helper(self, name: str) -> None:
        if name not in runtime_definitions(*self.RUNTIME):
            raise AssertionError(f"{self.RUNTIME[1]} defines no {name}")
        self.used.add(name)

    # ---------------------------------------------------------------- the dialect

    def define(self, ctx: NodeContext, ctor: Expr, name) -> Expr:
        """Make one layer of a node; returns the expression that applies it."""
        raise NotImplementedError

    def lower_call(self, draft: Draft, scope: CallScope, sub: CallScope) -> None:
        """Append a nested block call (``sub.function`` decided) to ``draft``."""
        raise NotImplementedError

    def helper_name(self, layer: Layer, suffix: str) -> str:
        """The name of a helper layer of a node (``conv_1_pad``)."""
        return f"{layer.name}_{suffix}"

    def variable_hint(self, layer: Layer) -> str | None:
        """A preferred variable for a node's value."""
        return None

    def root_args(self, root: CallScope) -> list[str]:
        """The values the network's function takes as arguments."""
        return list(root.inputs)

    def root_live_out(self, root: CallScope) -> list[str]:
        """Values the network's function still reads after its last step."""
        return []

    def in_forward(self, draft: Draft) -> set[int]:
        """The constants of a draft read where the function runs (stored parameters)."""
        return set()

    def function_name(self, candidate: str) -> str:
        return identifier(candidate)

    NAME_SEP: ClassVar[str] = "_"

    def write(self, program: Program) -> str:
        """The module: its head (docstring, imports), the runtime helpers it uses, one function
        or class per block structure (innermost first), then the network's."""
        body = Writer()
        definitions = runtime_definitions(*self.RUNTIME)
        for name in program.helpers:
            body.blank(2)
            body.lines(*definitions[name].strip("\n").splitlines())
        for fn in program.functions:
            body.blank(2)
            self.write_function(body, fn)
        body.blank(2)
        self.write_network(body, program)
        text = body.getvalue()
        head = Writer()
        self.write_head(head, names_used(text))
        return head.getvalue() + "\n\n" + text

    def write_head(self, w: Writer, used: set[str]) -> None:
        """The module's docstring and imports (``used``: the names its body reads)."""
        raise NotImplementedError

    def write_function(self, w: Writer, fn: Function) -> None:
        """A block's function or class."""
        raise NotImplementedError

    def write_network(self, w: Writer, program: Program) -> None:
        """The network's function or class, and ``build_model()``."""
        raise NotImplementedError

    # ---------------------------------------------------------------- the pipeline

    def program(self) -> Program:
        """The call tree lowered, loops folded where the target writes them, block calls
        anti-unified into functions (innermost first) and every function named."""
        if self._program is not None:
            return self._program
        self.net.analysis  # noqa: B018  (raises located errors for specs that cannot compute)
        self.check()
        root = call_tree(self.net)
        functions: list[Function] = []
        scopes = list(root.scopes())
        for height in range(root.height):
            by_block: dict[str, list[CallScope]] = {}
            for scope in scopes:
                if scope.height == height:
                    by_block.setdefault(scope.site.block, []).append(scope)
            for block, calls in by_block.items():
                drafts = [lower(self, call, call.inputs) for call in calls]
                if self.LOOPS:
                    align(drafts, [fold(draft) for draft in drafts])
                groups: dict[tuple, list[int]] = {}
                for i, draft in enumerate(drafts):
                    groups.setdefault(draft.key(), []).append(i)
                for members in groups.values():
                    fn = unify(
                        block,
                        [calls[i] for i in members],
                        [drafts[i] for i in members],
                        self.in_forward,
                        self.FIRST_ROLES,
                        self.SHAPES_INFERRED,
                    )
                    for i in members:
                        calls[i].draft = drafts[i]
                    functions.append(fn)
        draft = lower(self, root, self.root_args(root))
        root.draft = draft
        draft.live_out = self.root_live_out(root)
        if self.LOOPS:
            fold(draft)
        module = Namespace(self.RESERVED.globals)
        name_functions(functions, module, self.function_name, self.NAME_SEP)
        self.module_names = module
        helpers = [n for n in runtime_definitions(*self.RUNTIME) if n in self._needed()]
        self._program = Program(root, draft, functions, helpers)
        return self._program

    def _needed(self) -> set[str]:
        """The helpers used, with the helpers they use."""
        definitions = runtime_definitions(*self.RUNTIME)
        needed, todo = set(), list(self.used)
        while todo:
            name = todo.pop()
            if name not in needed:
                needed.add(name)
                todo += [n for n in definitions if n != name and n in _words(definitions[name])]
        return needed

    def source(self) -> str:
        """The module's text.  The collector is paused meanwhile, as for a load: generating
        makes many small objects, and collections would only cost (superlinearly)."""
        paused = gc.isenabled()
        gc.disable()
        try:
            return self.write(self.program())
        finally:
            if paused:
                gc.enable()


def _words(text: str) -> set[str]:
    return set(text.replace("(", " ").replace(".", " ").replace(",", " ").split())


def names_used(source: str) -> set[str]:
    """The global names a piece of generated Python reads (not attributes, comments or
    strings): which imports it needs."""
    tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    return {
        tok.string
        for prev, tok in zip([None, *tokens], tokens)
        if tok.type == tokenize.NAME and not (prev is not None and prev.string == ".")
    }


# ---------------------------------------------------------------- runtime text, and running it


@functools.cache
def runtime_definitions(package: str, filename: str) -> dict[str, str]:
    """The definitions a runtime module exports (``__all__``), in file order: name -> their
    text, decorators included.  Read as text, never imported: generating source needs no
    framework, and a generated file holds the very code the runtime module runs."""
    text = resources.files(package).joinpath(filename).read_text(encoding="utf-8")
    tree = ast.parse(text)
    exported: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            exported = set(ast.literal_eval(node.value))
    lines = text.splitlines()
    found = {}
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)) and node.name in exported:
            first = min([d.lineno for d in node.decorator_list] + [node.lineno])
            found[node.name] = "\n".join(lines[first - 1 : node.end_lineno])
    return found


class Render:
    """How the values of the function being written read: ``names`` (value -> variable)."""

    def __init__(self, names: dict[str, str] | None = None) -> None:
        self.names = names or {}

    def var(self, name: str) -> str:
        return self.names[name]

    def layer_name(self, name) -> str:
        return literal(name.absolute)


def execute(source: str, name: str) -> dict[str, Any]:
    """Run generated source as a module, registered with linecache so that tracebacks,
    ``inspect.getsource`` and ``torch.compile`` can read it."""
    digest = hashlib.sha1(source.encode()).hexdigest()[:12]
    filename = f"<cnndsl-{identifier(name)}-{digest}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    module = types.ModuleType(f"cnndsl_generated_{identifier(name)}")
    module.__file__ = filename
    exec(compile(source, filename, "exec"), module.__dict__)  # noqa: S102 (our own output)
    return module.__dict__
