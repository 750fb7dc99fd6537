"""Security incidents opskit itself detects, counted for ``inv metrics`` and the alert rule.

The end-to-end check and the fail-secure drill are the only places opskit sees masking fail
in a way that may have let an original AWS id out; each time they do, the count of that kind
goes up in ``<state_dir>/security-incidents.json`` (atomic write under a lock file, so two
checks at once both count). Counters only grow: ``increase()`` over an hour is the alert.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from opskit.files import atomic_write_json, private_dir, read_json
from opskit.vocabulary import SecurityIncident

FILE = "security-incidents.json"


def record_incident(state_dir: Path, kind: SecurityIncident) -> None:
    private_dir(state_dir)
    fd = os.open(state_dir / "security-incidents.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        counts = incident_counts(state_dir)
        counts[kind.value] = counts.get(kind.value, 0) + 1
        atomic_write_json(state_dir / FILE, {"counts": counts, "last_at": time.time()})
    finally:
        os.close(fd)


def incident_counts(state_dir: Path) -> dict[str, int]:
    raw = read_json(state_dir / FILE)
    counts = raw.get("counts") if isinstance(raw, dict) else None
    if not isinstance(counts, dict):
        return {}
    return {str(k): int(v) for k, v in counts.items() if isinstance(v, int)}
