"""Reading log files that a running process appends to and opskit rotates.

Rotation (see :mod:`opskit.runtime.process`) renames ``svc.log`` to ``svc.log.1`` before a
start and copies-and-truncates while the service runs; a reader following the file must notice
both: a new inode (renamed away) and a shrinking size (truncated).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

FOLLOW_POLL = 0.1


def log_files(path: Path, since: float | None = None) -> list[Path]:
    """``path``'s rotations oldest first, then ``path``; files last written before ``since``
    (epoch seconds) are left out: they hold nothing newer."""
    rotated = sorted(
        path.parent.glob(f"{path.name}.[0-9]*"),
        key=lambda p: int(p.name.rsplit(".", 1)[1]) if p.name.rsplit(".", 1)[1].isdigit() else 0,
        reverse=True,
    )
    files = [p for p in [*rotated, path] if p.exists()]
    if since is None:
        return files
    return [p for p in files if p.stat().st_mtime >= since]


def follow_lines(path: Path, poll: float = FOLLOW_POLL) -> Iterator[str]:
    """Lines appended to ``path`` from now on, forever (the caller stops iterating)."""
    handle, inode = _open_at_end(path)
    pending = b""
    try:
        while True:
            chunk = handle.read() if handle else b""
            if chunk:
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    yield line.decode("utf-8", errors="replace")
                continue
            time.sleep(poll)
            try:
                stat = os.stat(path)
            except FileNotFoundError:
                continue
            if handle is None or stat.st_ino != inode:  # rotated by rename: read the new file
                if handle:
                    handle.close()
                handle, inode = path.open("rb"), stat.st_ino
            elif stat.st_size < handle.tell():  # copytruncate: start over at the new end
                handle.seek(0)
    finally:
        if handle:
            handle.close()


def _open_at_end(path: Path):
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return None, None
    handle.seek(0, os.SEEK_END)
    return handle, os.fstat(handle.fileno()).st_ino
