"""Masking events: a subscription to the masking store's channel that outlives Redis restarts.

The store is found by capability (:class:`MaskingStore`: Redis). A subscription that breaks
(Redis restarted, killed, failed over) is made again with backoff — 0.1 s doubling to 5 s —
and counted; messages published while no subscription existed are lost, as pub/sub loses them
for every subscriber, so the count says how many gaps there were. ``inv events`` and the
masking counters of ``inv metrics --serve`` both read through :func:`subscribe`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

from opskit.errors import OpskitError, UsageError
from opskit.events.model import EventFormatError, parse_message
from opskit.ops.engine import capable
from opskit.services.capabilities import MaskingStore, TrafficReporting
from opskit.stack import Stack
from opskit.vocabulary import Environment

BACKOFF_FIRST = 0.1
BACKOFF_MAX = 5.0
POLL = 0.2  # how long one wait for a message may block: the stop flag is seen this often


class Message:
    """One pub/sub message: its events, or why it was not one."""

    __slots__ = ("error", "events")

    def __init__(self, events: list[dict[str, Any]], error: str | None = None):
        self.events, self.error = events, error


def masking_store(stack: Stack) -> str:
    names = capable(stack, MaskingStore)
    if not names:
        raise OpskitError("no service of this stack holds the masking maps (a redis role)")
    return names[0]


def check_show_original(stack: Stack, show_original: bool) -> None:
    if show_original and stack.config.environment is Environment.PRODUCTION:
        raise UsageError(
            f"{stack.config.source}: --show-original is refused for a production stack "
            "(x-opskit.environment is production or unset): the events carry unmasked text"
        )


def subscribe(
    stack: Stack,
    channel: str | None = None,
    *,
    stop: threading.Event,
    on_reconnect: Callable[[str], None] = lambda _reason: None,
    on_subscribed: Callable[[], None] = lambda: None,
) -> Iterator[Message]:
    """Messages from the masking channel until ``stop`` is set, resubscribing after failures."""
    import redis

    store: Any = stack.role(masking_store(stack))
    delay = BACKOFF_FIRST
    while not stop.is_set():
        try:
            with store.events(channel) as pubsub:
                on_subscribed()
                delay = BACKOFF_FIRST
                while not stop.is_set():
                    message = pubsub.get_message(timeout=POLL)
                    if message is None or message.get("type") != "message":
                        continue
                    try:
                        yield Message(parse_message(message["data"]))
                    except EventFormatError as exc:
                        yield Message([], str(exc))
        except redis.AuthenticationError as exc:  # a ConnectionError too: waiting cannot help
            raise OpskitError(f"{store.spec.name}: authentication failed ({exc})") from None
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            on_reconnect(f"{type(exc).__name__}: {exc}")
        if stop.wait(delay):
            return
        delay = min(delay * 2, BACKOFF_MAX)


def masked_requests_since(stack: Stack, since: float) -> int | None:
    """Requests the entry point served to the masked path since ``since`` (its access log),
    the denominator of the sampling estimate; None where no role can say."""
    from opskit.services.capabilities import MaskingGateway

    entries = capable(stack, TrafficReporting)
    gateways = capable(stack, MaskingGateway)
    if not entries or not gateways:
        return None
    path = stack.role(gateways[0]).masked_path
    try:
        return stack.role(entries[0]).traffic_since(since, path).to_path
    except OpskitError:
        return None
