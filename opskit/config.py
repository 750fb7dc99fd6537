"""Read a stack file: a Compose file whose ``x-opskit`` blocks say what Compose has no word for.

Loading is strict and happens before anything is started: every problem becomes one
:class:`~opskit.errors.ConfigError` naming the file, the key path and what was expected.
The result is plain frozen dataclasses; :mod:`opskit.stack` builds the dependency graph on top.

Variable sources, lowest to highest precedence (as Compose): the ``.env`` file beside the stack
file, then the process environment. opskit adds ``OPSKIT_PYTHON`` (the interpreter running
opskit) when it is not set, so sandbox services can be started with the same Python.
"""

from __future__ import annotations

import difflib
import os
import re
import shlex
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from opskit.durations import parse_duration, parse_size
from opskit.errors import ConfigError
from opskit.interpolate import InterpolationError, interpolate_tree
from opskit.options import OptionReader
from opskit.redact import MIN_SECRET_LENGTH, is_secret_name
from opskit.vocabulary import EndpointMode, Environment, PublishMode, RoleKind, RuntimeKind

RUNTIMES = tuple(kind.value for kind in RuntimeKind)
DEFAULT_RUNTIME = RuntimeKind.DOCKER
DEPENDENCY_CONDITIONS = ("service_started", "service_healthy")
DEFAULT_START_TIMEOUT = 60.0
DEFAULT_GRACE_PERIOD = 10.0
MAX_PORT = 65535
# The Compose specification's service name pattern. Names become file names under state_dir
# (run/<name>.pid), so anything else — "../x" — could write outside it.
SERVICE_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
# Per-service x-opskit keys every role shares; the rest belong to the role (Role.parse_options).
COMMON_SERVICE_KEYS = ("role", "process", "start_timeout")

# Variables a process-runtime service inherits from opskit's own environment. Everything else
# comes from the stack file, so an operator's shell secrets never leak into services.
INHERITED_VARIABLES = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "USER")


@dataclass(frozen=True)
class PortMapping:
    """One ``ports:`` entry. In the process runtime the service listens on ``host_port``."""

    container_port: int
    host_port: int | None = None
    host_ip: str = ""
    protocol: str = "tcp"

    @property
    def published(self) -> int:
        return self.host_port if self.host_port is not None else self.container_port


@dataclass(frozen=True)
class Healthcheck:
    """Compose ``healthcheck`` timings (seconds); the test itself is the runtime's business."""

    test: tuple[str, ...] = ()
    interval: float = 30.0
    timeout: float = 30.0
    retries: int = 3
    start_period: float = 0.0
    disabled: bool = False

    @property
    def start_budget(self) -> float:
        """How long Compose would wait before calling the service unhealthy."""
        return self.start_period + self.interval * self.retries


@dataclass(frozen=True)
class ProcessSettings:
    """``x-opskit.process``: how the process runtime runs this service on the host."""

    command: tuple[str, ...] = ()
    cwd: Path | None = None
    environment: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ServiceSpec:
    """One service: its Compose fields plus the ``x-opskit`` options its role reads."""

    name: str
    role: RoleKind
    image: str | None = None
    command: tuple[str, ...] = ()
    environment: Mapping[str, str] = field(default_factory=dict)
    ports: tuple[PortMapping, ...] = ()
    depends_on: Mapping[str, str] = field(default_factory=dict)
    healthcheck: Healthcheck | None = None
    stop_signal: str = "SIGTERM"
    stop_grace_period: float = DEFAULT_GRACE_PERIOD
    restart: str = "no"
    container_name: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    process: ProcessSettings = field(default_factory=ProcessSettings)
    #: The role's own ``x-opskit`` keys, raw; the role reads them into typed settings at load.
    options: Mapping[str, Any] = field(default_factory=dict)
    compose: Mapping[str, Any] = field(default_factory=dict)
    start_timeout_option: float | None = None

    @property
    def start_timeout(self) -> float:
        """Readiness budget: ``x-opskit.start_timeout``, else the healthcheck's own, else 60 s."""
        if self.start_timeout_option is not None:
            return self.start_timeout_option
        if self.healthcheck and not self.healthcheck.disabled:
            return max(self.healthcheck.start_budget, 1.0)
        return DEFAULT_START_TIMEOUT

    def port(self, container_port: int | None = None) -> PortMapping | None:
        """The mapping for ``container_port``, or the first one."""
        for mapping in self.ports:
            if container_port is None or mapping.container_port == container_port:
                return mapping
        return None


@dataclass(frozen=True)
class LogSettings:
    max_bytes: int = 10 * 1024 * 1024
    keep: int = 3


@dataclass(frozen=True)
class HealthSettings:
    """``x-opskit.health`` (percentages are of capacity used)."""

    check_timeout: float = 5.0
    deadline: float = 30.0
    e2e_timeout: float = 15.0
    # 1-minute load per core: 1.0 is every core busy, which is work, not trouble; a queue of
    # two and four runnable tasks per core is where latency suffers (Nagios check_load habits).
    load_warning: float = 2.0
    load_critical: float = 4.0
    memory_warning: float = 90.0
    memory_critical: float = 95.0
    disk_warning: float = 90.0
    disk_critical: float = 95.0

    @classmethod
    def read(cls, reader: OptionReader) -> HealthSettings:
        defaults = cls()
        values: dict[str, float] = {}
        for name in ("check_timeout", "deadline", "e2e_timeout"):
            values[name] = reader.positive_duration(name, getattr(defaults, name))
        for name in cls.__dataclass_fields__:
            if name not in values:
                values[name] = reader.number(name, getattr(defaults, name), high=100_000)
        reader.finish()
        return cls(**values)


@dataclass(frozen=True)
class MetricsSettings:
    """``x-opskit.metrics``: what one scrape of ``inv metrics --serve`` may cost."""

    cache_ttl: float = 10.0  # scrapes within this many seconds share one health pass

    @classmethod
    def read(cls, reader: OptionReader) -> MetricsSettings:
        ttl = reader.duration("cache_ttl", cls.cache_ttl)
        reader.finish()
        return cls(cache_ttl=ttl if ttl is not None else cls.cache_ttl)


@dataclass(frozen=True)
class EngineTls:
    """``x-opskit.swarm.engine_tls``: the client side of a node engine's ``--tlsverify``."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    verify: bool = True

    @classmethod
    def read(cls, reader: OptionReader) -> EngineTls | None:
        if not reader.raw:
            reader.finish()
            return None
        paths = {name: reader.existing_path(name) for name in ("ca_file", "cert_file", "key_file")}
        verify = reader.boolean("verify", True)
        reader.finish()
        if (paths["cert_file"] is None) != (paths["key_file"] is None):
            raise reader.fail("cert_file", "cert_file and key_file go together")
        return cls(*(str(p) if p else None for p in paths.values()), verify=verify)

    def docker_config(self):
        """docker-py's TLSConfig (docker is imported here only: listing tasks stays light)."""
        import docker

        client_cert = (self.cert_file, self.key_file) if self.cert_file else None
        return docker.tls.TLSConfig(
            client_cert=client_cert, ca_cert=self.ca_file, verify=self.verify
        )


ENGINE_SCHEMES = ("tcp", "unix", "ssh")


def read_engines(reader: OptionReader, name: str) -> tuple[tuple[str, str], ...]:
    """``x-opskit.swarm.engines``: node hostname (or ``*``) → engine URL; empty URLs are off."""
    engines = []
    for node, url in reader.mapping(name).items():
        url = str(url or "").strip()
        if not url:
            continue  # ${VAR:-}: switched off, as the alert notifiers are
        scheme = urlsplit(url).scheme
        if scheme not in ENGINE_SCHEMES:
            raise ConfigError(
                reader.source,
                f"{reader.key(name)}.{node}",
                f"expected a Docker Engine URL ({', '.join(s + '://' for s in ENGINE_SCHEMES)}), "
                f"got {url!r}",
            )
        try:
            url.format(address="a", hostname="h")
        except (KeyError, IndexError, ValueError):
            raise ConfigError(
                reader.source,
                f"{reader.key(name)}.{node}",
                f"only {{address}} and {{hostname}} may be filled in, got {url!r}",
            ) from None
        engines.append((str(node), url))
    return tuple(engines)


@dataclass(frozen=True)
class SwarmSettings:
    """``x-opskit.swarm``: how the swarm runtime exposes services. Compose's defaults (the
    routing mesh and virtual IPs) need the kernel's IPVS; ``publish: host`` with
    ``endpoint_mode: dnsrr`` works without it (docs/scaling.md)."""

    publish: PublishMode = PublishMode.INGRESS
    endpoint_mode: EndpointMode = EndpointMode.VIP
    # node hostname (or "*") → that node's engine URL: how opskit reaches a task's container
    # on another node (opskit.runtime.swarm_nodes); none: only the node opskit talks to
    engines: tuple[tuple[str, str], ...] = ()
    engine_tls: EngineTls | None = None

    @classmethod
    def read(cls, reader: OptionReader) -> SwarmSettings:
        publish = reader.choice("publish", PublishMode, cls.publish)
        endpoint_mode = reader.choice("endpoint_mode", EndpointMode, cls.endpoint_mode)
        engines = read_engines(reader, "engines")
        engine_tls = EngineTls.read(reader.section("engine_tls"))
        reader.finish()
        return cls(publish, endpoint_mode, engines, engine_tls)


@dataclass(frozen=True)
class RecoverSettings:
    """``x-opskit.recover``: when ``inv recover`` acts, and how often it may."""

    failures: int = 2  # consecutive failed observations before acting (monit's FOR n CYCLES)
    recheck: float = 1.0  # spacing of those observations for a running service whose checks fail
    max_restarts: int = 3  # restart attempts per service ...
    window: float = 15 * 60.0  # ... within this window, then "gave up"
    interval: float = 5.0  # --watch: full health pass every interval
    e2e: bool = True  # run the masking check when every service is healthy and it is free
    e2e_interval: float = 60.0  # ... at most this often (each run leaves two 24 h keys in Redis)

    @classmethod
    def read(cls, reader: OptionReader) -> RecoverSettings:
        defaults = cls()
        failures = int(reader.number("failures", defaults.failures, low=1, high=64))
        max_restarts = int(reader.number("max_restarts", defaults.max_restarts, low=1, high=1000))
        settings = cls(
            failures=failures,
            recheck=reader.positive_duration("recheck", defaults.recheck),
            max_restarts=max_restarts,
            window=reader.positive_duration("window", defaults.window),
            interval=reader.positive_duration("interval", defaults.interval),
            e2e=reader.boolean("e2e", defaults.e2e),
            e2e_interval=reader.duration("e2e_interval", defaults.e2e_interval) or 0.0,
        )
        reader.finish()
        return settings


@dataclass(frozen=True)
class SecretDefinition:
    """One entry of the Compose file's top-level ``secrets:``: where its value comes from
    (a file or an environment variable), or the name of an ``external`` one that exists
    already. The swarm runtime makes each a Swarm secret; the value is never logged."""

    name: str
    file: Path | None = None
    environment: str | None = None
    external_name: str | None = None
    value: str | None = None  # the variable's value, read at load

    def read(self) -> bytes:
        if self.file is not None:
            try:
                return self.file.read_bytes()
            except OSError as exc:
                raise ConfigError(
                    None, f"secrets.{self.name}.file", f"cannot read {self.file}: {exc.strerror}"
                ) from None
        return (self.value or "").encode()


@dataclass(frozen=True)
class StackConfig:
    """Everything read from one stack file, already interpolated and validated."""

    name: str
    source: Path
    project_dir: Path
    runtime: RuntimeKind
    state_dir: Path
    services: Mapping[str, ServiceSpec]
    environ: Mapping[str, str]
    logs: LogSettings = field(default_factory=LogSettings)
    min_free_disk: int = 100 * 1024 * 1024
    health: HealthSettings = field(default_factory=HealthSettings)
    backups_dir: Path | None = None
    backups_keep: Any = None  # opskit.backup.retention.KeepPolicy
    backups_encrypt_to: tuple[str, ...] = ()  # age recipients: every backup file encrypted
    backups_copies: Any = None  # opskit.backup.copies.CopySettings: restic repositories
    recover: RecoverSettings = field(default_factory=RecoverSettings)
    alerts: Any = None  # opskit.alerts.settings.AlertSettings
    options: Mapping[str, Any] = field(default_factory=dict)
    environment: Environment = Environment.PRODUCTION
    metrics: MetricsSettings = field(default_factory=lambda: MetricsSettings())
    secrets: Mapping[str, SecretDefinition] = field(default_factory=dict)
    swarm: SwarmSettings = field(default_factory=lambda: SwarmSettings())

    def secret_values(self) -> list[str]:
        """Every secret value this stack knows (longest first), for :class:`Redactor`."""
        values: set[str] = set()
        values.update(value for name, value in self.environ.items() if is_secret_name(name))
        for spec in self.services.values():
            for env in (spec.environment, spec.process.environment):
                values.update(value for name, value in env.items() if is_secret_name(name))
            password = spec.options.get("password")
            if isinstance(password, str):
                values.add(password)
        values.update(d.value for d in self.secrets.values() if d.value)
        for copy in self.backups_copies.copies if self.backups_copies else ():
            values.update(copy.secrets(self.environ))  # restic passwords, REST credentials
        if self.alerts is not None:  # notifier URLs carry tokens (Slack, Teams, webhooks)
            for url in self.alerts.urls():
                values.update((url, url.partition("://")[2]))  # with and without the scheme
        alerts = self.options.get("alerts")
        if isinstance(alerts, dict) and isinstance(alerts.get("webhook"), str):
            values.add(alerts["webhook"])
        return sorted((v for v in values if len(v) >= MIN_SECRET_LENGTH), key=len, reverse=True)


def load_config(
    path: str | Path,
    environ: Mapping[str, str] | None = None,
    runtime: str | None = None,
) -> StackConfig:
    """Read, interpolate and validate the stack file at ``path``.

    ``environ`` replaces ``os.environ`` (tests pass their own); ``runtime`` overrides the file.
    """
    source = Path(path)
    label = str(path)
    if not source.is_file():
        raise ConfigError(label, "", "stack file not found (set --stack or OPSKIT_STACK)")
    source = source.resolve()
    project_dir = source.parent
    variables = _variables(project_dir, os.environ if environ is None else environ, label)
    document = _read_yaml(source, label)

    try:
        document = interpolate_tree(document, variables)
    except InterpolationError as exc:
        key = getattr(exc, "path", "")
        raise ConfigError(label, key, str(exc)) from None

    reader = _Reader(label, project_dir, variables)
    return reader.stack(document, runtime)


def _variables(project_dir: Path, environ: Mapping[str, str], label: str) -> dict[str, str]:
    merged: dict[str, str] = {}
    env_file = project_dir / ".env"
    if env_file.is_file():
        from dotenv import dotenv_values  # only when there is a file to read (cron start-up)

        try:
            values = dotenv_values(env_file)
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(str(env_file), "", f"cannot read .env: {exc}") from None
        merged.update({key: value or "" for key, value in values.items()})
    merged.update(environ)
    merged.setdefault("OPSKIT_PYTHON", sys.executable)
    return merged


def _read_yaml(source: Path, label: str) -> dict[str, Any]:
    from opskit.yamltext import load_yaml

    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(label, "", f"cannot read stack file: {exc}") from None
    try:
        document = load_yaml(text)
    except ValueError as exc:
        raise ConfigError(label, "", str(exc)) from None
    if not isinstance(document, dict):
        raise ConfigError(label, "", "expected a Compose file (a mapping with 'services')")
    return document


class _Reader:
    """Turns the interpolated YAML tree into dataclasses, naming the key of any bad value."""

    def __init__(self, label: str, project_dir: Path, variables: Mapping[str, str]):
        self.label = label
        self.project_dir = project_dir
        self.variables = variables

    def fail(self, key: str, problem: str) -> ConfigError:
        return ConfigError(self.label, key, problem)

    # -- typed accessors -------------------------------------------------------------------

    def mapping(self, value: Any, key: str) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(key, f"expected a mapping, got {_kind(value)}")
        return value

    def string(self, value: Any, key: str) -> str:
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise self.fail(key, f"expected a string, got {_kind(value)}")
        return str(value)

    def command(self, value: Any, key: str) -> tuple[str, ...]:
        if value is None:
            return ()
        if isinstance(value, str):
            try:
                return tuple(shlex.split(value))
            except ValueError as exc:
                raise self.fail(key, f"cannot split command: {exc}") from None
        if isinstance(value, list) and all(
            isinstance(item, (str, int, float)) and not isinstance(item, bool) for item in value
        ):
            return tuple(str(item) for item in value)
        raise self.fail(key, f"expected a command (string or list of strings), got {_kind(value)}")

    def duration(self, value: Any, key: str) -> float:
        try:
            return parse_duration(value)
        except ValueError as exc:
            raise self.fail(key, str(exc)) from None

    def integer(self, value: Any, key: str, minimum: int = 0) -> int:
        if isinstance(value, bool):
            raise self.fail(key, f"expected an integer, got {_kind(value)}")
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise self.fail(key, f"expected an integer, got {value!r}") from None
        if number < minimum:
            raise self.fail(key, f"expected an integer >= {minimum}, got {number}")
        return number

    def path(self, value: Any, key: str) -> Path:
        text = self.string(value, key)
        candidate = Path(text).expanduser()
        # Resolved, so messages name the real folder (not ``sandbox/../backups``).
        return (candidate if candidate.is_absolute() else self.project_dir / candidate).resolve()

    # -- the document ----------------------------------------------------------------------

    def stack(self, document: dict[str, Any], runtime_override: str | None) -> StackConfig:
        top = self.mapping(document.get("x-opskit"), "x-opskit")
        services_raw = document.get("services")
        if not isinstance(services_raw, dict) or not services_raw:
            raise self.fail("services", "expected a mapping of at least one service")

        runtime = (
            runtime_override
            or self.variables.get("OPSKIT_RUNTIME")
            or top.get("runtime")
            or DEFAULT_RUNTIME
        )
        runtime_key = "x-opskit.runtime" if not runtime_override else "--runtime"
        if runtime not in RUNTIMES:
            raise self.fail(runtime_key, f"expected one of {', '.join(RUNTIMES)}, got {runtime!r}")
        runtime = RuntimeKind(runtime)

        # Compose's project name: `name:`, else COMPOSE_PROJECT_NAME, else the folder name.
        name = (
            document.get("name")
            or self.variables.get("COMPOSE_PROJECT_NAME")
            or self.project_dir.name
        )
        name = self.string(name, "name")
        state_dir = self.path(top.get("state_dir", ".opskit"), "x-opskit.state_dir")
        logs_raw = self.mapping(top.get("logs"), "x-opskit.logs")
        logs = LogSettings(
            max_bytes=self._size(logs_raw.get("max_size", "10MB"), "x-opskit.logs.max_size"),
            keep=self.integer(logs_raw.get("keep", 3), "x-opskit.logs.keep", minimum=1),
        )
        min_free = self._size(top.get("min_free_disk", "100MB"), "x-opskit.min_free_disk")
        top_reader = OptionReader(
            self.label,
            "x-opskit",
            top,
            self.project_dir,
            ignored=("runtime", "state_dir", "logs", "min_free_disk"),
        )
        health = HealthSettings.read(top_reader.section("health"))
        environment = top_reader.choice("environment", Environment, Environment.PRODUCTION)
        metrics = MetricsSettings.read(top_reader.section("metrics"))
        swarm = SwarmSettings.read(top_reader.section("swarm"))
        backups = top_reader.section("backups")
        backups_dir = self.path(backups.string("dir", "backups"), "x-opskit.backups.dir")
        from opskit.backup.retention import KeepPolicy

        backups_keep = KeepPolicy.from_mapping(backups.mapping("keep"), self.label)
        encrypt_to = self.age_recipients(backups)
        from opskit.backup.copies import read_copy_settings

        copies = read_copy_settings(backups)
        backups.finish()
        recover = RecoverSettings.read(top_reader.section("recover"))
        from opskit.alerts.settings import AlertSettings

        alerts = AlertSettings.read(top_reader.section("alerts"))
        top_reader.finish()
        for key in logs_raw:
            if key not in ("max_size", "keep"):
                raise self.fail(f"x-opskit.logs.{key}", "unknown key; known: keep, max_size")

        for svc_name in services_raw:
            if not isinstance(svc_name, str) or not SERVICE_NAME.match(svc_name):
                raise self.fail(
                    f"services.{svc_name}",
                    "expected a service name of letters, digits, '.', '_' and '-' "
                    "(as Compose), not starting with '.', '_' or '-'",
                )
        services = {
            str(svc_name): self.service(str(svc_name), body, runtime)
            for svc_name, body in services_raw.items()
        }
        self._check_published_ports(services)
        for svc in services.values():
            for dependency in svc.depends_on:
                if dependency not in services:
                    known = ", ".join(sorted(services))
                    raise self.fail(
                        f"services.{svc.name}.depends_on.{dependency}",
                        f"unknown service (known: {known})",
                    )
        return StackConfig(
            name=name,
            source=Path(self.label),
            project_dir=self.project_dir,
            runtime=runtime,
            state_dir=state_dir,
            services=services,
            environ=dict(self.variables),
            logs=logs,
            min_free_disk=min_free,
            health=health,
            backups_dir=backups_dir,
            backups_keep=backups_keep,
            backups_encrypt_to=encrypt_to,
            backups_copies=copies,
            recover=recover,
            alerts=alerts,
            options=top,
            environment=environment,
            metrics=metrics,
            secrets=self.secrets(document.get("secrets")),
            swarm=swarm,
        )

    def secrets(self, value: Any) -> dict[str, SecretDefinition]:
        """Top-level ``secrets:`` (``file:``, ``environment:`` or ``external: true``)."""
        definitions = {}
        for name, body in self.mapping(value, "secrets").items():
            key = f"secrets.{name}"
            body = self.mapping(body, key)
            if body.get("external"):
                external = body.get("name") or name
                definitions[name] = SecretDefinition(name, external_name=str(external))
            elif "file" in body:
                definitions[name] = SecretDefinition(
                    name, file=self.path(body["file"], f"{key}.file")
                )
            elif "environment" in body:
                variable = self.string(body["environment"], f"{key}.environment")
                if variable not in self.variables:
                    raise self.fail(f"{key}.environment", f"variable {variable} is not set")
                definitions[name] = SecretDefinition(
                    name, environment=variable, value=self.variables[variable]
                )
            else:
                raise self.fail(key, "expected file:, environment: or external: true")
        return definitions

    def _check_published_ports(self, services: Mapping[str, ServiceSpec]) -> None:
        """Two services cannot publish one host port: the second would fail after the first
        started. Named with both keys, before anything runs."""
        seen: dict[tuple[str, int, str], str] = {}
        for spec in services.values():
            for index, mapping in enumerate(spec.ports):
                if mapping.host_port is None:
                    continue
                host = "" if mapping.host_ip in ("", "0.0.0.0") else mapping.host_ip
                key = f"services.{spec.name}.ports[{index}]"
                for candidate in {
                    (host, mapping.host_port, mapping.protocol),
                    ("", mapping.host_port, mapping.protocol),
                }:
                    other = seen.get(candidate)
                    if other is not None:
                        raise self.fail(
                            key, f"host port {mapping.host_port} is already published by {other}"
                        )
                seen[(host, mapping.host_port, mapping.protocol)] = key
                if host == "":  # 0.0.0.0 covers every address
                    seen[("", mapping.host_port, mapping.protocol)] = key

    def age_recipients(self, backups: OptionReader) -> tuple[str, ...]:
        """``x-opskit.backups.encrypt_to``: age public keys (``age1…``, as ``age-keygen``
        prints them), one or a list. An empty entry — a variable that is not set — is an
        error, not "no encryption": backups meant to be encrypted are never written in
        plaintext by accident."""
        from opskit.backup.encryption import RECIPIENT

        values = [
            v for v in backups.items("encrypt_to") if v is not None
        ]  # `encrypt_to:` alone: none
        found = []
        for index, value in enumerate(values):
            text = str(value).strip() if value is not None else ""
            if not text:
                raise backups.fail(
                    f"encrypt_to[{index}]",
                    "expected an age recipient, got an empty value (a variable that is not "
                    "set?); remove encrypt_to to back up without encryption",
                )
            if not RECIPIENT.match(text):
                raise backups.fail(
                    f"encrypt_to[{index}]",
                    f"expected an age recipient (age1… as age-keygen prints it), got {text[:20]!r}",
                )
            found.append(text)
        return tuple(found)

    def _size(self, value: Any, key: str) -> int:
        try:
            return parse_size(value)
        except ValueError as exc:
            raise self.fail(key, str(exc)) from None

    def service(self, name: str, body: Any, runtime: RuntimeKind) -> ServiceSpec:
        key = f"services.{name}"
        body = self.mapping(body, key)
        extension = self.mapping(body.get("x-opskit"), f"{key}.x-opskit")
        image = self.string(body["image"], f"{key}.image") if "image" in body else None

        role_name = extension.get("role")
        if role_name is None:
            role = RoleKind.infer(image)
        else:
            try:
                role = RoleKind(role_name)
            except ValueError:
                allowed = ", ".join(kind.value for kind in RoleKind)
                raise self.fail(
                    f"{key}.x-opskit.role", f"expected one of {allowed}, got {role_name!r}"
                ) from None

        process = self.process(extension.get("process"), f"{key}.x-opskit.process", runtime)
        options = {k: v for k, v in extension.items() if k not in COMMON_SERVICE_KEYS}
        start_timeout = None
        if extension.get("start_timeout") is not None:
            start_timeout = self.duration(
                extension["start_timeout"], f"{key}.x-opskit.start_timeout"
            )
            if start_timeout <= 0:
                raise self.fail(f"{key}.x-opskit.start_timeout", "expected a duration above zero")

        return ServiceSpec(
            name=name,
            role=role,
            image=image,
            command=self.command(body.get("command"), f"{key}.command"),
            environment=self.environment(body, key),
            ports=self.ports(body.get("ports"), f"{key}.ports"),
            depends_on=self.depends_on(body.get("depends_on"), f"{key}.depends_on", name),
            healthcheck=self.healthcheck(body.get("healthcheck"), f"{key}.healthcheck"),
            stop_signal=self.signal_name(body.get("stop_signal", "SIGTERM"), f"{key}.stop_signal"),
            stop_grace_period=self.duration(
                body.get("stop_grace_period", DEFAULT_GRACE_PERIOD), f"{key}.stop_grace_period"
            ),
            restart=self.string(body.get("restart", "no"), f"{key}.restart"),
            container_name=(
                self.string(body["container_name"], f"{key}.container_name")
                if body.get("container_name")
                else None
            ),
            labels=self.labels(body.get("labels"), f"{key}.labels"),
            process=process,
            options=options,
            compose=body,
            start_timeout_option=start_timeout,
        )

    def process(self, value: Any, key: str, runtime: RuntimeKind) -> ProcessSettings:
        raw = self.mapping(value, key)
        for name in raw:
            if name not in ("command", "cwd", "environment"):
                close = difflib.get_close_matches(str(name), ["command", "cwd", "environment"], 1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                raise self.fail(
                    f"{key}.{name}", f"unknown key{hint}; known: command, cwd, environment"
                )
        environment = self.mapping(raw.get("environment"), f"{key}.environment")
        cwd = self.path(raw["cwd"], f"{key}.cwd") if raw.get("cwd") else None
        if cwd is not None and runtime.follows_launch and not cwd.is_dir():
            raise self.fail(f"{key}.cwd", f"directory {cwd} not found")
        return ProcessSettings(
            command=self.command(raw.get("command"), f"{key}.command"),
            cwd=cwd,
            environment={
                str(k): self._env_value(v, f"{key}.environment.{k}", str(k))
                for k, v in environment.items()
            },
        )

    def environment(self, body: dict[str, Any], key: str) -> dict[str, str]:
        """``env_file`` entries first, then ``environment`` (Compose's precedence)."""
        result: dict[str, str] = {}
        env_files = body.get("env_file") or []
        if isinstance(env_files, (str, dict)):
            env_files = [env_files]
        if not isinstance(env_files, list):
            raise self.fail(f"{key}.env_file", f"expected a path or a list, got {_kind(env_files)}")
        for index, entry in enumerate(env_files):
            entry_key = f"{key}.env_file[{index}]"
            required = True
            if isinstance(entry, dict):
                required = bool(entry.get("required", True))
                entry = entry.get("path")
            file = self.path(entry, entry_key)
            from dotenv import dotenv_values

            if not file.is_file():
                if required:
                    raise self.fail(entry_key, f"env file {file} not found")
                continue
            result.update({k: v or "" for k, v in dotenv_values(file).items()})

        raw = body.get("environment")
        if raw is None:
            return result
        if isinstance(raw, list):
            for index, item in enumerate(raw):
                item = self.string(item, f"{key}.environment[{index}]")
                name, sep, value = item.partition("=")
                result[name] = value if sep else self.variables.get(name, "")
            return result
        if isinstance(raw, dict):
            for name, value in raw.items():
                result[str(name)] = self._env_value(value, f"{key}.environment.{name}", str(name))
            return result
        raise self.fail(f"{key}.environment", f"expected a mapping or a list, got {_kind(raw)}")

    def _env_value(self, value: Any, key: str, name: str) -> str:
        if value is None:  # "KEY:" with no value takes it from the environment, as Compose
            return self.variables.get(name, "")
        if isinstance(value, bool):
            return "true" if value else "false"
        return self.string(value, key)

    def ports(self, value: Any, key: str) -> tuple[PortMapping, ...]:
        if value is None:
            return ()
        if not isinstance(value, list):
            raise self.fail(key, f"expected a list, got {_kind(value)}")
        return tuple(self._port(item, f"{key}[{index}]") for index, item in enumerate(value))

    def _port(self, item: Any, key: str) -> PortMapping:
        mapping = self._port_mapping(item, key)
        for number, where in ((mapping.container_port, "container"), (mapping.host_port, "host")):
            if number is not None and not 1 <= number <= MAX_PORT:
                raise self.fail(
                    key,
                    f"{where} port {number} is out of range (expected 1-{MAX_PORT}), got {item!r}",
                )
        if mapping.protocol not in ("tcp", "udp", "sctp"):
            raise self.fail(key, f"expected protocol tcp, udp or sctp, got {mapping.protocol!r}")
        return mapping

    def _port_mapping(self, item: Any, key: str) -> PortMapping:
        if isinstance(item, dict):
            return PortMapping(
                container_port=self.integer(item.get("target"), f"{key}.target", 0),
                host_port=(
                    self.integer(item["published"], f"{key}.published", 0)
                    if item.get("published") not in (None, "")
                    else None
                ),
                host_ip=str(item.get("host_ip", "")),
                protocol=str(item.get("protocol", "tcp")),
            )
        text = self.string(item, key)
        text, _, protocol = text.partition("/")
        parts = text.rsplit(":", 2) if text.count(":") <= 2 else None
        if not parts:
            raise self.fail(key, f"expected 'HOST:CONTAINER' or 'IP:HOST:CONTAINER', got {item!r}")
        try:
            if len(parts) == 1:
                return PortMapping(int(parts[0]), protocol=protocol or "tcp")
            if len(parts) == 2:
                return PortMapping(int(parts[1]), int(parts[0]), protocol=protocol or "tcp")
            return PortMapping(int(parts[2]), int(parts[1]), parts[0], protocol or "tcp")
        except ValueError:
            raise self.fail(
                key,
                f"expected 'HOST:CONTAINER' with numeric ports (ranges unsupported), got {item!r}",
            ) from None

    def depends_on(self, value: Any, key: str, name: str) -> dict[str, str]:
        if value is None:
            return {}
        if isinstance(value, list):
            result = {
                self.string(item, f"{key}[{i}]"): "service_started" for i, item in enumerate(value)
            }
        elif isinstance(value, dict):
            result = {}
            for dependency, options in value.items():
                options = self.mapping(options, f"{key}.{dependency}")
                condition = options.get("condition", "service_started")
                if condition not in DEPENDENCY_CONDITIONS:
                    raise self.fail(
                        f"{key}.{dependency}.condition",
                        f"expected one of {', '.join(DEPENDENCY_CONDITIONS)}, got {condition!r}",
                    )
                result[str(dependency)] = condition
        else:
            raise self.fail(key, f"expected a list or a mapping, got {_kind(value)}")
        if name in result:
            raise self.fail(f"{key}.{name}", "a service cannot depend on itself")
        return result

    def healthcheck(self, value: Any, key: str) -> Healthcheck | None:
        if value is None:
            return None
        raw = self.mapping(value, key)
        test = raw.get("test")
        if isinstance(test, str):
            test = ["CMD-SHELL", test]
        disabled = bool(raw.get("disable")) or (isinstance(test, list) and test[:1] == ["NONE"])
        return Healthcheck(
            test=self.command(test, f"{key}.test"),
            interval=self.duration(raw.get("interval", "30s"), f"{key}.interval"),
            timeout=self.duration(raw.get("timeout", "30s"), f"{key}.timeout"),
            retries=self.integer(raw.get("retries", 3), f"{key}.retries", minimum=1),
            start_period=self.duration(raw.get("start_period", "0s"), f"{key}.start_period"),
            disabled=disabled,
        )

    def signal_name(self, value: Any, key: str) -> str:
        import signal

        text = self.string(value, key).upper()
        if not text.startswith("SIG"):
            text = "SIG" + text
        if not hasattr(signal.Signals, text):
            raise self.fail(key, f"expected a signal name like SIGTERM, got {value!r}")
        return text

    def labels(self, value: Any, key: str) -> dict[str, str]:
        if value is None:
            return {}
        if isinstance(value, list):
            pairs = (self.string(item, key).partition("=") for item in value)
            return {name: val for name, _, val in pairs}
        return {str(k): str(v) for k, v in self.mapping(value, key).items()}


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )
