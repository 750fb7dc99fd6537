"""A staged rollout of a plugin's settings, with guards and an automatic rollback.

DB-less Kong has no ``PATCH /plugins/{id}`` (405, row 11): each stage is a whole declarative
config — a copy of the last good one with the stage's settings merged into every instance of the
plugin — applied through :func:`opskit.ops.declarative` (validated, ``POST /config``, hash
verified, kept). Then the stage *soaks*: for ``soak`` seconds the guards watch

- the gateway's readiness, every second (a stage that makes it unready trips at once);
- the entry point's traffic (its access log): the 5xx rate and the p95 latency, against
  ``max_error_rate`` and ``max_p95``, once enough requests were seen;
- the masking events: requests reached the masked path but no event came → masking stopped.

The traffic guards are judged every second over a sliding window (the last ``window`` seconds
of the stage), with the same minimum-request rule, and once more over the whole soak at its
end. Judging only at the end let a stage that broke the upstream 6 s into a 30 s soak answer
502 for the rest of it; now it is rolled back within a tick or two of crossing a threshold.

A tripped guard applies the last good config again, byte for byte, and verifies its hash. Keys
the plugin's schema lacks are refused before anything is applied. Stages live in Kong's memory
while they soak; when the rollout ends — complete, tripped or interrupted — the last good config
is made the file Kong loads at start (:func:`declarative.make_permanent`), so a restart runs
what passed, never a stage that was still being judged. ``memory_only`` skips that.

**Interruptions.** ``rollout.json`` in the history folder says which config is the last good
one while a rollout runs. ``stop`` (set by the task on SIGINT or SIGTERM) is checked after each
apply and several times a second while a stage soaks; a KeyboardInterrupt, for callers that keep
Python's default handler, is treated alike. Either way the last good config is applied again
before the rollout ends; after a ``kill -9`` the next rollout finds the journal, applies the last
good config first and says so.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from opskit.declarative.document import (
    DeclarativeError,
    check_settings,
    md5_of,
    parse,
    with_plugin_settings,
)
from opskit.declarative.history import ConfigHistory, HistoryEntry
from opskit.errors import OpskitError
from opskit.files import atomic_write_json, read_json
from opskit.ops import declarative
from opskit.ops.engine import capable, mutation
from opskit.results import ExitsByOk
from opskit.services.capabilities import (
    MaskingGateway,
    MaskingStore,
    Traffic,
    TrafficReporting,
    Verdict,
)
from opskit.stack import Stack
from opskit.vocabulary import ExitCode, StageOutcome


class RolloutInterrupted(OpskitError):
    """Ctrl-C during a rollout: the last good config was applied again before exiting."""

    exit_code = ExitCode.INTERRUPTED


class _StopAsked(Exception):
    """``stop`` was set: leave the stage at the next safe point."""


def _check(stop: threading.Event | None) -> None:
    if stop is not None and stop.is_set():
        raise _StopAsked


#: Fewer requests than this in a soak are too few to judge a rate or a percentile.
MIN_REQUESTS = 20


@dataclass(frozen=True)
class Guards:
    soak: float = 30.0
    max_error_rate: float = 0.01
    max_p95: float = 2.0
    window: float = 10.0  # the sliding window the traffic guards are judged over, each second


@dataclass
class StageReport:
    number: int
    settings: dict[str, Any]
    applied: str = ""  # hash
    requests: int = 0
    error_rate: float = 0.0
    p95: float | None = None
    events: int = 0
    outcome: StageOutcome = StageOutcome.PENDING
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome.ok

    @property
    def verdict(self) -> str:
        return f"{self.outcome.value}: {self.reason}" if self.reason else self.outcome.value


@dataclass
class RolloutResult(ExitsByOk):
    stages: list[StageReport] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # e.g. an earlier interrupted rollout
    restored: HistoryEntry | None = None  # the last good config, applied again after a trip
    persisted: Verdict | None = None  # the last good config made the file's (None: memory only)
    ok: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "notes": self.notes,
            "restored": self.restored.number if self.restored else None,
            "persisted": self.persisted.to_dict() if self.persisted else None,
            "stages": [{**vars(s), "verdict": s.verdict, "ok": s.ok} for s in self.stages],
        }


def rollout(
    stack: Stack,
    plugin: str,
    stages: list[dict[str, Any]],
    guards: Guards,
    *,
    on_stage: Any = None,
    on_note: Any = None,
    stop: threading.Event | None = None,
    memory_only: bool = False,
) -> RolloutResult:
    """Apply ``stages`` one after another (settings accumulate), soaking each under ``guards``."""
    for index, settings in enumerate(stages, 1):
        problems = check_settings(plugin, settings, f"stage {index} ({plugin})")
        if problems:
            raise DeclarativeError("; ".join(problems))
    result = RolloutResult()
    with mutation(stack, "kong.rollout"), declarative.gateway_errors(stack):
        journal = _Journal(stack)
        result.notes.extend(journal.recover_interrupted())
        for note in result.notes:
            if on_note:
                on_note(note)
        _, gateway_role = declarative.gateway(stack)
        history = ConfigHistory(stack.state_dir)
        good = _last_good(stack, history, gateway_role.configuration_hash())
        journal.begin(good)
        try:
            for index, settings in enumerate(stages, 1):
                _check(stop)
                report = StageReport(index, settings)
                result.stages.append(report)
                base = parse(history.text(good), f"config #{good.number}")
                text = with_plugin_settings(base, plugin, settings)
                source = f"rollout stage {index}/{len(stages)} of {plugin}"
                applied = declarative.apply_text(stack, text, source)
                if not applied.ok or applied.entry is None:
                    report.outcome, report.reason = StageOutcome.FAILED, applied.detail
                    result.restored = _restore(stack, history, good)
                    break
                report.applied = applied.entry.md5
                _check(stop)
                tripped = _soak(stack, guards, report, stop)
                if tripped:
                    report.outcome, report.reason = StageOutcome.TRIPPED, tripped
                    result.restored = _restore(stack, history, good)
                elif report.requests >= MIN_REQUESTS:
                    report.outcome = StageOutcome.PASSED
                else:
                    report.outcome = StageOutcome.UNJUDGED
                    report.reason = f"only {report.requests} requests during the soak"
                if report.ok:
                    good = applied.entry
                    journal.advance(good)
                if on_stage:
                    on_stage(report)
                if tripped:
                    break
            else:
                result.ok = True
        except (KeyboardInterrupt, _StopAsked):
            _restore(stack, history, good)
            persisted = None if memory_only else _make_permanent(stack, history, good)
            journal.finish()
            kept = f"; {persisted.detail}" if persisted is not None else ""
            raise RolloutInterrupted(
                f"rollout interrupted: the last good config #{good.number} ({good.md5[:12]}) "
                f"is applied again{kept}"
            ) from None
        if not memory_only:
            result.persisted = _make_permanent(stack, history, good)
        journal.finish()
    return result


def _make_permanent(stack: Stack, history: ConfigHistory, good: HistoryEntry) -> Verdict:
    return declarative.make_permanent(stack, history.text(good), good)


def _last_good(stack: Stack, history: ConfigHistory, running: str | None) -> HistoryEntry:
    """What runs, as bytes opskit can send again: from the history, or Kong's own file."""
    entry = history.latest_with(running)
    if entry is not None:
        return entry
    _, role = declarative.gateway(stack)
    source = role.declarative_source()
    if md5_of(source) == running:
        return history.record(source, "running before the rollout (the declarative file)")
    raise DeclarativeError(
        f"Kong runs configuration_hash {str(running)[:12]}, which is neither in opskit's history "
        "nor its declarative file: no byte-exact way back exists — inv kong.apply a known "
        "config first"
    )


def _restore(stack: Stack, history: ConfigHistory, good: HistoryEntry) -> HistoryEntry:
    source = f"rollout rollback to #{good.number}"
    restored = declarative.apply_text(stack, history.text(good), source)
    if not restored.ok:
        raise DeclarativeError(
            f"the rollback to config #{good.number} failed too: {restored.detail}"
        )
    return good


def _soak(
    stack: Stack, guards: Guards, report: StageReport, stop: threading.Event | None = None
) -> str | None:
    """Watch the guards for ``guards.soak`` seconds; why it tripped, or None. Each second the
    traffic of the last ``guards.window`` seconds is judged; at the end, the whole soak."""
    gateways = capable(stack, MaskingGateway)
    gateway = stack.role(gateways[0]) if gateways else None
    entry_names = capable(stack, TrafficReporting)
    entry = stack.role(entry_names[0]) if entry_names else None
    store_names = capable(stack, MaskingStore)
    masked_path = gateway.masked_path if gateway is not None else "/"
    began = time.time()
    deadline = time.monotonic() + guards.soak
    arrivals: deque[tuple[float, int]] = deque()  # (wall time a tick ended, events in it)
    with contextlib.ExitStack() as scope:
        channel = scope.enter_context(stack.role(store_names[0]).events()) if store_names else None
        while time.monotonic() < deadline:
            _check(stop)
            if gateway is not None:
                probe = gateway.probe_ready()
                if not probe.ready:
                    return f"the gateway is not ready: {probe.detail}"
            tick = time.monotonic() + min(1.0, max(0.0, deadline - time.monotonic()))
            if channel is not None:
                arrivals.append((time.time(), _count_messages(channel, tick, stop)))
            _pause(max(0.0, tick - time.monotonic()), stop)
            if entry is not None and time.monotonic() < deadline:
                since = max(began, time.time() - guards.window)
                events = sum(n for at, n in arrivals if at >= since)
                traffic = entry.traffic_since(since, masked_path)
                tripped = _judge(traffic, events, guards, masked_path, bool(store_names))
                if tripped:
                    _fill(report, traffic, sum(n for _, n in arrivals))
                    return f"{tripped} in the last {time.time() - since:.0f}s"
    report.events = sum(n for _, n in arrivals)
    if entry is None:
        return None
    traffic = entry.traffic_since(began, masked_path)
    _fill(report, traffic, report.events)
    return _judge(traffic, report.events, guards, masked_path, bool(store_names))


def _fill(report: StageReport, traffic: Traffic, events: int) -> None:
    report.requests, report.error_rate, report.p95 = (
        traffic.requests,
        traffic.error_rate,
        traffic.p95_seconds,
    )
    report.events = events


def _judge(
    traffic: Traffic, events: int, guards: Guards, masked_path: str, watches_masking: bool
) -> str | None:
    """Why this traffic trips a guard, or None; too few requests are never judged."""
    if traffic.requests < MIN_REQUESTS:
        return None
    if traffic.error_rate > guards.max_error_rate:
        return (
            f"{traffic.server_errors} of {traffic.requests} requests answered 5xx "
            f"({traffic.error_rate:.1%} > {guards.max_error_rate:.1%})"
        )
    if traffic.p95_seconds is not None and traffic.p95_seconds > guards.max_p95:
        return f"p95 latency {traffic.p95_seconds * 1000:.0f} ms > {guards.max_p95 * 1000:.0f} ms"
    if watches_masking and traffic.to_path >= MIN_REQUESTS and events == 0:
        return (
            f"{traffic.to_path} requests reached {masked_path} but no masking event was published"
        )
    return None


def _count_messages(channel, until: float, stop: threading.Event | None = None) -> int:
    """Events received before the monotonic instant ``until`` (never longer, however many)."""
    count = 0
    while (left := until - time.monotonic()) > 0:
        _check(stop)
        if channel.get_message(timeout=min(left, 0.25)) is not None:
            count += 1
    return count


def _pause(seconds: float, stop: threading.Event | None) -> None:
    if stop is None:
        time.sleep(seconds)
    else:
        stop.wait(seconds)


class _Journal:
    """``rollout.json``: the last good config while a rollout runs (for a kill -9)."""

    def __init__(self, stack: Stack):
        self.stack = stack
        self.path = ConfigHistory(stack.state_dir).dir / "rollout.json"

    def recover_interrupted(self) -> list[str]:
        record = read_json(self.path)
        if not isinstance(record, dict) or record.get("status") != "running":
            return []
        history = ConfigHistory(self.stack.state_dir)
        good = history.entry(int(record["last_good"]))
        _restore(self.stack, history, good)
        self.finish()
        when = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(record.get("started_at", 0)))
        return [
            f"a rollout started at {when} (pid {record.get('pid')}) was interrupted: its last good "
            f"config #{good.number} ({good.md5[:12]}) was applied again"
        ]

    def begin(self, good: HistoryEntry) -> None:
        self._write(
            {
                "status": "running",
                "pid": os.getpid(),
                "started_at": time.time(),
                "last_good": good.number,
            }
        )

    def advance(self, good: HistoryEntry) -> None:
        record = read_json(self.path) or {}
        self._write({**record, "last_good": good.number})

    def finish(self) -> None:
        record = read_json(self.path) or {}
        self._write({**record, "status": "finished"})

    def _write(self, record: dict) -> None:
        from opskit.files import private_dir

        private_dir(self.path.parent)
        atomic_write_json(self.path, record)
