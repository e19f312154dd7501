"""Memory, as chapter 14 of Hands-On Machine Learning reasons about it.

- parameters: every parameter (trainable and not) times the size of the dtype;
- inference: a tensor can be freed once every node that reads it has run, so the peak is the
  largest total of tensors alive at one time while the nodes run in order (for a plain stack,
  two consecutive layers), times the batch, plus the parameters;
- training: the backward pass needs everything the forward pass computed, so every node's
  output plus the input, times the batch, plus the parameters.

Activations are counted per node output (a fused activation adds nothing); framework
workspaces, gradients and optimizer state are not counted.
"""

from __future__ import annotations

from dataclasses import dataclass

DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}


@dataclass(frozen=True, slots=True)
class Memory:
    """Bytes needed by a network for one batch."""

    batch_size: int
    dtype: str
    params_bytes: int
    activation_bytes: int
    """Every node's output (and the inputs) for the whole batch: what training keeps."""
    inference_peak_bytes: int
    """Largest set of live tensors at one time, for the batch, plus the parameters."""
    training_bytes: int
    """activation_bytes plus the parameters."""

    def as_dict(self) -> dict:
        return {
            "batch_size": self.batch_size,
            "dtype": self.dtype,
            "params_bytes": self.params_bytes,
            "activation_bytes": self.activation_bytes,
            "inference_peak_bytes": self.inference_peak_bytes,
            "training_bytes": self.training_bytes,
        }


def peak_live_elements(sizes: list[int], last_use: list[int]) -> int:
    """Largest sum of live tensor sizes when node i runs (inputs and its output alive).

    ``last_use[i]`` is the index of the last node reading tensor i (or len(sizes) for outputs).
    Linear time: each tensor is added when produced and removed after its last use.
    """
    free_at: list[int] = [0] * (len(sizes) + 2)
    for i, (last, size) in enumerate(zip(last_use, sizes)):
        free_at[(last if last > i else i) + 1] += size
    live = peak = 0
    for freed, size in zip(free_at, sizes):
        live += size - freed
        if live > peak:
            peak = live
    return peak


def compute(
    params: int,
    sizes: list[int],
    last_use: list[int],
    batch_size: int,
    dtype: str,
    inference_sizes: list[int] | None = None,
) -> Memory:
    """``sizes``: every node's output elements; ``inference_sizes``, when some nodes do not run
    at inference (those only training outputs need), the same with theirs 0."""
    if dtype not in DTYPE_BYTES:
        raise ValueError(f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPE_BYTES)}")
    if batch_size < 1:
        raise ValueError("the batch size must be at least 1")
    b = DTYPE_BYTES[dtype]
    params_bytes = params * b
    activations = sum(sizes) * batch_size * b
    peak = peak_live_elements(inference_sizes or sizes, last_use) * batch_size * b
    return Memory(
        batch_size,
        dtype,
        params_bytes,
        activations,
        peak + params_bytes,
        activations + params_bytes,
    )
