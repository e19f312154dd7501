"""Reading specs: UTF-8 text, never devices, pipes or more than the size limit."""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

from ..errors import CnnDslError, Location, split_lines
from .limits import MAX_SOURCE_BYTES

STDIN = "<stdin>"
"""The name standard input goes by in messages and locations."""


def read_source(source: Path | BinaryIO, at: Location | None = None) -> str:
    """Read a spec as UTF-8 text, from a file or from a binary stream (standard input), with
    clear errors for missing, binary, huge or non-UTF-8 input.

    A stream is read as a file is: at most the size limit, then checked and decoded the same
    way.  A byte-order mark is dropped.  ``at`` locates the error when a file is read for an
    ``import``.
    """
    if isinstance(source, Path):
        shown = str(source)
        data = _read_file(source, at)
    else:
        shown = STDIN
        try:
            data = source.read(MAX_SOURCE_BYTES + 1)
        except OSError as e:
            raise CnnDslError(f"cannot read {shown}: {e.strerror}", at) from None
    if len(data) > MAX_SOURCE_BYTES:
        raise CnnDslError(
            f"{shown} is larger than {MAX_SOURCE_BYTES:,} bytes", at or Location(shown, 1, 1)
        )
    if b"\x00" in data:
        line, _ = _position(data, data.index(b"\x00"))
        raise CnnDslError(
            f"{shown} is a binary file, not a .cnn spec", at or Location(shown, line, 1)
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line, col = _position(data, e.start)
        raise CnnDslError(
            f"{shown} is not UTF-8 text (byte 0x{data[e.start]:02x})",
            Location(shown, line, col),
            hint="save the file as UTF-8",
        ) from None


def _read_file(path: Path, at: Location | None) -> bytes:
    """At most one byte more than the size limit of a regular file."""
    shown = str(path)
    try:
        if path.is_dir():
            raise CnnDslError(f"{shown} is a directory, not a .cnn file", at)
        if path.exists() and not path.is_file():  # a device, a pipe: never read those
            raise CnnDslError(f"{shown} is not a regular file", at)
        with path.open("rb") as f:
            return f.read(MAX_SOURCE_BYTES + 1)
    except FileNotFoundError:
        raise CnnDslError(f"no such file: {shown}", at) from None
    except OSError as e:
        raise CnnDslError(f"cannot read {shown}: {e.strerror}", at) from None


def _position(data: bytes, offset: int) -> tuple[int, int]:
    """The line and column (in bytes) of a byte of the data, lines as a spec's lines."""
    lines = split_lines(data[: offset + 1].decode("latin-1"))  # one character per byte
    return len(lines), len(lines[-1])
