"""One lock per stack for every mutating operation, so two cron runs never overlap.

``flock`` on ``<state_dir>/lock``: the kernel drops it when the holder dies, so a crashed run
never leaves a stale lock behind. The holder writes its pid and operation into the file so
that a second caller can say who is busy.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from opskit.errors import LockBusyError
from opskit.files import private_dir


@contextlib.contextmanager
def stack_lock(state_dir: Path, operation: str, wait: float = 10.0) -> Iterator[None]:
    """Hold the stack lock for ``operation``; wait up to ``wait`` seconds, then fail clearly."""
    private_dir(state_dir)
    path = state_dir / "lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = _read_holder(fd)
                    raise LockBusyError(
                        f"another opskit operation holds {path}{holder}; "
                        f"waited {wait:g}s — try again when it has finished"
                    ) from None
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {operation}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the flock


def _read_holder(fd: int) -> str:
    try:
        text = os.pread(fd, 200, 0).decode(errors="replace").strip()
    except OSError:
        return ""
    pid, _, operation = text.partition(" ")
    return f" (pid {pid}, {operation})" if pid else ""
