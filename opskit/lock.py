"""One lock per stack for every mutating operation, so two cron runs never overlap.

``flock`` on ``<state_dir>/lock``: the kernel drops it when the holder dies, so a crashed run
never leaves a stale lock behind. The holder writes who it is — pid, operation, since when —
into the file, so that a second caller can say at once whom it waits for, and always name the
holder when it gives up.

The record is one fixed-size ``pwrite`` (no truncate-then-write window in which a reader sees
an empty file), and a reader that finds no record, or the record of a process that is gone
(the new holder has the lock but has not written yet), reads again for a moment.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from opskit.errors import LockBusyError
from opskit.files import pid_alive, private_dir
from opskit.polling import deadline_in, poll_until

_RECORD_SIZE = 256
_REREAD = 0.2  # how long a reader waits for a new holder's record

#: Told once, at once, when an operation has to wait for the lock (the CLI prints it; a
#: library caller may set its own). Operations themselves never print.
WaitReporter = Callable[[str], None]
_reporter: WaitReporter | None = None


def report_waits_to(reporter: WaitReporter | None) -> None:
    """Where "waiting for the stack lock" is said (None: nowhere)."""
    global _reporter
    _reporter = reporter


@dataclass(frozen=True)
class Holder:
    pid: int
    operation: str
    since: float | None = None

    def describe(self, now: float | None = None) -> str:
        text = f"pid {self.pid}, {self.operation}"
        if self.since is not None:
            stamp = time.strftime("%H:%M:%SZ", time.gmtime(self.since))
            age = max(0.0, (now or time.time()) - self.since)
            text += f", since {stamp} ({age:.0f}s ago)"
        return text


@contextlib.contextmanager
def stack_lock(
    state_dir: Path, operation: str, wait: float = 10.0, *, file: str = "lock"
) -> Iterator[None]:
    """Hold the stack lock for ``operation``; wait up to ``wait`` seconds, saying at once whom
    it waits for, then fail naming the holder. ``file`` names another lock of the stack (the
    copies' lock, ``copies.lock``: copies run long and must not hold up ``inv recover``)."""
    private_dir(state_dir)
    path = state_dir / file
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if not _try_lock(fd):
            _wait(fd, path, operation, wait)
        record = f"{os.getpid()} {time.time():.3f} {operation}".encode()[: _RECORD_SIZE - 1]
        os.pwrite(fd, record + b"\n" + b" " * (_RECORD_SIZE - len(record) - 1), 0)
        yield
    finally:
        os.close(fd)  # closing releases the flock


def _wait(fd: int, path: Path, operation: str, wait: float) -> None:
    holder = read_holder(fd)
    if _reporter is not None and wait > 0:
        who = holder.describe() if holder else "an opskit operation that has not said who it is"
        what = "the stack lock" if path.name == "lock" else "the lock"
        _reporter(f"{operation}: waiting up to {wait:g}s for {what} {path}: held by {who}")
    if poll_until(lambda: _try_lock(fd), deadline_in(wait), first=0.01, cap=0.05):
        return
    holder = read_holder(fd) or holder
    who = f" ({holder.describe()})" if holder else " (it has not said who it is)"
    raise LockBusyError(
        f"another opskit operation holds {path}{who}; waited {wait:g}s — try again when it "
        "has finished"
    )


def _try_lock(fd: int) -> bool | None:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return None
    return True


def read_holder(fd: int) -> Holder | None:
    """Who holds the lock, read from the file behind ``fd``; None when nobody has said."""

    def current() -> Holder | None:
        holder = _parse(fd)
        return holder if holder is not None and pid_alive(holder.pid) else None

    return poll_until(current, deadline_in(_REREAD)) or _parse(fd)


def _parse(fd: int) -> Holder | None:
    try:
        text = os.pread(fd, _RECORD_SIZE, 0).decode(errors="replace").strip()
    except OSError:
        return None
    pid, _, rest = text.partition(" ")
    if not pid.isdigit():
        return None
    since_text, _, operation = rest.partition(" ")
    try:
        return Holder(int(pid), operation, float(since_text))
    except ValueError:  # a record written before "since" was
        return Holder(int(pid), rest)
