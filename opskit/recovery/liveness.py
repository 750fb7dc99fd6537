"""The watcher's cheap liveness check: learn that a unit's main process died the moment it
dies, without polling anything while all is well.

Linux gives a *pidfd* for a process (``pidfd_open``, 5.3+) that becomes readable when the
process exits; :class:`ExitWatch` polls them all plus a wake-up pipe (for SIGTERM/SIGINT), so
an idle watcher sleeps in one ``poll()`` and a ``kill -9`` is seen within a millisecond — not
an interval later. A unit whose process is not on this host (a remote Docker Engine) or a
kernel without pidfds falls back to asking the runtime every :data:`FALLBACK_POLL` seconds.
"""

from __future__ import annotations

import contextlib
import os
import select
import time
from collections.abc import Callable

from opskit.runtime.exits import pidfd

#: How often units without a pidfd are asked whether they still run.
FALLBACK_POLL = 0.2


class ExitWatch:
    """pidfds of the running units, a wake-up pipe, and one ``poll()``."""

    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)
        self._pidfds: dict[int, str] = {}
        self._fallback: list[str] = []

    def wake(self) -> None:
        """End the current :meth:`wait` now (safe from a signal handler or a thread)."""
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._write, b"!")

    def arm(self, pids: dict[str, int | None]) -> None:
        """Watch these units' processes (a None pid: watch through the fallback)."""
        self._close_pidfds()
        self._fallback = []
        for name, pid in pids.items():
            fd = pidfd(pid) if pid else None
            if fd is None:
                self._fallback.append(name)
            else:
                self._pidfds[fd] = name

    @property
    def fallback(self) -> list[str]:
        return list(self._fallback)

    def wait(self, timeout: float, still_running: Callable[[str], bool]) -> list[str]:
        """Block until a watched process exits, :meth:`wake`, or ``timeout`` seconds; return
        the units seen to have exited (empty on timeout or wake-up)."""
        poller = select.poll()
        poller.register(self._read, select.POLLIN)
        for fd in self._pidfds:
            poller.register(fd, select.POLLIN)
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            step = min(remaining, FALLBACK_POLL) if self._fallback else remaining
            ready = poller.poll(step * 1000)
            if any(fd == self._read for fd, _ in ready):
                with contextlib.suppress(BlockingIOError):
                    os.read(self._read, 4096)
                return []
            exited = [self._pidfds[fd] for fd, _ in ready if fd in self._pidfds]
            exited += [name for name in self._fallback if not still_running(name)]
            if exited:
                return exited

    def close(self) -> None:
        self._close_pidfds()
        for fd in (self._read, self._write):
            with contextlib.suppress(OSError):
                os.close(fd)

    def _close_pidfds(self) -> None:
        for fd in self._pidfds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._pidfds = {}

    def __enter__(self) -> ExitWatch:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
