"""The PyTorch back end: ``build(net) -> torch.nn.Module`` and ``to_source(net) -> str``.

One lowering, two products (as ``torch.fx`` does it): the network is lowered to the source of a
standalone Python module that imports only torch, and :func:`build` executes that source.  So
the live model and the file ``cnndsl compile --target torch`` writes are one model by
construction.  Generating the source needs only the IR: :func:`to_source` and
:func:`module_paths` never import torch; only :func:`build`, by running the source, does.

The modules, in the order the lowering uses them:

- :mod:`.expr` -- the small expression tree of generated code (``Call``, ``Const``...).
- :mod:`.context` -- what a handler sees (:class:`~.context.NodeContext`), and the helper
  classes it may ask for.
- :mod:`.handlers` -- one handler per IR layer class (:data:`HANDLERS`): the node's module for
  ``__init__`` and its value as an expression of ``forward``, layer arguments as ``Const``
  leaves.
- :mod:`.drafts` -- **scopes** (nodes grouped by block call into a tree, each call a sub-module
  of its caller) and **drafts** (a scope's ``__init__`` statements and ``forward`` steps).
- :mod:`.blocks` -- **classes** by anti-unification, innermost calls first: calls of one block
  whose drafts agree up to constants share one ``nn.Module`` class, the differing constants
  becoming ``__init__`` parameters (``filters``, ``filters * 4``, ``in_channels``); calls that
  differ in structure get classes of their own (``Bottleneck``, ``BottleneckProject``).
- :mod:`.render` -- **rendering**: variable names, in-place operations where they are safe,
  lines wrapped as black wraps them at 100 columns, each layer with its spec line.
- :mod:`.runtime` -- helper ``nn.Module`` classes PyTorch lacks (``SeparableConv2d``,
  ``ExcludePadAvgPool2d``): real code, whose text is copied into the files that use it.

Semantics (the IR's, exactly):

- Tensors are NCHW.  ``flatten`` orders features as Keras does, (H, W, C): the map is permuted
  to NHWC first (unless H = W = 1), so dense weights transfer between the frameworks.
- Padding is the analysis's ``explicit_padding()`` (TensorFlow SAME resolved): symmetric
  padding is the layer's ``padding=``; asymmetric padding is an ``F.pad`` before an unpadded
  layer (with ``-inf`` for max pooling; average pooling that excludes padded cells divides
  by a pooled mask of ones, ``ExcludePadAvgPool2d`` in the generated file).
- Batch norm: ``eps`` is the IR's epsilon, ``momentum`` is 1 - the IR's (Keras convention);
  without ``center`` or ``scale`` the missing parameter is removed from the module.
- LRN with TensorFlow's (radius r, alpha, beta, bias) is ``nn.LocalResponseNorm(2r + 1,
  alpha * (2r + 1), beta, bias)``.
- Transposed convolutions crop the full ``(n - 1) * s + k_eff`` output as the IR says, with
  ``padding``/``output_padding`` where PyTorch can, and a slice where it cannot.

The generated code has no data-dependent control flow, so ``torch.compile`` and
``torch.export`` take it as it is.
"""

from __future__ import annotations

import hashlib
import linecache
import types
from collections.abc import Callable
from typing import Any

from ...ir import Network
from .._source import py_identifier
from .blocks import make_plan
from .handlers import HANDLERS, UNSUPPORTED
from .render import Renderer

__all__ = ["HANDLERS", "UNSUPPORTED", "build", "module_paths", "to_source"]


def to_source(net: Network, *, taps: bool = False) -> str:
    """The source of a standalone Python module defining the network as an ``nn.Module``.

    The module imports only torch.  It defines one class per block (or per structural variant
    of a block), the network's class, and ``build_model()``.  With ``taps``, every node's value
    is also passed to a module-level ``_tap(module, name, value)`` (a no-op that :func:`build`
    replaces): a debugging aid, not for deployment.  Needs no torch.
    Raises :class:`~cnndsl.CnnDslError` for a layer PyTorch cannot express.
    """
    return Renderer(make_plan(net), taps).module()


def build(net: Network, *, tap: Callable[[str, Any], None] | None = None):
    """The network as a live ``torch.nn.Module`` taking NCHW inputs.

    Several inputs are ``forward``'s arguments in declaration order; several outputs come back
    as a tuple in ``net.outputs`` order.  ``tap(node_name, tensor)``, when given, is called
    with every node's value during each forward pass (node names as in the IR).
    """
    plan = make_plan(net)
    source = Renderer(plan, taps=tap is not None).module()
    namespace = _execute(source, net.name)
    model = namespace["build_model"]()
    if tap is not None:
        prefixes = {id(model.get_submodule(path)): prefix for path, prefix in plan.prefixes()}
        namespace["_tap"] = lambda module, name, value: tap(prefixes[id(module)] + name, value)
    model._cnndsl_network = net  # read by torchvision_map.load_torchvision
    return model


def module_paths(net: Network) -> dict[str, str]:
    """For each node that owns a sub-module, that module's path in the model
    (``block1_conv_1`` -> ``block1.conv_1``); its parameters are ``<path>.weight`` etc."""
    return make_plan(net).module_paths()


def _execute(source: str, name: str) -> dict[str, Any]:
    """Run generated source as a module, registered with linecache so that tracebacks,
    ``inspect.getsource`` and ``torch.compile`` can read it."""
    digest = hashlib.sha1(source.encode()).hexdigest()[:12]
    filename = f"<cnndsl-torch-{py_identifier(name)}-{digest}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    module = types.ModuleType(f"cnndsl_generated_{py_identifier(name)}")
    module.__file__ = filename
    exec(compile(source, filename, "exec"), module.__dict__)  # noqa: S102 (our own output)
    return module.__dict__
