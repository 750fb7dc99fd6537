"""Recovery: observe with health, confirm, restart in dependency order within a budget, alert once.

One pass (``inv recover``, from cron every minute, or each turn of ``--watch``):

1. **Observe** every service an operator wants running (:mod:`opskit.recovery.intent`) with the
   health operation — never re-implemented here — plus the end-to-end masking check when it
   costs no API tokens. Each service is healthy, impacted (a dependency fails), failing (a check
   of its own is CRITICAL or UNKNOWN — a hung probe is abandoned at ``check_timeout``) or down.
2. **Confirm** (monit's ``FOR n CYCLES``): a failure counts once it has been seen on
   ``recover.failures`` consecutive observations. The pass takes the extra observations itself —
   ``recover.recheck`` apart for a running service whose checks fail, 0.1 s apart for a unit
   that is not running but that an engine may restart by itself (a restart policy, Swarm) —
   so cron need not wait a minute per observation. A process opskit started that is not
   running is down for certain (nothing else brings it back): it is not looked at again.
3. **Act** in dependency order: the failed dependency first, through the engine's
   :func:`~opskit.ops.engine.ensure_ready`; a dependent only if it is *still* unhealthy once
   its dependencies are back, and never while one of them is still failing. Each attempt is
   charged to the service's budget (``max_restarts`` within ``window``) before it is made; when
   the budget is spent recovery gives up on that service until it is healthy again or an
   operator runs ``inv recover --reset S``.
4. **Alert** (:mod:`opskit.alerts.dispatch`): failed → (gave up) → recovered, once each.

The whole pass holds the stack lock: an overlapping cron run, or an operator's ``inv restart``,
makes this pass act on nothing (:class:`~opskit.errors.LockBusyError`, unless ``wait``).
Nothing here prints; the watcher loop is :func:`watch`.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from opskit.alerts.dispatch import Delivery, Dispatcher
from opskit.backup.journal import JournalFile
from opskit.errors import LockBusyError, OpskitError
from opskit.ops.engine import Event, EventSink, StepResult, ensure_ready, ignore_events, mutation
from opskit.ops.health import DEPENDENCY_CHECK, E2E, run_e2e, run_health
from opskit.recovery import intent
from opskit.recovery.liveness import ExitWatch
from opskit.recovery.state import RecoveryState, RestartBudget
from opskit.redact import Redactor
from opskit.stack import Stack
from opskit.vocabulary import (
    CheckStatus,
    ExitCode,
    Phase,
    RecoverAction,
    ServiceVerdict,
    UnitState,
)

#: Spacing of the confirming observations of a unit that is not running: a dead process does
#: not come back by itself, but an engine restart policy may bring it back this fast.
DOWN_RECHECK = 0.1
_FAILING = (CheckStatus.CRITICAL, CheckStatus.UNKNOWN)
_LEFT_RUNNING = (RecoverAction.NOTHING, RecoverAction.HEALTHY_AGAIN, RecoverAction.RESTARTED)


@dataclass
class Observation:
    service: str
    verdict: ServiceVerdict
    detail: str = ""


@dataclass
class RecoverRow:
    """What one pass saw of one service and did about it."""

    service: str
    verdict: ServiceVerdict
    action: RecoverAction
    detail: str = ""
    seconds: float = 0.0
    log_tail: list[str] = field(default_factory=list)  # a failed restart's last lines, redacted


@dataclass
class RecoverResult:
    rows: list[RecoverRow]
    deliveries: list[Delivery] = field(default_factory=list)
    dry_run: bool = False
    seconds: float = 0.0
    busy: str = ""  # another operation held the lock: this pass did nothing
    problem: str = ""  # --watch: the stack file changed and does not load
    interrupted: bool = False  # SIGINT/SIGTERM: no restart began after it
    blocked: str = ""  # a restore was killed half-way: nothing is restarted until it is settled

    @property
    def ok(self) -> bool:
        return all(row.action.resolved for row in self.rows)

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return ExitCode.INTERRUPTED
        if self.blocked:
            return ExitCode.FAILED
        return ExitCode.OK if self.ok or self.busy else ExitCode.FAILED

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "busy": self.busy or None,
            "blocked": self.blocked or None,
            "problem": self.problem or None,
            "dry_run": self.dry_run,
            "seconds": round(self.seconds, 3),
            "services": [
                {
                    "service": row.service,
                    "verdict": row.verdict.value,
                    "action": row.action.value,
                    "detail": row.detail,
                    "seconds": round(row.seconds, 3),
                    "log_tail": row.log_tail,
                }
                for row in self.rows
            ],
            "alerts": [
                {
                    "notifier": d.notifier,
                    "subject": d.subject,
                    "kind": d.kind.value,
                    "ok": d.ok,
                    "detail": d.detail,
                }
                for d in self.deliveries
            ],
        }

    @property
    def quiet(self) -> bool:
        """Nothing worth a line in the watcher's log: all healthy, nothing done or sent."""
        return (
            not self.busy
            and not self.blocked
            and not self.deliveries
            and all(
                row.action is RecoverAction.NOTHING or row.action is RecoverAction.LEFT_ALONE
                for row in self.rows
            )
        )


# -- one pass ----------------------------------------------------------------------------------


def recover(
    stack: Stack,
    *,
    dry_run: bool = False,
    reset: Iterable[str] = (),
    wait: float = 0.0,
    on_event: EventSink | None = None,
    dispatcher: Dispatcher | None = None,
    stop: threading.Event | None = None,
) -> RecoverResult:
    """One recover pass under the stack lock (raises LockBusyError after ``wait`` seconds).
    Once ``stop`` is set, a restart under way finishes, no other begins, and confirmation
    waits end; the rows say "not restarted: interrupted"."""
    emit = on_event or ignore_events
    began = time.monotonic()
    resets = stack.resolve(list(reset)) if reset else []
    with mutation(stack, "recover", wait=wait):
        pending = JournalFile(stack.state_dir).interrupted()
        if pending is not None:  # restarting now would bring back the old data, silently
            blocked = f"{pending.describe()}; recover restarts nothing until then"
            return RecoverResult([], dry_run=dry_run, blocked=blocked)
        state = RecoveryState(stack.state_dir)
        alerts = dispatcher or Dispatcher(
            stack.name, stack.config.alerts, stack.state_dir, Redactor(stack.secrets())
        )
        for name in resets:
            state.reset(name)
            alerts.forget(name)
        if not dry_run:
            alerts.start_of_pass()
        rows = _Pass(stack, state, alerts, dry_run, emit, stop).run()
        if not dry_run:
            state.save()
            alerts.end_of_pass()
    result = RecoverResult(rows, list(alerts.deliveries), dry_run, time.monotonic() - began)
    result.interrupted = stop is not None and stop.is_set()
    return result


class _Pass:
    """The steps of one pass over one snapshot of the recovery state."""

    def __init__(
        self,
        stack: Stack,
        state: RecoveryState,
        alerts: Dispatcher,
        dry_run: bool,
        emit,
        stop: threading.Event | None = None,
    ):
        self.stack = stack
        self.stop = stop or threading.Event()
        self.state = state
        self.alerts = alerts
        self.dry_run = dry_run
        self.emit = emit
        self.settings = stack.config.recover
        self.budget = RestartBudget(self.settings.max_restarts, self.settings.window)
        self.redact = Redactor(stack.secrets())
        self.unresolved: set[str] = set()  # still not healthy after its turn in this pass
        self.restarted: set[str] = set()
        self.fresh: set[str] = set()  # restarted since the observation being acted on

    def run(self) -> list[RecoverRow]:
        stopped = intent.wanted_stopped(self.stack.state_dir)
        wanted = [name for name in self.stack.start_order() if name not in stopped]
        self.state.prune(self.budget, time.time())
        rows = [
            RecoverRow(name, ServiceVerdict.STOPPED, RecoverAction.LEFT_ALONE, stopped[name])
            for name in self.stack.start_order()
            if name in stopped
        ]
        # A unit its runtime is bringing back (Swarm replacing a task) is its runtime's to
        # finish: waited for, never restarted a second time by this pass.
        left_to_runtime, replaced = _await_runtime(self.stack, wanted)
        rows.extend(self._left_to_runtime(name, detail) for name, detail in left_to_runtime.items())
        wanted = [name for name in wanted if name not in left_to_runtime]
        # Units that are not running are known from their runtime alone, in microseconds:
        # they are confirmed and restarted before the health checks of the others run, so a
        # dead Kong is not kept waiting on nginx's checks timing out against it.
        down = _down(self.stack, wanted)
        if down:
            self._confirm(down)
            rows.extend(self._act([name for name in wanted if name in down], down))
        rest = [name for name in wanted if name not in down]
        self.fresh = set()  # restarts the coming observation has not seen yet
        observed = observe(self.stack, rest)
        self._confirm(observed)
        rows.extend(self._act(rest, observed))
        everything_healthy = not stopped and all(
            row.verdict is ServiceVerdict.HEALTHY and row.action is RecoverAction.NOTHING
            for row in rows
        )
        if everything_healthy and self._e2e_due() and _e2e_is_free(self.stack):
            self.state.last_e2e = time.time()
            rows.extend(self._judge_e2e(self._masking_problem()))
        for row in rows:
            if row.service in replaced and row.action is RecoverAction.NOTHING:
                seen = f"; {row.detail}" if row.detail else ""
                row.detail = f"its runtime replaced it ({replaced[row.service]}){seen}"
        order = {name: index for index, name in enumerate([*self.stack.start_order(), E2E])}
        return sorted(rows, key=lambda row: order.get(row.service, len(order)))

    def _left_to_runtime(self, name: str, detail: str) -> RecoverRow:
        """Its runtime did not bring it back within its start timeout: alerted (with where it
        runs and the last task error), not restarted — a second start would fight it."""
        problem = f"{name} is down and its runtime has not brought it back: {detail}"
        if not self.dry_run:
            self.alerts.failed(name, self.redact(problem))
        return RecoverRow(
            name, ServiceVerdict.DOWN, RecoverAction.LEFT_TO_RUNTIME, self.redact(detail)
        )

    # -- confirmation --------------------------------------------------------------------

    def _confirm(self, observed: dict[str, Observation], counted: bool = False) -> None:
        """Re-observe the failures until each is healthy or seen ``failures`` times in a row.

        A service whose dependency failed too is not confirmed now: whether its failure is its
        own is known only once the dependency is back (:meth:`_act` confirms it then).
        """
        failed = {name for name, seen in observed.items() if seen.verdict.failed}
        failed |= self.unresolved
        due: dict[str, float] = {}
        for name, seen in observed.items():
            if not counted:
                self._count(name, seen)
            if self.stack.with_dependencies([name]) - {name} & failed:
                continue
            if seen.verdict.failed and self.state.record(name).failures < self.settings.failures:
                if self._certain(name, seen):
                    continue
                due[name] = time.monotonic() + self._spacing(seen)
        while due and not self.stop.is_set():
            name = min(due, key=due.__getitem__)
            self.stop.wait(max(0.0, due.pop(name) - time.monotonic()))
            again = _observe_one(self.stack, name, observed[name].verdict)
            observed[name] = again
            self._count(name, again)
            if again.verdict.failed and self.state.record(name).failures < self.settings.failures:
                due[name] = time.monotonic() + self._spacing(again)

    def _certain(self, name: str, seen: Observation) -> bool:
        """A unit that is down and that nothing but opskit brings back (a process opskit
        started) is down for certain: a second look 0.1 s later could only say the same, so it
        is not waited for. Health failures, and units an engine may restart by itself, are."""
        return (
            seen.verdict is ServiceVerdict.DOWN and not self.stack.role(name).unit.may_come_back()
        )

    def _spacing(self, seen: Observation) -> float:
        return DOWN_RECHECK if seen.verdict is ServiceVerdict.DOWN else self.settings.recheck

    def _count(self, name: str, seen: Observation) -> None:
        record = self.state.record(name)
        if seen.verdict.failed:
            record.failures += 1
            record.last_problem = seen.detail
        else:
            record.failures = 0

    # -- acting ----------------------------------------------------------------------------

    def _act(self, wanted: list[str], observed: dict[str, Observation]) -> list[RecoverRow]:
        unresolved, restarted = self.unresolved, self.restarted
        rows = []
        for name in wanted:
            seen = observed[name]
            upstream = self.stack.with_dependencies([name]) - {name}
            if not seen.verdict.failed:
                row = self._healthy(name, seen)
                if seen.verdict is ServiceVerdict.IMPACTED and upstream & self.fresh:
                    back = ", ".join(sorted(upstream & self.fresh))
                    row.detail = f"impacted until {back} was restarted"
                rows.append(row)
                continue
            broken = sorted(upstream & unresolved, key=self.stack.start_order().index)
            if broken:
                unresolved.add(name)
                what = "not started" if seen.verdict is ServiceVerdict.DOWN else "not touched"
                detail = f"{what}: {', '.join(broken)} still failing ({seen.detail})"
                rows.append(RecoverRow(name, seen.verdict, RecoverAction.WAITING, detail))
                continue
            if upstream & self.fresh and seen.verdict is ServiceVerdict.FAILING:
                again = {name: _observe_one(self.stack, name, seen.verdict)}
                self._count(name, again[name])
                self._confirm(again, counted=True)
                if not again[name].verdict.failed:
                    back = ", ".join(sorted(upstream & restarted))
                    detail = f"healthy again once {back} was back ({seen.detail})"
                    rows.append(RecoverRow(name, seen.verdict, RecoverAction.HEALTHY_AGAIN, detail))
                    continue
                seen = again[name]
            row = self._recover_one(name, seen)
            rows.append(row)
            if row.action is RecoverAction.RESTARTED:
                restarted.add(name)
                self.fresh.add(name)
            elif not row.action.resolved:
                unresolved.add(name)
        return rows

    def _healthy(self, name: str, seen: Observation) -> RecoverRow:
        record = self.state.record(name)
        gave_up = record.gave_up_at is not None
        if not self.dry_run:
            self.state.healthy(name)
            summary = f"{name} is healthy again" + (" (recovery had given up)" if gave_up else "")
            self.alerts.recovered(name, summary)
        detail = seen.detail or ("healthy again: re-armed" if gave_up else "")
        return RecoverRow(name, seen.verdict, RecoverAction.NOTHING, detail)

    def _recover_one(self, name: str, seen: Observation) -> RecoverRow:
        record = self.state.record(name)
        problem = f"{name} is {seen.verdict.value}: {seen.detail}"
        if record.gave_up_at is not None:
            since = time.strftime("%H:%M:%SZ", time.gmtime(record.gave_up_at))
            detail = (
                f"gave up at {since} ({seen.detail}); fix it, then `inv recover --reset {name}` "
                "or let the next healthy observation re-arm it"
            )
            return RecoverRow(name, seen.verdict, RecoverAction.GAVE_UP, detail)
        if seen.verdict is ServiceVerdict.FAILING:
            probe = self.stack.role(name).probe_ready()
            if probe.fatal:  # a wrong password, an invalid config: a restart is not recovery
                if not self.dry_run:
                    self.alerts.failed(name, f"{problem}; not restarted: {probe.detail}")
                detail = (
                    f"{seen.detail}; not restarted: a restart cannot be recovery from this "
                    f"({self.redact(probe.detail)}) — fix the configuration, or `inv restart -s "
                    f"{name}` to apply the current one"
                )
                return RecoverRow(name, seen.verdict, RecoverAction.ALERT_ONLY, detail)
        now = time.time()
        if self.budget.spent(record.attempts, now):
            return self._give_up(name, seen, problem)
        if self.stop.is_set():
            return RecoverRow(name, seen.verdict, RecoverAction.INTERRUPTED, seen.detail)
        if self.dry_run:
            used = self.budget.used(record.attempts, now)
            budget = self.budget.describe()
            detail = f"{seen.detail}; would restart (restart {used + 1} of {budget})"
            return RecoverRow(name, seen.verdict, RecoverAction.WOULD_RESTART, detail)
        self.alerts.failed(name, problem)
        record.attempts.append(now)
        self.state.save()  # charged before acting: a crash mid-restart still counts
        used = self.budget.used(record.attempts, now)
        self.emit(Event(name, Phase.RUNNING, f"recovering ({seen.verdict.value}: {seen.detail})"))
        result = _restart(self.stack, name, self.emit)
        count = f"restart {used} of {self.budget.describe()}"
        if result.ok:
            record.failures = 0
            self.alerts.recovered(name, f"{name} restarted by recovery and ready ({count})")
            detail = f"{seen.detail} → restarted, {result.detail} ({count})"
            return RecoverRow(name, seen.verdict, RecoverAction.RESTARTED, detail, result.seconds)
        record.last_problem = result.detail
        if self.budget.spent(record.attempts, time.time()):
            row = self._give_up(name, seen, f"{problem}; last restart: {result.detail}")
            row.log_tail = result.log_tail
            return row
        detail = f"{seen.detail} → restart failed: {result.detail} ({count})"
        return RecoverRow(
            name,
            seen.verdict,
            RecoverAction.RESTART_FAILED,
            detail,
            result.seconds,
            result.log_tail,
        )

    def _give_up(self, name: str, seen: Observation, problem: str) -> RecoverRow:
        record = self.state.record(name)
        record.gave_up_at = time.time()
        spent = self.budget.describe()
        summary = f"{problem}; gave up after {spent} restarts — a person must act"
        if not self.dry_run:
            self.alerts.failed(name, problem)
            self.alerts.gave_up(name, summary)
        detail = f"{seen.detail}; restart budget spent ({spent}): gave up"
        return RecoverRow(name, seen.verdict, RecoverAction.GAVE_UP, self.redact(detail))

    def _e2e_due(self) -> bool:
        """Every ``e2e_interval`` at most — the watcher's passes come every few seconds, and
        each masking check leaves a synthetic id's two map keys (24 h TTL) in Redis — but
        always while an e2e incident is open, so its recovery is seen at once."""
        if not self.settings.e2e:
            return False
        if self.alerts.is_open(E2E):
            return True
        return time.time() - self.state.last_e2e >= self.settings.e2e_interval

    def _masking_problem(self) -> str | None:
        """The masking check's failure, confirmed like a service's (``failures`` in a row,
        ``recheck`` apart): the first request after a Redis restart may meet a stale
        connection in the gateway, which is not worth waking anyone for."""
        problem = None
        for attempt in range(self.settings.failures):
            if attempt:
                time.sleep(self.settings.recheck)
            failing = [c for c in run_e2e(self.stack) if c.status in _FAILING]
            problem = "; ".join(f"{c.name}: {c.detail}" for c in failing) or None
            if problem is None:
                return None
        return problem

    def _judge_e2e(self, problem: str | None) -> list[RecoverRow]:
        """Run only when every service is healthy: a masking failure then is no service's
        to restart — it is alerted, once, and the pass exits 1."""
        if problem is None:
            if not self.dry_run:
                self.alerts.recovered(E2E, "the end-to-end masking check passes again")
            return [RecoverRow(E2E, ServiceVerdict.HEALTHY, RecoverAction.NOTHING, "masking works")]
        if not self.dry_run:
            self.alerts.failed(E2E, f"end-to-end masking check fails: {problem}")
        detail = f"{problem} — every service is healthy: no restart can fix this (inv health -e)"
        return [RecoverRow(E2E, ServiceVerdict.FAILING, RecoverAction.ALERT_ONLY, detail)]


# -- observing -----------------------------------------------------------------------------------


def observe(stack: Stack, services: list[str]) -> dict[str, Observation]:
    """One health snapshot of ``services``: a verdict each."""
    if not services:
        return {}
    report = run_health(stack, services)
    by_service: dict[str, list] = {}
    for check in report.checks:
        by_service.setdefault(check.service, []).append(check)
    return {name: _verdict(name, by_service.get(name, [])) for name in services}


def _verdict(name: str, checks: list) -> Observation:
    process = next((c for c in checks if c.name == "process"), None)
    if process is not None and process.status is not CheckStatus.OK:
        return Observation(name, ServiceVerdict.DOWN, process.detail)
    own = [
        c for c in checks if c.name not in ("process", DEPENDENCY_CHECK) and c.status in _FAILING
    ]
    if own:
        detail = "; ".join(f"{c.name} {c.status.value}: {c.detail}" for c in own)
        return Observation(name, ServiceVerdict.FAILING, detail)
    impacted = [c for c in checks if c.name == DEPENDENCY_CHECK]
    if impacted:
        return Observation(name, ServiceVerdict.IMPACTED, impacted[0].detail)
    return Observation(name, ServiceVerdict.HEALTHY)


def _down(stack: Stack, services: list[str]) -> dict[str, Observation]:
    """The services whose unit is not running, from the runtime alone."""
    down = {}
    for name in services:
        seen = _observe_one(stack, name, ServiceVerdict.DOWN, health=False)
        if seen.verdict is ServiceVerdict.DOWN:
            down[name] = seen
    return down


def _observe_one(
    stack: Stack, name: str, previous: ServiceVerdict, *, health: bool = True
) -> Observation:
    """A confirming observation: a unit's state alone while it is down (cheap), else health."""
    if previous is ServiceVerdict.DOWN:
        status = stack.role(name).unit.status()
        if status.state is UnitState.CONVERGING:  # died since the pass began: the runtime's
            _still, replaced = _await_runtime(stack, [name])
            if replaced:
                seen = observe(stack, [name])[name]
                seen.detail = f"its runtime replaced it ({replaced[name]})" + (
                    f"; {seen.detail}" if seen.detail else ""
                )
                return seen
            status = stack.role(name).unit.status()
        if not status.running:
            code = "?" if status.exit_code is None else status.exit_code
            what = f"exited({code})" if status.state is UnitState.EXITED else status.state.value
            return Observation(name, ServiceVerdict.DOWN, f"not running: {what}")
        if not health:
            return Observation(name, ServiceVerdict.HEALTHY, "running")
    return observe(stack, [name])[name]


def _await_runtime(stack: Stack, services: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    """Wait (each up to its start timeout) for the units their runtime is bringing back.

    Returns those still converging at their deadline (with the runtime's detail) and those that
    came back (with what the runtime said while it was replacing them).
    """
    converging = {}
    for name in services:
        status = stack.role(name).unit.status()
        if status.state is UnitState.CONVERGING:
            converging[name] = status.detail
    if not converging:
        return {}, {}
    began = time.monotonic()
    waiting = {name: began + stack.role(name).spec.start_timeout for name in converging}
    still: dict[str, str] = {}
    while waiting:
        for name, deadline in list(waiting.items()):
            status = stack.role(name).unit.status()
            if status.state is not UnitState.CONVERGING:
                del waiting[name]
            elif time.monotonic() >= deadline:
                still[name] = status.detail
                del waiting[name]
        if waiting:
            time.sleep(0.2)
    replaced = {name: detail for name, detail in converging.items() if name not in still}
    return still, replaced


def _e2e_is_free(stack: Stack) -> bool:
    from opskit.ops.e2e import e2e_cost

    return e2e_cost(stack) is None


def _restart(stack: Stack, name: str, emit: EventSink) -> StepResult:
    """Stop what is left (gracefully, then killed after its grace), clear its leftovers, and
    bring it back through the engine's readiness gate."""
    role = stack.role(name)
    if role.unit.status().running:
        emit(Event(name, Phase.STOPPING, "failing: restarting"))
        role.stop()
    for cleared in role.unit.clear_leftovers():
        emit(Event(name, Phase.CLEANING, cleared))
    return ensure_ready(stack, name, emit=emit)


# -- the watcher ---------------------------------------------------------------------------------


def watch(
    load: Callable[[], Stack],
    *,
    stop: threading.Event,
    exits: ExitWatch,
    on_pass: Callable[[RecoverResult], None],
    interval: float | None = None,
    dry_run: bool = False,
    on_event: EventSink | None = None,
) -> None:
    """Pass after pass until ``stop`` is set; between passes, sleep in :class:`ExitWatch` so a
    unit that dies starts the next pass at once. A pass in progress always finishes.

    ``load`` reads the stack file again whenever it or its ``.env`` changes, so a rotated
    password is what the next restart uses. A file that no longer loads (an edit in progress)
    keeps the previous stack in use and is reported on every pass until it loads.
    """
    stack = load()
    seen = _fingerprint(stack)
    while not stop.is_set():
        problem = ""
        current = _fingerprint(stack)
        if current != seen:
            try:
                stack = load()
                seen = current
            except OpskitError as exc:
                problem = (
                    f"the stack file changed but does not load ({exc}); still using the last one"
                )
        every = interval or stack.config.recover.interval
        try:
            result = recover(stack, dry_run=dry_run, on_event=on_event)
        except LockBusyError as exc:
            result = RecoverResult([], busy=str(exc))
        result.problem = problem
        on_pass(result)
        if stop.is_set():
            return
        watched = _watchable(stack)
        exits.arm(watched)
        if _died_since(result, watched):
            continue  # it died between the pass and the arming: no pidfd would ever fire
        exits.wait(every, functools.partial(_running, stack))


def _died_since(result: RecoverResult, watched: dict[str, int | None]) -> list[str]:
    """Services this pass left running that are no longer running to be watched.

    A unit that is down and was *not* left running (gave up, restart failed) is not counted:
    passing again at once would only spin; the interval brings the next attempt.
    """
    left_running = {row.service for row in result.rows if row.action in _LEFT_RUNNING}
    return sorted(left_running - watched.keys())


def _running(stack: Stack, name: str) -> bool:
    return stack.role(name).unit.status().running


def _fingerprint(stack: Stack) -> tuple:
    """What the watcher compares to notice an edited stack file or .env."""
    marks = []
    for path in (stack.config.source, stack.config.project_dir / ".env"):
        try:
            info = path.stat()
            marks.append((info.st_mtime_ns, info.st_size))
        except OSError:
            marks.append(None)
    return tuple(marks)


def _watchable(stack: Stack) -> dict[str, int | None]:
    """The running units wanted running: their host pid, or None (watch by asking)."""
    stopped = intent.wanted_stopped(stack.state_dir)
    watched: dict[str, int | None] = {}
    for name in stack.start_order():
        unit = stack.role(name).unit
        if name in stopped:
            continue
        pid = unit.host_pid()
        if pid is not None or unit.status().running:
            watched[name] = pid
    return watched
