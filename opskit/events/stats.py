"""What a run of ``inv events`` saw: counts per pattern, processing-time percentiles, and how
much of the traffic the events cover (the plugin publishes for every request with a body; a
sampling publisher, as planned upstream, would publish a fraction)."""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from opskit.events.model import patterns_of, processing_ms

RESERVOIR = 10_000  # processing times kept for percentiles (uniform sample beyond that)


@dataclass
class EventStats:
    began: float = field(default_factory=time.monotonic)
    events: int = 0
    messages: int = 0
    batched_messages: int = 0  # messages that carried more than one event
    failed: int = 0  # events with success=false
    malformed: int = 0
    reconnects: int = 0
    patterns: Counter[str] = field(default_factory=Counter)
    _times: list[float] = field(default_factory=list)
    _seen_times: int = 0

    def add_message(self, events: list[dict[str, Any]]) -> None:
        self.messages += 1
        if len(events) > 1:
            self.batched_messages += 1
        for event in events:
            self.add(event)

    def add(self, event: dict[str, Any]) -> None:
        self.events += 1
        if event.get("success") is False:
            self.failed += 1
        self.patterns.update(patterns_of(event))
        ms = processing_ms(event)
        if ms is not None:
            self._seen_times += 1
            if len(self._times) < RESERVOIR:
                self._times.append(ms)
            else:  # reservoir sampling keeps percentiles honest on long runs
                slot = random.randrange(self._seen_times)
                if slot < RESERVOIR:
                    self._times[slot] = ms

    def percentile(self, q: float) -> float | None:
        if not self._times:
            return None
        ordered = sorted(self._times)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def sampling_rate(self, requests: int | None) -> float | None:
        """Events per request to the masked path in the same window (1.0: every request)."""
        if not requests:
            return None
        return min(1.0, self.events / requests)

    def summary(self, requests: int | None = None) -> dict[str, Any]:
        seconds = max(time.monotonic() - self.began, 1e-9)
        percentiles = {f"p{int(q * 100)}": self.percentile(q) for q in (0.5, 0.95, 0.99)}
        return {
            "events": self.events,
            "messages": self.messages,
            "batched_messages": self.batched_messages,
            "failed": self.failed,
            "malformed": self.malformed,
            "reconnects": self.reconnects,
            "seconds": round(seconds, 3),
            "events_per_second": round(self.events / seconds, 1),
            "patterns": dict(self.patterns.most_common()),
            "processing_ms": percentiles,
            "requests_to_masked_path": requests,
            "sampling_rate_estimate": self.sampling_rate(requests),
        }


class LinePacer:
    """At most ``per_second`` lines a second; what is held back is counted, not queued."""

    def __init__(self, per_second: float):
        self.per_second = per_second
        self._window = time.monotonic()
        self._printed = 0
        self.suppressed = 0
        self.suppressed_total = 0

    def allow(self) -> bool:
        now = time.monotonic()
        if now - self._window >= 1.0:
            self._window, self._printed = now, 0
        if self._printed < self.per_second:
            self._printed += 1
            return True
        self.suppressed += 1
        self.suppressed_total += 1
        return False

    def take_suppressed(self) -> int:
        """How many were held back since the last call (for a "… N more" line)."""
        count, self.suppressed = self.suppressed, 0
        return count
