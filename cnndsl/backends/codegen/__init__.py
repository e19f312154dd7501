"""The code-generation core shared by every back end that writes Python (Keras, PyTorch).

The pipeline, in the order it runs (:meth:`.generator.Generator.program`):

    tree.py       the call tree: nodes grouped by the block calls that made them (CallScope)
    lower.py      each scope lowered to a Draft by the back end's handlers: the layers it makes
                  (Module), the statements that compute its values (Step); layer arguments
                  stay Const leaves of expressions (expr.py)
    loops.py      the iterations of a repeat/for that compute alike (the IR records loops)
                  -> for loops (where the target writes them)
    unify.py      the calls of a block that have one structure -> one Function, the constants
                  that differ -> parameters and expressions of the block's (f * e); names of the
                  functions, their variants and their parameters
    names.py      every name generated code writes: what each target reserves, Namespace, the
                  variables of a body
    writer.py     lines, docstrings, statements wrapped as black wraps them at 100 columns
    generator.py  Generator, the base every back end extends (TRANSFORMS, lower_<kind>,
                  UNSUPPORTED), and running generated source (one lowering, two products)

Nothing here imports a framework.  The call tree is also what diagrams draw clusters from.
"""

from .expr import Code, Const, Expr, LayerName, Ref, Sym, Var, call, literal
from .generator import Generator, Program, execute, runtime_definitions
from .lower import Draft, Loop, Module, NodeContext, Step
from .names import Namespace, Reserved
from .tree import CallScope, call_tree

__all__ = [
    "CallScope",
    "Code",
    "Const",
    "Draft",
    "Expr",
    "Generator",
    "LayerName",
    "Loop",
    "Module",
    "Namespace",
    "NodeContext",
    "Program",
    "Ref",
    "Reserved",
    "Step",
    "Sym",
    "Var",
    "call",
    "call_tree",
    "execute",
    "literal",
    "runtime_definitions",
]
