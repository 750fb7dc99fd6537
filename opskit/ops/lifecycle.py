"""start, stop, restart and status: dependency-ordered and gated on readiness.

``start`` runs preflight (runtime, binaries, ports, disk, role checks such as ``nginx -t``)
before it starts anything, then walks the dependency graph: a service starts as soon as all its
dependencies are *ready* (not merely started), services whose dependencies are ready start
concurrently, and each is gated on its role's readiness probe with adaptive polling (first poll
after 5 ms, backing off to 25 ms). A process that exits fails the gate at once; a probe that
reports a fatal problem (wrong password) fails it at once too.

``stop`` walks the graph the other way: dependents first. ``restart`` is monit's cascade: stop
the dependents, restart the service, start the dependents again.

Nothing here prints. Progress goes to an optional ``on_event`` callback; the result objects say
what happened, and the task layer renders them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from opskit.errors import EXIT_FAILED, EXIT_OK, OpskitError, PreflightError
from opskit.lock import stack_lock
from opskit.redact import Redactor
from opskit.runtime.base import UnitStatus
from opskit.stack import Stack

FIRST_POLL = 0.005
POLL_BACKOFF = 1.5
MAX_POLL = 0.025
LOG_TAIL_LINES = 20

# Outcome states
STARTED = "started"
ALREADY_RUNNING = "already running"
FAILED = "failed"
SKIPPED = "skipped"
STOPPED = "stopped"
KILLED = "killed"
NOT_RUNNING = "not running"


@dataclass(frozen=True)
class Event:
    """Progress of one service, for live rendering."""

    service: str
    phase: str  # starting | waiting | ready | failed | stopping | stopped | skipped
    detail: str = ""


EventSink = Callable[[Event], None]


@dataclass
class ServiceOutcome:
    service: str
    state: str
    detail: str = ""
    seconds: float = 0.0
    log_tail: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.state not in (FAILED, SKIPPED)


@dataclass
class LifecycleResult:
    action: str
    outcomes: list[ServiceOutcome]
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(outcome.ok for outcome in self.outcomes)

    @property
    def exit_code(self) -> int:
        return EXIT_OK if self.ok else EXIT_FAILED

    def outcome(self, service: str) -> ServiceOutcome | None:
        return next((o for o in self.outcomes if o.service == service), None)

    @property
    def nothing_to_do(self) -> bool:
        return all(o.state in (ALREADY_RUNNING, NOT_RUNNING) for o in self.outcomes)


@dataclass
class StatusRow:
    service: str
    role: str
    status: UnitStatus


@dataclass
class StatusResult:
    rows: list[StatusRow]
    checked_at: float

    @property
    def ok(self) -> bool:
        return all(row.status.running for row in self.rows)

    @property
    def exit_code(self) -> int:
        return EXIT_OK if self.ok else EXIT_FAILED


def _ignore(_event: Event) -> None:
    pass


# -- start -------------------------------------------------------------------------------------


def start(
    stack: Stack,
    services: Iterable[str] | None = None,
    *,
    rollback: bool = False,
    timeout: float | None = None,
    on_event: EventSink | None = None,
) -> LifecycleResult:
    """Start ``services`` (default: all) and everything they depend on, gated on readiness.

    Raises PreflightError (nothing started) when the machine is not ready. On a failed gate the
    services already healthy keep running unless ``rollback`` is set, in which case everything
    this call started is stopped again.
    """
    emit = on_event or _ignore
    begin = time.monotonic()
    targets = stack.with_dependencies(stack.resolve(services))
    with stack_lock(stack.state_dir, "start"):
        running = {name for name in targets if stack.role(name).unit.status().running}
        to_start = [name for name in stack.start_order(targets) if name not in running]
        if to_start:
            stack.runtime.build_images(
                [stack.services[name] for name in to_start],
                lambda service, line: emit(Event(service, "building", line)),
            )
            _preflight(stack, to_start)
        outcomes = _walk_start(stack, targets, running, timeout, emit)
        result = LifecycleResult("start", outcomes)
        if not result.ok and rollback:
            started = [o.service for o in outcomes if o.state == STARTED]
            if started:
                stopped = _walk_stop(stack, set(started), emit)
                for outcome in stopped:
                    result.outcome(outcome.service).detail += f"; rolled back ({outcome.detail})"
    result.seconds = time.monotonic() - begin
    return result


def _preflight(stack: Stack, names: list[str]) -> None:
    roles = [stack.role(name) for name in names]
    for role in roles:
        role.prepare()  # rendered configs must exist before `nginx -t` can test them
    problems = stack.runtime.preflight([(role.spec, role.launch()) for role in roles])
    for role in roles:
        problems.extend(role.preflight())
    if problems:
        raise PreflightError(Redactor(stack.secrets()).lines(problems))


def _walk_start(
    stack: Stack,
    targets: set[str],
    running: set[str],
    timeout: float | None,
    emit: EventSink,
) -> list[ServiceOutcome]:
    sorter = stack.sorter(targets)
    outcomes: dict[str, ServiceOutcome] = {}
    failed = False
    with ThreadPoolExecutor(max_workers=max(len(targets), 1)) as pool:
        pending: dict[Future, str] = {}
        while sorter.is_active():
            if not failed:
                for name in sorter.get_ready():
                    pending[
                        pool.submit(_start_one, stack, name, name in running, timeout, emit)
                    ] = name
            if not pending:
                break
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                name = pending.pop(future)
                outcome = future.result()
                outcomes[name] = outcome
                if outcome.ok:
                    sorter.done(name)
                else:
                    failed = True
    for name in stack.start_order(targets):
        if name not in outcomes:
            blockers = [dep for dep in stack.dependencies(name) if dep in targets]
            detail = "not started: dependency failed (" + ", ".join(blockers) + ")"
            outcomes[name] = ServiceOutcome(name, SKIPPED, detail)
            emit(Event(name, "skipped", detail))
    return [outcomes[name] for name in stack.start_order(targets)]


def _start_one(
    stack: Stack, name: str, already_running: bool, timeout: float | None, emit: EventSink
) -> ServiceOutcome:
    role = stack.role(name)
    began = time.monotonic()
    limit = timeout if timeout is not None else role.spec.start_timeout
    if already_running:
        emit(Event(name, "waiting", "already running; checking readiness"))
    else:
        emit(Event(name, "starting"))
        try:
            role.unit.start(role.launch())
        except OpskitError as exc:  # e.g. the engine refused: a failed service, not a crash
            emit(Event(name, "failed", str(exc)))
            return ServiceOutcome(name, FAILED, str(exc), time.monotonic() - began)
        emit(Event(name, "waiting", f"waiting for readiness (up to {limit:g}s)"))
    problem = _wait_ready(role, began + limit)
    seconds = time.monotonic() - began
    if problem is None:
        state = ALREADY_RUNNING if already_running else STARTED
        detail = "already running and ready" if already_running else f"ready in {seconds:.2f}s"
        emit(Event(name, "ready", detail))
        return ServiceOutcome(name, state, detail, seconds)

    tail = Redactor(stack.secrets()).lines(role.unit.log_tail(LOG_TAIL_LINES))
    if not already_running and role.unit.status().running:
        # Started by us and never became ready: stop it so a retry starts clean.
        stop = role.stop()
        problem += f"; stopped it again ({stop.detail})"
    emit(Event(name, "failed", problem))
    return ServiceOutcome(name, FAILED, problem, seconds, tail)


def _wait_ready(role, deadline: float) -> str | None:
    """None once ready; otherwise why not (exited, fatal probe, or timed out)."""
    interval = FIRST_POLL
    last = "no probe completed"
    while True:
        status = role.unit.status()
        if not status.running:
            code = "unknown code" if status.exit_code is None else f"code {status.exit_code}"
            return f"exited during start ({code})"
        health = role.unit.container_health()
        if health == "unhealthy":  # as Compose: an unhealthy dependency fails at once
            return "the container's HEALTHCHECK reports unhealthy"
        probe = role.probe_ready()
        if probe.ready:
            return None
        last = probe.detail
        if probe.fatal:
            return f"not ready: {probe.detail}"
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return f"not ready before the start timeout: {last}"
        time.sleep(min(interval, remaining))
        interval = min(interval * POLL_BACKOFF, MAX_POLL)


# -- stop / restart ------------------------------------------------------------------------


def stop(
    stack: Stack,
    services: Iterable[str] | None = None,
    *,
    with_dependents: bool = True,
    on_event: EventSink | None = None,
) -> LifecycleResult:
    """Stop ``services`` (default: all) and everything that depends on them, dependents first.

    ``with_dependents=False`` stops exactly ``services`` (still in reverse dependency order):
    for callers that restore a state they recorded, such as ``smoke``.
    """
    emit = on_event or _ignore
    begin = time.monotonic()
    names = stack.resolve(services)
    targets = stack.with_dependents(names) if with_dependents else set(names)
    with stack_lock(stack.state_dir, "stop"):
        outcomes = _walk_stop(stack, targets, emit)
    return LifecycleResult("stop", outcomes, time.monotonic() - begin)


def _walk_stop(stack: Stack, targets: set[str], emit: EventSink) -> list[ServiceOutcome]:
    sorter = stack.sorter(targets, reverse=True)
    outcomes: dict[str, ServiceOutcome] = {}
    with ThreadPoolExecutor(max_workers=max(len(targets), 1)) as pool:
        while sorter.is_active():
            batch = list(sorter.get_ready())
            for name, outcome in zip(
                batch, pool.map(lambda n: _stop_one(stack, n, emit), batch), strict=True
            ):
                outcomes[name] = outcome
                sorter.done(name)
    order = list(reversed(stack.start_order(targets)))
    return [outcomes[name] for name in order]


def _stop_one(stack: Stack, name: str, emit: EventSink) -> ServiceOutcome:
    role = stack.role(name)
    began = time.monotonic()
    if role.unit.status().running:
        emit(Event(name, "stopping", f"{role.stop_method}, grace {role.spec.stop_grace_period:g}s"))
    result = role.stop()
    seconds = time.monotonic() - began
    state = (KILLED if result.killed else STOPPED) if result.was_running else NOT_RUNNING
    emit(Event(name, "stopped", result.detail))
    return ServiceOutcome(name, state, result.detail, seconds)


def restart(
    stack: Stack,
    services: Iterable[str] | None = None,
    *,
    timeout: float | None = None,
    on_event: EventSink | None = None,
) -> LifecycleResult:
    """monit-style cascade: stop dependents → restart ``services`` → start the dependents again.

    The dependencies of ``services`` are left running (and started if they were not).
    """
    begin = time.monotonic()
    names = stack.resolve(services)
    affected = stack.with_dependents(names)
    stopped = stop(stack, affected, on_event=on_event)
    started = start(stack, affected, timeout=timeout, on_event=on_event)
    outcomes = [o for o in started.outcomes]
    for outcome in stopped.outcomes:
        if outcome.state == KILLED:
            match = started.outcome(outcome.service)
            if match is not None:
                match.detail = f"{match.detail} (old instance was killed after its grace period)"
    return LifecycleResult("restart", outcomes, time.monotonic() - begin)


# -- status ------------------------------------------------------------------------------------


def status(stack: Stack, services: Iterable[str] | None = None) -> StatusResult:
    """Runtime state of each service: running / exited(code) / absent, pid, start time."""
    names = stack.resolve(services)
    rows = [
        StatusRow(name, stack.services[name].role, stack.role(name).unit.status())
        for name in stack.start_order(names)
    ]
    return StatusResult(rows, time.time())
