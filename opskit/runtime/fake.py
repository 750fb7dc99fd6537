"""A runtime in memory: units that start, stop, exec and hold files with no process or
container behind them — what httpx's ``MockTransport`` is to HTTP.

Each unit plays a :class:`FakeService`: the script of what its software does — the lines it
prints at start, the signals that make it exit, what ``exec`` answers, what a signal does to
its process list. A role test drives real role code on it (nginx's reload verification, Kong's
``kong config parse`` call) without the binary, in milliseconds. ``tests/contract`` holds the
fake to the same Unit contract as the process, docker and swarm runtimes, so what a role test
proves on it holds there too.

Choose it with ``x-opskit.runtime: fake`` (or ``OPSKIT_RUNTIME=fake``) and script a service
with ``stack.runtime.play(name, FakeService(...))`` before the unit is first used. It runs
nothing: an operator's stack never uses it.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, BinaryIO

from opskit.errors import OpskitError
from opskit.runtime.base import (
    ExecResult,
    Launch,
    LogLine,
    Runtime,
    Unit,
    UnitProcess,
    UnitStats,
    UnitStatus,
)
from opskit.vocabulary import UnitState

if TYPE_CHECKING:
    from opskit.config import ServiceSpec, StackConfig

#: What an ``exec`` of one program does in a fake unit: argv in, result out.
Command = Callable[["FakeUnit", list[str]], ExecResult]

_PIDS = itertools.count(1000)


@dataclass
class FakeService:
    """What the software in a fake unit does.

    ``output``: lines it prints when it starts. ``exits_on``: signals that end it (exit code
    0); others are handed to ``on_signal`` (a HUP that replaces workers, say) or ignored.
    ``workers``: processes under the main one; the titles are what ``ps`` would show.
    ``commands``: programs ``exec`` can run
    (argv[0] → what it does), on top of the few shell basics every unit has (echo, cat, true,
    false, sleep, mkdir, rm)."""

    output: tuple[str, ...] = ()
    exits_on: frozenset[signal.Signals] = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGQUIT})
    workers: int = 0
    main_title: str = "fake: main process"
    worker_title: str = "fake: worker process"
    on_signal: Callable[[FakeUnit, signal.Signals], None] | None = None
    commands: dict[str, Command] = field(default_factory=dict)


class FakeRuntime(Runtime):
    """Fake units, one per service name for the life of the runtime (a role and the stack
    ask for the same unit and see the same state)."""

    name = "fake"

    def __init__(self, config: StackConfig):
        self.config = config
        self._services: dict[str, FakeService] = {}
        self._units: dict[str, FakeUnit] = {}

    def play(self, service: str, script: FakeService) -> None:
        """Make ``service``'s unit run ``script`` (from its next start)."""
        self._services[service] = script
        if service in self._units:
            self._units[service].script = script

    def unit(self, spec: ServiceSpec) -> FakeUnit:
        if spec.name not in self._units:
            script = self._services.get(spec.name, FakeService())
            self._units[spec.name] = FakeUnit(spec, script)
        return self._units[spec.name]

    def preflight(self, plans: list[tuple[ServiceSpec, Launch]]) -> list[str]:
        return []


class FakeUnit(Unit):
    """A unit whose "processes" are rows in a table and whose files are bytes in a dict.

    It behaves as a process started from the role's launch (``follows_launch``): exec works
    whether it runs or not, and nothing else brings it back after it dies."""

    follows_launch = True

    def __init__(self, spec: ServiceSpec, script: FakeService):
        super().__init__(spec)
        self.script = script
        self.launched: Launch | None = None
        self.files: dict[str, bytes] = {}
        self.dirs: set[str] = {"/", "/tmp"}
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._state = UnitState.ABSENT
        self._pid: int | None = None
        self._started: float | None = None
        self._exit: int | None = None
        self._table: list[UnitProcess] = []
        self._log: list[LogLine] = []

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self, launch: Launch) -> UnitStatus:
        with self._lock:
            if self._state is not UnitState.RUNNING:
                self.launched = launch
                self._pid, self._started, self._exit = next(_PIDS), time.time(), None
                self._state = UnitState.RUNNING
                master = UnitProcess(self._pid, 1, self.script.main_title)
                self._table = [master, *self._new_workers(self.script.workers)]
                for text in self.script.output:
                    self._print(text)
        return self.status()

    def status(self) -> UnitStatus:
        with self._lock:
            running = self._state is UnitState.RUNNING
            return UnitStatus(
                self.name,
                self._state,
                pid=self._pid if running else None,
                started_at=self._started if running else None,
                exit_code=None if running else self._exit,
            )

    def send_signal(self, sig: signal.Signals) -> bool:
        with self._lock:
            if self._state is not UnitState.RUNNING:
                return False
            if sig in self.script.exits_on:
                self._end(0)
                return True
        if self.script.on_signal is not None:
            self.script.on_signal(self, sig)
        return True

    def kill(self) -> None:
        with self._lock:
            if self._state is UnitState.RUNNING:
                self._end(128 + signal.SIGKILL)

    def wait_stopped(self, timeout: float) -> bool:
        with self._changed:
            return self._changed.wait_for(
                lambda: self._state is not UnitState.RUNNING, timeout=max(timeout, 0)
            )

    def forget(self) -> None:
        with self._lock:
            if self._state is not UnitState.RUNNING:
                self._state, self._exit = UnitState.ABSENT, None

    def _end(self, code: int) -> None:
        """The software exits (the lock is held)."""
        self._state, self._exit, self._table = UnitState.EXITED, code, []
        self._changed.notify_all()

    # -- what a script does ------------------------------------------------------------------------

    def replace_workers(self) -> None:
        """New worker processes under the same main one (what nginx does at HUP)."""
        with self._lock:
            if self._table:
                count = len(self._table) - 1
                self._table = [self._table[0], *self._new_workers(count)]

    def print(self, text: str) -> None:
        """A line of output, as the software would write it."""
        with self._lock:
            self._print(text)

    def _print(self, text: str) -> None:
        self._log.append(LogLine(self.name, text, time.time()))
        self._changed.notify_all()

    def _new_workers(self, count: int) -> list[UnitProcess]:
        title = self.script.worker_title
        return [UnitProcess(next(_PIDS), self._pid or 0, title) for _ in range(count)]

    # -- exec and files --------------------------------------------------------------------------

    def exec(self, argv: list[str], timeout: float = 15.0) -> ExecResult:
        if not argv:
            return ExecResult(None, "nothing to run")
        program = self.script.commands.get(argv[0]) or _BASICS.get(argv[0])
        if program is None:
            return ExecResult(127, f"fake: {argv[0]}: not found")
        if argv[0] == "sleep" and float(argv[1]) > timeout:
            time.sleep(timeout)
            return ExecResult(None, f"timed out after {timeout:g}s")
        return program(self, argv)

    @contextlib.contextmanager
    def open_file(self, path: str) -> Iterator[BinaryIO]:
        with self._lock:
            data = self.files.get(path)
        if data is None:
            raise OpskitError(f"{self.name}: {path} is not a regular file")
        yield io.BytesIO(data)

    def write_file(self, path: str, data: BinaryIO, size: int) -> None:
        parent = str(PurePosixPath(path).parent)
        body = data.read(size)
        if len(body) != size:
            short = size - len(body)
            raise OpskitError(f"{self.name}: source for {path} ended {short} bytes early")
        if data.read(1):
            raise OpskitError(f"{self.name}: source for {path} is longer than {size} bytes")
        with self._lock:
            if parent not in self.dirs:
                raise OpskitError(f"{self.name}: cannot copy into {path}: no folder {parent}")
            self.files[path] = body

    def follow_file(self, path: str) -> Iterator[str]:
        """New lines of a file in its table as they are written (a shorter file is read
        again from its start, as ``tail -F`` does after a truncation)."""
        seen = len(self.files.get(path, b""))
        pending = b""
        while True:
            data = self.files.get(path, b"")
            if len(data) < seen:
                seen = 0
            if len(data) > seen:
                pending += data[seen:]
                seen = len(data)
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    yield line.decode("utf-8", errors="replace")
            else:
                time.sleep(0.02)

    # -- observation -----------------------------------------------------------------------------

    def logs(
        self, since: float | None = None, until: float | None = None, follow: bool = False
    ) -> Iterator[LogLine]:
        seen = 0
        while True:
            with self._changed:
                if follow and seen == len(self._log):
                    self._changed.wait(0.1)
                fresh, seen = self._log[seen:], len(self._log)
            for line in fresh:
                stamp = line.timestamp or 0.0
                if (since is None or stamp >= since) and (until is None or stamp <= until):
                    yield line
            if not follow:
                return

    def processes(self) -> list[UnitProcess]:
        with self._lock:
            return list(self._table)

    def stats(self) -> UnitStats | None:
        with self._lock:
            running = self._state is UnitState.RUNNING
            return UnitStats(rss_bytes=len(self._table) << 20, cpu_percent=0.0) if running else None

    def environment(self) -> dict[str, str]:
        return {**self.spec.environment, **self.spec.process.environment}

    def address(self, container_port: int) -> tuple[str, int]:
        mapping = self.spec.port(container_port) or self.spec.port()
        return ("127.0.0.1", mapping.published if mapping else container_port)


# -- the shell basics every fake unit has --------------------------------------------------------


def _echo(unit: FakeUnit, argv: list[str]) -> ExecResult:
    return ExecResult(0, " ".join(argv[1:]) + "\n")


def _cat(unit: FakeUnit, argv: list[str]) -> ExecResult:
    chunks = []
    for path in argv[1:]:
        data = unit.files.get(path)
        if data is None:
            return ExecResult(1, f"cat: {path}: No such file or directory\n")
        chunks.append(data.decode("utf-8", errors="replace"))
    return ExecResult(0, "".join(chunks))


def _sleep(unit: FakeUnit, argv: list[str]) -> ExecResult:
    time.sleep(float(argv[1]))
    return ExecResult(0, "")


def _operands(argv: list[str], with_value: tuple[str, ...] = ()) -> list[str]:
    """The operands of a command line: its options (and the values of ``with_value`` ones,
    like mkdir's ``-m MODE``) left out."""
    operands, skip = [], False
    for arg in argv[1:]:
        if skip:
            skip = False
        elif arg in with_value:
            skip = True
        elif not arg.startswith("-"):
            operands.append(arg)
    return operands


def _mkdir(unit: FakeUnit, argv: list[str]) -> ExecResult:
    paths = _operands(argv, with_value=("-m",))
    with unit._lock:
        for path in paths:
            pure = PurePosixPath(path)
            unit.dirs.update(str(p) for p in (pure, *pure.parents))
    return ExecResult(0, "")


def _rm(unit: FakeUnit, argv: list[str]) -> ExecResult:
    paths = _operands(argv)
    with unit._lock:
        for path in paths:
            inside = f"{path.rstrip('/')}/"
            unit.files = {
                name: data
                for name, data in unit.files.items()
                if name != path and not name.startswith(inside)
            }
            unit.dirs = {name for name in unit.dirs if name != path and not name.startswith(inside)}
    return ExecResult(0, "")


_BASICS: dict[str, Command] = {
    "echo": _echo,
    "cat": _cat,
    "true": lambda unit, argv: ExecResult(0, ""),
    "false": lambda unit, argv: ExecResult(1, ""),
    "sleep": _sleep,
    "mkdir": _mkdir,
    "rm": _rm,
}
