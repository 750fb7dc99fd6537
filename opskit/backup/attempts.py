"""The last backup attempt, failed or not: what ``inv metrics`` and the alert rules read.

A failed backup keeps nothing in the backups folder, so the folder alone cannot say that last
night's run failed; ``<state_dir>/backup-last.json`` does (atomic write, under the stack lock
the backup holds). It records no secret: an id, a size, a time and a one-line reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from opskit.files import read_record, write_record

FILE = "backup-last.json"


@dataclass(frozen=True)
class BackupAttempt:
    at: float  # epoch seconds when it ended
    ok: bool
    backup_id: str | None = None
    size: int = 0  # bytes stored (zstd), 0 when it failed
    seconds: float = 0.0
    detail: str = ""


def record_attempt(state_dir: Path, attempt: BackupAttempt) -> None:
    write_record(state_dir / FILE, attempt)


def last_attempt(state_dir: Path) -> BackupAttempt | None:
    return read_record(state_dir / FILE, BackupAttempt)
