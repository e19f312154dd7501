"""What a spec may ask for.  Each limit gives a located error (see README, "Limits")."""

from __future__ import annotations

from ..errors import CnnDslError, Location

MAX_NODES = 200_000
"""Layers one spec may produce."""
MAX_CALL_DEPTH = 64
"""How deep block calls may nest."""
MAX_REPEAT = 100_000
"""Largest ``repeat`` count, and the most items a list may hold (counting the items of the
lists in it)."""
MAX_STEPS = 1_000_000
"""The elaborator's work for one spec: statements and chain items run, loop iterations,
block calls, operators evaluated and list items built (a few seconds at most)."""
CALL_STEPS = 5
"""The steps a block call counts (binding its arguments and making its frame cost about
five statements)."""
MAX_SOURCE_BYTES = 10_000_000
"""Largest spec file."""
MAX_ERRORS = 20
"""Errors reported in one run."""


class Work:
    """The steps one load has taken so far (see MAX_STEPS), shared by its scopes."""

    __slots__ = ("steps", "limit")

    def __init__(self, limit: int | None = None) -> None:
        self.steps = 0
        self.limit = MAX_STEPS if limit is None else limit

    @property
    def exhausted(self) -> bool:
        return self.steps > self.limit

    def charge(self, steps: int, loc: Location) -> None:
        """Count ``steps`` more steps, taken at ``loc``; refuse to go past the limit."""
        self.steps += steps
        if self.steps > self.limit:
            raise CnnDslError(
                f"the spec takes more than {self.limit:,} steps to elaborate",
                loc,
                hint="loops and block calls multiply: a loop in a loop runs its body"
                " count x count times, even when the body makes no layer",
            )
