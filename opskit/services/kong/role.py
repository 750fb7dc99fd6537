"""The kong role (DB-less): readiness from the status listener, SIGQUIT drain, POST /config.

Written against Kong 3.x's documented Admin and Status APIs, so it works on a real Kong; the
sandbox stand-in is only its test peer.

- Liveness: admin ``GET /status`` (carries ``configuration_hash`` in DB-less mode).
- Readiness: status listener ``GET /status/ready`` — 200 once a non-empty config is loaded in
  every worker, 503 otherwise. ``kong health`` only proves the nginx master pid exists.
- Stop: SIGQUIT (what ``kong quit`` sends: finish in-flight requests), SIGTERM when the grace
  period runs out, then SIGKILL to the unit.
- Reload: ``POST /config?check_hash=1`` with the whole declarative config (304 = unchanged); in
  DB-less mode every entity write (``PATCH /plugins/{id}``) is 405, so this is the only way.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from opskit.config import ServiceSpec, StackConfig
from opskit.errors import OpskitError
from opskit.files import atomic_write, private_dir
from opskit.options import OptionReader
from opskit.services.base import Check, CheckOutcome, Probe, Role
from opskit.services.capabilities import (
    Drilled,
    LogSource,
    MetricType,
    MetricValue,
    RestorePlan,
    Verdict,
)
from opskit.services.kong.file import TemplatePin, persist
from opskit.services.probes import HttpAnswer, ProbeError
from opskit.vocabulary import CheckStatus

if TYPE_CHECKING:
    from opskit.backup.artifacts import ArtifactReader, ServiceArtifacts
    from opskit.runtime.base import Launch, StopResult
    from opskit.services.certificates import CertificateInfo
    from opskit.services.kong.admin import ConfigApplied, KongAdmin
    from opskit.services.kong.backup import KongBackup

SIGTERM_WAIT = 5.0
KONG_DEFAULT_STATUS_PORT = 8007  # K:kong/templates/kong_defaults.lua:31 status_listen
STATUS_LISTEN_HINT = "set KONG_STATUS_LISTEN; Kong's default is 127.0.0.1:8007"
HUP_WAIT = 5.0
DEFAULT_MASKED_PATH = "/v1/messages"
CERTIFICATE_CACHE = 300.0  # seconds
_KONG_LOG_SETTINGS = (
    "KONG_PROXY_ERROR_LOG",
    "KONG_PROXY_ACCESS_LOG",
    "KONG_ADMIN_ERROR_LOG",
    "KONG_ADMIN_ACCESS_LOG",
    "KONG_STATUS_ERROR_LOG",
    "KONG_STATUS_ACCESS_LOG",
)
# Kong 3.x kong/templates/kong_defaults.lua:4-13: where `kong start` logs by default.
_KONG_LOG_DEFAULTS = {
    "KONG_PROXY_ERROR_LOG": "logs/error.log",
    "KONG_PROXY_ACCESS_LOG": "logs/access.log",
    "KONG_ADMIN_ERROR_LOG": "logs/error.log",
    "KONG_ADMIN_ACCESS_LOG": "logs/admin_access.log",
    "KONG_STATUS_ERROR_LOG": "logs/status_error.log",
}
EMPTY_HASH = "0" * 32
COSTLY_HOSTS = ("anthropic.com",)


@dataclass(frozen=True)
class KongOptions:
    admin_url: str
    status_url: str
    declarative_template: Path | None = None
    masked_path: str = DEFAULT_MASKED_PATH
    quit_wait: float = 0.0


class KongRole(Role):
    """Kong DB-less: also Reloadable, ConfigExporting and the MaskingGateway."""

    name: ClassVar[str] = "kong"
    graceful_signal: ClassVar[signal.Signals] = signal.SIGQUIT
    outage_impact: ClassVar[str] = "nothing is masked or forwarded to the Claude API"
    options: KongOptions

    @classmethod
    def read_options(
        cls, reader: OptionReader, spec: ServiceSpec, config: StackConfig
    ) -> KongOptions:
        return KongOptions(
            admin_url=str(reader.url("admin_url", required=True)).rstrip("/"),
            status_url=str(reader.url("status_url", required=True)).rstrip("/"),
            declarative_template=reader.existing_path("declarative_template"),
            masked_path=reader.url_path("masked_path", DEFAULT_MASKED_PATH),
            quit_wait=reader.duration("quit_wait", 0.0) or 0.0,
        )

    @property
    def admin_url(self) -> str:
        return self.unit.reach_url(self.options.admin_url)

    @property
    def status_url(self) -> str:
        return self.unit.reach_url(self.options.status_url)

    @property
    def rendered_config(self) -> Path:
        return self.config.state_dir / "kong" / self.spec.name / "kong.yml"

    @property
    def template(self) -> Path | None:
        return self.options.declarative_template

    @property
    def masked_path(self) -> str:
        """The request path that must be masked (the Claude route), ``x-opskit.masked_path``."""
        return self.options.masked_path

    # -- starting --------------------------------------------------------------------------------

    @property
    def renders_on_host(self) -> bool:
        """opskit renders the file Kong loads from ``declarative_template``."""
        return self.template is not None and self.unit.follows_launch

    @property
    def pin(self) -> TemplatePin:
        return TemplatePin(self.rendered_config.parent)

    def render_template_text(self) -> str:
        assert self.template is not None
        return self.render_template(self.template)

    def prepare(self) -> None:
        """Render the file Kong loads: the template, or the config applied since (its pin)."""
        if not self.renders_on_host:
            return
        private_dir(self.rendered_config.parent)
        rendered = self.render_template_text()
        atomic_write(self.rendered_config, self.pin.text_for(rendered) or rendered)

    def persist_declarative(self, text: str) -> Verdict:
        """Make the file Kong loads at start hold ``text`` (:mod:`opskit.services.kong.file`)."""
        return persist(self, text)

    def launch(self) -> Launch:
        launch = super().launch()
        if self.template is None:
            return launch
        from opskit.runtime.base import Launch

        environment = {"KONG_DECLARATIVE_CONFIG": str(self.rendered_config)}
        return Launch(argv=launch.argv, environment=environment, stdin=launch.stdin)

    def probe_live(self) -> Probe:
        return self.probe_http(f"{self.admin_url}/status")

    def probe_ready(self) -> Probe:
        probe = self.probe_http(f"{self.status_url}/status/ready")
        if probe.ready:
            return probe
        return Probe(False, probe.detail.replace("HTTP 503", "HTTP 503 (not ready)"))

    # -- health ---------------------------------------------------------------------------------

    def health_checks(self) -> list[Check]:
        return [
            Check("admin_status", self.check_admin_status),
            Check("ready", self.check_ready),
            Check("masker_attached", self.check_masker_attached),
            Check("config_drift", self.check_config_drift),
            Check("certificates", self.check_certificates),
        ]

    def check_config_drift(self) -> CheckOutcome:
        """WARNING when what runs is not what Kong would load at its next start (a memory-only
        apply, a file edited since, a pin dropped): a restart would change the config."""
        running, file_hash = self.running_hash(), self.declarative_file_hash()
        if running is None:
            return CheckStatus.CRITICAL, "no configuration_hash from GET /status"
        if file_hash is None:
            return CheckStatus.OK, "no declarative file to compare with (nothing loads at start)"
        if running == file_hash:
            return CheckStatus.OK, f"runs its declarative file (md5 {running[:12]})"
        return CheckStatus.WARNING, (
            f"running configuration_hash {running[:12]} is not the md5 {file_hash[:12]} of "
            f"{self.declarative_path()}, the file Kong loads at start: a restart would change "
            "what runs (inv kong.diff shows how; inv kong.apply makes one of them both)"
        )

    def _get(self, url: str) -> tuple[HttpAnswer | None, str | None]:
        try:
            return self.get(url), None
        except ProbeError as exc:
            return None, f"GET {url}: {exc.kind}"

    def check_admin_status(self) -> CheckOutcome:
        response, error = self._get(f"{self.admin_url}/status")
        if error or response.status_code != 200:
            return CheckStatus.CRITICAL, error or f"GET /status: HTTP {response.status_code}"
        body = response.json()
        server = body.get("server", {})
        config_hash = body.get("configuration_hash")
        detail = (
            f"{server.get('connections_active', '?')} active connections, "
            f"{server.get('total_requests', '?')} requests"
        )
        if not config_hash:
            return CheckStatus.WARNING, f"{detail}; no configuration_hash (not DB-less?)"
        if config_hash == EMPTY_HASH:
            return CheckStatus.WARNING, f"{detail}; empty configuration loaded"
        return CheckStatus.OK, f"{detail}; configuration_hash {config_hash[:12]}"

    def log_sources(self) -> list[LogSource]:
        """Its output plus the log files Kong writes under its prefix: the ``KONG_*_LOG``
        settings that name a file, or, for a real ``kong start``, Kong's defaults
        (``logs/error.log``, ``logs/access.log``, ``logs/admin_access.log``). The official image
        points them all at /dev/stdout and /dev/stderr, which are the output."""
        environment = {**self.spec.environment, **self.spec.process.environment}
        prefix = environment.get("KONG_PREFIX", "/usr/local/kong")
        defaults = _KONG_LOG_DEFAULTS if self.kong_binary else {}
        sources = [LogSource("output")]
        for variable in _KONG_LOG_SETTINGS:
            value = environment.get(variable, defaults.get(variable, ""))
            path = value.split()[0] if value.split() else ""
            if not path or path == "off" or path.startswith(("/dev/", "/proc/", "syslog:")):
                continue
            if not path.startswith("/"):
                path = f"{prefix.rstrip('/')}/{path}"
            if all(source.path != path for source in sources):
                sources.append(LogSource(variable.removeprefix("KONG_").lower(), path))
        return sources

    def metric_values(self) -> list[MetricValue]:
        """``GET /status`` (connections, requests) and readiness, as Kong's own Prometheus
        plugin would name them under opskit's prefix."""
        values: list[MetricValue] = []
        status, _error = self._get(f"{self.admin_url}/status")
        if status is not None and status.status_code == 200:
            server = status.json().get("server", {})
            counter = MetricType.COUNTER
            for key, name, help_text in (
                (
                    "connections_accepted",
                    "kong_connections_accepted_total",
                    "Accepted connections.",
                ),
                ("connections_handled", "kong_connections_handled_total", "Handled connections."),
                ("total_requests", "kong_http_requests_total", "Client requests."),
            ):
                if isinstance(server.get(key), int | float):
                    values.append(MetricValue(name, help_text, float(server[key]), counter))
            for state in ("active", "reading", "writing", "waiting"):
                value = server.get(f"connections_{state}")
                if isinstance(value, int | float):
                    values.append(
                        MetricValue(
                            "kong_connections",
                            "Client connections by state.",
                            float(value),
                            labels=(("state", state),),
                        )
                    )
        running, file_hash = self.running_hash(), self.declarative_file_hash()
        if running is not None and file_hash is not None:
            values.append(
                MetricValue(
                    "kong_config_drift",
                    "1 when the running configuration_hash is not the md5 of the declarative "
                    "file Kong loads at start (a restart would change what runs).",
                    0.0 if running == file_hash else 1.0,
                )
            )
        ready, _error = self._get(f"{self.status_url}/status/ready")
        values.append(
            MetricValue(
                "kong_ready",
                "1 when GET /status/ready answers 200 (config loaded, router built).",
                1.0 if ready is not None and ready.status_code == 200 else 0.0,
            )
        )
        from opskit.services import certificates

        return values + certificates.metric_values(self.certificates())

    def certificates(self) -> list[CertificateInfo]:
        """The ``certificates`` of the configuration Kong runs (each judged against its first
        SNI) and the certificate of every TLS endpoint its services point at (kept
        :data:`CERTIFICATE_CACHE` seconds: expiry does not move). Empty when Kong cannot say."""
        import time

        import yaml

        from opskit.services import certificates

        cached = self.__dict__.get("_certificates")
        if cached is not None and time.monotonic() - cached[0] < CERTIFICATE_CACHE:
            return cached[1]
        try:
            document = yaml.safe_load(self.export_config()) or {}
        except (OpskitError, ProbeError, yaml.YAMLError, ValueError):
            return []
        found = []
        flat: dict[str, list[str]] = {}  # an export lists SNIs apart, naming their certificate
        for sni in document.get("snis") or []:
            if isinstance(sni, dict) and sni.get("name"):
                owner = sni.get("certificate")
                owner = owner.get("id") if isinstance(owner, dict) else owner
                flat.setdefault(str(owner), []).append(str(sni["name"]))
        for index, item in enumerate(document.get("certificates") or []):
            if not isinstance(item, dict):
                continue
            snis = [s.get("name") if isinstance(s, dict) else s for s in item.get("snis") or []]
            snis += flat.get(str(item.get("id")), [])
            host = next((str(n) for n in snis if n and "*" not in str(n)), None)
            pem = str(item.get("cert") or "").encode()
            found.append(certificates.from_pem(f"certificates[{index}]", pem, host))
        for service in document.get("services") or []:
            if isinstance(service, dict) and service.get("protocol") in ("https", "tls"):
                port = int(service.get("port") or 443)
                found.append(certificates.from_endpoint(str(service.get("host")), port))
        self.__dict__["_certificates"] = (time.monotonic(), found)
        return found

    def check_certificates(self) -> CheckOutcome:
        from opskit.services import certificates

        return certificates.judge(self.certificates())

    def check_ready(self) -> CheckOutcome:
        response, error = self._get(f"{self.status_url}/status/ready")
        if error:
            if "ConnectError" in error:
                error += f" (is a status listener configured? {STATUS_LISTEN_HINT})"
            return CheckStatus.CRITICAL, error
        if response.status_code == 200:
            return CheckStatus.OK, "GET /status/ready: 200 ready"
        try:
            message = response.json().get("message", "")
        except ValueError:
            message = response.text[:200]
        return CheckStatus.CRITICAL, f"not ready: HTTP {response.status_code} {message}".rstrip()

    def check_masker_attached(self) -> CheckOutcome:
        """aws-masker must be enabled on the route serving the Claude path, not merely loaded."""
        routes, error = self._get(f"{self.admin_url}/routes")
        plugins, error2 = self._get(f"{self.admin_url}/plugins")
        if error or error2:
            return CheckStatus.CRITICAL, error or error2
        path = self.masked_path
        candidates = [
            route
            for route in routes.json().get("data", [])
            if any(path.startswith(prefix) for prefix in route.get("paths") or [])
        ]
        if not candidates:
            return CheckStatus.CRITICAL, f"no route serves {path}"
        route = max(
            candidates,
            key=lambda r: max(len(p) for p in r["paths"] if path.startswith(p)),
        )
        service_id = (route.get("service") or {}).get("id")
        for plugin in plugins.json().get("data", []):
            if plugin.get("name") != "aws-masker" or not plugin.get("enabled", True):
                continue
            on_route = (plugin.get("route") or {}).get("id") == route["id"]
            on_service = service_id and (plugin.get("service") or {}).get("id") == service_id
            is_global = not plugin.get("route") and not plugin.get("service")
            if on_route or on_service or is_global:
                where = (
                    "on the route" if on_route else "on its service" if on_service else "globally"
                )
                detail = f"aws-masker enabled {where} serving {path} ({route.get('name')})"
                return CheckStatus.OK, detail
        return CheckStatus.CRITICAL, f"aws-masker is not enabled on the route serving {path}"

    # -- stopping ---------------------------------------------------------------------------------

    @property
    def kong_binary(self) -> str | None:
        """The ``kong`` CLI when the service runs one (``kong start``), else None."""
        command = self.spec.process.command
        return command[0] if command and Path(command[0]).name == "kong" else None

    @property
    def stop_method(self) -> str:
        return "kong quit" if self.kong_binary else super().stop_method

    def stop(self) -> StopResult:
        """``kong quit`` where a kong binary runs the service, else the same by signals.

        ``kong quit --wait W --timeout T`` sleeps W seconds (``x-opskit.quit_wait``, for a load
        balancer to notice), sends SIGQUIT so in-flight requests finish, and SIGTERMs after T.
        Without the CLI opskit sends SIGQUIT, waits the grace period, then SIGTERM. Either way
        SIGKILL to the unit comes last.
        """
        unit = self.unit
        if not unit.status().running:
            return unit.stop(self.stop_signal, self.spec.stop_grace_period)
        grace = self.spec.stop_grace_period
        if self.kong_binary:
            wait = self.options.quit_wait
            timeout = max(1, round(grace))
            argv = [self.kong_binary, "quit", "--wait", f"{wait:g}", "--timeout", str(timeout)]
            result = unit.exec(argv, timeout=wait + timeout + 5)
            detail = result.output.strip().splitlines()[-1:] or [f"exit {result.exit_code}"]
            return unit.finish_stop(SIGTERM_WAIT, f"kong quit ({detail[0]})")
        unit.send_signal(self.stop_signal)
        if not unit.wait_stopped(self.spec.stop_grace_period):
            unit.send_signal(signal.SIGTERM)
            return unit.finish_stop(SIGTERM_WAIT, f"{self.stop_signal.name}, then SIGTERM")
        return unit.finish_stop(0, self.stop_signal.name)

    # -- configuration (capabilities: Reloadable, ConfigExporting) ------------------------------

    def reload_from_file(self) -> bool:
        """What ``kong reload`` does in DB-less mode: HUP, so Kong re-reads its declarative file.

        Returns False when Kong is not running. A file Kong rejects leaves the old config in
        place (row 15), so :meth:`reload` verifies the outcome instead of assuming it.
        """
        return self.unit.send_signal(signal.SIGHUP)

    def reload(self) -> Verdict:
        """Apply the declarative file (re-rendered) with ``POST /config?check_hash=1``;
        without an opskit-rendered file, HUP (``kong reload``), then verify."""
        if not self.renders_on_host:
            return self._reload_by_hup()
        self.prepare()
        applied = self.apply_config(self.rendered_config.read_text(encoding="utf-8"))
        if applied.status not in (201, 304):
            return Verdict(False, f"POST /config: HTTP {applied.status}: {applied.detail}")
        hash_text = (applied.configuration_hash or "?")[:12]
        return Verdict(True, f"{applied.detail}; configuration_hash {hash_text}", applied.changed)

    def graceful_restart(self) -> Verdict:
        """The declarative file, loaded without a restart (:meth:`reload`: ``POST /config`` or
        HUP, as ``kong reload`` does), then proof: ready on the status listener, and
        ``configuration_hash`` equal to the md5 of the file's bytes."""
        from opskit.declarative.document import md5_of
        from opskit.polling import deadline_in, poll_until

        verdict = self.reload()
        if not verdict.ok:
            return verdict
        ready = poll_until(
            lambda: True if self.probe_ready().ready else None, deadline_in(HUP_WAIT)
        )
        if not ready:
            return Verdict(False, f"{verdict.detail}; then not ready: {self.probe_ready().detail}")
        expected = md5_of(self.declarative_source())
        running = self.running_hash()
        if running != expected:
            return Verdict(
                False,
                f"{verdict.detail}; but Kong runs configuration_hash {str(running)[:12]}, not the "
                f"file's {expected[:12]}",
            )
        return Verdict(True, f"{verdict.detail}; ready, running the file ({expected[:12]})")

    def _reload_by_hup(self) -> Verdict:
        """HUP, then watch ``configuration_hash`` and readiness: a file Kong rejects keeps the
        old configuration serving, which would otherwise pass for a successful reload."""
        from opskit.polling import deadline_in, poll_until

        before = self.running_hash()
        expected = self.declarative_file_hash()
        if not self.reload_from_file():
            return Verdict(False, "kong is not running")
        if expected is not None and expected == before:
            return Verdict(True, "HUP sent; Kong already ran this file", changed=False)
        changed = poll_until(
            lambda: True if self.running_hash() not in (None, before) else None,
            deadline_in(HUP_WAIT),
        )
        ready = self.probe_ready()
        if not ready.ready:
            return Verdict(False, f"after HUP Kong is not ready: {ready.detail}")
        if not changed:
            return Verdict(
                False,
                f"HUP sent but configuration_hash stayed {str(before)[:12]} for {HUP_WAIT:g}s: "
                "Kong kept its previous configuration (the file did not load: see its error log)",
            )
        return Verdict(True, f"HUP: reloaded, configuration_hash {str(self.running_hash())[:12]}")

    def running_hash(self) -> str | None:
        try:
            return self.configuration_hash()
        except (ProbeError, ValueError):
            return None

    def declarative_file_hash(self) -> str | None:
        """md5 of the file Kong reads (Kong's own hash of it, row 2), read through the unit so
        that a container's file counts; None when there is none to read."""
        from opskit.declarative.document import md5_of

        try:
            return md5_of(self.declarative_source())
        except (OpskitError, OSError, UnicodeDecodeError):
            return None

    def preflight(self) -> list[str]:
        """Kong must serve a status listener for readiness (row 13): the E2 compose sets
        none, and Kong's default (127.0.0.1:8007) is rarely where ``status_url`` points."""
        from urllib.parse import urlsplit

        listen = self.environment().get("KONG_STATUS_LISTEN", "").strip()
        port = urlsplit(self.status_url).port
        if listen.lower() == "off":
            return [
                f"{self.spec.name}: KONG_STATUS_LISTEN is off: no readiness ({STATUS_LISTEN_HINT})"
            ]
        if not listen and port != KONG_DEFAULT_STATUS_PORT:
            return [
                f"{self.spec.name}: no status listener: KONG_STATUS_LISTEN is not set, so Kong "
                f"serves /status/ready on 127.0.0.1:{KONG_DEFAULT_STATUS_PORT} (its default), not "
                f"on {self.status_url}; set KONG_STATUS_LISTEN (and publish its port)"
            ]
        listen_port = listen.split()[0].rpartition(":")[2] if listen else ""
        if self.unit.follows_launch and listen_port.isdigit() and int(listen_port) != port:
            return [
                f"{self.spec.name}: KONG_STATUS_LISTEN is {listen!r} but x-opskit.status_url is "
                f"{self.status_url}: readiness would never be seen"
            ]
        return []

    def parse_declarative(self, text: str) -> Verdict | None:
        """``kong config parse`` on ``text`` where the unit has the kong CLI (a real Kong):
        Kong's own parser, with the schemas of the plugins that Kong loads. None where there
        is no CLI to ask (the stand-in; a stopped container). The file is written 0600 for the
        call and removed after it: it may hold credentials."""
        if self.unit.exec(["kong", "version"], timeout=15).exit_code != 0:
            return None
        with self.unit.scratch({"kong.yml": text.encode("utf-8")}) as folder:
            result = self.unit.exec(["kong", "config", "parse", f"{folder}/kong.yml"], timeout=60)
        lines = [line.strip() for line in result.output.splitlines() if line.strip()]
        if result.exit_code == 0:
            return Verdict(True, lines[-1] if lines else "parse successful", changed=False)
        message = " | ".join(lines).removeprefix("Error: ")
        return Verdict(False, message[-600:] or "kong config parse failed", changed=False)

    # -- backup and restore (capabilities.BackingUp, Restorable) -----------------------------------

    def declarative_source(self) -> str:
        """The declarative file Kong loads at start and on HUP, as text (rendered first when
        opskit renders it; read through the unit otherwise, so a container's mount counts)."""
        if self.renders_on_host:
            self.prepare()
            return self.rendered_config.read_text(encoding="utf-8")
        path = self.declarative_path()
        if not path:
            raise OpskitError(
                f"{self.spec.name}: no declarative file (set KONG_DECLARATIVE_CONFIG or "
                "x-opskit.declarative_config)"
            )
        with self.unit.open_file(path) as handle:
            return handle.read().decode("utf-8")

    def declarative_path(self) -> str | None:
        """The declarative file Kong reads at start and on HUP, as its unit sees it."""
        if self.renders_on_host:
            return str(self.rendered_config)
        return self.environment().get("KONG_DECLARATIVE_CONFIG") or None

    @contextlib.contextmanager
    def _backup(self) -> Iterator[KongBackup]:
        """The backup code, imported by the commands that use it."""
        from opskit.services.kong.backup import KongBackup

        yield KongBackup(self)

    def back_up(self, artifacts: ServiceArtifacts) -> dict[str, Any]:
        with self._backup() as backup:
            return backup.back_up(artifacts)

    def check_backup(self, artifacts: ArtifactReader, metadata: dict, deep: bool) -> list[str]:
        with self._backup() as backup:
            return backup.check(artifacts, metadata, deep)

    def drill_backup(self, artifacts: ArtifactReader, metadata: dict) -> Drilled:
        with self._backup() as backup:
            return backup.drill(artifacts, metadata)

    def plan_restore(self, artifacts: ArtifactReader, metadata: dict) -> RestorePlan:
        with self._backup() as backup:
            return backup.plan(artifacts, metadata)

    def place_backup(self, artifacts: ArtifactReader, metadata: dict, plan: RestorePlan) -> None:
        """Nothing to place: Kong's configuration goes in through its Admin API."""

    def apply_backup(self, artifacts: ArtifactReader, metadata: dict, plan: RestorePlan) -> Verdict:
        with self._backup() as backup:
            return backup.apply(artifacts, metadata, plan)

    # -- the Admin API (capabilities.ConfigExporting) ---------------------------------------------

    @property
    def admin(self) -> KongAdmin:
        from opskit.services.kong.admin import KongAdmin

        return KongAdmin(self.admin_url, self.get)

    def configuration_hash(self) -> str | None:
        return self.admin.configuration_hash()

    def export_config(self) -> str:
        return self.admin.export()

    def apply_config(self, declarative: str, *, deadline: float = 30.0) -> ConfigApplied:
        return self.admin.apply(declarative, deadline=deadline)

    # -- the masking gateway (capabilities.MaskingGateway) -----------------------------------------

    def costly_upstream(self) -> str | None:
        """The paid upstream host Kong forwards to (anthropic.com), if any service does."""
        from urllib.parse import urlsplit

        response, _error = self._get(f"{self.admin_url}/services")
        if response is None or response.status_code != 200:
            return None  # Kong's own checks report an unreachable admin API
        try:
            services = response.json().get("data", [])
        except ValueError:
            return None
        for service in services:
            url = service.get("url") or f"http://{service.get('host', '')}"
            host = urlsplit(url).hostname or ""
            if host.endswith(COSTLY_HOSTS):
                return host
        return None
