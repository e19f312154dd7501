"""How the suite tells linear work from quadratic: one rule for every scaling test.

A scaling test runs the same work at two sizes and bounds the ratio of the times.  On a shared
machine, wall time measures the other processes too, and even processor time moves with them
(caches, frequency): a linear parser once measured 30x for 10x the text in wall time, a linear
DOT writer 5.2x for 4x the layers in processor time under a load of 8.  So every scaling test
measures the same way (:func:`cpu_seconds`: the least processor time of a few runs, with the
garbage collector off, so that a collection in one run and none in the other is not counted),
and bounds the ratio halfway, on a logarithmic scale, between what linear and quadratic work
take (:func:`linear_bound`: 8 for 4 times the size, where linear is 4 and quadratic 16) — a
quadratic implementation still fails every time, a linear one is not failed by noise.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable


def cpu_seconds(work: Callable[[], object], repeat: int = 3) -> float:
    """The least processor time of ``repeat`` runs of ``work``, with the garbage collector off
    while each runs."""
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        gc.disable()
        try:
            start = time.process_time()
            work()
            best = min(best, time.process_time() - start)
        finally:
            gc.enable()
    return best


def linear_bound(factor: float) -> float:
    """The largest ratio of times a linear implementation may show for ``factor`` times the
    size: factor ** 1.5, the geometric mean of linear (factor) and quadratic (factor ** 2).
    """
    return factor**1.5


def assert_linear(
    small: Callable[[], object],
    large: Callable[[], object],
    factor: float,
    what: str = "",
) -> None:
    """Fail unless ``large`` (``factor`` times the size of ``small``) takes at most
    :func:`linear_bound` times as long.  A quadratic cost fails every try; a linear one gets
    three tries, since one measurement in a busy moment can still exceed the bound."""
    bound = linear_bound(factor)
    for _ in range(3):
        ratio = cpu_seconds(large) / max(cpu_seconds(small), 1e-9)
        if ratio <= bound:
            return
    raise AssertionError(
        f"{ratio:.1f} times as long for {factor:g} times the size (at most {bound:.1f}){what}"
    )
