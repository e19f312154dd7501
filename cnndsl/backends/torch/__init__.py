"""The PyTorch back end: ``to_source(net) -> str`` and ``build(net) -> torch.nn.Module``.

One lowering, two products (as ``torch.fx`` does it): the network is lowered to the source of a
standalone Python module that imports only torch, and :func:`build` executes that source.  So
the live model and the file ``cnndsl compile --target torch`` writes are one model by
construction.  The lowering is the shared core's (:mod:`cnndsl.backends.codegen`); this package
says what each layer kind becomes in PyTorch (:mod:`.generator`), which operations may run in
place (:mod:`.inplace`), and defines the helper modules PyTorch lacks (:mod:`.runtime`:
``SeparableConv2d``, ``ExcludePadAvgPool2d``), whose text generated files copy.  Generating the
source needs only the IR: :func:`to_source` and :func:`module_paths` never import torch.

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

from collections.abc import Callable
from typing import Any

from ...ir import Network
from ..codegen.generator import execute
from .generator import TorchGenerator

HANDLERS = TorchGenerator.HANDLERS
UNSUPPORTED = TorchGenerator.UNSUPPORTED

__all__ = ["HANDLERS", "UNSUPPORTED", "TorchGenerator", "build", "module_paths", "to_source"]


def to_source(net: Network, *, taps: bool = False) -> str:
    """The source of a standalone Python module defining the network as an ``nn.Module``.

    The module imports only torch.  It defines one class per block (or per structural variant
    of a block), the network's class, and ``build_model()``.  With ``taps``, every node's value
    is also passed to a module-level ``_tap(module, name, value)`` (a no-op that :func:`build`
    replaces): a debugging aid, not for deployment.  Needs no torch.
    Raises :class:`~cnndsl.CnnDslError` for a layer PyTorch cannot express.
    """
    return TorchGenerator(net, taps).source()


def build(net: Network, *, tap: Callable[[str, Any], None] | None = None):
    """The network as a live ``torch.nn.Module`` taking NCHW inputs.

    Several inputs are ``forward``'s arguments in declaration order; several outputs come back
    as a tuple in ``net.outputs`` order.  ``tap(node_name, tensor)``, when given, is called
    with every node's value during each forward pass (node names as in the IR).
    """
    import torch  # noqa: F401  (the framework first: a missing one is an ImportError here)

    gen = TorchGenerator(net, taps=tap is not None)
    namespace = execute(gen.source(), net.name)
    model = namespace["build_model"]()
    if tap is not None:
        nodes = {id(model.get_submodule(path)): locals_ for path, locals_ in gen.tap_names()}
        namespace["_tap"] = lambda module, name, value: tap(nodes[id(module)][name], value)
    model._cnndsl_network = net  # read by torchvision_map.load_torchvision
    return model


def module_paths(net: Network) -> dict[str, str]:
    """For each node that owns a sub-module, that module's path in the model
    (``block1_conv_1`` -> ``block1.conv_1``); its parameters are ``<path>.weight`` etc."""
    return TorchGenerator(net).module_paths()
