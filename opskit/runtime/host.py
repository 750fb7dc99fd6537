"""Resources of the machine opskit runs on: load, memory, free disk, process trees (psutil)."""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

from opskit.runtime.base import UnitStats


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


def process_tree_stats(pid: int) -> UnitStats | None:
    """Memory and average CPU of ``pid`` and its descendants (a service's process tree, or a
    container's processes seen from the host); None when ``pid`` is gone."""
    import psutil

    try:
        members = [psutil.Process(member) for member in descendants(pid)]
    except psutil.Error:
        return None
    rss, cpu_seconds, oldest = 0, 0.0, None
    for process in members:
        with contextlib.suppress(psutil.Error), process.oneshot():
            rss += process.memory_info().rss
            times = process.cpu_times()
            cpu_seconds += times.user + times.system
            created = process.create_time()
            oldest = created if oldest is None else min(oldest, created)
    age = max(time.time() - (oldest or time.time()), 1e-3)
    return UnitStats(rss_bytes=rss, cpu_percent=100.0 * cpu_seconds / age)


def descendants(pid: int) -> list[int]:
    """``pid`` and its descendants, read from /proc/<pid>/task/<tid>/children.

    One small read per process instead of psutil's scan of every /proc entry; this runs in
    every health check of every service. Falls back to psutil where the kernel lacks the file.
    """
    import psutil

    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            for tid in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{tid}/children") as handle:
                    todo.extend(int(child) for child in handle.read().split())
        except FileNotFoundError:
            if current == pid and not os.path.exists(f"/proc/{pid}"):
                raise psutil.NoSuchProcess(pid) from None
            if current == pid:  # no children file on this kernel
                return [pid, *(p.pid for p in psutil.Process(pid).children(recursive=True))]
        except OSError:
            continue
    return found


def process_table(pid: int) -> list[tuple[int, int, str]]:
    """(pid, ppid, title) of ``pid`` and its descendants; empty when ``pid`` is gone."""
    import psutil

    table = []
    try:
        members = descendants(pid)
    except psutil.Error:
        return []
    for member in members:
        with contextlib.suppress(psutil.Error):
            process = psutil.Process(member)
            if process.status() == psutil.STATUS_ZOMBIE:
                continue
            title = " ".join(process.cmdline()) or process.name()
            table.append((member, process.ppid(), title))
    return table


def child_pids(pid: int) -> set[int]:
    """The direct children of ``pid`` on this host (nginx's workers under its master)."""
    import psutil

    try:
        return {child.pid for child in psutil.Process(pid).children()}
    except psutil.Error:
        return set()
