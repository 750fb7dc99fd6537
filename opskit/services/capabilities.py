"""What an operation may ask of a role, beyond start/probe/stop: typed, optional capabilities.

An operation never asks a role for its name. It asks the engine for the services whose role
offers a capability (``isinstance(role, Reloadable)``) and the engine reports the rest as
``unsupported`` (:func:`opskit.ops.engine.for_each_capable`). A role offers a capability by
implementing its methods; these protocols are ``runtime_checkable`` so the check is the
methods' presence. :func:`describe` is how progress and "unsupported" lines name one.

Today's implementations: nginx (``nginx -t``, HUP) and kong (``POST /config``, ``GET /config``)
are :class:`ConfigValidating` and :class:`Reloadable`; kong is :class:`ConfigExporting`;
redis is the :class:`MaskingStore`, kong the :class:`MaskingGateway` and nginx the
:class:`EntryPoint` that the end-to-end check and its fail-secure drill need; every role is a
:class:`LogSources` (its unit's output plus files such as nginx's access log).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, runtime_checkable

from opskit.vocabulary import MetricType

if TYPE_CHECKING:
    from opskit.backup.artifacts import ArtifactReader, ServiceArtifacts
    from opskit.config import ServiceSpec
    from opskit.runtime.base import Launch, OutputCursor, StopResult

PlanState = TypeVar("PlanState")


@dataclass(frozen=True)
class Verdict:
    """The outcome of a capability call: did it work, did it change anything, and why."""

    ok: bool
    detail: str
    changed: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "detail": self.detail, "changed": self.changed}


@runtime_checkable
class ConfigValidating(Protocol):
    """Checks the configuration the service would load next (``nginx -t``)."""

    def validate_config(self) -> Verdict: ...


@runtime_checkable
class Reloadable(Protocol):
    """Loads new configuration without a restart (nginx HUP, Kong ``POST /config``).

    ``reload`` validates first and leaves the running configuration alone when validation
    fails; ``Verdict.changed`` is False when the service already ran that configuration.
    """

    def reload(self) -> Verdict: ...


@runtime_checkable
class ConfigExporting(Protocol):
    """Exports the running configuration and applies one (Kong's declarative config).

    ``declarative_source`` is the text the service loads at start and on HUP (its declarative
    file); ``configuration_hash`` is what it reports running (Kong's md5 of the applied bytes).
    """

    def export_config(self) -> str: ...

    def apply_config(self, declarative: str) -> Any: ...

    def declarative_source(self) -> str: ...

    def configuration_hash(self) -> str | None: ...


@runtime_checkable
class DeclarativePersisting(Protocol):
    """Makes the declarative file the service loads at start hold given bytes, so that a
    config applied to its memory survives its next restart; says where, or why it cannot."""

    def persist_declarative(self, text: str) -> Verdict: ...


@runtime_checkable
class DeclarativeParsing(Protocol):
    """Asks the service's own CLI whether a declarative config parses (``kong config parse``);
    None when no such CLI is reachable in its unit."""

    def parse_declarative(self, text: str) -> Verdict | None: ...


@dataclass(frozen=True)
class LogSource:
    """A log an operator may want: ``unit`` for the unit's own output, else a path as the unit
    sees it (copied out with ``Unit.copy_out`` under docker)."""

    name: str
    path: str | None = None  # None: the unit's stdout/stderr


@runtime_checkable
class LogSources(Protocol):
    def log_sources(self) -> list[LogSource]: ...


@runtime_checkable
class MaskingStore(Protocol):
    """Holds the aws-masker maps (Redis): the e2e check reads them, the drill interrupts it."""

    def masked_token_for(self, original: str) -> tuple[str | None, str | None, int | None]:
        """(masked token, what the token maps back to, TTL) for ``original``."""
        ...

    def events(self, channel: str | None = None) -> Any:
        """A subscription to the masking events channel (context manager); ``channel``
        overrides the one the stack file names."""
        ...

    def interrupt(self) -> StopResult:
        """Take the store away (the drill); :func:`engine.ensure_ready` brings it back."""
        ...


@runtime_checkable
class MaskingGateway(Protocol):
    """Masks AWS ids on the Claude route (Kong with aws-masker)."""

    masked_path: str

    def costly_upstream(self) -> str | None:
        """The host of a paid upstream the gateway forwards to (anthropic.com), if any."""
        ...


@runtime_checkable
class UpstreamRecorder(Protocol):
    """Knows what the upstream received (the sandbox's Claude API stand-in records it): the
    drill's only way to tell a masked request from a leak."""

    def received_texts(self) -> list[str] | None:
        """Texts of the requests the upstream received recently; None: not configured."""
        ...


@runtime_checkable
class BackingUp(Protocol):
    """Writes what the service needs to come back as it was into a backup, and checks it.

    ``back_up`` streams its files through ``artifacts`` and returns the metadata the manifest
    keeps for it (RDB version and key counts, a configuration hash). ``check_backup`` says what
    is wrong with a stored copy (empty: nothing), without the service running unless ``deep``
    asks for a throwaway server.
    """

    def back_up(self, artifacts: ServiceArtifacts) -> dict[str, Any]: ...

    def check_backup(self, artifacts: ArtifactReader, metadata: dict, deep: bool) -> list[str]: ...


@dataclass(frozen=True)
class Drilled:
    """What a restore drill found for one service: ``problems`` (empty: it would restore),
    and the ``figures`` it measured on the throwaway copy (keys, prefixes …) for the record."""

    problems: list[str]
    figures: dict[str, Any]


@runtime_checkable
class Drilling(Protocol):
    """Restores a backup's data into a throwaway instance of its software — never the live
    service — and says whether it holds what the manifest says (a drill: ``inv backup.drill``).
    A role without it is drilled by its ``check_backup(deep=True)``."""

    def drill_backup(self, artifacts: ArtifactReader, metadata: dict) -> Drilled: ...


@runtime_checkable
class DataInspecting(Protocol):
    """Says what a backup's data holds — keys and memory per prefix, TTLs, the biggest keys —
    computed on a throwaway copy, never on the live service (``inv backup.inspect``)."""

    def inspect_backup(self, artifacts: ArtifactReader) -> dict[str, Any]: ...


@dataclass(frozen=True)
class RestorePlan(Generic[PlanState]):
    """How a role will put a backup back: with the service stopped first (Redis's data file)
    or into the running service (a configuration load). ``state`` is the role's own notes
    from planning, typed by the role (Redis: where its RDB lives)."""

    needs_stop: bool
    detail: str
    state: PlanState | None = None
    staged: Staged | None = None  # what :class:`StagingRestorable` prepared, if anything


@dataclass(frozen=True)
class Staged:
    """A backup's data a role prepared while its service still served (an RDB decompressed
    and verified beside the live file), so the outage is only the swap.

    Staging reads the role's files through the same checks as ``check_backup``; ``problems``
    are that check's findings, so a restore that staged need not read those files again.
    ``commit`` swaps the data in (the role calls it from ``place_backup``, service stopped);
    ``discard`` removes what is still staged and is harmless after a commit or twice."""

    problems: tuple[str, ...]
    commit: Callable[[], None]
    discard: Callable[[], None]


@runtime_checkable
class Restorable(Protocol):
    """Puts a backup back, in three steps the restore operation drives:

    1. ``plan_restore`` while the service runs as it is now: find out where things go and
       refuse (OpskitError) what cannot work, before anything changes;
    2. ``place_backup``: when the plan ``needs_stop``, stop the service and put the files
       where it reads them at start; return the launch that loads them, or None for the
       usual one (the operation then starts it through the engine with it);
    3. ``apply_backup`` once the service runs and is ready: load and verify.
    """

    def plan_restore(self, artifacts: ArtifactReader, metadata: dict) -> RestorePlan: ...

    def place_backup(
        self, artifacts: ArtifactReader, metadata: dict, plan: RestorePlan
    ) -> Launch | None: ...

    def apply_backup(
        self, artifacts: ArtifactReader, metadata: dict, plan: RestorePlan
    ) -> Verdict: ...


@runtime_checkable
class StagingRestorable(Restorable, Protocol):
    """A :class:`Restorable` that can prepare the backup's data before its service stops.

    ``stage_backup`` runs while the service still serves, beside the safety backup; it returns
    None where nothing can be staged (the data lives inside a container: ``place_backup`` then
    writes it while the service is down, as before)."""

    def stage_backup(
        self, artifacts: ArtifactReader, metadata: dict, plan: RestorePlan
    ) -> Staged | None: ...

    def discard_staged(self) -> list[str]:
        """Remove what an interrupted restore staged (a resumed one stages anew); the paths."""
        ...


@runtime_checkable
class EntryPoint(Protocol):
    """Where client traffic enters the stack (nginx in front of Kong)."""

    def entry_url(self, path: str) -> str: ...


@runtime_checkable
class GracefullyRestartable(Protocol):
    """Takes new configuration, or new workers, without dropping a request.

    nginx: ``nginx -t``, HUP, verified by a new set of workers under the same master; Kong:
    the declarative file through ``POST /config`` (or HUP), verified by readiness and by
    ``configuration_hash``. A role without it cannot restart without an outage (Redis has no
    replica here): the operation refuses unless downtime is allowed.
    """

    def graceful_restart(self) -> Verdict: ...


@runtime_checkable
class Relievable(Protocol):
    """Stateless enough to run a second instance beside itself for a while (a *relief*).

    ``relief_spec(port)`` is this service again under another name, reachable by opskit at
    ``127.0.0.1:port``: what takes its requests while it restarts, when something fronts it.
    """

    def relief_spec(self, port: int) -> ServiceSpec: ...


@runtime_checkable
class UpstreamSwitching(Protocol):
    """Fronts another service and can send its requests elsewhere without dropping one.

    nginx with ``fronts: <service>``: the ``server`` lines of that upstream block are pointed
    at other addresses (edit, ``-t``, HUP verified, old workers drained) and later restored
    byte-identical.
    """

    @property
    def fronted_service(self) -> str | None: ...

    def upstream_servers(self) -> list[str]: ...

    def point_upstream(self, servers: list[str], drain: float) -> Verdict: ...

    def restore_upstream(self, drain: float) -> Verdict: ...


@dataclass(frozen=True)
class Traffic:
    """Requests an entry point served in a window: what a rollout's guards judge."""

    requests: int
    server_errors: int  # 5xx answers
    p95_seconds: float | None  # None: no request to measure
    to_path: int  # requests whose path starts with the prefix asked about

    @property
    def error_rate(self) -> float:
        return self.server_errors / self.requests if self.requests else 0.0


@runtime_checkable
class TrafficReporting(Protocol):
    """Reports the requests it served since an instant, from its own access log (nginx's JSON
    ``log_format``: time, status, request_time, uri)."""

    def traffic_since(self, since: float, path_prefix: str) -> Traffic: ...


@dataclass(frozen=True)
class RequestRecord:
    """One request from an access log: what the request metrics count."""

    path: str  # without the query string
    status: int
    seconds: float


@runtime_checkable
class RequestLogReading(Protocol):
    """Reads the requests its service logged since a cursor, incrementally and bounded (the
    unit's :meth:`~opskit.runtime.base.Unit.read_output`): the source of the request-rate,
    latency, error-rate and auth-failure metrics."""

    def request_records(
        self, cursor: OutputCursor | None, limit: int
    ) -> tuple[list[RequestRecord], OutputCursor]: ...


@dataclass(frozen=True)
class MetricValue:
    """One sample a role reports about its service, in base units (seconds, bytes, 0/1).

    ``name`` is the metric's name without the ``opskit_`` prefix and, for a counter, with its
    ``_total``; the operation adds the prefix and the ``service`` label. Roles stay free of any
    metrics library: :mod:`opskit.exposition` turns these into Prometheus families.
    """

    name: str
    help: str
    value: float
    type: MetricType = MetricType.GAUGE
    labels: tuple[tuple[str, str], ...] = ()
    #: a histogram's cumulative counts per upper bound, ``+Inf`` last (its count)
    buckets: tuple[tuple[float, float], ...] = ()


@runtime_checkable
class MetricReporting(Protocol):
    """Reports its service's own numbers (Redis INFO, nginx stub_status, Kong ``/status``) in
    one round trip or two; an unreachable service reports nothing (``opskit_service_up`` and
    the health checks already say why)."""

    def metric_values(self) -> list[MetricValue]: ...


_DESCRIPTIONS: dict[type, str] = {
    MetricReporting: "report metrics",
    RequestLogReading: "report the requests it logged",
    TrafficReporting: "report the traffic it served",
    GracefullyRestartable: "restart without downtime",
    Relievable: "run a relief instance",
    UpstreamSwitching: "switch where it sends requests",
    ConfigValidating: "validate its configuration",
    Reloadable: "reload its configuration",
    ConfigExporting: "export its configuration",
    DeclarativeParsing: "parse a declarative config with its own CLI",
    LogSources: "name its logs",
    MaskingStore: "hold masking maps",
    MaskingGateway: "mask AWS ids",
    EntryPoint: "take client traffic",
    UpstreamRecorder: "report what the upstream received",
    BackingUp: "be backed up",
    Restorable: "be restored",
}


_DOING: dict[type, str] = {
    MetricReporting: "reporting metrics",
    ConfigValidating: "validating its configuration",
    Reloadable: "reloading its configuration",
    ConfigExporting: "exporting its configuration",
    BackingUp: "backing up",
    Restorable: "restoring",
    GracefullyRestartable: "restarting without downtime",
}


def describe(capability: type) -> str:
    """What a role with ``capability`` can do, as a verb phrase ("reload its configuration")."""
    return _DESCRIPTIONS.get(capability, capability.__name__)


def describe_doing(capability: type) -> str:
    """What a step of ``capability`` is doing, for progress ("backing up"); "" when unnamed."""
    return _DOING.get(capability, "")
