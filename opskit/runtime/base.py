"""The runtime contract: what every runtime offers for one unit (a process or a container).

Roles drive services only through this interface, so a role works unchanged whether its
service is a local process, a container, a Swarm service or the in-memory fake;
``tests/contract`` holds every runtime to it. The whole contract, one line each:

A runtime implements (abstract)
    start(launch) · status() · send_signal(sig) · kill() · forget()       lifecycle
    exec(argv, timeout) · open_file(path) · write_file(path, data, size)  inside the unit
    logs(since, until, follow) · stats() · address(port)                  observing it
A runtime answers, where the default is not true for it
    follows_launch            does start() run the role's Launch (its rendered files)?
    exec_stream(argv)         a command's output read as it comes (a dump, a tail -F)
    environment()             what its processes get from the stack
    scratch(files, dirs)      a private folder its own binary can read, removed after
    file_lines / follow_file  a log file it writes, rotation first / as it grows
    read_output(cursor)       its output since a cursor, bounded (request metrics)
    processes()               its process list (nginx: same master, new workers?)
    host_file / keeps_file    where a file it reads lives on this host / survives a restart
    create()                  exist without running, so files can be placed (docker)
    time_zone() · log_tail()  the zone of its naive timestamps · its last lines
    peer_address(port)        where another unit of the stack reaches it
    host_pid() · may_come_back() · settling() · container_health()   for recovery and gates
    rolls_replicas · replace_rolling(timeout)                          Swarm's rolling update
    clear_leftovers()         what a dead leader left behind (a process group)
Written once here, on top of those
    stop(sig, grace) / finish_stop(grace, how)   the Compose stop contract
    wait_stopped(timeout) · copy_out · copy_in
"""

from __future__ import annotations

import contextlib
import io
import signal
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, BinaryIO

from opskit.errors import OpskitError
from opskit.polling import deadline_in, poll_until
from opskit.vocabulary import UnitState

if TYPE_CHECKING:
    from opskit.config import ServiceSpec


# Kept for readers of the old names; new code uses UnitState.
RUNNING = UnitState.RUNNING
EXITED = UnitState.EXITED
ABSENT = UnitState.ABSENT


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
    state: UnitState
    pid: int | None = None
    started_at: float | None = None  # epoch seconds
    exit_code: int | None = None
    detail: str = ""
    restarts: int | None = None  # starts by opskit after the first, when the runtime counts them
    nodes: tuple[str, ...] = ()  # where its running instances are (a cluster's node names)

    @property
    def running(self) -> bool:
        return self.state is UnitState.RUNNING

    @property
    def active(self) -> bool:
        """Running, or being brought up by its runtime: either way, something to stop."""
        return self.state in (UnitState.RUNNING, UnitState.CONVERGING)

    def uptime(self, now: float) -> float | None:
        return now - self.started_at if self.running and self.started_at else None


@dataclass(frozen=True)
class UnitStats:
    """Resource use of a running unit (all processes of it)."""

    rss_bytes: int
    cpu_percent: float  # average since the unit started
    cpu_seconds: float | None = None  # CPU time its live processes used (a counter's value)


@dataclass(frozen=True)
class OutputCursor:
    """Where a reader of a unit's output stopped: a file position (``inode``, ``offset``) where
    the output is a file on this host, else the time of the last line read (``time``)."""

    inode: int = 0
    offset: int = 0
    time: float = 0.0
    rotation: int = 0  # the inode of the newest rotated file then: a new one means a rotation


@dataclass(frozen=True)
class ExecResult:
    """Outcome of a command run in the unit's context (``nginx -t``, ``kong quit``)."""

    exit_code: int | None  # None: it could not run or timed out
    output: str


@dataclass(frozen=True)
class UnitProcess:
    """One process of a running unit, as its runtime sees it: enough for a role to tell a
    master from its workers (nginx) without knowing where the unit runs."""

    pid: int
    ppid: int
    command: str  # the process title (nginx sets "nginx: master process …")


@dataclass(frozen=True)
class HostFile:
    """Where on this host a file a unit reads lives. ``in_place``: replace its bytes in the
    same inode (a file bind-mounted on its own into a container keeps pointing at the inode it
    was mounted with, so a rename would go unseen there until the container is recreated)."""

    path: Path
    in_place: bool = False


@dataclass(frozen=True)
class LogLine:
    """One line a unit wrote. ``timestamp`` (epoch seconds) is None where the runtime does not
    record one per line (a process's stdout); the line is then placed by its file's age."""

    service: str
    text: str
    timestamp: float | None = None


@dataclass(frozen=True)
class StopResult:
    """How a unit stopped: gracefully, or killed after its grace period."""

    service: str
    was_running: bool
    killed: bool = False
    detail: str = ""


class Unit(ABC):
    """One service's unit in a runtime.

    Every difference between runtimes is a question a unit answers (what environment its
    processes get, where a scratch file can live, how a log file is read or followed, which
    processes it has): a role asks; it never asks *where* the unit runs."""

    #: :meth:`start` runs the role's :class:`Launch` (argv, environment, stdin), so what the
    #: role renders for it (a config file, a data folder) is what the service loads. A
    #: container runs its image's command with its Compose settings instead.
    follows_launch: bool = True

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

    #: The runtime can replace the unit's instances one at a time, each new one ready before
    #: an old one stops (:meth:`replace_rolling`): a stateless service restarts without a gap.
    rolls_replicas: bool = False

    def may_come_back(self) -> bool:
        """Whether something other than opskit may start the unit again after it died (an
        engine's restart policy, Swarm's orchestrator): then one "not running" observation can
        be wrong a moment later and recovery confirms it. A process opskit started comes back
        only when opskit starts it."""
        return False

    def settling(self) -> str | None:
        """What the runtime is still doing to bring the unit to its desired state (replicas
        starting, an update rolling); None once settled. A single process is settled when
        it runs."""
        return None

    def replace_rolling(self, timeout: float) -> str:
        """Replace every instance one at a time, new before old, verified; describe it. Only
        where :attr:`rolls_replicas`."""
        raise NotImplementedError(f"{type(self).__name__} cannot replace instances in turn")

    def wait_stopped(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the unit to exit; True once it has."""
        gone = poll_until(lambda: True if not self.status().running else None, deadline_in(timeout))
        return bool(gone)

    def clear_leftovers(self) -> list[str]:
        """Kill what a previous run of this unit left behind (e.g. nginx workers whose master
        was ``kill -9``-ed and that still hold its port); describe each. Only what is provably
        the unit's own is touched. Default: nothing to clear."""
        return []

    @abstractmethod
    def kill(self) -> None:
        """SIGKILL the whole unit (its process group or container)."""

    @abstractmethod
    def exec(self, argv: list[str], timeout: float = 15.0) -> ExecResult:
        """Run ``argv`` where the service runs (its environment and working directory).

        Returns within ``timeout`` seconds whatever the command does: a command still running
        then is killed and reported with ``exit_code=None``.
        """

    def exec_stream(self, argv: list[str]) -> contextlib.AbstractContextManager[BinaryIO]:
        """Run ``argv`` where the service runs and read its standard output as it comes (a
        dump of any size, a ``tail -F``); leaving the block stops the command. Default: the
        whole output of :meth:`exec` at once, for a runtime that cannot stream."""
        result = self.exec(argv)
        return contextlib.nullcontext(io.BytesIO(result.output.encode("utf-8")))

    @abstractmethod
    def logs(
        self, since: float | None = None, until: float | None = None, follow: bool = False
    ) -> Iterator[LogLine]:
        """The unit's output, oldest first, between epoch seconds ``since`` and ``until``.

        With ``follow`` the iterator keeps yielding new lines as they are written until the
        caller stops iterating (``close()``) — ``tail -f``.
        """

    @abstractmethod
    def open_file(self, path: str) -> contextlib.AbstractContextManager[BinaryIO]:
        """Read the regular file ``path`` as the unit sees it, streamed (never whole in memory:
        a Redis dump can be gigabytes). Links and directories are refused."""

    @abstractmethod
    def write_file(self, path: str, data: BinaryIO, size: int) -> None:
        """Write ``size`` bytes from ``data`` to ``path`` in the unit, mode 0600, replacing it
        whole: a reader never sees half a file. Works while the unit is stopped (after
        :meth:`create`), which is when a data file may be swapped."""

    def create(self) -> None:  # noqa: B027 - optional: most units exist only while running
        """Make the unit exist without starting it, so :meth:`write_file` can place files it
        will read at start (docker: create the container). The process runtime has nothing
        to create: its paths are host paths."""

    def keeps_file(self, path: str) -> str | None:
        """None when a file written at ``path`` while the unit is stopped is still there when
        it starts again; otherwise why not (a swarm task starts in a new container, so only
        its volumes carry files over)."""
        return None

    def copy_out(self, path: str, destination: Path) -> None:
        """Copy the file ``path`` as the unit sees it to ``destination`` on this host (0600)."""
        from opskit.files import private_dir, write_stream_private

        private_dir(destination.parent)
        with self.open_file(path) as data:
            write_stream_private(data, destination)

    def copy_in(self, source: Path, path: str) -> None:
        """Copy the host file ``source`` into the unit at ``path``."""
        with source.open("rb") as data:
            self.write_file(path, data, source.stat().st_size)

    def container_health(self) -> str | None:
        """The runtime's own health verdict (a container HEALTHCHECK), when it has one."""
        return None

    @abstractmethod
    def stats(self) -> UnitStats | None:
        """Memory and CPU of the running unit; None when it is not running."""

    def log_tail(self, lines: int = 20) -> list[str]:
        """The last ``lines`` lines of its output, for a failure message. Default: the tail of
        :meth:`logs` (a runtime with a cheaper way — a file's tail, the engine's ``tail=`` —
        overrides it)."""
        import collections

        return [line.text for line in collections.deque(self.logs(), maxlen=lines)]

    def read_output(
        self, cursor: OutputCursor | None, limit: int = 16 << 20
    ) -> tuple[list[str], OutputCursor]:
        """The lines of its output written since ``cursor`` — about ``limit`` bytes at most, the
        rest next time — and where to continue. ``None`` starts at the end: nothing old is read,
        so a reader's cost never depends on how long the service has run. Default: by time,
        over :meth:`logs` (an engine's timestamp per line); a runtime whose output is a file
        overrides it with file offsets."""
        if cursor is None:
            return [], OutputCursor(time=time.time())
        lines, last, size = [], cursor.time, 0
        for line in self.logs(since=cursor.time):
            if line.timestamp is None or line.timestamp <= cursor.time:
                continue
            lines.append(line.text)
            last, size = line.timestamp, size + len(line.text) + 1
            if size >= limit:
                break
        return lines, OutputCursor(time=last)

    def processes(self) -> list[UnitProcess]:
        """The unit's processes right now (empty when it does not run). Pids are in the
        runtime's own numbering — compare them with each other, never signal them."""
        return []

    def host_file(self, path: str) -> HostFile | None:
        """Where the file the unit reads at ``path`` lives on this host, so a change written
        there outlives a restart of the unit; None when it has no host file (it lives only
        inside a container, or on a volume)."""
        return None

    def time_zone(self) -> str | None:
        """The ``TZ`` the unit's processes run with — the zone of the times they print
        without one — or None for this host's local time (what opskit itself uses when it has
        no TZ either). Default: the Compose environment's TZ, if any."""
        return self.spec.environment.get("TZ")

    def host_pid(self) -> int | None:
        """The pid of the unit's main process *on this host*, for watching it exit (a pidfd);
        None when it does not run or runs elsewhere."""
        return None

    def environment(self) -> dict[str, str]:
        """The environment the service's processes get from the stack: Compose's
        ``environment`` (a process also gets ``x-opskit.process.environment`` on top).
        Templates render from it; checks read listener settings from it."""
        return dict(self.spec.environment)

    @contextlib.contextmanager
    def scratch(self, files: Mapping[str, bytes], dirs: Iterable[str] = ()) -> Iterator[str]:
        """A private folder the unit's processes can read, holding ``files`` (relative names)
        and the empty ``dirs``; yields its path as the unit sees it and removes it after —
        for a check run by the unit's own binary (``nginx -t`` on a tree, ``kong config
        parse``). Default: made inside the running unit by :meth:`exec` and
        :meth:`write_file`; the files may hold credentials and never touch this host's disk."""
        import io
        import secrets

        folder = f"/tmp/opskit-scratch-{secrets.token_hex(6)}"
        parents = {str(PurePosixPath(folder, name).parent) for name in files}
        made = self.exec(["mkdir", "-p", "-m", "700", folder, *sorted(parents)])
        if made.exit_code != 0:
            raise OpskitError(f"{self.name}: cannot make a scratch folder: {made.output.strip()}")
        try:
            for name, data in files.items():
                self.write_file(f"{folder}/{name}", io.BytesIO(data), len(data))
            if dirs:
                self.exec(["mkdir", "-p", *(f"{folder}/{name}" for name in dirs)])
            yield folder
        finally:
            self.exec(["rm", "-rf", folder])

    def file_lines(self, path: str, since: float | None = None) -> Iterator[str]:
        """The lines of a log file the unit writes at ``path``, its last rotation
        (``path.1``) first; a file last written before ``since`` may be skipped. Default:
        read through :meth:`open_file`; a missing file yields nothing."""
        for name in (f"{path}.1", path):
            try:
                with self.open_file(name) as handle:
                    for raw in handle:
                        yield raw.decode("utf-8", errors="replace").rstrip("\n")
            except (OpskitError, OSError):
                continue

    def follow_file(self, path: str) -> Iterator[str]:
        """Lines appended to the log file ``path`` from now on, across rotations, until the
        caller stops iterating. Default: the unit's own ``tail -F -n 0`` through
        :meth:`exec_stream` (a container's file cannot be followed through the archive API)."""
        with self.exec_stream(["tail", "-F", "-n", "0", path]) as stream:
            for raw in stream:
                yield raw.decode("utf-8", errors="replace").rstrip("\n")

    @abstractmethod
    def address(self, container_port: int) -> tuple[str, int]:
        """Host and port where opskit reaches the service's ``container_port``."""

    def reach_url(self, url: str) -> str:
        """The URL opskit uses for one the stack file names (``admin_url``): the same, where
        the service's published ports are on this machine; a runtime that publishes them on
        another host (a Swarm node) points it there."""
        return url

    def peer_address(self, container_port: int) -> tuple[str, int]:
        """Host and port where another unit of this stack reaches ``container_port``: on one
        host the same as :meth:`address`; a container is reached by its network alias."""
        return self.address(container_port)

    @abstractmethod
    def forget(self) -> None:
        """Drop any record of a finished run (pidfile, exit record) after a clean stop."""

    def stop(self, sig: signal.Signals, grace: float) -> StopResult:
        """Send ``sig``, wait ``grace`` seconds, then kill: the Compose ``stop`` contract."""
        if not self.status().running:
            cleared = self.clear_leftovers()  # a dead leader may have left members behind
            self.forget()
            detail = "not running" + (f"; {'; '.join(cleared)}" if cleared else "")
            return StopResult(self.name, was_running=False, detail=detail)
        self.send_signal(sig)
        return self.finish_stop(grace, f"{sig.name}")

    def finish_stop(self, grace: float, how: str) -> StopResult:
        """After a stop was requested: wait out the grace period, then escalate to SIGKILL."""
        if self.wait_stopped(grace):
            self.clear_leftovers()  # stragglers left in the group (workers of a dead master)
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
