"""``restore.json``: where a restore got to, so a restore killed half-way is found and finished.

A restore stops Redis, swaps its RDB, starts it, then loads Kong's and nginx's parts. Killed in
between (``kill -9``, a crash, a reboot), the stack is neither as before nor restored, and
nothing else would say so: Redis stays down, or comes up with the new data while Kong and nginx
keep the old. So each step is written here first (atomically: temp file, fsync, rename), and
removed when the restore ends either way. A journal whose process is gone is an *interrupted*
restore: ``status``, ``health``, ``recover`` and the next ``restore`` say so in one line with
the two ways out — ``inv restore --resume`` (finish it) and ``inv restore --abort`` (put the
safety backup back) — and ``recover`` restarts nothing until one of them has run.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from opskit.files import atomic_write_json, pid_alive, private_dir, read_json

JOURNAL = "restore.json"


@dataclass
class RestoreJournal:
    backup_id: str
    services: list[str]
    pid: int = field(default_factory=os.getpid)
    started_at: float = field(default_factory=time.time)
    safety_backup: str | None = None  # None: nothing was changed yet
    step: str = "validating"
    done: list[str] = field(default_factory=list)

    @property
    def changed_anything(self) -> bool:
        return self.safety_backup is not None and self.step != "safety backup"

    def describe(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(self.started_at))
        done = f"; done: {', '.join(self.done)}" if self.done else ""
        head = (
            f"a restore of backup {self.backup_id} ({', '.join(self.services)}; started {when}, "
            f"pid {self.pid}) was interrupted at: {self.step}{done}"
        )
        if self.safety_backup is None:  # killed before its safety backup was complete
            return (
                f"{head}, before anything was changed: inv restore --resume runs it again; "
                "inv restore --abort forgets it"
            )
        return (
            f"{head}. Safety backup {self.safety_backup}: inv restore --resume finishes it; "
            "inv restore --abort puts the safety backup back"
        )


class JournalFile:
    """The journal of one stack, in its state dir; thread-safe (a restore's services are put
    back concurrently where the graph allows)."""

    def __init__(self, state_dir: Path):
        self.path = state_dir / JOURNAL
        self._lock = threading.Lock()

    def begin(self, journal: RestoreJournal) -> RestoreJournal:
        self.write(journal)
        return journal

    def write(self, journal: RestoreJournal) -> None:
        with self._lock:
            private_dir(self.path.parent)
            atomic_write_json(self.path, asdict(journal))

    def step(self, journal: RestoreJournal, step: str, done: str | None = None) -> None:
        with self._lock:
            journal.step = step
            if done is not None and done not in journal.done:
                journal.done.append(done)
            private_dir(self.path.parent)
            atomic_write_json(self.path, asdict(journal))

    def read(self) -> RestoreJournal | None:
        record = read_json(self.path)
        if not isinstance(record, dict):
            return None
        try:
            return RestoreJournal(
                backup_id=str(record["backup_id"]),
                services=[str(s) for s in record["services"]],
                pid=int(record["pid"]),
                started_at=float(record["started_at"]),
                safety_backup=record.get("safety_backup"),
                step=str(record.get("step", "")),
                done=[str(s) for s in record.get("done", [])],
            )
        except (KeyError, TypeError, ValueError):
            return None

    def interrupted(self) -> RestoreJournal | None:
        """The journal of a restore whose process is gone (killed); None otherwise."""
        journal = self.read()
        if journal is None or _still_running(journal):
            return None
        return journal

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


def _still_running(journal: RestoreJournal) -> bool:
    """Its process exists and is the one that began it (not a later one given its pid)."""
    if not pid_alive(journal.pid):
        return False
    import psutil

    try:
        return psutil.Process(journal.pid).create_time() <= journal.started_at + 1.0
    except psutil.Error:
        return False


__all__ = ["JOURNAL", "JournalFile", "RestoreJournal"]
