"""Weights of torchvision models (or any PyTorch model of the same layers) into cnndsl models.

:func:`load_torchvision` copies the parameters and batch-norm statistics of a torchvision model
into a model built by :func:`cnndsl.backends.torch.build` (or by the ``build_model()`` of the
generated source) for a spec of the same architecture, so that both compute the same function.
"""

from __future__ import annotations

from typing import Any

from ..ir import Network

__all__ = ["load_torchvision"]

# Nodes between a flatten and the dense layer that reads it that leave the feature order alone.
_ORDER_KEEPING = ("dropout", "activation")


def load_torchvision(model, source, net: Network | None = None) -> dict[str, str]:
    """Load the weights of ``source`` (a torchvision ``nn.Module`` or its ``state_dict()``)
    into ``model``; returns {our key: torchvision's key}.

    How names are mapped: not by name (cnndsl's follow the spec: ``block1.conv_1.weight``;
    torchvision's follow its code: ``features.0.weight``) but by order, checked by shape.

    - Both models are reduced to the sequence of their modules that own tensors (convolutions,
      linear layers, batch norms), each with its tensors' names and shapes (``weight``,
      ``bias``, ``running_mean``, ``running_var``; ``num_batches_tracked`` is copied along but
      not compared).
    - The sequence is the order in which ``forward`` runs those modules, recorded with forward
      pre-hooks on one pass of a zero input of the spec's input shape (in eval mode, without
      gradients, training flags restored).  cnndsl registers modules in forward order; the
      forward order undoes torchvision's different registration orders (a ResNet's
      ``downsample`` is registered after ``bn3`` but may run before it in a spec that writes
      the shortcut branch first), and it leaves out modules forward never runs (GoogLeNet's
      auxiliary heads in eval mode).  For a state dict, or when the pass fails, the
      registration order is used.
    - The two sequences must have the same length and, module by module, the same tensor names
      and shapes; the first difference raises ``ValueError`` naming both modules.
    - One reordering is explicit: cnndsl flattens feature maps in Keras's (H, W, C) order,
      torchvision in (C, H, W) order, so the columns of the first linear layer after the
      flatten of a map larger than 1x1 (AlexNet's and VGG's classifier) are permuted
      accordingly.  This needs the network: ``net``, or the one :func:`build` attached to the
      model.
    """
    import torch

    net = net if net is not None else getattr(model, "_cnndsl_network", None)
    if net is None:
        raise ValueError("pass net=: the model was not made by cnndsl.backends.torch.build")
    shape = net.inputs[0].shape if len(net.inputs) == 1 else None
    ours = _modules(model, shape)
    if isinstance(source, torch.nn.Module):
        theirs = _modules(source, shape)
    else:
        theirs = _state_dict_modules(source)
    if len(ours) != len(theirs):
        raise ValueError(
            f"the models have {len(ours)} and {len(theirs)} modules with weights"
            f" ({_listing(ours)} / {_listing(theirs)})"
        )
    permuted = _flatten_permutations(net)
    mapping: dict[str, str] = {}
    with torch.no_grad():
        for (our_path, our_tensors), (their_path, their_tensors) in zip(ours, theirs):
            if _signature(our_tensors) != _signature(their_tensors):
                raise ValueError(
                    f"module {our_path or '(root)'} {_signature(our_tensors)} does not match"
                    f" torchvision's {their_path or '(root)'} {_signature(their_tensors)}"
                )
            for name, tensor in our_tensors.items():
                if name not in their_tensors:
                    continue
                key = _join(our_path, name)
                value = their_tensors[name]
                if key in permuted:
                    value = _chw_to_hwc_columns(value, permuted[key])
                tensor.copy_(value)
                mapping[key] = _join(their_path, name)
    return mapping


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _listing(modules) -> str:
    return ", ".join(path or "(root)" for path, _ in modules[:3]) + (
        ", ..." if len(modules) > 3 else ""
    )


def _signature(tensors: dict[str, Any]) -> list[tuple[str, tuple[int, ...]]]:
    return [(k, tuple(v.shape)) for k, v in tensors.items() if k != "num_batches_tracked"]


def _own_tensors(module) -> dict[str, Any]:
    tensors = {k: v for k, v in module._parameters.items() if v is not None}
    tensors.update(
        (k, v)
        for k, v in module._buffers.items()
        if v is not None and k not in module._non_persistent_buffers_set
    )
    return tensors


def _modules(model, shape) -> list[tuple[str, dict[str, Any]]]:
    """(path, {name: tensor}) of the modules owning tensors, in the order forward runs them."""
    owners = [(path, m) for path, m in model.named_modules() if _own_tensors(m)]
    order = _forward_order(model, [m for _, m in owners], shape)
    if order is not None:
        paths = {id(m): path for path, m in owners}
        owners = [(paths[id(m)], m) for m in order]
    return [(path, _own_tensors(m)) for path, m in owners]


def _forward_order(model, modules, shape):
    """The modules in the order of their first call during one forward pass, or None."""
    import torch

    if shape is None or len(shape) != 3:
        return None
    order, seen = [], set()

    def record(module, args):
        if id(module) not in seen:
            seen.add(id(module))
            order.append(module)

    handles = [m.register_forward_pre_hook(record) for m in modules]
    modes = {id(m): m.training for m in model.modules()}
    try:
        model.eval()
        parameter = next(model.parameters(), None)
        dtype = parameter.dtype if parameter is not None else torch.float32
        device = parameter.device if parameter is not None else None
        h, w, c = shape
        with torch.no_grad():
            model(torch.zeros(1, c, h, w, dtype=dtype, device=device))
    except Exception:  # a model that cannot run on this input: fall back to registration order
        return None
    finally:
        for handle in handles:
            handle.remove()
        for m in model.modules():
            m.training = modes[id(m)]
    return order


def _state_dict_modules(state_dict) -> list[tuple[str, dict[str, Any]]]:
    groups: dict[str, dict[str, Any]] = {}
    for key, value in state_dict.items():
        path, _, name = key.rpartition(".")
        groups.setdefault(path, {})[name] = value
    return list(groups.items())


def _flatten_permutations(net: Network) -> dict[str, tuple[int, int, int]]:
    """{weight key of a dense layer reading a flattened H x W x C map (H*W > 1): (H, W, C)}."""
    from .torch import module_paths

    paths = module_paths(net)
    shapes = net.analysis
    result = {}
    for layer in net.layers:
        if layer.kind != "dense":
            continue
        source = net[layer.inputs[0]]
        while source.kind in _ORDER_KEEPING:
            source = net[source.inputs[0]]
        if source.kind != "flatten":
            continue
        shape = shapes[source.name].input_shapes[0]
        if len(shape) == 3 and shape[0] * shape[1] > 1:
            result[paths[layer.name] + ".weight"] = shape
    return result


def _chw_to_hwc_columns(weight, shape: tuple[int, int, int]):
    """A dense weight (out, C*H*W) reading (C, H, W)-flattened features, for (H, W, C) ones."""
    h, w, c = shape
    out = weight.shape[0]
    return weight.reshape(out, c, h, w).permute(0, 2, 3, 1).reshape(out, h * w * c)
