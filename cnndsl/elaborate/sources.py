"""Reading spec files: UTF-8 text, never devices, pipes or more than the size limit."""

from __future__ import annotations

from pathlib import Path

from ..errors import CnnDslError, Location
from .limits import MAX_SOURCE_BYTES


def read_source(path: Path, at: Location | None = None) -> str:
    """Read a spec file as UTF-8 text, with clear errors for missing, binary or huge files.

    ``at`` locates the error when the file is read for an ``import``.
    """
    shown = str(path)
    try:
        if path.is_dir():
            raise CnnDslError(f"{shown} is a directory, not a .cnn file", at)
        if path.exists() and not path.is_file():  # a device, a pipe: never read those
            raise CnnDslError(f"{shown} is not a regular file", at)
        with path.open("rb") as f:
            data = f.read(MAX_SOURCE_BYTES + 1)
    except FileNotFoundError:
        raise CnnDslError(f"no such file: {shown}", at) from None
    except OSError as e:
        raise CnnDslError(f"cannot read {shown}: {e.strerror}", at) from None
    if len(data) > MAX_SOURCE_BYTES:
        raise CnnDslError(
            f"{shown} is larger than {MAX_SOURCE_BYTES:,} bytes", at or Location(shown, 1, 1)
        )
    if b"\x00" in data:
        line = data[: data.index(b"\x00")].count(b"\n") + 1
        raise CnnDslError(
            f"{shown} is a binary file, not a .cnn spec", at or Location(shown, line, 1)
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        col = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise CnnDslError(
            f"{shown} is not UTF-8 text (byte 0x{data[e.start]:02x})",
            Location(shown, line, col),
            hint="save the file as UTF-8",
        ) from None
