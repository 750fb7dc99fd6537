"""The operations engine: one way to walk the stack, wait for a service, and change state.

Every operation — start, stop, restart, reload, and what comes next (backup, recover, drills) —
is a *walk* of the dependency graph that runs one *step* per service. The engine owns what
they share, written once:

- :func:`walk` — Compose v1's ``parallel_execute`` over the DAG, in either direction: a
  service's step runs the moment the steps it waits for have succeeded (never in whole levels),
  independent branches run concurrently, and a failed step skips exactly what waits on it,
  saying which step it waited for.
- :func:`ensure_ready` — start a service if it is not running and wait until its role's
  readiness probe passes, failing fast when the process exits or the probe says waiting cannot
  help. Start, restart, recovery and drills all bring a service back through it.
- :func:`mutation` — the stack lock. Every operation that changes state takes it once;
  composed operations (restart = stop + start, smoke = start + health + stop) nest inside one
  mutation instead of releasing the lock half-way.
- :func:`for_each_capable` — run a role capability (:mod:`opskit.services.capabilities`) over
  services; a service whose role lacks it is reported ``unsupported`` by the engine, so no
  operation ever asks a role for its name.

Nothing here prints: progress goes to an :data:`EventSink`, results come back as
:class:`StepResult` lists that the task layer renders.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from opskit.errors import OpskitError
from opskit.lock import stack_lock
from opskit.polling import deadline_in, poll_until
from opskit.redact import Redactor
from opskit.results import ExitsByOk
from opskit.vocabulary import Direction, Phase, StepOutcome, UnitState

if TYPE_CHECKING:
    from pathlib import Path

    from opskit.runtime.base import Launch
    from opskit.services.base import Role
    from opskit.stack import Stack

LOG_TAIL_LINES = 20
C = TypeVar("C")


@dataclass(frozen=True)
class Event:
    """Progress of one service, for live rendering."""

    service: str
    phase: Phase
    detail: str = ""


EventSink = Callable[[Event], None]


def ignore_events(_event: Event) -> None:
    """The EventSink for callers that do not render progress."""


@dataclass
class StepResult:
    """What one step did to one service."""

    service: str
    state: StepOutcome
    detail: str = ""
    seconds: float = 0.0
    log_tail: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.state.ok

    def to_dict(self) -> dict[str, Any]:
        return {"service": self.service, "result": self.state.value, "detail": self.detail}


@dataclass
class OperationResult(ExitsByOk):
    """The steps of one operation, in graph order, and how long it took."""

    action: str
    outcomes: list[StepResult]
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(outcome.ok for outcome in self.outcomes)

    def outcome(self, service: str) -> StepResult | None:
        return next((o for o in self.outcomes if o.service == service), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "action": self.action,
            "seconds": round(self.seconds, 3),
            "services": [outcome.to_dict() for outcome in self.outcomes],
        }

    @property
    def nothing_to_do(self) -> bool:
        return all(o.state.idle for o in self.outcomes)


# -- the walk ------------------------------------------------------------------------------------

Step = Callable[[str], StepResult]


def walk(
    stack: Stack,
    targets: Iterable[str],
    step: Step,
    *,
    direction: Direction | None,
    emit: EventSink = ignore_events,
    skipped: str = "skipped: {} failed",
    stop: threading.Event | None = None,
) -> list[StepResult]:
    """Run ``step(service)`` for every target, as soon as the steps it waits for succeeded.

    ``direction`` says what a service waits for: its dependencies (start), its dependents
    (stop), or nothing (``None``: all at once). A failed step skips everything that waits on it,
    transitively; ``skipped`` is formatted with the names of the failed steps it waited on.
    Once ``stop`` is set (SIGINT/SIGTERM) no further step begins; steps already running finish,
    and the rest are skipped as interrupted. Results come back in graph order.
    """
    wanted = set(targets)
    order = _ordered(stack, wanted, direction)
    waits_on = {name: _predecessors(stack, name, direction) & wanted for name in wanted}
    # Each finished step tells only the steps waiting on it (a count each): the walk costs the
    # graph's edges, not services × services at every completion (500 services stopped
    # seconds slower on that bookkeeping alone).
    successors: dict[str, list[str]] = {name: [] for name in wanted}
    for name in order:
        for before in waits_on[name]:
            successors[before].append(name)
    remaining = {name: len(waits_on[name]) for name in wanted}
    results: dict[str, StepResult] = {}
    blocked: dict[str, set[str]] = {}
    if wanted:
        with ThreadPoolExecutor(max_workers=len(wanted), thread_name_prefix="opskit") as pool:
            pending: dict[Future[StepResult], str] = {}
            # Finished futures arrive here one by one: waiting on all pending futures at once
            # (concurrent.futures.wait) locks every one of them at every completion.
            finished: queue.SimpleQueue[Future[StepResult]] = queue.SimpleQueue()

            def launch(name: str) -> None:
                if stop is None or not stop.is_set():
                    future = pool.submit(_guarded, step, name)
                    pending[future] = name
                    future.add_done_callback(finished.put)

            def settled(name: str, ok: bool) -> None:
                """``name`` succeeded, failed or was skipped: the steps waiting on it hear."""
                for after in successors[name]:
                    if after in blocked:
                        continue
                    if not ok:
                        blocked[after] = {name}
                        settled(after, False)
                        continue
                    remaining[after] -= 1
                    if remaining[after] == 0:
                        launch(after)

            for name in order:
                if remaining[name] == 0:
                    launch(name)
            while pending:
                future = finished.get()
                name = pending.pop(future)
                results[name] = future.result()
                settled(name, results[name].ok)
    never_ran = [name for name in order if name not in results]
    reasons = {name: sorted(_root_failures(name, waits_on, results, blocked)) for name in never_ran}
    for name in never_ran:
        if reasons[name] or stop is None or not stop.is_set():
            detail = skipped.format(", ".join(reasons[name]))
        else:
            detail = "not begun: interrupted"
        results[name] = StepResult(name, StepOutcome.SKIPPED, detail)
        emit(Event(name, Phase.SKIPPED, detail))
    return [results[name] for name in order]


def _guarded(step: Step, name: str) -> StepResult:
    """A step's own OpskitError is that service's failure, not the whole operation's."""
    began = time.monotonic()
    try:
        return step(name)
    except OpskitError as exc:
        return StepResult(name, StepOutcome.FAILED, str(exc), time.monotonic() - began)


def _predecessors(stack: Stack, name: str, direction: Direction | None) -> set[str]:
    if direction is Direction.DEPENDENCIES_FIRST:
        return set(stack.dependencies(name))
    if direction is Direction.DEPENDENTS_FIRST:
        return set(stack.dependents(name))
    return set()


def _ordered(stack: Stack, names: set[str], direction: Direction | None) -> list[str]:
    order = stack.start_order(names)
    return list(reversed(order)) if direction is Direction.DEPENDENTS_FIRST else order


def _failed(results: dict[str, StepResult], name: str) -> bool:
    return name in results and not results[name].ok


def _root_failures(name, waits_on, results, blocked) -> set[str]:
    """The failed steps ``name`` waited on, directly or through other skipped steps."""
    roots: set[str] = set()
    for waited in blocked.get(name, set()) or waits_on[name]:
        if _failed(results, waited):
            roots.add(waited)
        elif waited in blocked:
            roots |= _root_failures(waited, waits_on, results, blocked)
    return roots


# -- readiness -----------------------------------------------------------------------------------


def ensure_ready(
    stack: Stack,
    service: str,
    deadline: float | None = None,
    *,
    emit: EventSink = ignore_events,
    launch: Launch | None = None,
) -> StepResult:
    """Start ``service`` unless it runs, then wait until its role says it is ready.

    ``launch`` replaces the role's usual one for this start (a restore's: Redis loading the
    placed RDB with its AOF off).

    ``deadline`` is a :func:`time.monotonic` instant (default: now + the service's
    ``start_timeout``). Fails at once when the unit exits or a probe is fatal. A unit this call
    started and that never became ready is stopped again, so the next attempt starts clean;
    the failure carries the last log lines, redacted.
    """
    role = stack.role(service)
    began = time.monotonic()
    if deadline is None:
        deadline = began + role.spec.start_timeout
    already_running = role.unit.status().running
    if already_running:
        emit(Event(service, Phase.WAITING, "already running; checking readiness"))
    else:
        emit(Event(service, Phase.STARTING))
        try:
            role.prepare()  # idempotent: rendered configs and data dirs exist before it runs
            role.unit.start(launch or role.launch())
        except OpskitError as exc:  # e.g. the engine refused: a failed service, not a crash
            emit(Event(service, Phase.FAILED, str(exc)))
            return StepResult(service, StepOutcome.FAILED, str(exc), time.monotonic() - began)
        limit = max(deadline - time.monotonic(), 0)
        emit(Event(service, Phase.WAITING, f"waiting for readiness (up to {limit:.3g}s)"))
    problem = wait_ready(role, deadline)
    seconds = time.monotonic() - began
    if problem is None:
        state = StepOutcome.ALREADY_RUNNING if already_running else StepOutcome.STARTED
        detail = "already running and ready" if already_running else f"ready in {seconds:.2f}s"
        emit(Event(service, Phase.READY, detail))
        return StepResult(service, state, detail, seconds)

    tail = Redactor(stack.secrets()).lines(role.unit.log_tail(LOG_TAIL_LINES))
    if not already_running and role.unit.status().active:
        stop = role.stop()
        problem += f"; stopped it again ({stop.detail})"
    emit(Event(service, Phase.FAILED, problem))
    return StepResult(service, StepOutcome.FAILED, problem, seconds, tail)


def wait_ready(role: Role, deadline: float) -> str | None:
    """None once ``role`` is ready; otherwise why not (exited, fatal probe, or timed out)."""
    last = ["no probe completed"]

    def observe() -> str | None:
        status = role.unit.status()
        if status.state is UnitState.CONVERGING:  # the runtime is still bringing it up
            last[0] = status.detail
            return None
        if not status.running:
            code = "unknown code" if status.exit_code is None else f"code {status.exit_code}"
            return f"exited during start ({code})"
        if role.unit.container_health() == "unhealthy":  # as Compose: fail at once
            return "the container's HEALTHCHECK reports unhealthy"
        probe = role.probe_ready()
        if not probe.ready:
            last[0] = probe.detail
            return f"not ready: {probe.detail}" if probe.fatal else None
        settling = role.unit.settling()  # every replica, not just the one that answered
        if settling is not None:
            last[0] = settling
            return None
        return ""

    verdict = poll_until(observe, deadline)
    if verdict is None:
        return f"not ready before the start timeout: {last[0]}"
    return verdict or None


# -- the stack lock --------------------------------------------------------------------------------

_held_lock = threading.Lock()
_held: dict[Path, int] = {}


@contextlib.contextmanager
def mutation(stack: Stack, action: str, wait: float = 10.0) -> Iterator[None]:
    """Hold the stack lock for ``action``; nested mutations in this process share it.

    The lock is a ``flock`` (see :mod:`opskit.lock`): another process — a second cron run —
    waits up to ``wait`` seconds, then fails with LockBusyError naming the holder.
    """
    key = stack.state_dir.resolve()
    with _held_lock:
        nested = _held.get(key, 0) > 0
        if nested:
            _held[key] += 1
    if nested:
        try:
            yield
        finally:
            with _held_lock:
                _held[key] -= 1
        return
    with stack_lock(stack.state_dir, action, wait=wait):
        with _held_lock:
            _held[key] = 1
        try:
            yield
        finally:
            with _held_lock:
                _held.pop(key, None)


# -- capabilities ----------------------------------------------------------------------------------


def capable(stack: Stack, capability: type[C], services: Iterable[str] | None = None) -> list[str]:
    """The services (in start order) whose role offers ``capability``."""
    names = stack.resolve(services)
    return [name for name in stack.start_order(names) if isinstance(stack.role(name), capability)]


def for_each_capable(
    stack: Stack,
    services: Iterable[str] | None,
    capability: type[C],
    step: Callable[[str, C], StepResult],
    *,
    direction: Direction | None = None,
    emit: EventSink = ignore_events,
    stop: threading.Event | None = None,
) -> list[StepResult]:
    """``step(name, role)`` for each service whose role has ``capability``; the others are
    reported UNSUPPORTED (never an error: ``inv reload`` over the whole stack reloads what can
    be reloaded and says what cannot)."""
    from opskit.services.capabilities import describe, describe_doing

    names = stack.resolve(services)
    label, doing = describe(capability), describe_doing(capability)

    def run(name: str) -> StepResult:
        role = stack.role(name)
        if not isinstance(role, capability):
            detail = f"the {role.name} role cannot {label}"
            emit(Event(name, Phase.NOT_APPLICABLE, detail))
            return StepResult(name, StepOutcome.UNSUPPORTED, detail)
        emit(Event(name, Phase.RUNNING, doing))
        began = time.monotonic()
        result = step(name, role)
        result.seconds = result.seconds or time.monotonic() - began
        emit(Event(name, Phase.DONE if result.ok else Phase.FAILED, result.detail))
        return result

    return walk(stack, names, run, direction=direction, emit=emit, stop=stop)


__all__ = [
    "Event",
    "EventSink",
    "OperationResult",
    "StepResult",
    "capable",
    "deadline_in",
    "ensure_ready",
    "for_each_capable",
    "ignore_events",
    "mutation",
    "poll_until",
    "wait_ready",
    "walk",
]
