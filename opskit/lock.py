"""One lock per stack for every mutating operation, so two cron runs never overlap.

``flock`` on ``<state_dir>/lock``: the kernel drops it when the holder dies, so a crashed run
never leaves a stale lock behind. The holder writes its pid and operation into the file so
that a second caller can say who is busy.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from opskit.errors import LockBusyError
from opskit.files import private_dir
from opskit.polling import deadline_in, poll_until


@contextlib.contextmanager
def stack_lock(state_dir: Path, operation: str, wait: float = 10.0) -> Iterator[None]:
    """Hold the stack lock for ``operation``; wait up to ``wait`` seconds, then fail clearly."""
    private_dir(state_dir)
    path = state_dir / "lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if not poll_until(lambda: _try_lock(fd), deadline_in(wait), first=0.01, cap=0.05):
            raise LockBusyError(
                f"another opskit operation holds {path}{_read_holder(fd)}; "
                f"waited {wait:g}s — try again when it has finished"
            )
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {operation}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the flock


def _try_lock(fd: int) -> bool | None:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return None
    return True


def _read_holder(fd: int) -> str:
    try:
        text = os.pread(fd, 200, 0).decode(errors="replace").strip()
    except OSError:
        return ""
    pid, _, operation = text.partition(" ")
    return f" (pid {pid}, {operation})" if pid else ""
