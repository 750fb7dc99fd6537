"""graceful-restart: new configuration or new workers without dropping a request.

Walked by the engine over the :class:`~opskit.services.capabilities.GracefullyRestartable`
capability — nginx (``-t``, HUP, a new set of workers under the same master, verified) and
Kong (declarative file through ``POST /config`` or HUP, ready, ``configuration_hash``
verified). A service whose role cannot do it would be down while it restarts (Redis without a
replica): it is refused with what the outage would mean, unless ``allow_downtime`` — then it is
stopped gracefully (Redis: ``SHUTDOWN SAVE``) and brought back through ``ensure_ready``, with
its dependents left running. A stateless service whose runtime replaces instances in turn
(Swarm) gets a start-first rolling update; otherwise, when an nginx fronts it (the backend), it
restarts while a relief instance takes its requests (:mod:`opskit.ops.relief`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from opskit.errors import OpskitError, RollingImpossible
from opskit.ops.engine import (
    Event,
    EventSink,
    OperationResult,
    StepResult,
    ensure_ready,
    ignore_events,
    mutation,
    wait_ready,
)
from opskit.ops.relief import finish_interrupted, front_of, relieved_restart
from opskit.services.capabilities import GracefullyRestartable, Relievable
from opskit.stack import Stack
from opskit.vocabulary import Phase, StepOutcome


def graceful_restart(
    stack: Stack,
    services: Iterable[str] | None = None,
    *,
    allow_downtime: bool = False,
    on_event: EventSink | None = None,
) -> OperationResult:
    """One service at a time, in start order, so one thing changes at a time under load.

    A service named in ``services`` that cannot restart without downtime is refused (FAILED);
    with no ``services`` it is reported ``unsupported`` and the others go on.
    """
    emit = on_event or ignore_events
    begin = time.monotonic()
    names = stack.start_order(stack.resolve(services))
    outcomes = []
    with mutation(stack, "graceful-restart"):
        for name in names:
            emit(Event(name, Phase.RUNNING, "graceful restart"))
            outcome = _restart_one(
                stack, name, allow_downtime, named=services is not None, emit=emit
            )
            phase = Phase.DONE if outcome.ok else Phase.FAILED
            emit(Event(name, phase, outcome.detail))
            outcomes.append(outcome)
    return OperationResult("graceful-restart", outcomes, time.monotonic() - begin)


def _restart_one(
    stack: Stack, name: str, allow_downtime: bool, *, named: bool, emit: EventSink
) -> StepResult:
    role = stack.role(name)
    began = time.monotonic()
    if not role.unit.status().running:
        return StepResult(name, StepOutcome.FAILED, "not running: nothing to restart")
    if isinstance(role, GracefullyRestartable):
        try:
            verdict = role.graceful_restart()
        except OpskitError:
            raise
        except Exception as exc:  # a frozen Admin API (read timeout) is a failed step, one line
            detail = f"{type(exc).__name__}: {exc}; nothing else was changed"
            return StepResult(name, StepOutcome.FAILED, detail, time.monotonic() - began)
        state = StepOutcome.DONE if verdict.ok else StepOutcome.FAILED
        return StepResult(name, state, verdict.detail, time.monotonic() - began)
    cannot_roll = ""
    if isinstance(role, Relievable) and role.unit.rolls_replicas:
        try:
            return _rolling_restart(role, name, began)
        except RollingImpossible as exc:  # nothing was changed: another way may work
            cannot_roll = str(exc)
    front = front_of(stack, name) if isinstance(role, Relievable) else None
    if front is not None:
        leftover = finish_interrupted(stack, name, emit)
        if leftover is not None and not leftover.ok:
            return leftover
        result = relieved_restart(stack, name, front, emit)
        if leftover is not None:
            result.detail = f"{leftover.detail}; then {result.detail}"
        if cannot_roll:
            why = f"relief instance instead of a rolling update ({cannot_roll})"
            result.detail = f"{why}; {result.detail}"
        return result
    if cannot_roll:
        detail = f"{cannot_roll}; refused, nothing changed (--allow-downtime restarts it)"
        if not allow_downtime:
            return StepResult(name, StepOutcome.FAILED, detail, time.monotonic() - began)
    if not allow_downtime:
        why = (
            f"the {role.name} role cannot restart without downtime (while it restarts: "
            f"{role.outage_impact})"
        )
        if isinstance(role, Relievable):
            why += (
                f"; a relief instance could take its requests if an nginx service fronted it "
                f"(x-opskit.fronts: {name})"
            )
        if not named:
            return StepResult(name, StepOutcome.UNSUPPORTED, f"{why}; left running")
        return StepResult(
            name, StepOutcome.FAILED, f"{why}; refused — pass --allow-downtime to restart it anyway"
        )
    stopped = role.stop()
    result = ensure_ready(stack, name, emit=emit)
    result.detail = f"restarted with downtime ({stopped.detail}); {result.detail}"
    return result


#: How long a rolling replacement may take, in start timeouts of the service: each replica
#: starts (and passes its healthcheck) before an old one stops, one or a few at a time.
ROLLING_BUDGET = 4


def _rolling_restart(role, name: str, began: float) -> StepResult:
    """A stateless service whose runtime replaces instances in turn (Swarm's start-first
    rolling update): no relief instance is needed; verified by the runtime (update completed,
    every replica running) and then by the role's own probe."""
    budget = max(60.0, ROLLING_BUDGET * role.spec.start_timeout)
    try:
        detail = role.unit.replace_rolling(budget)
    except RollingImpossible:
        raise
    except OpskitError as exc:
        return StepResult(name, StepOutcome.FAILED, str(exc), time.monotonic() - began)
    problem = wait_ready(role, time.monotonic() + role.spec.start_timeout)
    if problem is not None:
        detail = f"{detail}; but then {problem}"
        return StepResult(name, StepOutcome.FAILED, detail, time.monotonic() - began)
    return StepResult(name, StepOutcome.DONE, f"{detail}; ready", time.monotonic() - began)
