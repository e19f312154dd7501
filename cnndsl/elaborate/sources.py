"""Reading spec files: UTF-8 text, never devices, pipes or more than the size limit, and
never a read that can block (a file is opened non-blocking and checked on its descriptor)."""

from __future__ import annotations

import errno
import os
import stat
import sys
from pathlib import Path
from typing import BinaryIO

from ..errors import CnnDslError, Location
from .limits import MAX_SOURCE_BYTES

_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)


def read_source(path: Path, at: Location | None = None) -> str:
    """Read a spec file as UTF-8 text, with clear errors for missing, binary or huge files.

    ``at`` locates the error when the file is read for an ``import``.  The file is opened
    without blocking (a FIFO, a terminal or ``/proc/kmsg`` cannot stall the read) and must
    be a regular file by its open descriptor, not only by its name.
    """
    shown = str(path)
    try:
        fd = os.open(path, _FLAGS)
    except FileNotFoundError:
        raise CnnDslError(f"no such file: {shown}", at) from None
    except IsADirectoryError:
        raise CnnDslError(f"{shown} is a directory, not a .cnn file", at) from None
    except OSError as e:
        raise CnnDslError(f"cannot read {shown}: {e.strerror}", at) from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise CnnDslError(f"{shown} is a directory, not a .cnn file", at)
        if not stat.S_ISREG(mode):  # a device, a pipe, a socket: never read those
            raise CnnDslError(f"{shown} is not a regular file", at)
        chunks = []
        size = 0
        while size <= MAX_SOURCE_BYTES:
            chunk = os.read(fd, MAX_SOURCE_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except BlockingIOError:
        raise CnnDslError(f"cannot read {shown}: reading it would wait", at) from None
    except OSError as e:
        if e.errno == errno.EISDIR:
            raise CnnDslError(f"{shown} is a directory, not a .cnn file", at) from None
        raise CnnDslError(f"cannot read {shown}: {e.strerror}", at) from None
    finally:
        os.close(fd)
    return decode(b"".join(chunks), shown, at)


def read_stream(stream: BinaryIO, shown: str = "<stdin>") -> str:
    """Read a spec from a stream (standard input) with a file's checks: the size limit
    (read no further than it), no binary data, UTF-8 with or without a BOM."""
    return decode(stream.read(MAX_SOURCE_BYTES + 1), shown, None)


def read_stdin() -> str:
    return read_stream(sys.stdin.buffer)


def decode(data: bytes, shown: str, at: Location | None) -> str:
    """Spec text from bytes: within the size limit, not binary, UTF-8 (a BOM is dropped)."""
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
