"""What a spec may ask for.  Each limit gives a located error (see README, "Limits")."""

MAX_NODES = 200_000
"""Layers one spec may produce."""
MAX_CALL_DEPTH = 64
"""How deep block calls may nest."""
MAX_REPEAT = 100_000
"""Largest ``repeat`` count, and longest list."""
MAX_SOURCE_BYTES = 10_000_000
"""Largest spec file."""
MAX_ERRORS = 20
"""Errors reported in one run."""
