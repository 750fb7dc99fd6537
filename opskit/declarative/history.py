"""Every declarative config opskit applied, byte for byte: the rollback's source.

``<state_dir>/kong-config/``: ``NNNN.yml`` (the exact bytes POSTed, 0600 — a config may carry
the plugin's API key) and ``index.json`` (number, md5, time, source, size). The md5 is Kong's
``configuration_hash`` of those bytes (row 2), so "is this entry running?" is one comparison
with ``GET /status``, and a rollback is verified the same way. Files are written temp + fsync +
rename, the entry first and the index last, under the stack lock.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

from opskit.declarative.document import DeclarativeError, md5_of
from opskit.files import atomic_write, atomic_write_json, private_dir, read_json


@dataclass(frozen=True)
class HistoryEntry:
    number: int
    md5: str
    at: float
    source: str
    size: int


class ConfigHistory:
    def __init__(self, state_dir: Path):
        self.dir = state_dir / "kong-config"

    def entries(self) -> list[HistoryEntry]:
        raw = read_json(self.dir / "index.json")
        entries = []
        for item in raw if isinstance(raw, list) else []:
            try:
                entries.append(HistoryEntry(**item))
            except TypeError:
                continue
        return entries

    def entry(self, number: int) -> HistoryEntry:
        for entry in self.entries():
            if entry.number == number:
                return entry
        known = ", ".join(str(e.number) for e in self.entries()) or "none"
        raise DeclarativeError(f"no config #{number} in the history (known: {known})")

    def latest_with(self, md5: str | None) -> HistoryEntry | None:
        matching = [entry for entry in self.entries() if entry.md5 == md5]
        return matching[-1] if matching else None

    def text(self, entry: HistoryEntry) -> str:
        """The bytes of ``entry``, checked against its md5 (a damaged entry is never applied)."""
        path = self._path(entry.number)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise DeclarativeError(
                f"config #{entry.number}: cannot read {path}: {exc.strerror}"
            ) from None
        if md5_of(data) != entry.md5:
            raise DeclarativeError(
                f"config #{entry.number} ({path}) does not match its recorded md5: not applied"
            )
        return data.decode()

    def record(self, text: str, source: str) -> HistoryEntry:
        private_dir(self.dir)
        entries = self.entries()
        number = entries[-1].number + 1 if entries else 1
        data = text.encode()
        entry = HistoryEntry(number, md5_of(data), time.time(), source, len(data))
        atomic_write(self._path(number), data)
        atomic_write_json(self.dir / "index.json", [asdict(e) for e in [*entries, entry]])
        return entry

    def _path(self, number: int) -> Path:
        return self.dir / f"{number:04d}.yml"
