"""The scaling rule of tests/scaling.py tells quadratic work from linear work."""

from __future__ import annotations

import pytest
from scaling import assert_linear, linear_bound


def pairs(n: int) -> int:
    """Quadratic work: every pair of n items."""
    return sum(1 for i in range(n) for j in range(n) if i < j)


def items(n: int) -> int:
    """Linear work: every item, as many steps as ``pairs`` takes for 1,000 items."""
    return sum(1 for _ in range(n * 500))


def test_the_bound_lies_halfway_between_linear_and_quadratic():
    assert linear_bound(4) == 8
    assert 10 < linear_bound(10) < 100


def test_quadratic_work_fails_and_linear_work_passes():
    assert_linear(lambda: items(300), lambda: items(1200), 4)
    with pytest.raises(AssertionError, match="times as long for 4 times the size"):
        assert_linear(lambda: pairs(300), lambda: pairs(1200), 4)
