"""Resources of the machine opskit runs on: load, memory, free disk, process trees.

What every ``inv status`` and ``inv health`` asks of a process — is it the one we started, is it
a zombie, how much memory and CPU its tree uses — is read from ``/proc`` directly, with psutil's
own formulas (``create_time`` = start ticks / CLK_TCK + boot time): importing psutil costs those
commands ≈ 15 ms each, more than the reads. Host memory and disk come from ``/proc/meminfo`` and
``statvfs`` the same way; psutil stays for process names and group walks.
"""

from __future__ import annotations

import contextlib
import functools
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
    """psutil's ``virtual_memory().percent``: (total − available) / total, from
    ``/proc/meminfo`` (MemAvailable: what can be had without swapping)."""
    values = {}
    with open("/proc/meminfo", "rb") as handle:
        for line in handle:
            name, _, rest = line.partition(b":")
            if name in (b"MemTotal", b"MemAvailable"):
                values[name] = int(rest.split()[0])
    total = values[b"MemTotal"]
    return round(100.0 * (total - values[b"MemAvailable"]) / total, 1)


def network_bytes() -> dict[str, tuple[int, int]]:
    """Bytes received and sent per network device since boot (``/proc/net/dev``), loopback
    left out: the stack's own hops over 127.0.0.1 are not the host's traffic."""
    found = {}
    try:
        with open("/proc/net/dev") as handle:
            rows = handle.read().splitlines()[2:]
    except OSError:
        return {}
    for row in rows:
        device, _, numbers = row.partition(":")
        fields = numbers.split()
        if device.strip() != "lo" and len(fields) >= 9:
            found[device.strip()] = (int(fields[0]), int(fields[8]))
    return found


def disk_usage(path: Path) -> DiskUsage:
    """Usage of the filesystem holding ``path`` (or its nearest existing parent)."""
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    return DiskUsage(path, *_usage(existing))


def _usage(path: Path) -> tuple[float, int]:
    """psutil's ``disk_usage``: used% of what a non-root user may use, and the bytes free to
    one (the root-reserved blocks count as neither)."""
    vfs = os.statvfs(path)
    free = vfs.f_bavail * vfs.f_frsize
    used = (vfs.f_blocks - vfs.f_bfree) * vfs.f_frsize
    return (round(100.0 * used / (used + free), 1) if used + free else 0.0), free


@dataclass(frozen=True)
class ProcStat:
    """The fields of ``/proc/PID/stat`` opskit reads."""

    state: str  # "R", "S", "Z" (zombie) …
    ppid: int
    cpu_seconds: float  # user + system
    create_time: float  # epoch seconds, as psutil computes it


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


@functools.cache
def boot_time() -> float:
    """The kernel's ``btime`` (``/proc/stat``): psutil's base for every create time."""
    with open("/proc/stat", "rb") as handle:
        for line in handle:
            if line.startswith(b"btime"):
                return float(line.split()[1])
    raise OSError("/proc/stat has no btime line")


def proc_stat(pid: int) -> ProcStat | None:
    """``/proc/PID/stat``, or None when the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            data = handle.read()
    except OSError:
        return None
    fields = data[data.rindex(b")") + 2 :].split()  # the name may hold spaces and parens
    return ProcStat(
        state=fields[0].decode(),
        ppid=int(fields[1]),
        cpu_seconds=(int(fields[11]) + int(fields[12])) / _CLOCK_TICKS,
        create_time=int(fields[19]) / _CLOCK_TICKS + boot_time(),
    )


def is_alive(pid: int, create_time: float, tolerance: float) -> bool:
    """``pid`` runs, is not a zombie, and is the process created at ``create_time`` (not a
    later one that was given the same pid)."""
    stat = proc_stat(pid)
    return (
        stat is not None and stat.state != "Z" and abs(stat.create_time - create_time) <= tolerance
    )


def _rss(pid: int) -> int:
    with open(f"/proc/{pid}/statm", "rb") as handle:
        return int(handle.read().split()[1]) * _PAGE_SIZE


def process_tree_stats(pid: int) -> UnitStats | None:
    """Memory and average CPU of ``pid`` and its descendants (a service's process tree, or a
    container's processes seen from the host); None when ``pid`` is gone."""
    try:
        members = descendants(pid)
    except ProcessLookupError:
        return None
    rss, cpu_seconds, oldest = 0, 0.0, None
    for member in members:
        stat = proc_stat(member)
        if stat is None:
            continue  # it ended between the listing and the read
        with contextlib.suppress(OSError):
            rss += _rss(member)
        cpu_seconds += stat.cpu_seconds
        oldest = stat.create_time if oldest is None else min(oldest, stat.create_time)
    if oldest is None:
        return None
    age = max(time.time() - oldest, 1e-3)
    return UnitStats(rss_bytes=rss, cpu_percent=100.0 * cpu_seconds / age, cpu_seconds=cpu_seconds)


def descendants(pid: int) -> list[int]:
    """``pid`` and its descendants, read from /proc/<pid>/task/<tid>/children.

    One small read per process instead of psutil's scan of every /proc entry; this runs in
    every health check of every service. Falls back to psutil where the kernel lacks the file.
    ProcessLookupError when ``pid`` is gone.
    """
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
                raise ProcessLookupError(pid) from None
            if current == pid:  # no children file on this kernel
                import psutil

                try:
                    children = psutil.Process(pid).children(recursive=True)
                except psutil.Error:
                    raise ProcessLookupError(pid) from None
                return [pid, *(p.pid for p in children)]
        except OSError:
            continue
    return found


def process_table(pid: int) -> list[tuple[int, int, str]]:
    """(pid, ppid, title) of ``pid`` and its descendants; empty when ``pid`` is gone."""
    import psutil

    table = []
    try:
        members = descendants(pid)
    except ProcessLookupError:
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
