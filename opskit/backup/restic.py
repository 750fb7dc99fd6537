"""restic, run for one repository: the one place opskit starts it and reads what it says.

Every secret reaches restic through its environment, never its argv: the repository URL
(``RESTIC_REPOSITORY``, which may hold a REST server's user and password) and the password
(``RESTIC_PASSWORD``). The operator's own ``RESTIC_*`` variables are not passed on, so a
shell that exported another repository's password cannot redirect a copy.

Each run is bounded: restic retries an unreachable REST or S3 server for up to fifteen
minutes, so a run that outlives its ``timeout`` is stopped — its whole process group, ssh
included — and reported as one line. restic writes a snapshot only when a backup has
finished, so a run that is stopped or killed leaves no snapshot behind, only unreferenced
data that the next ``prune`` removes.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opskit.errors import OpskitError

RESTIC = "restic"
#: How long a run that overstayed its timeout is given to end after SIGTERM.
_TERM_GRACE = 3.0


class ResticError(OpskitError):
    """restic did not do what was asked; the message is one line, without secrets."""


class Incomplete(ResticError):
    """restic ended with exit status 3: it could not read every file it was given."""

    def __init__(self, message: str, output: str):
        super().__init__(message)
        self.output = output


class NoRepository(ResticError):
    """Nothing is at the repository's location yet (``restic init`` would create it)."""


@dataclass(frozen=True)
class Snapshot:
    """One backup folder stored in a repository."""

    id: str
    backup_id: str
    time: str
    paths: tuple[str, ...]

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Snapshot | None:
        tags = raw.get("tags") or []
        backup_id = next((t[len(ID_TAG) :] for t in tags if t.startswith(ID_TAG)), None)
        if backup_id is None or not isinstance(raw.get("id"), str):
            return None
        return cls(raw["id"], backup_id, str(raw.get("time", "")), tuple(raw.get("paths") or ()))


#: Tags of every snapshot opskit writes: ``opskit`` and ``opskit-id:<backup id>``.
TAG = "opskit"
ID_TAG = "opskit-id:"


class Restic:
    """restic for one repository. ``label`` names it in every message (``copy offsite``);
    ``redact`` removes the repository's secrets from anything restic says."""

    def __init__(
        self,
        label: str,
        repository: str,
        password: str,
        *,
        cache_dir: Path,
        options: Sequence[tuple[str, str]] = (),
        environment: dict[str, str] | None = None,
        redact: Callable[[str], str] = lambda text: text,
        stop: threading.Event | None = None,
    ):
        self.label = label
        self.redact = redact
        self.stop = stop
        self._argv_options = [arg for key, value in options for arg in ("-o", f"{key}={value}")]
        env = {k: v for k, v in os.environ.items() if not k.startswith("RESTIC_")}
        env.update(environment or {})
        env.update(
            RESTIC_REPOSITORY=repository,
            RESTIC_PASSWORD=password,
            RESTIC_CACHE_DIR=str(cache_dir),
        )
        self._env = env

    # -- what opskit asks --------------------------------------------------------------------

    def open(self, host: str, timeout: float) -> tuple[list[Snapshot], bool]:
        """The stack's snapshots, initializing the repository when nothing is there yet; and
        whether it was created now. One restic run proves the server answers, the password
        opens it and says what it holds (each run derives the key anew: a third of a second)."""
        try:
            return self.snapshots(host, timeout), False
        except NoRepository:
            self.run(["init"], timeout)
            return [], True

    def backup(self, root: Path, backup_id: str, host: str, timeout: float) -> dict[str, Any]:
        """Store the folder ``root/backup_id`` as one snapshot; restic's summary."""
        argv = ["backup", "--json", "--host", host, "--tag", TAG, "--tag", ID_TAG + backup_id]
        try:
            output = self.run([*argv, backup_id], timeout, cwd=root)
        except Incomplete as exc:  # restic saved a snapshot without some file: not a copy
            summary = _last_json(exc.output, "summary") or {}
            if summary.get("snapshot_id"):
                self.run(["forget", str(summary["snapshot_id"])], timeout)
            raise
        summary = _last_json(output, "summary")
        if summary is None:
            raise ResticError(f"{self.label}: restic backup printed no summary")
        return summary

    def snapshots(self, host: str, timeout: float) -> list[Snapshot]:
        """opskit's snapshots for the stack ``host``, oldest first."""
        output = self.run(["snapshots", "--json", "--host", host, "--tag", TAG], timeout)
        try:
            raw = json.loads(output or "[]")
        except ValueError:
            raise ResticError(f"{self.label}: restic snapshots printed no JSON") from None
        found = [Snapshot.from_json(item) for item in raw if isinstance(item, dict)]
        return sorted((s for s in found if s), key=lambda s: (s.time, s.backup_id))

    def restore(self, snapshot: Snapshot, target: Path, timeout: float) -> None:
        """Restore ``snapshot`` into ``target``: its folder comes back as ``target/<id>``."""
        self.run(["restore", snapshot.id, "--target", str(target)], timeout)

    def forget(self, snapshots: Sequence[Snapshot], timeout: float) -> None:
        """Forget ``snapshots`` and prune the data only they held (stale locks of dead
        restic processes on this host are removed first: ``prune`` needs the exclusive one)."""
        if not snapshots:
            return
        self.run(["unlock"], timeout)
        self.run(["forget", "--prune", *[s.id for s in snapshots]], timeout)

    def check(self, subset: str, timeout: float) -> None:
        """restic's own check of the repository, re-reading ``subset`` of its data (stale
        locks of dead restic processes on this host removed first: it needs the exclusive one)."""
        self.run(["unlock"], timeout)
        self.run(["check", "--read-data-subset", subset], timeout)

    # -- running -----------------------------------------------------------------------------

    def run(
        self,
        args: Sequence[str],
        timeout: float,
        *,
        cwd: Path | None = None,
    ) -> str:
        """restic ``args``; its stdout. A failure, a timeout or a stop is a ResticError."""
        argv = [RESTIC, "-q", *self._argv_options, *args]
        try:
            process = subprocess.Popen(
                argv,
                cwd=cwd,
                env=self._env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                start_new_session=True,  # its ssh too: the whole group is stopped at timeout
                preexec_fn=_die_with_parent,
            )
        except FileNotFoundError:
            raise ResticError(
                f"{self.label}: restic is not installed (Debian/Ubuntu: apt install restic)"
            ) from None
        out, err, stopped = self._wait(process, timeout)
        if stopped:
            raise ResticError(f"{self.label}: restic {args[0]} {stopped}")
        if process.returncode == 0:
            return out
        if process.returncode == 3:
            raise Incomplete(
                f"{self.label}: restic {args[0]} could not read every file (exit 3)", out
            )
        raise self._failure(args[0], process.returncode, err)

    def _wait(self, process: subprocess.Popen, timeout: float) -> tuple[str, str, str | None]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                out, err = process.communicate(timeout=0.2)
                return out, err, None
            except subprocess.TimeoutExpired:
                if self.stop is not None and self.stop.is_set():
                    why = "interrupted"
                elif time.monotonic() >= deadline:
                    why = f"gave no answer within {timeout:g}s (stopped; is the server reachable?)"
                else:
                    continue
            _stop_group(process)
            out, err = process.communicate()
            return out, err, why

    def _failure(self, command: str, code: int, stderr: str) -> ResticError:
        text = self.redact(stderr)
        if "wrong password or no key found" in text:
            return ResticError(f"{self.label}: wrong password: the repository does not open")
        lowered = text.lower()
        if "unable to open config file" in lowered and any(absent in lowered for absent in _ABSENT):
            return NoRepository(f"{self.label}: no restic repository there yet")
        if "unable to open config file" in lowered:  # restic could not ask: the server is away
            cause = next((line for line in text.splitlines() if "config file" in line), text)
            return ResticError(
                f"{self.label}: the repository does not answer: "
                f"{cause.strip().removeprefix('Fatal: ')[:300]}"
            )
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        fatal = [line for line in lines if line.startswith("Fatal:")]
        reason = (fatal or lines or [f"exit status {code}"])[-1].removeprefix("Fatal: ")
        return ResticError(f"{self.label}: restic {command} failed: {reason[:300]}")


def _die_with_parent() -> None:
    """In the child, before restic starts: SIGTERM when opskit's thread that started it dies
    (``kill -9`` of ``inv backup.copy`` must not leave restic uploading on its own). The
    thread waits for its child, so it never ends first otherwise."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


_PR_SET_PDEATHSIG = 1


#: How each backend says that nothing is there (a path, sftp, rest, s3): only then is a
#: repository created — never because a server did not answer.
_ABSENT = ("no such file or directory", "does not exist", "not found", "404", "nosuchkey")


def _stop_group(process: subprocess.Popen) -> None:
    """SIGTERM restic's process group (restic and the ssh it started), SIGKILL if it stays."""
    for sig, grace in ((signal.SIGTERM, _TERM_GRACE), (signal.SIGKILL, None)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        if grace is None:
            return
        try:
            process.wait(grace)
            return
        except subprocess.TimeoutExpired:
            continue


def _last_json(output: str, message_type: str) -> dict[str, Any] | None:
    for line in reversed(output.splitlines()):
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if isinstance(item, dict) and item.get("message_type") == message_type:
            return item
    return None
