"""opskit's closed vocabularies: every status, outcome, state and exit code, in one place.

Roles, operations and renderers use these members, never string literals, so a typo is an
AttributeError at import rather than a silently unmatched branch at 3 a.m. Each enum subclasses
``str`` (or ``int``), so members compare equal to their plain values and serialise to JSON as
they always did: ``StepOutcome.STARTED == "started"``.
"""

from __future__ import annotations

from enum import Enum, IntEnum


class Word(str, Enum):
    """A member of a closed vocabulary: equal to its value, printed and serialised as it."""

    def __str__(self) -> str:
        return self.value


class ExitCode(IntEnum):
    """Every exit code a task returns (README's task table)."""

    OK = 0
    FAILED = 1  # an operation failed; for health: Nagios WARNING
    USAGE = 2  # bad stack file or command line; for health: Nagios CRITICAL
    UNKNOWN = 3  # health only: the check could not run (bad config/usage included)
    INCONSISTENT = 4  # restore only: it failed and so did the rollback to the safety backup
    INTERRUPTED = 130  # Ctrl-C / SIGINT, as shells report it


class CheckStatus(Word):
    """Nagios plugin states of one health check; the worst one is the report's."""

    OK = "OK"
    WARNING = "WARNING"
    CRITICAL = "CRITICAL"
    UNKNOWN = "UNKNOWN"

    @property
    def exit_code(self) -> int:
        return _NAGIOS_EXIT[self]

    @property
    def severity(self) -> int:
        """Which status wins when checks disagree: CRITICAL > UNKNOWN > WARNING > OK."""
        return _SEVERITY[self]


_NAGIOS_EXIT = {
    CheckStatus.OK: ExitCode.OK,
    CheckStatus.WARNING: ExitCode.FAILED,
    CheckStatus.CRITICAL: ExitCode.USAGE,
    CheckStatus.UNKNOWN: ExitCode.UNKNOWN,
}
_SEVERITY = {
    CheckStatus.OK: 0,
    CheckStatus.WARNING: 1,
    CheckStatus.UNKNOWN: 2,
    CheckStatus.CRITICAL: 3,
}


class StepOutcome(Word):
    """What one step of an operation did to one service."""

    STARTED = "started"
    ALREADY_RUNNING = "already running"
    STOPPED = "stopped"
    KILLED = "killed"
    NOT_RUNNING = "not running"
    DONE = "done"  # a capability step that succeeded (reloaded, exported, …)
    UNCHANGED = "unchanged"  # a capability step that found nothing to do
    SKIPPED = "skipped"  # not attempted: something it waits on failed
    FAILED = "failed"
    UNSUPPORTED = "unsupported"  # the service's role lacks the capability

    @property
    def ok(self) -> bool:
        return self not in (StepOutcome.FAILED, StepOutcome.SKIPPED)

    @property
    def idle(self) -> bool:
        """Nothing had to be done (for "nothing to start/stop" messages)."""
        return self in (StepOutcome.ALREADY_RUNNING, StepOutcome.NOT_RUNNING)


class UnitState(Word):
    """Runtime state of a unit (a process or a container)."""

    RUNNING = "running"
    EXITED = "exited"
    ABSENT = "absent"
    #: Not running yet, and the runtime itself is bringing it up (Swarm scheduling or
    #: replacing a task): wait for it, never start a second one.
    CONVERGING = "converging"


class Phase(Word):
    """Progress phases an operation reports through its EventSink."""

    BUILDING = "building"
    CLEANING = "cleaning"
    STARTING = "starting"
    WAITING = "waiting"
    READY = "ready"
    STOPPING = "stopping"
    STOPPED = "stopped"
    RUNNING = "running"  # a capability step in progress
    DONE = "done"
    SKIPPED = "skipped"
    NOT_APPLICABLE = "not applicable"  # the role has no such capability: information
    FAILED = "failed"

    @property
    def busy(self) -> bool:
        return self in _BUSY


_BUSY = {Phase.BUILDING, Phase.CLEANING, Phase.STARTING, Phase.WAITING, Phase.STOPPING}


class Direction(Word):
    """Which way the engine walks the dependency graph."""

    DEPENDENCIES_FIRST = "dependencies first"  # start: a service after what it needs
    DEPENDENTS_FIRST = "dependents first"  # stop: a service after what needs it


class RuntimeKind(Word):
    """Where services run (``x-opskit.runtime``); :mod:`opskit.runtime` maps each to code."""

    PROCESS = "process"
    DOCKER = "docker"
    SWARM = "swarm"
    FAKE = "fake"  # in memory, for tests (opskit.runtime.fake)

    @property
    def follows_launch(self) -> bool:
        """Its units run the role's launch (argv, environment, rendered files); a container
        runs its image's command instead. Known before any unit exists, for the stack file's
        checks (a process service needs a command)."""
        return self in (RuntimeKind.PROCESS, RuntimeKind.FAKE)


class RoleKind(Word):
    """The roles opskit knows (``x-opskit.role``); :mod:`opskit.services` maps each to code."""

    REDIS = "redis"
    KONG = "kong"
    NGINX = "nginx"
    BACKEND = "backend"
    HTTP = "http"

    @classmethod
    def infer(cls, image: str | None) -> RoleKind:
        """Role for a service without ``x-opskit.role``: from its image name, else ``http``."""
        if image:
            base = image.rsplit("/", 1)[-1].split(":", 1)[0].split("@", 1)[0]
            for kind in (cls.REDIS, cls.KONG, cls.NGINX):
                if base.startswith(kind.value):
                    return kind
        return cls.HTTP


class ServiceVerdict(Word):
    """What one recover observation says of a service."""

    HEALTHY = "healthy"
    IMPACTED = "impacted"  # its own checks pass; a dependency fails
    FAILING = "failing"  # running, but a check of its own is CRITICAL or UNKNOWN
    DOWN = "down"  # not running
    STOPPED = "stopped on purpose"  # `inv stop` said so: recovery leaves it alone

    @property
    def failed(self) -> bool:
        return self in (ServiceVerdict.FAILING, ServiceVerdict.DOWN)


class RecoverAction(Word):
    """What one recover pass did about one service."""

    NOTHING = "nothing to do"
    HEALTHY_AGAIN = "healthy again"  # failing until its dependency came back
    RESTARTED = "restarted"
    RESTART_FAILED = "restart failed"
    GAVE_UP = "gave up"
    WAITING = "waiting for a dependency"
    WOULD_RESTART = "would restart"  # --dry-run
    LEFT_ALONE = "left alone"  # stopped on purpose
    LEFT_TO_RUNTIME = "left to its runtime"  # Swarm is replacing it: alerted, never fought
    ALERT_ONLY = "alert only"  # e2e: no restart can fix it
    INTERRUPTED = "not restarted: interrupted"  # SIGINT/SIGTERM came first

    @property
    def resolved(self) -> bool:
        """After this, the service is healthy (or meant to be stopped)."""
        return self in (
            RecoverAction.NOTHING,
            RecoverAction.HEALTHY_AGAIN,
            RecoverAction.RESTARTED,
            RecoverAction.LEFT_ALONE,
        )


class StageOutcome(Word):
    """How one stage of a rollout ended."""

    PENDING = "pending"
    PASSED = "passed"
    UNJUDGED = "passed, unjudged"  # too little traffic during the soak to judge rates
    TRIPPED = "tripped"  # a guard tripped: the last good config was applied again
    FAILED = "failed"  # the stage's config could not be applied

    @property
    def ok(self) -> bool:
        return self in (StageOutcome.PASSED, StageOutcome.UNJUDGED)


class Environment(Word):
    """What a stack is (``x-opskit.environment``): production forbids showing unmasked data
    (``inv events --show-original``). Unset means production: the safe guess."""

    PRODUCTION = "production"
    STAGING = "staging"
    DEVELOPMENT = "development"
    SANDBOX = "sandbox"


class PublishMode(Word):
    """How a swarm service's ``ports:`` are published (``x-opskit.swarm.publish``)."""

    INGRESS = "ingress"  # the routing mesh: every node answers, Swarm balances (needs IPVS)
    HOST = "host"  # only the node running the task answers, on its own port


class EndpointMode(Word):
    """How a swarm service's name resolves on its network (``x-opskit.swarm.endpoint_mode``)."""

    VIP = "vip"  # one virtual IP, balanced by IPVS
    DNSRR = "dnsrr"  # the tasks' own addresses, round-robin DNS (no IPVS)


class TaskState(Word):
    """Swarm's task states (``docker service ps``), in the order a task passes them."""

    NEW = "new"
    ALLOCATED = "allocated"
    PENDING = "pending"
    ASSIGNED = "assigned"
    ACCEPTED = "accepted"
    PREPARING = "preparing"
    READY = "ready"
    STARTING = "starting"  # running, but its HEALTHCHECK has not passed yet
    RUNNING = "running"
    COMPLETE = "complete"
    SHUTDOWN = "shutdown"
    FAILED = "failed"
    REJECTED = "rejected"
    REMOVE = "remove"
    ORPHANED = "orphaned"


class ShutdownMode(Word):
    """How Redis is asked to stop (``x-opskit.shutdown``): SHUTDOWN SAVE or NOSAVE."""

    SAVE = "save"
    NOSAVE = "nosave"


class RestoreState(Word):
    """How a restore ended (``inv restore``); each has its exit code in the task table."""

    RESTORED = "restored"
    PLANNED = "planned"  # --dry-run
    REFUSED = "refused"  # nothing changed
    ROLLED_BACK = "rolled back"  # failed, and the safety backup is back
    INCONSISTENT = "inconsistent"  # failed, and so did the rollback
    ABORTED = "aborted"  # --abort: an interrupted restore undone, as asked


class BackupState(Word):
    COMPLETE = "complete"
    INCOMPLETE = "incomplete"  # an interrupted build, or a folder without a manifest
    DAMAGED = "damaged"  # a manifest opskit cannot read


class AlertKind(Word):
    """Why an alert is sent. Only state changes alert; reminders repeat an open incident."""

    FAILED = "failed"  # confirmed down or failing (after the anti-flapping observations)
    RECOVERED = "recovered"  # healthy again, after an alert said it failed
    GAVE_UP = "gave up"  # the restart budget is spent: a person must act
    REMINDER = "reminder"  # still failing (``alerts.remind``)
    TEST = "test"  # ``inv alerts.test``

    @property
    def severity(self) -> str:
        """Alertmanager's and most receivers' vocabulary."""
        return {
            AlertKind.FAILED: "critical",
            AlertKind.GAVE_UP: "critical",
            AlertKind.REMINDER: "critical",
            AlertKind.RECOVERED: "resolved",
            AlertKind.TEST: "info",
        }[self]


class NotifierKind(Word):
    APPRISE = "apprise"
    ALERTMANAGER = "alertmanager"
    COMMAND = "command"


class Wanted(Word):
    RUNNING = "running"
    STOPPED = "stopped"


class MetricType(Word):
    GAUGE = "gauge"
    COUNTER = "counter"
    HISTOGRAM = "histogram"  # value: the sum; buckets: cumulative counts per upper bound


class SecurityIncident(Word):
    """What opskit itself saw go wrong with masking (``opskit_security_incidents_total``)."""

    UNMASKED = "unmasked"  # the e2e check's AWS id went through the gateway without a mask
    LEAK = "leak"  # the raw id reached the upstream (the fail-secure drill's recorder saw it)
    FAIL_OPEN = "fail-open"  # with Redis down the gateway answered 200 instead of refusing
