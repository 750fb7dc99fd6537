"""The Role base class: the questions opskit asks about any piece of software.

*How do I run you?* (:meth:`Role.launch`), *is the machine ready for you?*
(:meth:`Role.preflight`), *are you ready to serve?* (:meth:`Role.probe_ready`) and *how do you
stop gracefully?* (:meth:`Role.stop`). Subclasses answer for redis, nginx, the backend and any
HTTP service; what more a role can do it offers as capabilities
(:mod:`opskit.services.capabilities`).

Each role reads its ``x-opskit`` keys into a frozen ``Options`` dataclass when the stack file
loads (:meth:`Role.parse_options`): a typo is an error before anything starts, and code reads
``self.options.health_path`` with the default written once.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from opskit.errors import ConfigError
from opskit.options import OptionReader
from opskit.services.capabilities import LogSource
from opskit.services.probes import HttpAnswer, ProbeError, http_get
from opskit.vocabulary import CheckStatus

if TYPE_CHECKING:
    from opskit.config import ServiceSpec, StackConfig
    from opskit.runtime.base import Launch, StopResult, Unit

CheckOutcome = tuple[CheckStatus, str]


@dataclass(frozen=True)
class Check:
    """A named health check of a role: ``run()`` returns ``(CheckStatus, detail)``.

    Checks must bound their own I/O (short timeouts); ops.health also abandons one that
    overruns its deadline.
    """

    name: str
    run: Callable[[], CheckOutcome]


@dataclass(frozen=True)
class Probe:
    """One readiness observation.

    ``fatal`` means waiting longer cannot help (wrong password, invalid config): the start gate
    fails at once instead of burning the whole timeout.
    """

    ready: bool
    detail: str = ""
    fatal: bool = False


@dataclass(frozen=True)
class RoleOptions:
    """A role without settings of its own."""


class Role:
    """Base role: run the configured command, stop with the Compose stop signal."""

    name: ClassVar[str] = "base"
    #: The role supplies its own process command, so ``x-opskit.process.command`` is optional.
    provides_process_command: ClassVar[bool] = False
    #: Signal for a graceful stop when the Compose file sets no ``stop_signal``.
    graceful_signal: ClassVar[signal.Signals] = signal.SIGTERM
    #: What the services that depend on this one lose while it is down (health's "impacted").
    outage_impact: ClassVar[str] = "requests that need it fail"

    def __init__(
        self, spec: ServiceSpec, unit: Unit, config: StackConfig, options: Any | None = None
    ):
        self.spec = spec
        self.unit = unit
        self.config = config
        self.options = options if options is not None else self.parse_options(spec, config)

    # -- configuration --------------------------------------------------------------------------

    @classmethod
    def parse_options(cls, spec: ServiceSpec, config: StackConfig) -> Any:
        """Read and validate the role's ``x-opskit`` keys; ConfigError names the bad key."""
        needs_command = config.runtime.follows_launch and not cls.provides_process_command
        if needs_command and not spec.process.command:
            raise ConfigError(
                config.source,
                f"services.{spec.name}.x-opskit.process.command",
                f"expected a command list for runtime '{config.runtime}'",
            )
        reader = OptionReader(
            config.source, f"services.{spec.name}.x-opskit", spec.options, config.project_dir
        )
        options = cls.read_options(reader, spec, config)
        reader.finish()
        return options

    @classmethod
    def read_options(cls, reader: OptionReader, spec: ServiceSpec, config: StackConfig) -> Any:
        """Subclasses read their keys here; the base role has none."""
        return RoleOptions()

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

    # -- logs --------------------------------------------------------------------------------------

    def log_sources(self) -> list[LogSource]:
        """The unit's own output; roles with log files add theirs."""
        return [LogSource("output")]

    # -- helpers for subclasses ------------------------------------------------------------------

    def address(self, container_port: int | None = None) -> tuple[str, int]:
        mapping = self.spec.port(container_port) or self.spec.port()
        port = container_port or (mapping.container_port if mapping else 0)
        return self.unit.address(port)

    def environment(self) -> dict[str, str]:
        """The service's environment as its unit sees it (:meth:`Unit.environment`).
        Templates render from it; checks read listener settings from it."""
        return self.unit.environment()

    def render_template(self, path: Path) -> str:
        """``path`` rendered from the service's environment (``${VAR}``); a variable it names
        that is not set is a ConfigError naming the service's environment."""
        from opskit.services.template import render_template

        return render_template(
            path, self.environment(), f"services.{self.spec.name}.environment", self.config.source
        )

    def base_url(self) -> str:
        host, port = self.address()
        return f"http://{host}:{port}"

    def get(self, url: str) -> HttpAnswer:
        """One probe GET (short timeouts: a probe must never hang a start). Raises ProbeError."""
        return http_get(self.unit.reach_url(url))

    def probe_http(self, url: str, expect: tuple[int, ...] = ()) -> Probe:
        url = self.unit.reach_url(url)  # the details name where the request really went
        try:
            response = self.get(url)
        except ProbeError as exc:
            return Probe(False, f"GET {url}: {exc.kind}")
        ok = response.status_code in expect if expect else 200 <= response.status_code < 300
        return Probe(ok, f"GET {url}: HTTP {response.status_code}")

    # -- health ---------------------------------------------------------------------------------

    def health_checks(self) -> list[Check]:
        """The role's checks for ``inv health``; the runtime check is added by ops.health."""
        return []

    def http_check(self, name: str, url: str, expect: tuple[int, ...] = ()) -> Check:
        """A check that is OK when GET ``url`` answers an expected status (default 2xx)."""

        def run() -> CheckOutcome:
            probe = self.probe_http(url, expect)
            return (CheckStatus.OK if probe.ready else CheckStatus.CRITICAL), probe.detail

        return Check(name, run)
