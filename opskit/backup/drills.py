"""The last restore drill, passed or not: what ``inv metrics`` and the alert rules read.

``<state_dir>/backup-drill.json`` (atomic write) records when the last drill ended, whether it
passed, which backup it restored and what it measured. No secret: an id, counts, a time and a
one-line reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from opskit.files import read_record, write_record

FILE = "backup-drill.json"


@dataclass(frozen=True)
class DrillRecord:
    at: float  # epoch seconds when it ended
    ok: bool
    backup_id: str | None = None
    seconds: float = 0.0
    keys: int | None = None  # what the throwaway Redis held
    detail: str = ""
    last_success: float | None = None  # when a drill last passed, this one or an earlier one


def record_drill(state_dir: Path, record: DrillRecord) -> None:
    write_record(state_dir / FILE, record)


def last_drill(state_dir: Path) -> DrillRecord | None:
    return read_record(state_dir / FILE, DrillRecord)
