"""The process runtime: each service is a local child process in its own session.

State lives under ``<state_dir>``:

- ``run/<svc>.pid`` — JSON with pid and the process's create-time. A pid alone can be reused by
  an unrelated process after ours exits; pid *and* create-time cannot, so opskit never signals a
  stranger.
- ``run/<svc>.exit`` — how the last run ended, when opskit saw it (exit code or "unknown").
- ``logs/<svc>.log`` — the service's stdout and stderr, rotated by size.

A unit is stopped with its role's graceful request, then SIGKILL to its whole process group
once ``stop_grace_period`` has passed (see :meth:`Unit.finish_stop`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import BinaryIO

from opskit.config import INHERITED_VARIABLES, ServiceSpec, StackConfig
from opskit.errors import OpskitError, RuntimeUnavailableError
from opskit.files import (
    atomic_write,
    atomic_write_json,
    private_dir,
    read_json,
    tail_lines,
    write_stream_private,
)
from opskit.polling import deadline_in, poll_until
from opskit.ports import describe_taken_port, port_is_free
from opskit.runtime import host
from opskit.runtime.base import (
    ExecResult,
    HostFile,
    Launch,
    LogLine,
    OutputCursor,
    Runtime,
    Unit,
    UnitProcess,
    UnitStats,
    UnitStatus,
)
from opskit.runtime.exits import pidfd, wait_exit
from opskit.runtime.logfiles import follow_lines, log_files
from opskit.vocabulary import UnitState

# A create time is a float derived from boot time (host.proc_stat, psutil's formula); the same
# process always gives the same value, a different process started at another moment does not.
_CREATE_TIME_TOLERANCE = 0.05


class ProcessRuntime(Runtime):
    name = "process"

    def __init__(self, config: StackConfig):
        self.config = config
        self.run_dir = config.state_dir / "run"
        self.log_dir = config.state_dir / "logs"
        self._units: dict[str, ProcessUnit] = {}

    def unit(self, spec: ServiceSpec) -> ProcessUnit:
        known = self._units.get(spec.name)
        if known is None or known.spec != spec:  # a relief instance's spec changes its port
            self._units[spec.name] = ProcessUnit(spec, self)
        return self._units[spec.name]

    def ensure_dirs(self) -> None:
        try:
            private_dir(self.config.state_dir)
            private_dir(self.run_dir)
            private_dir(self.log_dir)
        except OSError as exc:
            raise RuntimeUnavailableError(
                f"state dir {self.config.state_dir} is not usable: {exc.strerror or exc}"
            ) from None

    def preflight(self, plans: list[tuple[ServiceSpec, Launch]]) -> list[str]:
        problems: list[str] = []
        try:
            self.ensure_dirs()
        except RuntimeUnavailableError as exc:
            return [str(exc)]
        free = host.disk_usage(self.config.state_dir).free_bytes
        if free < self.config.min_free_disk:
            problems.append(
                f"state dir {self.config.state_dir}: only {free // 2**20} MiB free, "
                f"x-opskit.min_free_disk asks for {self.config.min_free_disk // 2**20} MiB"
            )
        for spec, launch in plans:
            binary = launch.argv[0]
            if not _resolve_binary(binary, self.environment(spec, launch)):
                problems.append(f"{spec.name}: command {binary!r} not found on PATH")
            for mapping in spec.ports:
                if mapping.protocol != "tcp":
                    continue
                bind = "" if mapping.host_ip in ("", "0.0.0.0") else mapping.host_ip
                if not port_is_free(mapping.published, bind):
                    problems.append(describe_taken_port(mapping.published, spec.name))
        return problems

    def environment(self, spec: ServiceSpec, launch: Launch) -> dict[str, str]:
        """Inherited basics, then the Compose environment, then process-only overrides."""
        env = {
            name: self.config.environ[name]
            for name in INHERITED_VARIABLES
            if name in self.config.environ
        }
        env.update(spec.environment)
        env.update(spec.process.environment)
        env.update(launch.environment)
        return env


class ProcessUnit(Unit):
    def __init__(self, spec: ServiceSpec, runtime: ProcessRuntime):
        super().__init__(spec)
        self.runtime = runtime
        self.pidfile = runtime.run_dir / f"{spec.name}.pid"
        self.exitfile = runtime.run_dir / f"{spec.name}.exit"
        self.startsfile = runtime.run_dir / f"{spec.name}.starts"
        self.lockfile = runtime.run_dir / f"{spec.name}.lock"
        self.logfile = runtime.log_dir / f"{spec.name}.log"
        self._child: subprocess.Popen | None = None
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def _files_locked(self) -> Iterator[None]:
        """The unit's run files (pidfile, exit record, start count) change under one process
        at a time (``flock`` on ``run/NAME.lock``). Any command may find a dead process's
        pidfile and clean it up — ``inv status``, ``health``, the recovery watcher — and none of
        them holds the stack lock to read: without this, a reader could delete the pidfile a
        concurrent start had just written, leaving the new process running untracked (seen
        under ``recover --watch``: the next start failed on the port that orphan held)."""
        fd = os.open(self.lockfile, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    # -- start -------------------------------------------------------------------------------

    def start(self, launch: Launch) -> UnitStatus:
        self.runtime.ensure_dirs()
        rotate_log(self.logfile, self.runtime.config.logs.max_bytes, self.runtime.config.logs.keep)
        env = self.runtime.environment(self.spec, launch)
        cwd = self.spec.process.cwd or self.runtime.config.project_dir
        binary = _resolve_binary(launch.argv[0], env) or launch.argv[0]
        fd = os.open(self.logfile, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            with open(fd, "ab", buffering=0, closefd=True) as log:
                log.write(f"--- opskit: starting {self.name} at {_now_iso()} ---\n".encode())
                child = subprocess.Popen(
                    [binary, *launch.argv[1:]],
                    cwd=cwd,
                    env=env,
                    stdin=subprocess.PIPE if launch.stdin is not None else subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    close_fds=True,
                )
        except OSError as exc:
            raise OpskitError(
                f"{self.name}: cannot run {launch.argv[0]!r} in {cwd}: {exc.strerror or exc}"
            ) from None
        if launch.stdin is not None:
            assert child.stdin is not None
            with contextlib.suppress(BrokenPipeError):
                child.stdin.write(launch.stdin)
            child.stdin.close()
        stat = host.proc_stat(child.pid)
        create_time = stat.create_time if stat else 0.0  # gone: status() says how it ended
        self._child = child
        with self._files_locked():
            with contextlib.suppress(FileNotFoundError):
                self.exitfile.unlink()
            starts = read_json(self.startsfile)
            count = starts.get("starts", 0) if isinstance(starts, dict) else 0
            # Run state, not data: a power loss ends the processes these files describe, so
            # they are written atomically but not fsync'ed (see write_stream_private).
            atomic_write_json(self.startsfile, {"starts": count + 1}, durable=False)
            atomic_write_json(
                self.pidfile,
                {
                    "service": self.name,
                    "pid": child.pid,
                    "create_time": create_time,
                    "argv0": launch.argv[0],
                    "started_at": time.time(),
                },
                durable=False,
            )
        return self.status()

    # -- inspection ------------------------------------------------------------------------

    def status(self) -> UnitStatus:
        with self._lock:
            status = self._status()
        if status.running:
            logs = self.runtime.config.logs
            copytruncate_log(self.logfile, logs.max_bytes, logs.keep)
        return status

    def _status(self) -> UnitStatus:
        record = read_json(self.pidfile)
        if not isinstance(record, dict) or not isinstance(record.get("pid"), int):
            if self.pidfile.exists():  # foreign content: not ours to trust
                with self._files_locked():
                    again = read_json(self.pidfile)
                    if not isinstance(again, dict) or not isinstance(again.get("pid"), int):
                        self.pidfile.unlink(missing_ok=True)
                if again is not None and again != record:
                    return self._status()  # a start wrote it meanwhile
            return self._last_exit()
        pid = record["pid"]
        if self._alive(pid, record.get("create_time", 0.0)):
            starts = read_json(self.startsfile)
            count = starts.get("starts") if isinstance(starts, dict) else None
            return UnitStatus(
                self.name,
                UnitState.RUNNING,
                pid=pid,
                started_at=record.get("started_at"),
                restarts=max(count - 1, 0) if isinstance(count, int) else None,
            )
        # The recorded process is gone (or the pid now belongs to someone else): record how it
        # ended — unless a start has replaced the pidfile since it was read.
        with self._files_locked():
            replaced = read_json(self.pidfile) != record
            if not replaced:
                code = self._reap(pid)
                atomic_write_json(
                    self.exitfile,
                    {
                        "pid": pid,
                        "create_time": record.get("create_time"),
                        "exit_code": code,
                        "seen_at": time.time(),
                    },
                    durable=False,
                )
                self.pidfile.unlink(missing_ok=True)
        if replaced:
            return self._status()
        return self._last_exit()

    def _last_exit(self) -> UnitStatus:
        record = read_json(self.exitfile)
        if isinstance(record, dict):
            code = record.get("exit_code")
            detail = "" if code is not None else "exit code unknown (not opskit's child any more)"
            return UnitStatus(
                self.name, UnitState.EXITED, pid=record.get("pid"), exit_code=code, detail=detail
            )
        return UnitStatus(self.name, UnitState.ABSENT)

    def _alive(self, pid: int, create_time: float) -> bool:
        """The recorded process runs (not a zombie), and its pid was not reused since."""
        return host.is_alive(pid, create_time, _CREATE_TIME_TOLERANCE)

    def wait_stopped(self, timeout: float) -> bool:
        """Sleep on a pidfd of the recorded process, woken by the kernel the moment it exits,
        instead of asking every few milliseconds; without pidfds, poll as every unit does."""
        record = self._record()
        if record is None:
            return not self.status().running
        fd = pidfd(record["pid"])
        if fd is None:
            return super().wait_stopped(timeout)
        try:
            # The pid may have been reused between the record's check and pidfd_open: the fd
            # is only ours if the process still is.
            if self._alive(record["pid"], record.get("create_time", 0.0)):
                wait_exit(fd, timeout)
        finally:
            os.close(fd)
        return not self.status().running

    def _reap(self, pid: int) -> int | None:
        """Exit code of ``pid`` if it was our child (and collect the zombie)."""
        if self._child is not None and self._child.pid == pid:
            code = self._child.poll()
            if code is None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    code = self._child.wait(timeout=0.5)
            return code
        try:
            waited, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return None
        return os.waitstatus_to_exitcode(status) if waited else None

    def _record(self) -> dict | None:
        record = read_json(self.pidfile)
        valid = isinstance(record, dict) and isinstance(record.get("pid"), int)
        if valid and self._alive(record["pid"], record.get("create_time", 0.0)):
            return record
        return None

    # -- control -------------------------------------------------------------------------------

    def send_signal(self, sig: signal.Signals) -> bool:
        record = self._record()
        if record is None:
            return False
        try:
            os.kill(record["pid"], sig)
        except ProcessLookupError:
            return False
        return True

    def kill(self) -> None:
        """SIGKILL every live process of the unit's group that is provably ours."""
        self._kill_group()

    def clear_leftovers(self) -> list[str]:
        """After the leader died (``kill -9`` of nginx's master): its group's survivors.

        They are ours by process group *and* create time (see :func:`_group_members`); a port
        they hold would otherwise make the next start fail preflight naming our own service.
        """
        if self._record() is not None:
            return []  # the leader lives: nothing is left over, the unit runs
        return [
            f"killed pid {pid} ({name}) left over from its previous run"
            for pid, name in self._kill_group()
        ]

    def _kill_group(self) -> list[tuple[int, str]]:
        import psutil

        record = read_json(self.pidfile) or read_json(self.exitfile)
        if not isinstance(record, dict) or not isinstance(record.get("pid"), int):
            return []
        pgid = record["pid"]  # start_new_session makes the leader's pid the group id
        try:
            os.killpg(pgid, 0)  # one syscall, not a walk over every process on the host
        except ProcessLookupError:
            self._reap(pgid)
            return []  # nobody is left in the group
        except PermissionError:
            pass  # a group of another user's: _group_members leaves it alone
        members = _group_members(pgid, record.get("create_time"))
        killed: list[tuple[int, str]] = []
        for process in members:
            with contextlib.suppress(psutil.Error, ProcessLookupError):
                name = process.name()
                process.kill()
                killed.append((process.pid, name))
        self._reap(pgid)
        # SIGKILL is asynchronous: return only once the kernel has taken them down. A zombie
        # counts as gone — its reaping is its parent's (often init's) business, not ours to
        # wait for (that wait was 1.3-2 s per service on every stop).
        poll_until(
            lambda: True if not any(map(_alive_not_zombie, members)) else None, deadline_in(5)
        )
        return killed

    def forget(self) -> None:
        """After a clean stop: no pidfile, no exit record, and the restart count starts over."""
        if not self.runtime.run_dir.is_dir():
            return
        with self._files_locked():
            if self._record() is not None:
                return  # started again meanwhile (it is running): its files are its own
            self.pidfile.unlink(missing_ok=True)
            self.exitfile.unlink(missing_ok=True)
            self.startsfile.unlink(missing_ok=True)

    def exec(self, argv: list[str], timeout: float = 15.0) -> ExecResult:
        """Run ``argv`` in its own process group; on timeout the whole group is killed, so a
        grandchild holding the output pipe cannot keep us waiting past ``timeout``."""
        env = self.runtime.environment(self.spec, Launch(argv=tuple(argv)))
        cwd = self.spec.process.cwd or self.runtime.config.project_dir
        binary = _resolve_binary(argv[0], env)
        if binary is None:
            return ExecResult(None, f"{argv[0]!r} not found on PATH")
        try:
            child = subprocess.Popen(
                [binary, *argv[1:]],
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            return ExecResult(None, f"cannot run {argv[0]!r}: {exc.strerror or exc}")
        try:
            output, _ = child.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)
            child.stdout.close()
            child.wait()
            return ExecResult(None, f"timed out after {timeout:g}s")
        return ExecResult(child.returncode, output.decode("utf-8", errors="replace"))

    @contextlib.contextmanager
    def exec_stream(self, argv: list[str]) -> Iterator[BinaryIO]:
        """Its stdout through a pipe as it comes; its process group is killed when the caller
        is done (a ``tail -F`` never ends by itself)."""
        env = self.runtime.environment(self.spec, Launch(argv=tuple(argv)))
        binary = _resolve_binary(argv[0], env)
        if binary is None:
            raise OpskitError(f"{self.name}: {argv[0]!r} not found on PATH")
        child = subprocess.Popen(
            [binary, *argv[1:]],
            cwd=self.spec.process.cwd or self.runtime.config.project_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        assert child.stdout is not None
        try:
            yield child.stdout
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)
            child.stdout.close()
            child.wait()

    def logs(
        self, since: float | None = None, until: float | None = None, follow: bool = False
    ) -> Iterator[LogLine]:
        """The service's log file and its rotations, oldest first.

        A process writes no timestamp per line, so ``since`` selects whole files by their
        modification time (a file last written before ``since`` holds nothing newer) and
        ``until`` cannot cut inside a file; it is accepted for the interface's sake.
        """
        for path in log_files(self.logfile, since):
            with contextlib.suppress(FileNotFoundError), path.open("rb") as handle:
                for raw in handle:
                    yield LogLine(self.name, raw.decode("utf-8", errors="replace").rstrip("\n"))
        if follow:
            for text in follow_lines(self.logfile):
                yield LogLine(self.name, text, time.time())

    def read_output(
        self, cursor: OutputCursor | None, limit: int = 16 << 20
    ) -> tuple[list[str], OutputCursor]:
        """By file offset in ``logs/<svc>.log``. The cursor names a file by its inode: after a
        rotation — renamed at a restart, or copied to ``.1`` and truncated while it runs — the
        unread rest is read from the rotated file first, over as many calls as ``limit`` needs,
        then the live file from its start. Only whole lines are taken."""
        try:
            now = self.logfile.stat()
        except FileNotFoundError:
            return [], cursor or OutputCursor()
        newest = self._inode(1)
        if cursor is None:
            return [], OutputCursor(now.st_ino, now.st_size, rotation=newest)
        truncated = cursor.inode == now.st_ino and (
            now.st_size < cursor.offset or newest != cursor.rotation  # copied and truncated
        )
        if cursor.inode == now.st_ino and not truncated:
            return self._read_lines(self.logfile, now.st_ino, cursor.offset, limit, newest)
        rotated = 1 if truncated else self._index_of(cursor.inode)
        if rotated is None:  # gone (rotated past keep): what it held is lost; go on
            return self._read_lines(self.logfile, now.st_ino, 0, limit, newest)
        path = self.logfile.with_name(f"{self.logfile.name}.{rotated}")
        lines, after = self._read_lines(path, path.stat().st_ino, cursor.offset, limit, newest)
        if after.offset < path.stat().st_size:
            return lines, after  # more of the rotated file next time
        used = after.offset - cursor.offset
        more, after = self._read_lines(self.logfile, now.st_ino, 0, limit - used, newest)
        return lines + more, after

    def _inode(self, index: int) -> int:
        with contextlib.suppress(FileNotFoundError):
            return self.logfile.with_name(f"{self.logfile.name}.{index}").stat().st_ino
        return 0

    def _index_of(self, inode: int) -> int | None:
        """Which rotated file (``.1`` … ``.keep``) is the one with ``inode`` (renamed)."""
        for index in range(1, self.runtime.config.logs.keep + 1):
            if self._inode(index) == inode:
                return index
        return None

    @staticmethod
    def _read_lines(
        path: Path, inode: int, offset: int, limit: int, rotation: int
    ) -> tuple[list[str], OutputCursor]:
        data = _read_from(path, offset, max(0, limit))
        cut = data.rfind(b"\n") + 1
        text = data[:cut].decode("utf-8", errors="replace")
        return text.splitlines(), OutputCursor(inode, offset + cut, rotation=rotation)

    @contextlib.contextmanager
    def open_file(self, path: str) -> Iterator[BinaryIO]:
        """The service runs on this host: its paths are host paths."""
        host_path = self._host_path(path)
        if host_path.is_symlink() or not host_path.is_file():
            raise OpskitError(f"{self.name}: {host_path} is not a regular file")
        with host_path.open("rb") as data:
            yield data

    def write_file(self, path: str, data: BinaryIO, size: int) -> None:
        target = self._host_path(path)
        private_dir(target.parent)
        write_stream_private(_Limited(data, size), target)

    def _host_path(self, path: str) -> Path:
        candidate = Path(path)
        if candidate.is_absolute():
            return candidate
        return (self.spec.process.cwd or self.runtime.config.project_dir) / candidate

    # -- logs and addresses ----------------------------------------------------------------------

    def stats(self) -> UnitStats | None:
        record = self._record()
        return host.process_tree_stats(record["pid"]) if record else None

    def log_tail(self, lines: int = 20) -> list[str]:
        return tail_lines(self.logfile, lines)

    def processes(self) -> list[UnitProcess]:
        record = self._record()
        if not record:
            return []
        return [UnitProcess(*row) for row in host.process_table(record["pid"])]

    def host_file(self, path: str) -> HostFile | None:
        return HostFile(Path(path))  # a process reads host paths

    def host_pid(self) -> int | None:
        status = self.status()
        return status.pid if status.running else None

    def environment(self) -> dict[str, str]:
        return {**self.spec.environment, **self.spec.process.environment}

    @contextlib.contextmanager
    def scratch(self, files: Mapping[str, bytes], dirs: Iterable[str] = ()) -> Iterator[str]:
        """A 0700 temp folder on this host (the process reads host paths)."""
        with tempfile.TemporaryDirectory(prefix="opskit-scratch-") as folder:
            for name in dirs:
                private_dir(Path(folder) / name)
            for name, data in files.items():
                target = Path(folder) / name
                private_dir(target.parent)
                atomic_write(target, data, durable=False)
            yield folder

    def file_lines(self, path: str, since: float | None = None) -> Iterator[str]:
        """Every rotation (``path.N`` …, oldest first), then ``path``, read from the host."""
        for name in log_files(self._host_path(path), since):
            with contextlib.suppress(OSError), name.open("rb") as handle:
                for raw in handle:
                    yield raw.decode("utf-8", errors="replace").rstrip("\n")

    def follow_file(self, path: str) -> Iterator[str]:
        return follow_lines(self._host_path(path))

    def time_zone(self) -> str | None:
        """What the process is started with: the stack's TZ (``.env``) is inherited."""
        return self.runtime.environment(self.spec, Launch(argv=())).get("TZ")

    def address(self, container_port: int) -> tuple[str, int]:
        mapping = self.spec.port(container_port) or self.spec.port()
        if mapping is None:
            return ("127.0.0.1", container_port)
        host = mapping.host_ip if mapping.host_ip not in ("", "0.0.0.0") else "127.0.0.1"
        return (host, mapping.published)


def _alive_not_zombie(process) -> bool:
    import psutil

    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _group_members(pgid: int, leader_create_time: float | None) -> list:
    """Processes in group ``pgid`` that belong to our run, never to a reused pid.

    Linux does not hand out a pid while it is still in use as a process-group id, so while any
    member of our group lives the group id is ours. The one case to rule out: our leader died,
    its group emptied, and a new process got the same pid — then that pid has a later
    create-time than the one we recorded, and we leave it alone.
    """
    import psutil

    members = []
    for pid in _GROUPS.members(pgid):
        try:
            process = psutil.Process(pid)
            with process.oneshot():
                created = process.create_time()
                if leader_create_time is not None:
                    drift = created - leader_create_time
                    if process.pid == pgid and abs(drift) > _CREATE_TIME_TOLERANCE:
                        return []  # the pid was reused: this group is not ours
                    if drift < -_CREATE_TIME_TOLERANCE:
                        continue  # older than our leader: cannot be of our run
                if process.status() == psutil.STATUS_ZOMBIE:
                    continue  # already dead; nothing to kill or to wait for
            members.append(process)
        except (ProcessLookupError, psutil.Error):
            continue
    return members


class _ProcessGroups:
    """Which pids are in which process group: one walk of /proc shared by concurrent callers.

    Stopping 500 services, each walking every process on the host for its leftovers, cost
    services × processes. A walk that *began* after a caller asked answers that caller as well
    as its own walk would, so callers that arrive while a walk runs wait for the next one and
    share it: a wave of stops costs a couple of walks. Each walk is ``getpgid`` over /proc's
    listing — a syscall per pid, no file read."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._walked_at = float("-inf")
        self._groups: dict[int, list[int]] = {}

    def members(self, pgid: int) -> list[int]:
        asked = time.monotonic()
        with self._lock:
            if self._walked_at < asked:
                self._walked_at = time.monotonic()
                self._groups = _walk_groups()
            return list(self._groups.get(pgid, ()))


def _walk_groups() -> dict[int, list[int]]:
    groups: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                groups.setdefault(os.getpgid(int(entry)), []).append(int(entry))
    return groups


_GROUPS = _ProcessGroups()


def _read_from(path: Path, offset: int, limit: int) -> bytes:
    """Up to ``limit`` bytes of ``path`` from ``offset`` (nothing when it is gone or shorter)."""
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            return handle.read(limit)
    except FileNotFoundError:
        return b""


def rotate_log(path: Path, max_bytes: int, keep: int) -> None:
    """Rotate ``path`` to ``path.1`` … ``path.<keep>`` when it is larger than ``max_bytes``.

    Called before a (re)start, when no process holds the file, so renaming is safe.
    """
    try:
        if path.stat().st_size <= max_bytes:
            return
    except FileNotFoundError:
        return
    for index in range(keep, 0, -1):
        older = path.with_name(f"{path.name}.{index}")
        if index == keep:
            older.unlink(missing_ok=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                older.rename(path.with_name(f"{path.name}.{index + 1}"))
    path.rename(path.with_name(f"{path.name}.1"))


def copytruncate_log(path: Path, max_bytes: int, keep: int) -> bool:
    """Rotate a log that a running process still writes (opened with O_APPEND).

    The content is copied to ``.1`` and the file truncated in place, as logrotate's
    ``copytruncate`` does; the writer's next append lands at the new end.
    """
    try:
        if path.stat().st_size <= max_bytes:
            return False
    except FileNotFoundError:
        return False
    for index in range(keep, 1, -1):
        with contextlib.suppress(FileNotFoundError):
            path.with_name(f"{path.name}.{index - 1}").rename(
                path.with_name(f"{path.name}.{index}")
            )
    shutil.copyfile(path, path.with_name(f"{path.name}.1"))
    os.truncate(path, 0)
    return True


def _resolve_binary(binary: str, env: dict[str, str]) -> str | None:
    if os.sep in binary:
        return binary if os.access(binary, os.X_OK) else None
    return shutil.which(binary, path=env.get("PATH"))


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


class _Limited:
    """At most ``size`` bytes of ``data``; fewer is an error (a truncated source)."""

    def __init__(self, data: BinaryIO, size: int):
        self.data, self.left = data, size

    def read(self, count: int = -1) -> bytes:
        if self.left <= 0:
            if self.data.read(1):  # also lets a checking reader run its end-of-stream checks
                raise OpskitError("source is longer than its stated size")
            return b""
        chunk = self.data.read(self.left if count < 0 else min(count, self.left))
        if not chunk:
            raise OpskitError(f"source ended {self.left} bytes early")
        self.left -= len(chunk)
        return chunk
