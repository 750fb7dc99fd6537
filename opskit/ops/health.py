"""Health: every check of every selected service, concurrently, each lane within its budget.

For each service: its runtime state (running, pid, uptime, restarts, memory, CPU) and, when it
runs, its role's checks (redis PING with auth, Kong readiness, nginx -t, …). For a full run also
the host (load, memory, free disk of the state and backup directories), and with ``e2e`` the
end-to-end masking check. One :class:`~opskit.report.Report` comes back; nothing is printed.

**Bounded.** Checks run in lanes (one per service) on daemon threads. A lane still running
when its budget ends — ``check_timeout``, or ``e2e_timeout`` for the e2e lane, never more than
``deadline`` — is abandoned: its unfinished checks are reported CRITICAL and the thread is left
to die with the process. A frozen target therefore costs one budget, and ``inv health`` exits
on time whatever a target does (a ThreadPoolExecutor's workers would be joined at exit).

**Verdicts do not depend on the budget.** A target that does not answer within its budget is
CRITICAL, whether the probe's own timeout fired first or the lane was abandoned: with a short
``--timeout`` a frozen gateway must still page (many Nagios setups do not page on UNKNOWN).
UNKNOWN is kept for opskit's own inability to judge: a check's internal error, a check that
could not run because what it needs is missing, bad configuration or usage.

**Impact.** A service whose dependency is failing gets a WARNING naming that dependency and
what it means (the dependency role's ``outage_impact``): with Redis down, Kong's own endpoints
still answer, but every masking request fails. With ``--service kong`` the dependencies are
probed too (readiness only), so the verdict is not OK while Redis is down.

**Observing only.** Health changes nothing. The fail-secure drill, which stops Redis, runs
after the observation as a mutation under the stack lock (:func:`fail_secure_drill`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from opskit.backup.journal import JournalFile
from opskit.config import HealthSettings
from opskit.redact import Redactor
from opskit.report import CheckResult, Report
from opskit.runtime import host
from opskit.services.base import Check
from opskit.stack import Stack
from opskit.vocabulary import CheckStatus, UnitState

HOST = "host"
E2E = "e2e"
RESTORE = "restore"
DEPENDENCY_CHECK = "dependencies"
_FAILING = (CheckStatus.CRITICAL, CheckStatus.UNKNOWN)

__all__ = ["HealthSettings", "run_e2e", "run_health"]


@dataclass(frozen=True)
class _Planned:
    service: str
    check: Check
    reported: bool = True  # False: observed only to judge dependents (``--service kong``)


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
    checks one after another (the benchmark's baseline). ``fail_secure`` adds the drill."""
    settings = settings or stack.config.health
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
    for name in stack.start_order(stack.with_dependencies(selected) - set(selected)):
        planned.append(_Planned(name, Check("readiness", _readiness(stack, name)), False))
    if full_run:
        planned.extend(_Planned(HOST, check) for check in _host_checks(stack, settings))
    if e2e:
        planned.append(_masking(stack, settings, allow_cost))
    pending = JournalFile(stack.state_dir).interrupted()
    if pending is not None:  # the stack is half-restored: no check of a service can say so
        line = pending.describe()
        results.append(CheckResult("interrupted", RESTORE, CheckStatus.CRITICAL, line))
    observed = _run(planned, settings, concurrent)
    hidden = {(item.service, item.check.name) for item in planned if not item.reported}
    results.extend(r for r in observed if (r.service, r.name) not in hidden)
    results.extend(_impacts(stack, selected, [*results, *observed]))
    if fail_secure:
        from opskit.ops.e2e import fail_secure_drill

        results.append(fail_secure_drill(stack, timeout=settings.e2e_timeout))
    redact = Redactor(stack.secrets())
    for result in results:
        result.detail = redact(result.detail)
    order = {name: index for index, name in enumerate([RESTORE, *stack.start_order(), HOST, E2E])}
    results.sort(key=lambda r: order.get(r.service, len(order)))
    return Report(target=stack.name, checks=results)


def run_e2e(
    stack: Stack, *, allow_cost: bool = False, settings: HealthSettings | None = None
) -> list[CheckResult]:
    """The end-to-end masking check alone, bounded by ``e2e_timeout`` as in :func:`run_health`
    (recovery runs it only once every service is healthy)."""
    settings = settings or stack.config.health
    results = _run([_masking(stack, settings, allow_cost)], settings, concurrent=True)
    redact = Redactor(stack.secrets())
    for result in results:
        result.detail = redact(result.detail)
    return results


def _masking(stack: Stack, settings: HealthSettings, allow_cost: bool) -> _Planned:
    from opskit.ops.e2e import masking_checks

    def masking() -> list[CheckResult]:
        return masking_checks(stack, allow_cost=allow_cost, timeout=settings.e2e_timeout)

    return _Planned(E2E, Check("masking", masking))


# -- running checks ---------------------------------------------------------------------------


def _run(planned: list[_Planned], settings: HealthSettings, concurrent: bool) -> list[CheckResult]:
    """One daemon thread per service lane, its checks in turn; lanes in parallel.

    One thread per *check* was slower: the stand-ins and nginx each serve from one event loop,
    so a burst of simultaneous requests to one server only queues there, and the extra threads
    fight for the GIL. Per-service lanes overlap what really waits — different servers,
    ``nginx -t``, Redis — without that contention.
    """
    if not concurrent:
        return [result for item in planned for result in _timed(item)]
    lanes: dict[str, list[_Planned]] = {}
    for item in planned:
        lanes.setdefault(item.service, []).append(item)
    began = time.monotonic()
    sinks: dict[str, list[list[CheckResult]]] = {}
    threads: dict[str, threading.Thread] = {}
    for service, lane in lanes.items():
        sinks[service] = []
        threads[service] = threading.Thread(
            target=_run_lane,
            args=(lane, sinks[service]),
            name=f"opskit-health-{service}",
            daemon=True,  # an abandoned lane must not keep the process alive at exit
        )
        threads[service].start()
    results: list[CheckResult] = []
    for service, lane in lanes.items():
        budget = min(_budget(service, settings), settings.deadline)
        threads[service].join(max(0.0, began + budget - time.monotonic()))
        finished = list(sinks[service])  # a copy: an abandoned lane may still append later
        for outcome in finished:
            results.extend(outcome)
        elapsed = round((time.monotonic() - began) * 1000, 1)
        detail = f"no answer within {budget:g}s (check abandoned)"
        for item in lane[len(finished) :]:
            results.append(
                CheckResult(item.check.name, item.service, CheckStatus.CRITICAL, detail, elapsed)
            )
    return results


def _budget(service: str, settings: HealthSettings) -> float:
    return settings.e2e_timeout if service == E2E else settings.check_timeout


def _run_lane(lane: list[_Planned], sink: list[list[CheckResult]]) -> None:
    for item in lane:
        sink.append(_timed(item))


def _timed(item: _Planned) -> list[CheckResult]:
    began = time.perf_counter()
    try:
        outcome = item.check.run()
    except Exception as exc:  # a check's own bug must not take the whole report down
        outcome = (CheckStatus.UNKNOWN, f"check failed: {type(exc).__name__}: {exc}")
    elapsed = round((time.perf_counter() - began) * 1000, 1)
    if isinstance(outcome, list):  # a multi-step check (e2e) reports its own steps
        return outcome
    status, detail = outcome
    return [CheckResult(item.check.name, item.service, CheckStatus(status), detail, elapsed)]


# -- what a failing dependency means ------------------------------------------------------------


def _readiness(stack: Stack, name: str) -> Callable[[], tuple[CheckStatus, str]]:
    """An unselected dependency's state: running and ready, or why not."""

    def run() -> tuple[CheckStatus, str]:
        role = stack.role(name)
        status = role.unit.status()
        if not status.running:
            return CheckStatus.CRITICAL, f"not running ({status.state.value})"
        probe = role.probe_ready()
        if probe.ready:
            return CheckStatus.OK, probe.detail
        return CheckStatus.CRITICAL, f"not ready: {probe.detail}"

    return run


def _impacts(stack: Stack, selected: list[str], seen: list[CheckResult]) -> list[CheckResult]:
    """A WARNING on each running selected service whose dependency (transitively) fails."""
    failing: dict[str, CheckResult] = {}
    for result in seen:
        if result.status in _FAILING and result.service not in failing:
            failing[result.service] = result
    impacts = []
    running = {r.service for r in seen if r.name == "process" and r.status is CheckStatus.OK}
    for name in stack.start_order(selected):
        if name not in running:
            continue  # its own CRITICAL says enough
        broken = [
            dep for dep in stack.start_order(stack.with_dependencies([name])) if dep in failing
        ]
        broken = [dep for dep in broken if dep != name]
        if not broken:
            continue
        parts = []
        for dep in broken:
            why = failing[dep]
            impact = stack.role(dep).outage_impact
            parts.append(f"{dep} is {why.status.value} ({why.name}: {why.detail}): {impact}")
        impacts.append(
            CheckResult(
                DEPENDENCY_CHECK, name, CheckStatus.WARNING, "impacted: " + "; ".join(parts)
            )
        )
    return impacts


# -- runtime and host ---------------------------------------------------------------------------


def _runtime_result(name: str, role, status) -> CheckResult:
    began = time.perf_counter()
    if status.running:
        parts = [f"running, pid {status.pid}" if status.pid else "running"]
        if status.nodes:  # a cluster: how many instances run where
            parts.append(status.detail)
        uptime = status.uptime(time.time())
        if uptime is not None:
            parts.append(f"up {uptime:.0f}s")
        if status.restarts is not None:
            parts.append(f"{status.restarts} restarts")
        stats = role.unit.stats()
        if stats is not None:
            parts.append(f"{stats.rss_bytes / 2**20:.0f} MiB, {stats.cpu_percent:.1f}% CPU avg")
        state, detail = CheckStatus.OK, ", ".join(parts)
        settling = role.unit.settling()
        if settling is not None:  # some of its replicas are not running (yet)
            state, detail = CheckStatus.WARNING, f"{detail}; not settled: {settling}"
    elif status.state is UnitState.CONVERGING:
        state, detail = (
            CheckStatus.CRITICAL,
            f"not running yet, its runtime is on it: {status.detail}",
        )
    elif status.state is UnitState.EXITED:
        code = "?" if status.exit_code is None else status.exit_code
        state, detail = CheckStatus.CRITICAL, f"not running: exited({code})"
        if status.detail:  # e.g. a cluster's node that is down, and what that means
            detail += f"; {status.detail}"
    else:
        state, detail = CheckStatus.CRITICAL, "not running (absent)"
    elapsed = round((time.perf_counter() - began) * 1000, 1)
    return CheckResult("process", name, state, detail, elapsed)


def _host_checks(stack: Stack, settings: HealthSettings) -> list[Check]:
    def threshold(value: float, warning: float, critical: float) -> CheckStatus:
        if value >= critical:
            return CheckStatus.CRITICAL
        return CheckStatus.WARNING if value >= warning else CheckStatus.OK

    def load() -> tuple[CheckStatus, str]:
        value = host.load_per_core()
        return threshold(value, settings.load_warning, settings.load_critical), (
            f"1-minute load {value:.2f} per core"
        )

    def memory() -> tuple[CheckStatus, str]:
        value = host.memory_used_percent()
        return threshold(value, settings.memory_warning, settings.memory_critical), (
            f"{value:.0f}% of memory used"
        )

    def disk(label: str, path: Path) -> Callable[[], tuple[CheckStatus, str]]:
        def run() -> tuple[CheckStatus, str]:
            usage = host.disk_usage(path)
            status = threshold(usage.used_percent, settings.disk_warning, settings.disk_critical)
            free = usage.free_bytes / 2**30
            return status, f"{label} {path}: {usage.used_percent:.0f}% used, {free:.1f} GiB free"

        return run

    backup_dir = stack.config.backups_dir or stack.config.project_dir / "backups"
    return [
        Check("load", load),
        Check("memory", memory),
        Check("disk_state", disk("state dir", stack.state_dir)),
        Check("disk_backups", disk("backups dir", backup_dir)),
    ]
