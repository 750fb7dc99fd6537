"""Requests counted from access logs: throughput, latency, error rate and authentication
failures as Prometheus counters and a histogram, kept across scrapes and across runs.

``<state_dir>/request-metrics.json`` holds, per service whose role reads its access log
(:class:`~opskit.services.capabilities.RequestLogReading`), where reading stopped in its
output and the counts so far. Each gather reads only what was written since (bounded: the
unit's ``read_output``), adds it and writes the file back — atomically, under
``request-metrics.lock``, so that a ``--serve`` exporter and a cron ``--textfile`` run never
lose each other's counts. The first gather starts at the end of the log: its cost never
depends on how long the service has run, and counters start at zero as any exporter's do.

Labels stay few: ``route`` is the path's first two segments (``/v1/messages``, ``/analyze``),
at most :data:`MAX_ROUTES` per service and ``other`` after that; ``code`` the status class.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from opskit.files import atomic_write_json, private_dir, read_json
from opskit.runtime.base import OutputCursor
from opskit.services.capabilities import MetricValue, RequestLogReading, RequestRecord
from opskit.vocabulary import MetricType

FILE = "request-metrics.json"
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
MAX_ROUTES = 20
#: What one gather reads of one service's output at most; the rest waits for the next.
READ_LIMIT = 16 << 20
AUTH_FAILURES = (401, 403)


def route_of(path: str) -> str:
    segments = [part for part in path.split("/") if part][:2]
    return "/" + "/".join(segments)


def status_class(status: int) -> str:
    return f"{status // 100}xx" if 100 <= status <= 599 else "other"


@dataclass
class Counts:
    """A histogram of seconds (one route and status class; one masking pattern)."""

    bounds: tuple[float, ...] = BUCKETS
    buckets: list[int] = field(default_factory=list)  # per bound, not cumulative
    count: int = 0
    seconds: float = 0.0

    def __post_init__(self) -> None:
        self.bounds = tuple(self.bounds)
        if len(self.buckets) != len(self.bounds):
            self.buckets = [0] * len(self.bounds)

    def add(self, seconds: float) -> None:
        self.count += 1
        self.seconds += seconds
        for index, bound in enumerate(self.bounds):
            if seconds <= bound:
                self.buckets[index] += 1
                break

    def cumulative(self) -> tuple[tuple[float, float], ...]:
        running, out = 0, []
        for bound, count in zip(self.bounds, self.buckets, strict=True):
            running += count
            out.append((bound, float(running)))
        out.append((float("inf"), float(self.count)))
        return tuple(out)


@dataclass
class ServiceRequests:
    cursor: dict | None = None
    counts: dict[str, Counts] = field(default_factory=dict)  # "route code" → counts
    auth_failures: int = 0
    lines: int = 0  # requests read, over the service's life in this file

    def add(self, record: RequestRecord) -> None:
        route = route_of(record.path)
        routes = self._routes()
        if route not in routes:
            if len(routes) >= MAX_ROUTES:
                route = "other"
            routes.add(route)
        key = f"{route} {status_class(record.status)}"
        self.counts.setdefault(key, Counts()).add(record.seconds)
        self.auth_failures += record.status in AUTH_FAILURES
        self.lines += 1

    def _routes(self) -> set[str]:
        """The routes counted so far (kept beside the counts, not in the file)."""
        routes = self.__dict__.get("_known_routes")
        if routes is None:
            routes = {key.rpartition(" ")[0] for key in self.counts}
            self.__dict__["_known_routes"] = routes
        return routes

    @classmethod
    def from_json(cls, raw: dict) -> ServiceRequests:
        counts = {key: Counts(**value) for key, value in (raw.get("counts") or {}).items()}
        for value in counts.values():
            if value.bounds != BUCKETS:  # another version's buckets: start the counts again
                return cls(raw.get("cursor"))
        return cls(raw.get("cursor"), counts, int(raw.get("auth_failures", 0)), raw.get("lines", 0))


class RequestCounts:
    """The counts of every request-logging service of one stack, read and written as one."""

    def __init__(self, state_dir: Path):
        self.state_dir = state_dir
        self.services: dict[str, ServiceRequests] = {}

    @contextlib.contextmanager
    def updating(self) -> Iterator[RequestCounts]:
        """Load, let the caller add, save — under the file's lock."""
        private_dir(self.state_dir)
        fd = os.open(self.state_dir / "request-metrics.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            raw = read_json(self.state_dir / FILE)
            for name, item in (raw if isinstance(raw, dict) else {}).items():
                with contextlib.suppress(TypeError, ValueError, AttributeError):
                    self.services[name] = ServiceRequests.from_json(item)
            yield self
            atomic_write_json(
                self.state_dir / FILE,
                {name: asdict(service) for name, service in self.services.items()},
                durable=False,  # counters: a crash loses a scrape's worth, never the file
            )
        finally:
            os.close(fd)

    def read(self, name: str, role: RequestLogReading, limit: int = READ_LIMIT) -> None:
        """Add what ``name`` logged since its cursor."""
        service = self.services.setdefault(name, ServiceRequests())
        cursor = OutputCursor(**service.cursor) if service.cursor else None
        records, after = role.request_records(cursor, limit)
        for record in records:
            service.add(record)
        service.cursor = asdict(after)

    def values(self) -> list[MetricValue]:
        samples = []
        for name, service in sorted(self.services.items()):
            for key, counts in sorted(service.counts.items()):
                route, _, code = key.rpartition(" ")
                labels = (("service", name), ("route", route), ("code", code))
                samples.append(
                    MetricValue(
                        "http_request_duration_seconds",
                        "Requests the service logged, by route and status class: seconds "
                        "from first byte read to last byte sent (nginx's request_time).",
                        counts.seconds,
                        MetricType.HISTOGRAM,
                        labels,
                        counts.cumulative(),
                    )
                )
            samples.append(
                MetricValue(
                    "http_auth_failures_total",
                    "Requests answered 401 or 403 (failed authentication or authorization).",
                    float(service.auth_failures),
                    MetricType.COUNTER,
                    (("service", name),),
                )
            )
        return samples
