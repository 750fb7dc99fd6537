"""Resources of the machine opskit runs on: load, memory, free disk (psutil)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DiskUsage:
    path: Path
    used_percent: float
    free_bytes: int


def load_per_core() -> float:
    """1-minute load average divided by the number of cores (1.0 = every core busy)."""
    return os.getloadavg()[0] / (os.cpu_count() or 1)


def memory_used_percent() -> float:
    import psutil

    return psutil.virtual_memory().percent


def disk_usage(path: Path) -> DiskUsage:
    """Usage of the filesystem holding ``path`` (or its nearest existing parent)."""
    import psutil

    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    usage = psutil.disk_usage(str(existing))
    return DiskUsage(path, usage.percent, usage.free)
