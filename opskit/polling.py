"""The one polling loop: observe until an answer comes or the deadline passes.

testcontainers' wait strategies taught the shape: a strategy is *what* to observe; *how* to
wait (first poll soon, back off, never sleep past the deadline) is written once, here. Every
wait in opskit — a unit to stop, a service to become ready, a save to finish — goes through
:func:`poll_until`, so the backoff and deadline rules cannot drift apart.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

FIRST_POLL = 0.005
BACKOFF = 1.5
MAX_POLL = 0.025


def poll_until(
    observe: Callable[[], T | None],
    deadline: float,
    *,
    first: float = FIRST_POLL,
    cap: float = MAX_POLL,
    sleep: Callable[[float], None] = time.sleep,
) -> T | None:
    """Call ``observe`` until it returns something other than None, or ``deadline`` passes.

    ``deadline`` is a :func:`time.monotonic` instant. ``observe`` runs at least once, even
    when the deadline has already passed. Returns the first non-None observation, or None on
    timeout. The interval starts at ``first`` and grows by half each time up to ``cap``: a
    service that is ready within milliseconds is seen within milliseconds, and a slow one costs
    at most one poll every ``cap`` seconds.
    """
    interval = first
    while True:
        answer = observe()
        if answer is not None:
            return answer
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        sleep(min(interval, remaining))
        interval = min(interval * BACKOFF, cap)


def deadline_in(seconds: float) -> float:
    """The monotonic instant ``seconds`` from now."""
    return time.monotonic() + seconds
