"""Metrics: one health pass and each role's own numbers, as Prometheus samples.

Per scrape at most one health pass runs (:class:`CachedGather`: scrapes within
``x-opskit.metrics.cache_ttl`` share it, concurrent ones wait for the same pass). What the
samples say:

- per service: is its unit running (``opskit_service_up``), does the operator want it running
  (``opskit_service_wanted_up``, 0 after ``inv stop``: alerts stay quiet for maintenance),
  restarts, each health check's status and duration;
- per role (:class:`MetricReporting`): Redis memory, clients, saves, the plugin's keys per kind
  and ids created; nginx stub_status; Kong connections and readiness;
- what opskit remembers: recovery (gave up, restarts in the window), the last backup attempt
  and the newest complete backup;
- with a subscription running (``--serve``), the masking events it counted.

Names follow Prometheus conventions (docs/practices/naming.md): ``opskit_`` prefix, base units,
``_total`` for counters, ``_timestamp_seconds`` for times.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from opskit.backup.attempts import last_attempt
from opskit.errors import OpskitError
from opskit.logs.requests import Counts
from opskit.ops.health import run_health
from opskit.recovery.intent import wanted_stopped
from opskit.recovery.state import RecoveryState, RestartBudget
from opskit.services.capabilities import MetricReporting, MetricValue, RequestLogReading
from opskit.stack import Stack
from opskit.vocabulary import CheckStatus, MetricType

COUNTER = MetricType.COUNTER
#: the plugin masks in well under a millisecond to a few; Redis round trips add the rest
PROCESSING_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
_STATUS_CODE = {
    CheckStatus.OK: 0.0,
    CheckStatus.WARNING: 1.0,
    CheckStatus.CRITICAL: 2.0,
    CheckStatus.UNKNOWN: 3.0,
}


@dataclass
class EventCounts:
    """Masking events a subscription counted since it started (``--serve`` only)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    by_result: Counter[str] = field(default_factory=lambda: Counter(success=0, failure=0))
    by_pattern: Counter[str] = field(default_factory=Counter)
    #: processing seconds of the events each pattern took part in (the plugin times a whole
    #: request, not one pattern: a pattern's histogram is that of the requests it matched in)
    timing: dict[str, Counts] = field(default_factory=dict)
    subscribed: bool = False

    def add(self, events: list[dict]) -> None:
        from opskit.events.model import patterns_of, processing_ms

        with self.lock:
            for event in events:
                self.by_result["failure" if event.get("success") is False else "success"] += 1
                patterns = patterns_of(event)
                self.by_pattern.update(patterns)
                ms = processing_ms(event)
                if ms is None:
                    continue
                for pattern in patterns or {"none": 0}:
                    self.timing.setdefault(pattern, Counts(PROCESSING_BUCKETS)).add(ms / 1000)

    def values(self) -> list[MetricValue]:
        with self.lock:
            return [
                MetricValue(
                    "masking_events_subscribed",
                    "1 while opskit is subscribed to the masking events channel.",
                    1.0 if self.subscribed else 0.0,
                ),
                *(
                    MetricValue(
                        "masking_events_total",
                        "Masking events received, by result (the plugin's success field).",
                        float(count),
                        COUNTER,
                        (("result", result),),
                    )
                    for result, count in sorted(self.by_result.items())
                ),
                *(
                    MetricValue(
                        "masking_patterns_total",
                        "AWS ids masked, by the plugin's pattern name (from its events).",
                        float(count),
                        COUNTER,
                        (("pattern", pattern),),
                    )
                    for pattern, count in sorted(self.by_pattern.items())
                ),
                *(
                    MetricValue(
                        "masking_processing_seconds",
                        "The plugin's processing time of the requests each pattern matched in "
                        "(pattern none: requests with nothing to mask).",
                        counts.seconds,
                        MetricType.HISTOGRAM,
                        (("pattern", pattern),),
                        counts.cumulative(),
                    )
                    for pattern, counts in sorted(self.timing.items())
                ),
            ]


def gather(stack: Stack, events: EventCounts | None = None) -> list[MetricValue]:
    """Every sample, from one health pass and one round of role metrics (run side by side,
    each bounded by the health settings' ``check_timeout``)."""
    began = time.monotonic()
    role_values: dict[str, list[MetricValue]] = {}
    threads = []
    for name in stack.start_order():
        role = stack.role(name)
        if isinstance(role, MetricReporting):
            thread = threading.Thread(
                target=lambda n=name, r=role: role_values.__setitem__(n, r.metric_values()),
                daemon=True,
            )
            thread.start()
            threads.append(thread)
    report = run_health(stack)
    deadline = began + stack.config.health.check_timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    values = _service_values(stack)
    values.extend(_check_values(report))
    for name, samples in list(role_values.items()):
        values.extend(_with_service(sample, name) for sample in samples)
    values.extend(_recovery_values(stack))
    values.extend(_backup_values(stack))
    values.extend(_request_values(stack))
    values.extend(_incident_values(stack))
    values.extend(_host_values(stack))
    if events is not None:
        values.extend(events.values())
    values.append(
        MetricValue(
            "metrics_gather_duration_seconds",
            "How long the last gathering of these metrics took.",
            time.monotonic() - began,
        )
    )
    return values


class CachedGather:
    """:func:`gather` at most once per ``ttl`` seconds; concurrent callers share one pass."""

    def __init__(self, stack: Stack, ttl: float, events: EventCounts | None = None):
        self.stack, self.ttl, self.events = stack, ttl, events
        self._lock = threading.Lock()
        self._at = float("-inf")
        self._values: list[MetricValue] = []

    def __call__(self) -> list[MetricValue]:
        with self._lock:
            if time.monotonic() - self._at >= self.ttl:
                self._values = gather(self.stack, None)
                self._at = time.monotonic()
            values = list(self._values)
        if self.events is not None:  # counters are live, not cached
            values.extend(self.events.values())
        return values


def _with_service(sample: MetricValue, service: str) -> MetricValue:
    return MetricValue(
        sample.name, sample.help, sample.value, sample.type, (("service", service), *sample.labels)
    )


def _service_values(stack: Stack) -> list[MetricValue]:
    stopped = wanted_stopped(stack.state_dir)
    values = []
    for name in stack.start_order():
        status = stack.role(name).unit.status()
        labels = (("service", name),)
        values.append(
            MetricValue(
                "service_up",
                "1 when the service's unit is running.",
                float(status.running),
                labels=labels,
            )
        )
        values.append(
            MetricValue(
                "service_wanted_up",
                "0 when an operator stopped the service on purpose (inv stop), else 1.",
                0.0 if name in stopped else 1.0,
                labels=labels,
            )
        )
        if status.restarts is not None:
            values.append(
                MetricValue(
                    "service_restarts_total",
                    "Restarts of the service's unit the runtime counted.",
                    float(status.restarts),
                    COUNTER,
                    labels,
                )
            )
        stats = stack.role(name).unit.stats() if status.running else None
        if stats is not None:
            values.append(
                MetricValue(
                    "service_memory_bytes",
                    "Resident memory of the service's processes.",
                    float(stats.rss_bytes),
                    labels=labels,
                )
            )
            if stats.cpu_seconds is not None:
                values.append(
                    MetricValue(
                        "service_cpu_seconds_total",
                        "CPU time the service's live processes used (rate(): cores in use).",
                        stats.cpu_seconds,
                        COUNTER,
                        labels,
                    )
                )
        if status.running and status.started_at:
            values.append(
                MetricValue(
                    "service_start_time_seconds",
                    "When the service's unit started (epoch seconds).",
                    status.started_at,
                    labels=labels,
                )
            )
    return values


def _check_values(report) -> list[MetricValue]:
    values = []
    for check in report.checks:
        labels = (("service", check.service), ("check", check.name))
        values.append(
            MetricValue(
                "health_check_ok",
                "1 when the health check passed (OK).",
                float(check.status is CheckStatus.OK),
                labels=labels,
            )
        )
        values.append(
            MetricValue(
                "health_check_status",
                "The check's Nagios state: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.",
                _STATUS_CODE[check.status],
                labels=labels,
            )
        )
        values.append(
            MetricValue(
                "health_check_duration_seconds",
                "How long the health check took.",
                check.duration_ms / 1000.0,
                labels=labels,
            )
        )
    return values


def _request_values(stack: Stack) -> list[MetricValue]:
    """Requests read from the access logs since the last gather (bounded per service), added
    to the counts kept in the state dir (:mod:`opskit.logs.requests`)."""
    from opskit.logs.requests import RequestCounts

    readers = [
        (name, role)
        for name in stack.start_order()
        if isinstance(role := stack.role(name), RequestLogReading)
    ]
    if not readers:
        return []
    with RequestCounts(stack.state_dir).updating() as counts:
        for name, role in readers:
            with contextlib.suppress(OpskitError, OSError):
                counts.read(name, role)
    return counts.values()


def _host_values(stack: Stack) -> list[MetricValue]:
    """The machine the stack runs on: what its health checks judge, as numbers."""
    from opskit.runtime import host

    values = [
        MetricValue("host_load_per_core", "1-minute load average per core.", host.load_per_core()),
        MetricValue(
            "host_memory_used_ratio",
            "Memory in use (total − available) / total.",
            host.memory_used_percent() / 100,
        ),
    ]
    backups = stack.config.backups_dir or stack.config.project_dir / "backups"
    for label, path in (("state", stack.state_dir), ("backups", backups)):
        usage = host.disk_usage(path)
        values.append(
            MetricValue(
                "host_disk_used_ratio",
                "Used share of the filesystem holding the state or the backups folder.",
                usage.used_percent / 100,
                labels=(("dir", label),),
            )
        )
    for device, (received, sent) in sorted(host.network_bytes().items()):
        for direction, verb, count in (
            ("receive", "received", received),
            ("transmit", "sent", sent),
        ):
            values.append(
                MetricValue(
                    f"host_network_{direction}_bytes_total",
                    f"Bytes the host's network device {verb} since boot (loopback left out).",
                    float(count),
                    COUNTER,
                    (("device", device),),
                )
            )
    return values


def _incident_values(stack: Stack) -> list[MetricValue]:
    """Every kind, 0 until seen: the alert's ``increase()`` needs the series to exist."""
    from opskit.incidents import incident_counts
    from opskit.vocabulary import SecurityIncident

    counts = incident_counts(stack.state_dir)
    return [
        MetricValue(
            "security_incidents_total",
            "Masking failures opskit saw that may have let an AWS id out, by kind.",
            float(counts.get(kind.value, 0)),
            COUNTER,
            (("kind", kind.value),),
        )
        for kind in SecurityIncident
    ]


def _recovery_values(stack: Stack) -> list[MetricValue]:
    settings = stack.config.recover
    state = RecoveryState(stack.state_dir)
    budget = RestartBudget(settings.max_restarts, settings.window)
    now = time.time()
    values = []
    for name in stack.start_order():
        record = state.services.get(name)
        labels = (("service", name),)
        gave_up = record is not None and record.gave_up_at is not None
        values.append(
            MetricValue(
                "recover_gave_up",
                "1 when inv recover spent its restart budget on the service and gave up.",
                float(gave_up),
                labels=labels,
            )
        )
        used = budget.used(record.attempts, now) if record else 0
        values.append(
            MetricValue(
                "recover_restarts_in_window",
                "Restarts inv recover made within its budget window.",
                float(used),
                labels=labels,
            )
        )
    if state.path.exists():
        values.append(
            MetricValue(
                "recover_last_pass_timestamp_seconds",
                "When inv recover last wrote its state (epoch seconds).",
                state.path.stat().st_mtime,
            )
        )
    return values


def _backup_values(stack: Stack) -> list[MetricValue]:
    if stack.config.backups_dir is None:
        return []
    from opskit.backup.store import BackupStore
    from opskit.vocabulary import BackupState

    values = []
    attempt = last_attempt(stack.state_dir)
    if attempt is not None:
        values.append(
            MetricValue(
                "backup_last_attempt_ok", "1 when the last inv backup succeeded.", float(attempt.ok)
            )
        )
        values.append(
            MetricValue(
                "backup_last_attempt_timestamp_seconds",
                "When the last inv backup ended, successful or not (epoch seconds).",
                attempt.at,
            )
        )
    complete = [
        e
        for e in BackupStore(stack.config.backups_dir).entries()
        if e.state is BackupState.COMPLETE
    ]
    newest = complete[-1] if complete else None
    values.append(
        MetricValue(
            "backup_last_success_timestamp_seconds",
            "When the newest complete backup was taken (epoch seconds; 0: none exists).",
            newest.created if newest else 0.0,
        )
    )
    values.append(
        MetricValue(
            "backup_last_size_bytes",
            "Stored size of the newest complete backup.",
            float(newest.size) if newest else 0.0,
        )
    )
    values.append(MetricValue("backups", "Complete backups kept.", float(len(complete))))
    return values + _drill_values(stack) + _copy_values(stack)


def _copy_values(stack: Stack) -> list[MetricValue]:
    """Per copy (label ``copy``), from what the last copies recorded: no repository is asked."""
    from opskit.backup.copies import CopyRecord, read_records

    settings = stack.config.backups_copies
    if settings is None or not settings.copies:
        return []
    records = read_records(stack.state_dir)
    values = []
    for spec in settings.copies:
        record = records.get(spec.name, CopyRecord())
        labels = (("copy", spec.name),)
        for name, text, value in (
            (
                "backup_copy_last_success_timestamp_seconds",
                "When a backup last reached this copy (epoch seconds; 0: never).",
                record.last_success,
            ),
            ("backup_copy_last_ok", "1 when the last copy attempt worked.", float(record.last_ok)),
            (
                "backup_copy_last_size_bytes",
                "Stored size of the backup last sent to this copy.",
                float(record.last_size),
            ),
            (
                "backup_copy_last_added_bytes",
                "What the copy stored for it after deduplication.",
                float(record.last_added),
            ),
            (
                "backup_copy_pending",
                "Backups this copy is owed (a failed copy, retried next time).",
                float(len(record.pending)),
            ),
            (
                "backup_copy_max_age_seconds",
                "x-opskit.backups.copy_max_age: OpskitBackupCopyTooOld fires past it.",
                settings.max_age,
            ),
        ):
            values.append(MetricValue(name, text, value, labels=labels))
    return values


def _drill_values(stack: Stack) -> list[MetricValue]:
    """What the last ``inv backup.drill`` found (nothing until one ran)."""
    from opskit.backup.drills import last_drill

    drilled = last_drill(stack.state_dir)
    if drilled is None:  # 0: the drill-age alert fires until a drill has passed
        return [
            MetricValue(
                "backup_drill_last_success_timestamp_seconds",
                "When a restore drill last passed (epoch seconds; 0: none has).",
                0.0,
            )
        ]
    values = [
        MetricValue(
            "backup_drill_last_ok", "1 when the last restore drill passed.", float(drilled.ok)
        ),
        MetricValue(
            "backup_drill_last_timestamp_seconds",
            "When the last restore drill ended, passed or not (epoch seconds).",
            drilled.at,
        ),
        MetricValue(
            "backup_drill_last_duration_seconds",
            "How long the last restore drill took.",
            drilled.seconds,
        ),
    ]
    values.append(
        MetricValue(
            "backup_drill_last_success_timestamp_seconds",
            "When a restore drill last passed (epoch seconds; 0: none has).",
            drilled.last_success or 0.0,
        )
    )
    if drilled.keys is not None:
        values.append(
            MetricValue(
                "backup_drill_keys",
                "Keys the last drill's throwaway Redis held.",
                float(drilled.keys),
            )
        )
    return values
