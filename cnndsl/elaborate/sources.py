"""Reading specs: UTF-8 text, never devices, pipes or more than the size limit, and never a
read that can block (a file is opened non-blocking and checked on its descriptor).  Standard
input is read as a file is."""

from __future__ import annotations

import errno
import os
import stat
import sys
from pathlib import Path
from typing import BinaryIO

from ..errors import CnnDslError, Location, split_lines
from .limits import MAX_SOURCE_BYTES

STDIN = "<stdin>"
"""The name standard input goes by in messages and locations."""

_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)


def read_source(source: Path | BinaryIO, at: Location | None = None) -> str:
    """Read a spec as UTF-8 text, from a file or from a binary stream (standard input), with
    clear errors for missing, binary, huge or non-UTF-8 input.

    A stream is read as a file is: at most the size limit, then checked and decoded the same
    way.  A byte-order mark is dropped.  ``at`` locates the error when a file is read for an
    ``import``.  A file is opened without blocking (a FIFO, a terminal or ``/proc/kmsg``
    cannot stall the read) and must be a regular file by its open descriptor, not only by its
    name.
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
    return decode(data, shown, at)


def read_stream(stream: BinaryIO) -> str:
    """Read a spec from a stream (standard input) with a file's checks."""
    return read_source(stream)


def read_stdin() -> str:
    """Standard input, read as a file is."""
    return read_source(sys.stdin.buffer)


def decode(data: bytes, shown: str, at: Location | None) -> str:
    """Spec text from bytes: within the size limit, not binary, UTF-8 (a BOM is dropped)."""
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
    """At most one byte more than the size limit of a regular file, read without blocking."""
    shown = str(path)
    try:
        fd = os.open(path, _FLAGS)
    except FileNotFoundError:
        raise CnnDslError(f"no such file: {shown}", at) from None
    except IsADirectoryError:
        raise CnnDslError(f"{shown} is a directory, not a .cnn file", at) from None
    except OSError as e:
        raise CnnDslError(f"cannot read {shown}: {e.strerror}", at) from None
    except ValueError:  # a NUL character: the operating system takes no such name
        message = f"no such file: {shown} (a file name cannot hold a NUL character)"
        raise CnnDslError(message, at) from None
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
    return b"".join(chunks)


def _position(data: bytes, offset: int) -> tuple[int, int]:
    """The line and column (in bytes) of a byte of the data, lines as a spec's lines."""
    lines = split_lines(data[: offset + 1].decode("latin-1"))  # one character per byte
    return len(lines), len(lines[-1])
