"""The backups folder: one private folder per backup, named by its UTC time (and tag).

A backup is built in ``.partial-<id>-<pid>`` and renamed to ``<id>`` only after every file and
the manifest are written and fsynced: an error, Ctrl-C or kill -9 leaves a ``.partial-`` folder
that no listing calls complete, and that :meth:`BackupStore.leftovers` finds for pruning once
its process is gone. Ids sort in time order, so the newest is the last.
"""

from __future__ import annotations

import calendar
import contextlib
import os
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opskit.backup.manifest import MANIFEST, Manifest, ManifestError
from opskit.errors import OpskitError, UsageError
from opskit.files import fsync_dir, pid_alive, private_dir
from opskit.vocabulary import BackupState

PARTIAL_PREFIX = ".partial-"
_TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")
_ID = re.compile(r"^(\d{8}T\d{6}Z)(?:\.(\d+))?(?:-([A-Za-z0-9][A-Za-z0-9_.-]{0,39}))?$")


@dataclass(frozen=True)
class BackupEntry:
    id: str
    path: Path
    state: BackupState
    created: float  # epoch seconds
    size: int
    manifest: Manifest | None = None
    detail: str = ""

    @property
    def services(self) -> list[str]:
        return sorted(self.manifest.services) if self.manifest else []

    def to_dict(self, now: float | None = None) -> dict[str, Any]:
        import time

        now = time.time() if now is None else now
        return {
            "id": self.id,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.created)),
            "age_seconds": round(now - self.created),
            "size": self.size,
            "services": self.services,
            "status": self.state.value,
            "includes_secrets": bool(self.manifest and self.manifest.includes_secrets),
            "detail": self.detail,
        }


def parse_id_time(backup_id: str) -> float | None:
    match = _ID.match(backup_id)
    if not match:
        return None
    return float(calendar.timegm(time.strptime(match.group(1), "%Y%m%dT%H%M%SZ")))


class BackupStore:
    def __init__(self, root: Path):
        self.root = root

    def new_id(self, now: float | None = None, tag: str | None = None) -> str:
        if tag is not None and not _TAG.match(tag):
            raise UsageError(f"--tag: expected 1-40 letters, digits, '.', '_' or '-', got {tag!r}")
        stamp = time.strftime(
            "%Y%m%dT%H%M%SZ", time.gmtime(now if now is not None else time.time())
        )
        suffix = f"-{tag}" if tag else ""
        candidate, serial = f"{stamp}{suffix}", 1
        while self._taken(candidate):  # two backups in one second: ids stay unique and sorted
            candidate = f"{stamp}.{serial}{suffix}"
            serial += 1
        return candidate

    def _taken(self, backup_id: str) -> bool:
        if (self.root / backup_id).exists():
            return True
        return (
            any(self.root.glob(f"{PARTIAL_PREFIX}{backup_id}-*")) if self.root.is_dir() else False
        )

    @contextlib.contextmanager
    def building(self, backup_id: str) -> Iterator[Path]:
        """A private folder to build ``backup_id`` in; renamed into place when the block ends
        without an exception, removed when it raises."""
        private_dir(self.root)
        partial = self.root / f"{PARTIAL_PREFIX}{backup_id}-{os.getpid()}"
        partial.mkdir(mode=0o700)
        try:
            yield partial
            for folder, _dirs, _files in os.walk(partial):
                fsync_dir(Path(folder))
            final = self.root / backup_id
            if final.exists():
                raise OpskitError(f"{final} appeared while this backup was built")
            os.rename(partial, final)
            fsync_dir(self.root)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise

    def path(self, backup_id: str) -> Path:
        if not _ID.match(backup_id):
            raise UsageError(
                f"{backup_id!r} is not a backup id (expected e.g. 20261124T030000Z or "
                "20261124T030000Z-tag; inv backup.list shows them)"
            )
        path = self.root / backup_id
        if not path.is_dir():
            raise UsageError(f"no backup {backup_id} in {self.root} (inv backup.list shows them)")
        return path

    def entries(self) -> list[BackupEntry]:
        """Every backup and every interrupted build, oldest first."""
        if not self.root.is_dir():
            return []
        found = []
        for path in self.root.iterdir():
            if not path.is_dir() or path.is_symlink():
                continue
            if path.name.startswith(PARTIAL_PREFIX):
                found.append(self._partial(path))
            elif _ID.match(path.name):
                found.append(self.entry(path.name))
        return sorted(found, key=lambda entry: (entry.created, entry.id))

    def entry(self, backup_id: str) -> BackupEntry:
        path = self.path(backup_id)
        created = parse_id_time(backup_id) or path.stat().st_mtime
        if not (path / MANIFEST).exists():
            return BackupEntry(
                backup_id, path, BackupState.INCOMPLETE, created, _du(path), None, "no manifest"
            )
        try:
            manifest = Manifest.read(path)
        except ManifestError as exc:
            return BackupEntry(
                backup_id, path, BackupState.DAMAGED, created, _du(path), None, str(exc)
            )
        return BackupEntry(
            backup_id, path, BackupState.COMPLETE, manifest.created, manifest.size, manifest
        )

    def _partial(self, path: Path) -> BackupEntry:
        rest = path.name[len(PARTIAL_PREFIX) :]
        backup_id, _, pid = rest.rpartition("-")
        alive = pid.isdigit() and pid_alive(int(pid))
        detail = f"being written by pid {pid}" if alive else "interrupted (its process is gone)"
        created = parse_id_time(backup_id) or path.stat().st_mtime
        return BackupEntry(
            path.name, path, BackupState.INCOMPLETE, created, _du(path), None, detail
        )

    def leftovers(self) -> list[BackupEntry]:
        """Interrupted builds whose process is gone: safe to remove."""
        return [
            entry
            for entry in self.entries()
            if entry.id.startswith(PARTIAL_PREFIX) and "interrupted" in entry.detail
        ]

    def remove(self, entry: BackupEntry) -> None:
        """Remove one backup folder opskit made (never anything outside the backups dir)."""
        if entry.path.parent != self.root or entry.path.is_symlink():
            raise OpskitError(f"refusing to remove {entry.path}: not a backup folder")
        doomed = self.root / f".removing-{entry.path.name}"
        os.rename(entry.path, doomed)  # atomically not a backup any more, then delete
        shutil.rmtree(doomed)


def _du(path: Path) -> int:
    total = 0
    for folder, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(folder, name)).st_size
    return total
