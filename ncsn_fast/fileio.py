"""Atomic writes: a temp file in the target's folder, then a rename, so a reader never sees half a file; durable
ones are fsynced (the file, then its folder) so that what they record survives a power loss."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def atomic_write(path: str | Path, write: Callable[[BinaryIO], object], durable: bool = False) -> None:
    """Call write(f) on a temp file beside `path`, then rename it onto `path`; on any error remove it. durable:
    fsync the file before the rename and the folder after it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if durable:
        fsync_folder(path.parent)


def atomic_write_bytes(path: str | Path, data: bytes, durable: bool = False) -> None:
    atomic_write(path, lambda f: f.write(data), durable)


def fsync_folder(folder: str | Path) -> None:
    """Make the folder's entries (created, renamed files) durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_filesystem(folder: str | Path) -> None:
    """Flush everything written to the file system holding `folder` (syncfs(2) on Linux, else sync(2)): one call
    makes a shard's many PNGs durable before the record that counts them is written."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(folder, os.O_RDONLY)
        try:
            if libc.syncfs(fd) == 0:
                return
        finally:
            os.close(fd)
    except (OSError, AttributeError):
        pass
    os.sync()
