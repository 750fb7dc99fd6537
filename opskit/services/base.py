"""The Role base class: the questions opskit asks about any piece of software.

*How do I run you?* (:meth:`Role.launch`), *is the machine ready for you?*
(:meth:`Role.preflight`), *are you ready to serve?* (:meth:`Role.probe_ready`) and *how do you
stop gracefully?* (:meth:`Role.stop`). Subclasses answer for redis, nginx, the backend and any
HTTP service.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import httpx

from opskit.errors import ConfigError

if TYPE_CHECKING:
    from opskit.config import ServiceSpec, StackConfig
    from opskit.runtime.base import Launch, StopResult, Unit


_client_lock = threading.Lock()
_client: httpx.Client | None = None


def shared_http_client() -> httpx.Client:
    """One httpx.Client for every role: creating one builds an SSL context and loads the CA
    bundle (tens of ms), which five roles probing at once would otherwise each pay.
    httpx.Client is thread-safe, and sharing it pools connections across probes too."""
    global _client
    with _client_lock:
        if _client is None:
            _client = httpx.Client(timeout=httpx.Timeout(2.0, connect=1.0), trust_env=False)
        return _client


@dataclass(frozen=True)
class Check:
    """A named health check of a role: ``run()`` returns ``(status, detail)``.

    Status is one of opskit.report's OK / WARNING / CRITICAL / UNKNOWN. Checks must bound
    their own I/O (short timeouts); ops.health also abandons one that overruns its deadline.
    """

    name: str
    run: Callable[[], tuple[str, str]]


@dataclass(frozen=True)
class Probe:
    """One readiness observation.

    ``fatal`` means waiting longer cannot help (wrong password, invalid config): the start gate
    fails at once instead of burning the whole timeout.
    """

    ready: bool
    detail: str = ""
    fatal: bool = False


class Role:
    """Base role: run the configured command, stop with the Compose stop signal."""

    name: ClassVar[str] = "base"
    #: The role supplies its own process command, so ``x-opskit.process.command`` is optional.
    provides_process_command: ClassVar[bool] = False
    #: Signal for a graceful stop when the Compose file sets no ``stop_signal``.
    graceful_signal: ClassVar[signal.Signals] = signal.SIGTERM

    def __init__(self, spec: ServiceSpec, unit: Unit, config: StackConfig):
        self.spec = spec
        self.unit = unit
        self.config = config

    # -- configuration --------------------------------------------------------------------------

    @classmethod
    def check(cls, spec: ServiceSpec, config: StackConfig) -> None:
        """Validate role options at load time; raise ConfigError naming the key."""
        needs_command = config.runtime == "process" and not cls.provides_process_command
        if needs_command and not spec.process.command:
            raise ConfigError(
                config.source,
                f"services.{spec.name}.x-opskit.process.command",
                "expected a command list for runtime 'process'",
            )

    # -- starting --------------------------------------------------------------------------------

    def launch(self) -> Launch:
        """What the process runtime runs for this service."""
        from opskit.runtime.base import Launch

        return Launch(argv=tuple(self.spec.process.command))

    def prepare(self) -> None:
        """Write what the service needs before it starts (rendered configs, data dirs)."""

    def preflight(self) -> list[str]:
        """Role-specific problems found before anything starts (e.g. ``nginx -t``)."""
        return []

    def probe_ready(self) -> Probe:
        """Is the service ready to serve? The base role only knows that it runs."""
        status = self.unit.status()
        return Probe(status.running, "running (no readiness probe configured)")

    # -- stopping ---------------------------------------------------------------------------------

    @property
    def stop_signal(self) -> signal.Signals:
        if "stop_signal" in self.spec.compose:
            return signal.Signals[self.spec.stop_signal]
        return self.graceful_signal

    @property
    def stop_method(self) -> str:
        """How :meth:`stop` asks the service to go, for progress messages."""
        return self.stop_signal.name

    def stop(self) -> StopResult:
        """Graceful stop, SIGKILL to the unit only after ``stop_grace_period``."""
        return self.unit.stop(self.stop_signal, self.spec.stop_grace_period)

    # -- helpers for subclasses ------------------------------------------------------------------

    def address(self, container_port: int | None = None) -> tuple[str, int]:
        mapping = self.spec.port(container_port) or self.spec.port()
        port = container_port or (mapping.container_port if mapping else 0)
        return self.unit.address(port)

    def http(self) -> httpx.Client:
        """The process-wide probe client (short timeouts: a probe must never hang a start)."""
        return shared_http_client()

    def probe_http(self, url: str, expect: tuple[int, ...] = ()) -> Probe:
        try:
            response = self.http().get(url)
        except httpx.HTTPError as exc:
            return Probe(False, f"GET {url}: {type(exc).__name__}")
        ok = response.status_code in expect if expect else 200 <= response.status_code < 300
        return Probe(ok, f"GET {url}: HTTP {response.status_code}")

    # -- health ---------------------------------------------------------------------------------

    def health_checks(self) -> list[Check]:
        """The role's checks for ``inv health``; the runtime check is added by ops.health."""
        return []

    def http_check(self, name: str, url: str, expect: tuple[int, ...] = ()) -> Check:
        """A check that is OK when GET ``url`` answers an expected status (default 2xx)."""

        def run() -> tuple[str, str]:
            probe = self.probe_http(url, expect)
            return ("OK" if probe.ready else "CRITICAL"), probe.detail

        return Check(name, run)
