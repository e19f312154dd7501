"""Models that return logits: the network without the softmax (or sigmoid) its outputs end in.

A spec's classifier ends as the paper draws it, in a softmax (``dense 10 softmax``); training
wants the scores before it, as torchvision's and timm's models return them, for
``F.cross_entropy`` (or Keras's ``from_logits=True``), which apply the softmax themselves, in a
numerically stable way.  :func:`logits` is that network: every output that ends in a softmax or
a sigmoid ends before it, and nothing else changes (the same layers, names and parameters, so
weights load into either model).  ``cnndsl compile --logits``, ``net.to_torch(logits=True)``,
``net.to_keras(logits=True)`` and ``net.to_source(target, logits=True)`` compile it.
"""

from __future__ import annotations

from ..ir import Network

FINAL = ("softmax", "sigmoid")
"""The activations an output's logits are taken before."""


def logits(net: Network) -> Network:
    """``net`` with each output's final softmax or sigmoid left out: a layer's ``activation=``
    becomes linear (``dense 10 softmax`` -> ``dense 10``), a ``softmax`` layer is removed and the
    output is the tensor it read.  Raises a located :class:`CnnDslError` when no output ends in
    one, or when removing one would make one tensor two outputs."""
    from ..analysis import layer_error

    removed: dict[str, str] = {}  # a removed softmax node -> the node it read
    changed: dict[str, object] = {}  # a node whose activation= is dropped -> its new version
    for name in net.outputs:
        layer = net[name]
        if layer.kind == "activation" and layer.function in FINAL:
            source = layer.inputs[0]
            if source in net.outputs or source in removed.values():
                raise layer_error(
                    net, layer,
                    f"the logits of output '{name}' are '{source}', which is an output already",
                    hint="list the logits as an output and leave the softmax out of the spec",
                )
            removed[name] = source
        elif getattr(layer, "activation", None) in FINAL:
            changed[name] = layer.model_copy(update={"activation": "linear"})
    if not removed and not changed:
        first = net[net.outputs[0]]
        listed = ", ".join(f"'{n}'" for n in net.outputs)
        raise layer_error(
            net, first,
            f"no output of '{net.name}' ends in a softmax or a sigmoid ({listed}): it gives"
            " logits already",
        )
    users = net.consumers()
    for name in removed:
        if users[name]:  # an output read by other layers too: they read the probabilities
            raise layer_error(
                net, net[name],
                f"output '{name}' is read by '{users[name][0]}' too: its softmax cannot be left out",
            )
    layers = [changed.get(l.name, l) for l in net.layers if l.name not in removed]
    result = Network(
        name=net.name,
        layers=layers,
        outputs=[removed.get(n, n) for n in net.outputs],
        training_outputs=[removed.get(n, n) for n in net.training_outputs],
    )
    result._sources = net._sources
    return result


__all__ = ["FINAL", "logits"]
