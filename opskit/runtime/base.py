"""The runtime contract: what every runtime offers for one unit (a process or a container).

Roles drive services only through this interface, so a role works unchanged whether its
service is a local process or a container.
"""

from __future__ import annotations

import signal
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opskit.config import ServiceSpec


RUNNING = "running"
EXITED = "exited"
ABSENT = "absent"


@dataclass(frozen=True)
class Launch:
    """What to run for a service: argv, extra environment, and bytes to feed on stdin.

    ``stdin`` exists so that a role can hand configuration (with secrets) to a program without
    putting it in argv or on disk: redis reads its config from stdin with ``redis-server -``.
    """

    argv: tuple[str, ...]
    environment: dict[str, str] = field(default_factory=dict)
    stdin: bytes | None = None


@dataclass(frozen=True)
class UnitStatus:
    """Runtime state of one service."""

    service: str
    state: str  # running | exited | absent
    pid: int | None = None
    started_at: float | None = None  # epoch seconds
    exit_code: int | None = None
    detail: str = ""
    restarts: int | None = None  # starts by opskit after the first, when the runtime counts them

    @property
    def running(self) -> bool:
        return self.state == RUNNING

    def uptime(self, now: float) -> float | None:
        return now - self.started_at if self.running and self.started_at else None


@dataclass(frozen=True)
class UnitStats:
    """Resource use of a running unit (all processes of it)."""

    rss_bytes: int
    cpu_percent: float  # average since the unit started


@dataclass(frozen=True)
class ExecResult:
    """Outcome of a command run in the unit's context (``nginx -t``, ``kong quit``)."""

    exit_code: int | None  # None: it could not run or timed out
    output: str


@dataclass(frozen=True)
class StopResult:
    """How a unit stopped: gracefully, or killed after its grace period."""

    service: str
    was_running: bool
    killed: bool = False
    detail: str = ""


class Unit(ABC):
    """One service's unit in a runtime."""

    #: The service runs as a host process and sees host paths (rendered configs, data dirs).
    runs_on_host: bool = True

    def __init__(self, spec: ServiceSpec):
        self.spec = spec

    @property
    def name(self) -> str:
        return self.spec.name

    @abstractmethod
    def start(self, launch: Launch) -> UnitStatus:
        """Start the unit detached; return at once (readiness is the role's business)."""

    @abstractmethod
    def status(self) -> UnitStatus: ...

    @abstractmethod
    def send_signal(self, sig: signal.Signals) -> bool:
        """Signal the unit's main process; False when it is not running."""

    def wait_stopped(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the unit to exit; True once it has.

        Polls :meth:`status`, first after 10 ms, backing off to 100 ms.
        """
        deadline = time.monotonic() + timeout
        interval = 0.01
        while True:
            if not self.status().running:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            time.sleep(min(interval, remaining))
            interval = min(interval * 1.5, 0.1)

    @abstractmethod
    def kill(self) -> None:
        """SIGKILL the whole unit (its process group or container)."""

    @abstractmethod
    def exec(self, argv: list[str], timeout: float = 15.0) -> ExecResult:
        """Run ``argv`` where the service runs (its environment and working directory)."""

    def container_health(self) -> str | None:
        """The runtime's own health verdict (a container HEALTHCHECK), when it has one."""
        return None

    @abstractmethod
    def stats(self) -> UnitStats | None:
        """Memory and CPU of the running unit; None when it is not running."""

    @abstractmethod
    def log_tail(self, lines: int = 20) -> list[str]: ...

    @abstractmethod
    def address(self, container_port: int) -> tuple[str, int]:
        """Host and port where opskit reaches the service's ``container_port``."""

    @abstractmethod
    def forget(self) -> None:
        """Drop any record of a finished run (pidfile, exit record) after a clean stop."""

    def stop(self, sig: signal.Signals, grace: float) -> StopResult:
        """Send ``sig``, wait ``grace`` seconds, then kill: the Compose ``stop`` contract."""
        if not self.status().running:
            self.kill()  # a dead leader may have left group members behind
            self.forget()
            return StopResult(self.name, was_running=False, detail="not running")
        self.send_signal(sig)
        return self.finish_stop(grace, f"{sig.name}")

    def finish_stop(self, grace: float, how: str) -> StopResult:
        """After a stop was requested: wait out the grace period, then escalate to SIGKILL."""
        if self.wait_stopped(grace):
            self.kill()  # reap stragglers left in the group (e.g. workers of a dead master)
            self.forget()
            return StopResult(self.name, was_running=True, detail=f"stopped by {how}")
        self.kill()
        self.wait_stopped(5.0)
        self.forget()
        return StopResult(
            self.name,
            was_running=True,
            killed=True,
            detail=f"killed after {grace:g}s grace ({how})",
        )


class Runtime(ABC):
    """Creates units and answers machine-level questions (is a port free? can I run?)."""

    name: str

    @abstractmethod
    def unit(self, spec: ServiceSpec) -> Unit: ...

    def build_images(  # noqa: B027 - an optional hook: nothing to build for most runtimes
        self, specs: list[ServiceSpec], progress: Callable[[str, str], None]
    ) -> None:
        """Build what the services need before they can start (docker: ``build:``)."""

    @abstractmethod
    def preflight(self, plans: list[tuple[ServiceSpec, Launch]]) -> list[str]:
        """Problems that would make these launches fail (ports, binaries, disk); empty if none."""
