"""A run owns its folder: an exclusive lock for `generate` and `train`, so that two runs never write one folder.

The lock is `<folder>/.ncsn-fast.lock`, held with flock(2) for as long as the run lives; the file names the owner
(host, pid, command, start) and is removed when the run ends. The kernel releases the flock when the process ends
however it ends (kill -9 included), so a lock file that is there but can be flocked is stale: the run that left it
is gone, and it is taken over with a note naming that run. A second live run gets one line naming the owner and
touches nothing.
"""

from __future__ import annotations

import datetime
import json
import os
import socket
import sys
from pathlib import Path

from .errors import NcsnError

LOCK_NAME = ".ncsn-fast.lock"


class RunLock:
    """`with RunLock(folder):` the folder is this run's; NcsnError if another live run holds it."""

    def __init__(self, folder: str | Path, what: str = "run"):
        self.folder, self.what = Path(folder), what
        self.path = self.folder / LOCK_NAME
        self.fd: int | None = None
        self.stale: dict | None = None  # the owner a stale lock named, if one was taken over

    def __enter__(self) -> RunLock:
        import fcntl
        self.folder.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                owner = _describe(_read(fd))
                os.close(fd)
                raise NcsnError(f"{self.folder} is in use by another {self.what} ({owner}); wait for it to end, "
                                f"or choose another folder") from None
            try:  # the file may have been removed by its owner's release between our open and our flock
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        previous = _read(fd)
        self.stale = previous or None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"host": socket.gethostname(), "pid": os.getpid(),
                                 "started": datetime.datetime.now().isoformat(timespec="seconds"),
                                 "command": " ".join(sys.argv)}).encode())
        os.fsync(fd)
        self.fd = fd
        if self.stale:
            print(f"ncsn-fast: note: {self.folder} had a stale lock of a {self.what} that ended without "
                  f"releasing it ({_describe(self.stale)}); taken over", file=sys.stderr)
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            try:
                self.path.unlink(missing_ok=True)  # released cleanly: no lock file is left
            finally:
                os.close(self.fd)  # closing releases the flock
                self.fd = None


def _read(fd: int) -> dict:
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 1 << 16).decode(errors="replace")
    try:
        data = json.loads(text) if text.strip() else {}
    except ValueError:
        data = {"unreadable": text[:80]}
    return data if isinstance(data, dict) else {}


def _describe(owner: dict) -> str:
    if not owner:
        return "owner unknown"
    if "unreadable" in owner:
        return "its lock file is unreadable"
    return (f"pid {owner.get('pid')} on {owner.get('host')}, started {owner.get('started')}: "
            f"{owner.get('command', '?')}")
