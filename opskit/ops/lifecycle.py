"""start, stop, restart and status: engine walks gated on readiness.

``start`` clears what a previous run of each service left behind (its own processes only),
runs preflight (runtime, binaries, ports, disk, role checks such as ``nginx -t``) before it
starts anything, then walks the graph dependencies-first with :func:`engine.ensure_ready` as
the step: a service starts the moment its own dependencies are ready, independent branches
start concurrently, and a failure skips what depends on it.

``stop`` walks the other way, dependents first, each service stopped by its role's graceful
procedure. ``restart`` is monit's cascade in one mutation: stop the dependents, restart the
service, start the dependents again — nobody else can take the lock in between.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from opskit.backup.journal import JournalFile
from opskit.errors import PreflightError
from opskit.ops.engine import (
    Event,
    EventSink,
    OperationResult,
    StepResult,
    deadline_in,
    ensure_ready,
    ignore_events,
    mutation,
    walk,
)
from opskit.recovery import intent
from opskit.redact import Redactor
from opskit.results import ExitsByOk
from opskit.runtime.base import UnitStatus
from opskit.stack import Stack
from opskit.vocabulary import Direction, Phase, StepOutcome, Wanted

# Names kept for library callers and tests written against the first release.
STARTED = StepOutcome.STARTED
ALREADY_RUNNING = StepOutcome.ALREADY_RUNNING
FAILED = StepOutcome.FAILED
SKIPPED = StepOutcome.SKIPPED
STOPPED = StepOutcome.STOPPED
KILLED = StepOutcome.KILLED
NOT_RUNNING = StepOutcome.NOT_RUNNING
ServiceOutcome = StepResult
LifecycleResult = OperationResult

__all__ = [
    "Event",
    "EventSink",
    "LifecycleResult",
    "ServiceOutcome",
    "StatusResult",
    "StatusRow",
    "restart",
    "start",
    "status",
    "stop",
]


@dataclass
class StatusRow:
    service: str
    role: str
    status: UnitStatus


@dataclass
class StatusResult(ExitsByOk):
    rows: list[StatusRow]
    checked_at: float
    interrupted_restore: str | None = None  # a restore killed half-way: what it says to do

    @property
    def ok(self) -> bool:
        return all(row.status.running for row in self.rows) and not self.interrupted_restore

    def to_dict(self) -> dict[str, Any]:
        return {
            "checked_at": self.checked_at,
            "ok": self.ok,
            "interrupted_restore": self.interrupted_restore,
            "services": [
                {
                    "service": row.service,
                    "role": str(row.role),
                    "state": row.status.state.value,
                    "pid": row.status.pid if row.status.running else None,
                    "started_at": row.status.started_at,
                    "uptime_s": row.status.uptime(self.checked_at),
                    "exit_code": row.status.exit_code,
                    "detail": row.status.detail,
                    "nodes": list(row.status.nodes),
                }
                for row in self.rows
            ],
        }


# -- start -------------------------------------------------------------------------------------


def start(
    stack: Stack,
    services: Iterable[str] | None = None,
    *,
    rollback: bool = False,
    timeout: float | None = None,
    on_event: EventSink | None = None,
) -> OperationResult:
    """Start ``services`` (default: all) and everything they depend on, gated on readiness.

    Raises PreflightError (nothing started) when the machine is not ready. On a failed gate the
    services already healthy keep running unless ``rollback`` is set, in which case everything
    this call started is stopped again. ``timeout`` replaces each service's readiness budget.
    """
    emit = on_event or ignore_events
    begin = time.monotonic()
    targets = stack.with_dependencies(stack.resolve(services))
    with mutation(stack, "start"):
        intent.record(stack.state_dir, targets, Wanted.RUNNING, "inv start")
        outcomes = _start(stack, targets, timeout, emit)
        result = OperationResult("start", outcomes)
        if not result.ok and rollback:
            started = {o.service for o in outcomes if o.state is StepOutcome.STARTED}
            for outcome in _stop(stack, started, emit):
                result.outcome(outcome.service).detail += f"; rolled back ({outcome.detail})"
    result.seconds = time.monotonic() - begin
    return result


def _start(
    stack: Stack, targets: set[str], timeout: float | None, emit: EventSink
) -> list[StepResult]:
    to_start = [name for name in stack.start_order(targets) if not _running(stack, name)]
    if to_start:
        for name in to_start:
            for cleared in stack.role(name).unit.clear_leftovers():
                emit(Event(name, Phase.CLEANING, cleared))
        stack.runtime.build_images(
            [stack.services[name] for name in to_start],
            lambda service, line: emit(Event(service, Phase.BUILDING, line)),
        )
        _preflight(stack, to_start)

    def step(name: str) -> StepResult:
        deadline = deadline_in(timeout) if timeout is not None else None
        return ensure_ready(stack, name, deadline, emit=emit)

    return walk(
        stack,
        targets,
        step,
        direction=Direction.DEPENDENCIES_FIRST,
        emit=emit,
        skipped="not started: dependency failed ({})",
    )


def _running(stack: Stack, name: str) -> bool:
    return stack.role(name).unit.status().running


def _preflight(stack: Stack, names: list[str]) -> None:
    roles = [stack.role(name) for name in names]
    for role in roles:
        role.prepare()  # rendered configs must exist before `nginx -t` can test them
    problems = stack.runtime.preflight([(role.spec, role.launch()) for role in roles])
    for role in roles:
        problems.extend(role.preflight())
    if problems:
        raise PreflightError(Redactor(stack.secrets()).lines(problems))


# -- stop / restart ------------------------------------------------------------------------


def stop(
    stack: Stack,
    services: Iterable[str] | None = None,
    *,
    with_dependents: bool = True,
    on_event: EventSink | None = None,
) -> OperationResult:
    """Stop ``services`` (default: all) and everything that depends on them, dependents first.

    ``with_dependents=False`` stops exactly ``services`` (still in reverse dependency order):
    for callers that restore a state they recorded, such as ``smoke``.
    """
    emit = on_event or ignore_events
    begin = time.monotonic()
    names = stack.resolve(services)
    targets = stack.with_dependents(names) if with_dependents else set(names)
    with mutation(stack, "stop"):
        intent.record(stack.state_dir, targets, Wanted.STOPPED, "inv stop")
        outcomes = _stop(stack, targets, emit)
    return OperationResult("stop", outcomes, time.monotonic() - begin)


def _stop(stack: Stack, targets: set[str], emit: EventSink) -> list[StepResult]:
    return walk(
        stack,
        targets,
        lambda name: _stop_one(stack, name, emit),
        direction=Direction.DEPENDENTS_FIRST,
        emit=emit,
        skipped="not stopped: stopping {} failed",
    )


def _stop_one(stack: Stack, name: str, emit: EventSink) -> StepResult:
    role = stack.role(name)
    began = time.monotonic()
    if role.unit.status().active:
        grace = role.spec.stop_grace_period
        emit(Event(name, Phase.STOPPING, f"{role.stop_method}, grace {grace:g}s"))
    result = role.stop()
    from opskit.ops.relief import stop_relief  # only stop needs it: status and health do not

    relief = stop_relief(stack, name)  # left by an interrupted graceful restart
    detail = f"{result.detail}; {relief}" if relief else result.detail
    seconds = time.monotonic() - began
    if not result.was_running:
        state = StepOutcome.NOT_RUNNING
    else:
        state = StepOutcome.KILLED if result.killed else StepOutcome.STOPPED
    emit(Event(name, Phase.STOPPED, detail))
    return StepResult(name, state, detail, seconds)


def restart(
    stack: Stack,
    services: Iterable[str] | None = None,
    *,
    timeout: float | None = None,
    on_event: EventSink | None = None,
) -> OperationResult:
    """monit-style cascade: stop dependents → restart ``services`` → start the dependents again.

    One mutation: the lock is held from the first stop to the last readiness gate. The
    dependencies of ``services`` are left running (and started if they were not).
    """
    emit = on_event or ignore_events
    begin = time.monotonic()
    affected = stack.with_dependents(stack.resolve(services))
    with mutation(stack, "restart"):
        wanted = stack.with_dependencies(affected)
        intent.record(stack.state_dir, wanted, Wanted.RUNNING, "inv restart")
        stopped = _stop(stack, affected, emit)
        started = _start(stack, stack.with_dependencies(affected), timeout, emit)
    for outcome in stopped:
        match = next((o for o in started if o.service == outcome.service), None)
        if outcome.state is StepOutcome.KILLED and match is not None:
            match.detail = f"{match.detail} (old instance was killed after its grace period)"
    return OperationResult("restart", started, time.monotonic() - begin)


# -- status ------------------------------------------------------------------------------------


def status(stack: Stack, services: Iterable[str] | None = None) -> StatusResult:
    """Runtime state of each service: running / exited(code) / absent, pid, start time."""
    names = stack.resolve(services)
    rows = [
        StatusRow(name, stack.services[name].role, stack.role(name).unit.status())
        for name in stack.start_order(names)
    ]
    pending = JournalFile(stack.state_dir).interrupted()
    return StatusResult(rows, time.time(), pending.describe() if pending else None)
