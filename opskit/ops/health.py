"""Health: every check of every selected service, concurrently, each within its own timeout.

For each service: its runtime state (running, pid, uptime, restarts, memory, CPU) and, when it
runs, its role's checks (redis PING with auth, Kong readiness, nginx -t, …). For a full run also
the host (load, memory, free disk of the state and backup directories), and with ``e2e`` the
end-to-end masking check. One :class:`~opskit.report.Report` comes back; nothing is printed.

All checks start at once on a thread pool. A check still running after ``check_timeout`` is
reported UNKNOWN and abandoned; the whole run returns by ``deadline`` whatever happens.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from opskit.durations import parse_duration
from opskit.errors import ConfigError
from opskit.redact import Redactor
from opskit.report import CRITICAL, OK, UNKNOWN, WARNING, CheckResult, Report
from opskit.runtime import host
from opskit.services.base import Check
from opskit.stack import Stack

HOST = "host"


@dataclass(frozen=True)
class HealthSettings:
    """``x-opskit.health`` of the stack file (percentages are of capacity used)."""

    check_timeout: float = 5.0
    deadline: float = 30.0
    # 1-minute load per core: 1.0 is every core busy, which is work, not trouble; a queue of
    # two and four runnable tasks per core is where latency suffers (Nagios check_load habits).
    load_warning: float = 2.0
    load_critical: float = 4.0
    memory_warning: float = 90.0
    memory_critical: float = 95.0
    disk_warning: float = 90.0
    disk_critical: float = 95.0

    @classmethod
    def from_stack(cls, stack: Stack) -> HealthSettings:
        raw = stack.config.options.get("health") or {}
        if not isinstance(raw, dict):
            raise ConfigError(stack.config.source, "x-opskit.health", "expected a mapping")
        values = {}
        for key, value in raw.items():
            if key not in cls.__dataclass_fields__:
                known = ", ".join(cls.__dataclass_fields__)
                raise ConfigError(
                    stack.config.source, f"x-opskit.health.{key}", f"unknown key (known: {known})"
                )
            try:
                values[key] = (
                    parse_duration(value)
                    if key in ("check_timeout", "deadline")
                    else (float(value))
                )
            except (TypeError, ValueError) as exc:
                raise ConfigError(stack.config.source, f"x-opskit.health.{key}", str(exc)) from None
        return cls(**values)


@dataclass(frozen=True)
class _Planned:
    service: str
    check: Check


def run_health(
    stack: Stack,
    services: Iterable[str] | None = None,
    *,
    e2e: bool = False,
    fail_secure: bool = False,
    allow_cost: bool = False,
    settings: HealthSettings | None = None,
    concurrent: bool = True,
) -> Report:
    """Check ``services`` (default: all, plus the host). ``concurrent=False`` runs the same
    checks one after another (the benchmark's baseline)."""
    settings = settings or HealthSettings.from_stack(stack)
    selected = stack.resolve(services)
    full_run = not services
    planned: list[_Planned] = []
    results: list[CheckResult] = []
    for name in stack.start_order(selected):
        role = stack.role(name)
        status = role.unit.status()
        results.append(_runtime_result(name, role, status))
        if status.running:
            planned.extend(_Planned(name, check) for check in role.health_checks())
    if full_run:
        planned.extend(_Planned(HOST, check) for check in _host_checks(stack, settings))
    if e2e:
        from opskit.ops.e2e import masking_checks

        planned.append(
            _Planned(
                "e2e",
                Check(
                    "masking",
                    lambda: masking_checks(stack, fail_secure=fail_secure, allow_cost=allow_cost),
                ),
            )
        )
    results.extend(_run(planned, settings, concurrent))
    redact = Redactor(stack.secrets())
    for result in results:
        result.detail = redact(result.detail)
    order = {name: index for index, name in enumerate([*stack.start_order(), HOST, "e2e"])}
    results.sort(key=lambda r: order.get(r.service, len(order)))
    return Report(target=stack.name, checks=results)


def _run(planned: list[_Planned], settings: HealthSettings, concurrent: bool) -> list[CheckResult]:
    """One worker per service, its checks in turn; services (and the host, e2e) in parallel.

    One thread per *check* was slower: the stand-ins and nginx each serve from one event loop,
    so a burst of simultaneous requests to one server only queues there, and the extra threads
    fight for the GIL. Per-service workers overlap what really waits — different servers,
    ``nginx -t``, Redis — without that contention.
    """
    if not planned:
        return []
    if not concurrent:
        return [result for item in planned for result in _timed(item)]
    groups: dict[str, list[_Planned]] = {}
    for item in planned:
        groups.setdefault(item.service, []).append(item)
    lanes = list(groups.values())
    pool = ThreadPoolExecutor(max_workers=len(lanes), thread_name_prefix="opskit-health")
    began = time.perf_counter()
    finished: dict[int, list[CheckResult]] = {index: [] for index in range(len(lanes))}
    futures = [pool.submit(_run_lane, lane, finished[index]) for index, lane in enumerate(lanes)]
    wait(futures, timeout=min(settings.check_timeout, settings.deadline))
    pool.shutdown(wait=False, cancel_futures=True)
    results: list[CheckResult] = []
    for index, lane in enumerate(lanes):
        done = list(finished[index])  # a copy: an abandoned lane may still append later
        results.extend(done)
        reported = {result.name for result in done}
        for item in lane[len(done) :]:
            if item.check.name in reported:
                continue
            elapsed = round((time.perf_counter() - began) * 1000, 1)
            detail = f"no answer within {settings.check_timeout:g}s (check abandoned)"
            results.append(CheckResult(item.check.name, item.service, UNKNOWN, detail, elapsed))
    return results


def _run_lane(lane: list[_Planned], sink: list[CheckResult]) -> None:
    for item in lane:
        sink.extend(_timed(item))


def _timed(item: _Planned) -> list[CheckResult]:
    began = time.perf_counter()
    try:
        outcome = item.check.run()
    except Exception as exc:  # a check's own bug must not take the whole report down
        outcome = (UNKNOWN, f"check failed: {type(exc).__name__}: {exc}")
    elapsed = round((time.perf_counter() - began) * 1000, 1)
    if isinstance(outcome, list):  # a multi-step check (e2e) reports its own steps
        return outcome
    status, detail = outcome
    return [CheckResult(item.check.name, item.service, status, detail, elapsed)]


def _runtime_result(name: str, role, status) -> CheckResult:
    began = time.perf_counter()
    if status.running:
        parts = [f"running, pid {status.pid}"]
        uptime = status.uptime(time.time())
        if uptime is not None:
            parts.append(f"up {uptime:.0f}s")
        if status.restarts is not None:
            parts.append(f"{status.restarts} restarts")
        stats = role.unit.stats()
        if stats is not None:
            parts.append(f"{stats.rss_bytes / 2**20:.0f} MiB, {stats.cpu_percent:.1f}% CPU avg")
        state, detail = OK, ", ".join(parts)
    elif status.state == "exited":
        code = "?" if status.exit_code is None else status.exit_code
        state, detail = CRITICAL, f"not running: exited({code})"
    else:
        state, detail = CRITICAL, "not running (absent)"
    elapsed = round((time.perf_counter() - began) * 1000, 1)
    return CheckResult("process", name, state, detail, elapsed)


def _host_checks(stack: Stack, settings: HealthSettings) -> list[Check]:
    def threshold(value: float, warning: float, critical: float) -> str:
        return CRITICAL if value >= critical else WARNING if value >= warning else OK

    def load() -> tuple[str, str]:
        value = host.load_per_core()
        return threshold(value, settings.load_warning, settings.load_critical), (
            f"1-minute load {value:.2f} per core"
        )

    def memory() -> tuple[str, str]:
        value = host.memory_used_percent()
        return threshold(value, settings.memory_warning, settings.memory_critical), (
            f"{value:.0f}% of memory used"
        )

    def disk(label: str, path: Path) -> Callable[[], tuple[str, str]]:
        def run() -> tuple[str, str]:
            usage = host.disk_usage(path)
            status = threshold(usage.used_percent, settings.disk_warning, settings.disk_critical)
            free = usage.free_bytes / 2**30
            return status, f"{label} {path}: {usage.used_percent:.0f}% used, {free:.1f} GiB free"

        return run

    backups = stack.config.options.get("backups") or {}
    backup_dir = Path(str(backups.get("dir", "backups")))
    if not backup_dir.is_absolute():
        backup_dir = stack.config.project_dir / backup_dir
    return [
        Check("load", load),
        Check("memory", memory),
        Check("disk_state", disk("state dir", stack.state_dir)),
        Check("disk_backups", disk("backups dir", backup_dir)),
    ]
