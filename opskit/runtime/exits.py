"""Waiting for a process on this host to exit without polling: Linux pidfds.

A pidfd (``pidfd_open``, Linux 5.3+) becomes readable the moment its process exits, so a
waiter sleeps in one ``poll()`` and wakes within a millisecond of the exit — no thread asking
every few milliseconds (200 services stopping at once were CPU-bound on exactly that). Where
the kernel has no pidfds, :func:`pidfd` says None and callers poll as before.
"""

from __future__ import annotations

import os
import select


def pidfd(pid: int) -> int | None:
    """A pidfd for ``pid``, or None (gone already, not visible, or no pidfd support)."""
    opener = getattr(os, "pidfd_open", None)
    if opener is None:
        return None
    try:
        return opener(pid)
    except OSError:
        return None


def wait_exit(fd: int, timeout: float) -> bool:
    """Block until the pidfd's process exits (True) or ``timeout`` seconds pass (False)."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(max(0.0, timeout) * 1000))
