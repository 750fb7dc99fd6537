"""What ``inv monitor`` shows, sampled cheaply enough to refresh every second.

Per tick: each unit's state and resources (psutil, through the unit), the roles' own numbers
(:class:`MetricReporting`: one Redis INFO, one stub_status, one Kong ``/status``) turned into
rates between ticks. In the background: a health pass every :data:`HEALTH_EVERY` seconds (it
runs ``nginx -t`` and e2e-free probes: too dear for every second), the entry point's JSON
access log followed for request latencies over :data:`WINDOW` seconds, and a subscription to
the masking events for their rate and the latest few (redacted). Nothing here prints.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from opskit.events.model import redact_event
from opskit.ops.engine import capable
from opskit.ops.health import run_health
from opskit.ops.logs import follow_source, redactor_for
from opskit.services.capabilities import (
    EntryPoint,
    LogSource,
    MetricReporting,
    TrafficReporting,
)
from opskit.stack import Stack
from opskit.vocabulary import CheckStatus

HEALTH_EVERY = 10.0
WINDOW = 60.0
LATEST_EVENTS = 5


@dataclass
class ServiceRow:
    name: str
    state: str
    health: str = "…"
    cpu_percent: float | None = None
    rss_bytes: int | None = None
    rates: dict[str, float] = field(default_factory=dict)  # "req/s", "ops/s"
    memory_bytes: float | None = None  # Redis used_memory


@dataclass
class Frame:
    at: float
    services: list[ServiceRow]
    latency: dict[str, float | None]  # p50/p95/p99 seconds over the window
    requests_in_window: int
    events_per_second: float
    events_subscribed: bool
    latest_events: list[dict]


class Monitor:
    """Samples the stack; :meth:`frame` is cheap, the background threads do the slow parts."""

    def __init__(self, stack: Stack, *, background: bool = True):
        self.stack = stack
        self.stop = threading.Event()
        self._health: dict[str, CheckStatus] = {}
        self._latencies: deque[tuple[float, float]] = deque(maxlen=100_000)
        self._events: deque[float] = deque(maxlen=100_000)
        self._latest: deque[dict] = deque(maxlen=LATEST_EVENTS)
        self._subscribed = False
        self._previous: dict[tuple[str, str], tuple[float, float]] = {}
        self._redact = redactor_for(stack, mask_aws=True)
        if background:
            for target in (self._health_loop, self._latency_loop, self._events_loop):
                threading.Thread(target=target, daemon=True).start()

    def close(self) -> None:
        self.stop.set()

    # -- the frame --------------------------------------------------------------------------------

    def frame(self) -> Frame:
        now = time.time()
        rows = [self._row(name, now) for name in self.stack.start_order()]
        window = [s for t, s in self._latencies if now - t <= WINDOW]
        window.sort()
        latency = {
            f"p{int(q * 100)}": window[min(len(window) - 1, int(q * len(window)))]
            if window
            else None
            for q in (0.5, 0.95, 0.99)
        }
        recent = sum(1 for t in self._events if now - t <= 10.0)
        return Frame(
            now,
            rows,
            latency,
            len(window),
            recent / 10.0,
            self._subscribed,
            list(self._latest),
        )

    def _row(self, name: str, now: float) -> ServiceRow:
        role = self.stack.role(name)
        status = role.unit.status()
        row = ServiceRow(name, status.state.value)
        health = self._health.get(name)
        row.health = health.value if health else ("-" if not status.running else "…")
        if not status.running:
            return row
        stats = role.unit.stats()
        if stats:
            row.cpu_percent, row.rss_bytes = stats.cpu_percent, stats.rss_bytes
        if isinstance(role, MetricReporting):
            for value in role.metric_values():
                if value.name in _RATES:
                    rate = self._rate(name, value.name, value.value, now)
                    if rate is not None:
                        row.rates[_RATES[value.name]] = rate
                elif value.name == "redis_memory_used_bytes":
                    row.memory_bytes = value.value
        return row

    def _rate(self, service: str, name: str, value: float, now: float) -> float | None:
        previous = self._previous.get((service, name))
        self._previous[(service, name)] = (now, value)
        if previous is None or now <= previous[0] or value < previous[1]:
            return None
        return (value - previous[1]) / (now - previous[0])

    # -- background -------------------------------------------------------------------------------

    def refresh_health(self) -> None:
        """One health pass; each service shows its worst check."""
        report = run_health(self.stack)
        worst: dict[str, CheckStatus] = {}
        for check in report.checks:
            current = worst.get(check.service)
            if current is None or check.status.severity > current.severity:
                worst[check.service] = check.status
        self._health = worst

    def _health_loop(self) -> None:
        from opskit.errors import OpskitError

        while not self.stop.is_set():
            with contextlib.suppress(OpskitError, OSError):  # shown as "…" until the next pass
                self.refresh_health()
            self.stop.wait(HEALTH_EVERY)

    def _latency_loop(self) -> None:
        entries = [
            n for n in capable(self.stack, EntryPoint) if n in capable(self.stack, TrafficReporting)
        ]
        if not entries:
            return
        for text in follow_source(self.stack, entries[0], LogSource("output")):
            if self.stop.is_set():
                return
            if not text.startswith("{"):
                continue
            try:
                seconds = float(json.loads(text)["request_time"])
            except (ValueError, KeyError, TypeError):
                continue
            self._latencies.append((time.time(), seconds))

    def _events_loop(self) -> None:
        from opskit.errors import OpskitError
        from opskit.ops.events import subscribe

        def subscribed() -> None:
            self._subscribed = True

        def lost(_reason: str) -> None:
            self._subscribed = False

        try:
            for message in subscribe(
                self.stack, stop=self.stop, on_subscribed=subscribed, on_reconnect=lost
            ):
                now = time.time()
                for event in message.events:
                    self._events.append(now)
                    self._latest.append(redact_event(event, self._redact))
        except OpskitError:
            self._subscribed = False


def _quantile(ordered: list[float], q: float) -> float | None:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else None


_RATES: dict[str, str] = {
    "redis_commands_processed_total": "ops/s",
    "nginx_http_requests_total": "req/s",
    "kong_http_requests_total": "req/s",
}


def describe_event(event: dict[str, Any]) -> str:
    patterns = ",".join(f"{k}×{v}" for k, v in (event.get("patterns_applied") or {}).items())
    ok = "ok" if event.get("success", True) else "FAILED"
    return f"{ok} {str(event.get('request_id', '?'))[:12]} {patterns or '-'}"
