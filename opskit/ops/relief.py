"""Restart a stateless service behind its front without failing a request: a *relief* takes over.

For a service whose role is :class:`~opskit.services.capabilities.Relievable` (the backend)
and that another service fronts (:class:`~opskit.services.capabilities.UpstreamSwitching`:
nginx with ``fronts: backend``):

1. a relief instance starts on a spare port (``backend-relief``; under docker a second
   container) and must pass the service's own readiness probe;
2. the front's upstream is pointed at it (edit, ``nginx -t``, HUP verified) and the old
   workers drain: requests in flight to the service finish there;
3. the service restarts the usual way (graceful stop, start, readiness gate);
4. the front's upstream is restored byte-identical and drained again;
5. the relief stops.

Every step that fails leaves requests going somewhere ready: the relief is stopped only once
the front no longer sends it anything. A journal (``<state_dir>/relief/<service>.json``) names
a relief that is running; an operation killed half-way is finished by the next graceful
restart (:func:`finish_interrupted`), and ``inv stop`` of the service stops its relief too.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from opskit.files import atomic_write_json, private_dir, read_json
from opskit.ops.engine import Event, EventSink, StepResult, ensure_ready, wait_ready
from opskit.ports import free_loopback_port
from opskit.services.base import Role
from opskit.services.capabilities import Relievable, UpstreamSwitching, Verdict
from opskit.stack import Stack
from opskit.vocabulary import Phase, StepOutcome


def front_of(stack: Stack, name: str) -> str | None:
    """The service that fronts ``name`` (sends it its requests and can switch them), if any."""
    for other in stack.start_order():
        role = stack.role(other)
        if isinstance(role, UpstreamSwitching) and role.fronted_service == name:
            return other
    return None


@dataclass(frozen=True)
class _Journal:
    """Which relief runs for a service, on which port, behind which front."""

    path: Path

    @classmethod
    def of(cls, stack: Stack, name: str) -> _Journal:
        return cls(stack.state_dir / "relief" / f"{name}.json")

    def read(self) -> dict | None:
        return read_json(self.path)

    def write(self, port: int, front: str) -> None:
        private_dir(self.path.parent)
        atomic_write_json(self.path, {"port": port, "front": front, "since": time.time()})

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


def _relief(stack: Stack, name: str, port: int) -> Role:
    role = stack.role(name)
    assert isinstance(role, Relievable)
    return stack.role_for(role.relief_spec(port), role.options)


def relieved_restart(stack: Stack, name: str, front_name: str, emit: EventSink) -> StepResult:
    """Steps 1–5 above, under the caller's stack lock."""
    began = time.monotonic()
    role = stack.role(name)
    front = stack.role(front_name)
    assert isinstance(front, UpstreamSwitching)
    drain = role.spec.stop_grace_period  # what a request in flight may still take

    def failed(detail: str) -> StepResult:
        return StepResult(name, StepOutcome.FAILED, detail, time.monotonic() - began)

    if not front.unit.status().running:
        return failed(f"{front_name}, which fronts it, is not running: nothing to switch")
    port = free_loopback_port()
    relief = _relief(stack, name, port)
    journal = _Journal.of(stack, name)
    journal.write(port, front_name)
    emit(Event(name, Phase.STARTING, f"relief instance {relief.spec.name} on 127.0.0.1:{port}"))
    relief.prepare()
    relief.unit.start(relief.launch())
    problem = wait_ready(relief, time.monotonic() + role.spec.start_timeout)
    if problem:
        relief.stop()
        journal.clear()
        return failed(f"its relief instance did not become ready ({problem}); left as it was")

    first = relief.spec.port()
    host, inside = relief.unit.peer_address(first.container_port if first else port)
    switched = front.point_upstream([f"{host}:{inside}"], drain)
    if not switched.ok:
        front.restore_upstream(drain)
        relief.stop()
        journal.clear()
        return failed(f"{front_name} could not switch to the relief: {switched.detail}")
    emit(Event(name, Phase.RUNNING, f"{front_name}: {switched.detail}"))

    stopped = role.stop()
    emit(Event(name, Phase.STOPPED, stopped.detail))
    ready = ensure_ready(stack, name, emit=emit)
    if not ready.ok:
        return failed(
            f"did not come back ({ready.detail}); {front_name} still sends its requests to "
            f"{relief.spec.name} on 127.0.0.1:{port} — fix it, then run graceful-restart again"
        )
    restored = front.restore_upstream(drain)
    if not restored.ok:
        return failed(
            f"restarted, but {front_name} could not be switched back ({restored.detail}); "
            f"{relief.spec.name} keeps serving on 127.0.0.1:{port}"
        )
    emit(Event(name, Phase.RUNNING, f"{front_name}: {restored.detail}"))
    gone = relief.stop()
    journal.clear()
    seconds = time.monotonic() - began
    detail = (
        f"{relief.spec.name} on :{port} took its requests while it restarted "
        f"({ready.detail}); {front_name} switched back; relief {gone.detail}"
    )
    return StepResult(name, StepOutcome.DONE, detail, seconds)


@dataclass(frozen=True)
class _Leftover:
    """What a journal says an interrupted relieved restart left running."""

    journal: _Journal
    relief: Role
    front_name: str

    @classmethod
    def of(cls, stack: Stack, name: str) -> _Leftover | None:
        journal = _Journal.of(stack, name)
        record = journal.read()
        if record is None:
            return None
        relief = _relief(stack, name, int(record.get("port", 0)))
        return cls(journal, relief, str(record.get("front", "")))

    def restore_front(self, stack: Stack, drain: float) -> Verdict:
        """Switch the front back, if it is still there and running."""
        front = stack.role(self.front_name) if self.front_name in stack.services else None
        if isinstance(front, UpstreamSwitching) and front.unit.status().running:
            return front.restore_upstream(drain)
        return Verdict(True, "no running front to switch back", changed=False)

    def stop_relief(self) -> str:
        stopped = self.relief.stop()
        self.journal.clear()
        return stopped.detail


def finish_interrupted(stack: Stack, name: str, emit: EventSink) -> StepResult | None:
    """Finish what a killed relieved restart of ``name`` left behind (None: nothing was left).

    The service is brought to ready first (started if it is down: its requests still go to
    the relief meanwhile), then the front is restored and the relief stopped. When the
    service cannot be made ready the relief keeps serving and the result says so.
    """
    leftover = _Leftover.of(stack, name)
    if leftover is None:
        return None
    began = time.monotonic()
    relief_name = leftover.relief.spec.name
    ready = ensure_ready(stack, name, emit=emit)
    if not ready.ok:
        detail = (
            f"an interrupted graceful restart left {relief_name} serving and {name} "
            f"cannot be made ready ({ready.detail})"
        )
        return StepResult(name, StepOutcome.FAILED, detail, time.monotonic() - began)
    restored = leftover.restore_front(stack, stack.role(name).spec.stop_grace_period)
    if not restored.ok:
        detail = (
            f"{leftover.front_name} could not be switched back from {relief_name}: "
            f"{restored.detail}"
        )
        return StepResult(name, StepOutcome.FAILED, detail, time.monotonic() - began)
    stopped = leftover.stop_relief()
    detail = (
        f"finished an interrupted graceful restart ({leftover.front_name} restored, "
        f"relief {stopped})"
    )
    emit(Event(name, Phase.RUNNING, detail))
    return StepResult(name, StepOutcome.DONE, detail, time.monotonic() - began)


def stop_relief(stack: Stack, name: str) -> str | None:
    """``inv stop`` of ``name``: its relief goes too (its front is being stopped or re-rendered
    with it, or sends to a service that is stopping anyway)."""
    leftover = _Leftover.of(stack, name)
    if leftover is None:
        return None
    leftover.restore_front(stack, 0.0)
    return f"relief {leftover.relief.spec.name} {leftover.stop_relief()}"
