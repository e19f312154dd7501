"""Elaboration: syntax tree -> IR.

Evaluates block calls (with their arguments and defaults), arithmetic, ``repeat``/``for``/``if``,
layer defaults and imports, resolves tensor names, and emits IR nodes in topological order with
their source positions and block provenance.  Every failure is a located
:class:`~cnndsl.errors.CnnDslError`.

- :mod:`.elaborator`: statements, block calls, merges, outputs (the walk);
- :mod:`.modules`: the files of a load: imports (and their policy), blocks, defaults;
- :mod:`.options`: layer kinds by word, and a layer's arguments -> a validated IR node;
- :mod:`.values`: values, scopes and expression evaluation;
- :mod:`.replay`: copying the nodes of a block call made before with the same arguments;
- :mod:`.naming`: nodes under construction, block-call frames, and their final names;
- :mod:`.sources`: reading spec files safely;
- :mod:`.limits`: what a spec may ask for, and the work a load may do.
"""

from .elaborator import Elaborator, elaborate
from .limits import MAX_CALL_DEPTH, MAX_ERRORS, MAX_NODES, MAX_REPEAT, MAX_SOURCE_BYTES, MAX_STEPS
from .options import KINDS
from .sources import read_source

__all__ = [
    "KINDS",
    "MAX_CALL_DEPTH",
    "MAX_ERRORS",
    "MAX_NODES",
    "MAX_REPEAT",
    "MAX_SOURCE_BYTES",
    "MAX_STEPS",
    "Elaborator",
    "elaborate",
    "read_source",
]
