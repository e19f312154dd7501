"""The layers of a model as a graph of *units* in one vocabulary, and the structural matching
of two such graphs.

One network can be written in many ways that compute the same function: a cnndsl spec (its IR),
the Keras model cnndsl compiles from it, keras.applications' own model.  Their layer names
differ, and so do their spellings: SAME padding against a ZeroPadding2D before a VALID
convolution, an activation fused into a convolution against an Activation layer after it, a
depthwise convolution against a Conv2D with as many groups as channels, keras.applications'
``ReLU(6.0)(x + 3.0) * (1.0 / 6.0)`` against a hard sigmoid.  :func:`keras_graph` and
:func:`network_graph` reduce a Keras functional model and a cnndsl network to the same
vocabulary, where such spellings become one unit.

The units, and their settings (what changes the function, beyond the shapes):

- ``input``;
- ``conv``: kernel, strides, dilation, pads (the padding the windows actually use, ((top,
  bottom), (left, right)): SAME, VALID, explicit padding and a zero padding layer before it all
  resolve to this), groups, bias;
- ``dwconv``: kernel, strides, dilation, pads, multiplier, bias (also a Conv2D with as many
  groups as input channels); ``sepconv``: the same;
- ``convtranspose``: kernel, strides, dilation, padding, output_padding, bias;
- ``dense``: units, bias (on a vector, or on every position of a map: ``pointwise``);
- ``activation``: function, alpha (``relu``, ``relu6``, ``leakyrelu``, ``silu``, ``gelu``,
  ``hardsigmoid``, ``hardswish``, ``softmax`` ...; a fused activation is a unit of its own
  after its layer);
- ``batchnorm``: epsilon, momentum, center, scale; ``layernorm``: epsilon, center, scale;
- ``normalization``: mean, variance (None when they are weights);
- ``rescaling``: scale, offset (also ``x + c``, ``x * c`` and InceptionResNetV2's scale);
- ``layerscale``: init;
- ``maxpool``: kernel, strides, pads (padded cells never win: -inf padding, or zero padding of
  a non-negative input); ``avgpool``: kernel, strides, pads, ceil_mode, count_pad (whether
  padded cells count);
- ``globalavgpool``, ``globalmaxpool``: keepdims; ``adaptiveavgpool``: output_size;
  ``depthmaxpool``: pool; ``lrn``: radius, alpha, beta, bias;
- ``zeropad``: pads; ``crop``: cropping (a zero padding that only feeds a convolution is
  folded into it);
- ``flatten``, ``reshape`` (its output shape says it all), ``upsample`` (size,
  interpolation), ``split`` (parts, part), ``shuffle`` (groups);
- ``dropout``: rate; ``stochasticdepth``: rate, mode (Keras's Dropout with noise_shape
  (None, 1, 1, 1) is one);
- ``add``, ``multiply``, ``concat``: the merges.

Layers that are the identity at inference and have no weights -- ``identity``, a linear
activation, dropout and stochastic depth of rate 0 -- are no units: their readers read their
input.  A reshape between a vector and a 1x1 map that only feeds a ``multiply`` (which
broadcasts either) is none either.

Each unit also has its output shape and its parameter counts (trainable, non-trainable), which
take part in the matching.

**Matching** (:func:`match`): a unit's *signature* is its kind, settings, output shape,
parameter counts and the signatures of its inputs -- as a multiset for ``add``, ``multiply``
and ``concat``, whose branches may come in any order.  Two graphs describe the same network
when their outputs have equal signatures.  Then the units are paired by a walk back from the
outputs: a unit's inputs are paired in order, a merge's by signature (branches with equal
signatures compute the same function of the same tensor, either pairing holds).  When the
signatures differ, the first unit of the other graph (in its topological order) that has no
counterpart is the divergence, reported with the layers ours has in its place and how they
differ (or the layer ours ends with there); where the other's all have counterparts, ours' first
unit without one, with what the other has in its place: the message names a layer of each.

The package, in the order of the pipeline:

    units.py          Unit, Graph, Matching, and the builder the two readers share
    from_keras.py     keras_graph(model): a Keras functional model's units, one handler per
                      Keras layer class (KERAS_HANDLERS)
    from_network.py   network_graph(net): a cnndsl network's units, one handler per IR kind
                      (NETWORK_HANDLERS); no framework is imported
    simplify.py       the spellings of one function folded into one unit; padding normalized
    match.py          signatures, the pairing, and the message naming the first divergence
"""

from __future__ import annotations

from .from_keras import KERAS_HANDLERS, keras_graph
from .from_network import NETWORK_HANDLERS, network_graph
from .match import match
from .units import Graph, Matching, Unit

__all__ = [
    "KERAS_HANDLERS",
    "NETWORK_HANDLERS",
    "Graph",
    "Matching",
    "Unit",
    "keras_graph",
    "match",
    "network_graph",
]
