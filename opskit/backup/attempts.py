"""The last backup attempt, failed or not: what ``inv metrics`` and the alert rules read.

A failed backup keeps nothing in the backups folder, so the folder alone cannot say that last
night's run failed; ``<state_dir>/backup-last.json`` does (atomic write, under the stack lock
the backup holds). It records no secret: an id, a size, a time and a one-line reason.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from opskit.files import atomic_write_json, private_dir, read_json

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
    private_dir(state_dir)
    atomic_write_json(state_dir / FILE, asdict(attempt))


def last_attempt(state_dir: Path) -> BackupAttempt | None:
    raw = read_json(state_dir / FILE)
    if not isinstance(raw, dict):
        return None
    try:
        return BackupAttempt(**raw)
    except TypeError:
        return None  # written by another version
