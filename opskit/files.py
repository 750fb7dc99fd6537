"""Safe file writes and private directories.

Everything opskit writes that may hold data (pidfiles, rendered configs with passwords,
reports) goes through here: 0700 directories, 0600 files, temp file + fsync + rename, so a
crash or a full disk never leaves a half-written file where a whole one is expected.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

R = TypeVar("R")


def private_dir(path: Path) -> Path:
    """Create ``path`` and any missing parents with mode 0700; tighten ``path`` if it exists."""
    missing = []
    current = path
    while not current.exists():
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):
            directory.mkdir(mode=0o700)
    with contextlib.suppress(PermissionError):
        if path.stat().st_mode & 0o077:
            path.chmod(0o700)
    return path


def atomic_write(path: Path, data: bytes | str, mode: int = 0o600, *, durable: bool = True) -> None:
    """Write ``data`` to ``path`` atomically with permissions ``mode`` (see
    :func:`write_stream_private` for ``durable``)."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    write_stream_private(io.BytesIO(data), path, mode, durable=durable)


def atomic_write_json(path: Path, value: Any, *, durable: bool = True) -> None:
    atomic_write(path, json.dumps(value, indent=2, sort_keys=True) + "\n", durable=durable)


def read_json(path: Path) -> Any | None:
    """The JSON in ``path``, or None when it is missing or unreadable (a torn old file)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return None


def tail_lines(path: Path, count: int, block: int = 8192) -> list[str]:
    """The last ``count`` lines of a text file, reading only its end."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            data = b""
            while size > 0 and data.count(b"\n") <= count:
                step = min(block, size)
                size -= step
                handle.seek(size)
                data = handle.read(step) + data
    except FileNotFoundError:
        return []
    lines = data.decode("utf-8", errors="replace").splitlines()
    return lines[-count:] if count else []


def fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def copy_private(source: Path, destination: Path) -> None:
    """Copy ``source`` to ``destination`` atomically, mode 0600 (its directory 0700 if new)."""
    private_dir(destination.parent)
    with source.open("rb") as data:
        write_stream_private(data, destination)


def write_stream_private(
    data: BinaryIO, destination: Path, mode: int = 0o600, *, durable: bool = True
) -> None:
    """Write what ``data`` yields to ``destination``: temp file, ``mode``, fsync, rename — a
    crash or a full disk never leaves a half-written file where a whole one is expected.

    Not ``durable``: no fsync, only the rename — for files that describe running processes
    (pidfiles), which a power loss makes meaningless anyway: readers treat an empty or torn
    one as unknown. Four fsyncs were most of starting a service on a slow disk."""
    fd, tmp = tempfile.mkstemp(dir=destination.parent, prefix=f".{destination.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as out:
            while chunk := data.read(1 << 20):
                out.write(chunk)
            out.flush()
            if durable:
                os.fsync(out.fileno())
        os.replace(tmp, destination)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if durable:
        fsync_dir(destination.parent)


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists (``kill -0``): who owns a staging folder or a
    partial backup, before a later run removes what it left."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write_record(path: Path, record: Any) -> None:
    """A dataclass kept as JSON (a state file: the last backup attempt, the last drill), in a
    private folder, written atomically."""
    from dataclasses import asdict

    private_dir(path.parent)
    atomic_write_json(path, asdict(record))


def read_record(path: Path, kind: type[R]) -> R | None:
    """The dataclass :func:`write_record` kept, or None when there is none or it was written
    by another version of opskit (other fields)."""
    raw = read_json(path)
    if not isinstance(raw, dict):
        return None
    try:
        return kind(**raw)
    except TypeError:
        return None
