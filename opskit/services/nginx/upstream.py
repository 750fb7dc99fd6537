"""Point an ``upstream`` block of a running nginx somewhere else, and put it back byte-identical.

This is how an nginx that *fronts* a service (``x-opskit.fronts: backend``) lets that service
restart without a failed request: the block's ``server`` lines are pointed at a relief
instance, nginx reloads (``-t``, HUP, verified), the old workers drain, and later the file's
original bytes are written back and reloaded the same way.

The file edited is the one nginx really loads the block from — found in ``nginx -T``'s dump, so
an ``upstream`` in an ``include``\\ d file is found too — and it is edited through the unit
(a host path, or ``docker cp`` into the container). Before the first edit its original bytes
are kept under the state directory (0600): an operation killed half-way leaves enough behind
for the next one to restore them (:meth:`UpstreamEditor.restore`).
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from opskit.errors import OpskitError
from opskit.files import atomic_write, atomic_write_json, private_dir, read_json

if TYPE_CHECKING:
    from opskit.runtime.base import Unit

_FILE_HEADER = re.compile(r"^# configuration file (.+):$", re.M)
_SERVER_LINE = re.compile(r"^([ \t]*)server\s+[^;]*;[ \t]*(#[^\n]*)?\n?", re.M)


@dataclass(frozen=True)
class ConfigFile:
    """One file of nginx's loaded configuration, as ``nginx -T`` printed it."""

    path: str
    text: str


def loaded_files(dump: str) -> list[ConfigFile]:
    """Split ``nginx -T`` output into the files it loaded (``# configuration file P:`` headers)."""
    heads = list(_FILE_HEADER.finditer(dump))
    files = []
    for index, head in enumerate(heads):
        end = heads[index + 1].start() if index + 1 < len(heads) else len(dump)
        body = dump[head.end() + 1 : end]
        files.append(ConfigFile(head.group(1), body))
    return files


def upstream_block(text: str, block: str) -> re.Match[str] | None:
    """The ``upstream <block> { … }`` body (upstream blocks hold no nested braces)."""
    return re.search(rf"(?m)^[ \t]*upstream\s+{re.escape(block)}\s*\{{([^{{}}]*)\}}", text)


def servers_of(text: str, block: str) -> list[str]:
    """The ``server`` addresses (with their parameters) of ``upstream <block>``."""
    found = upstream_block(text, block)
    if found is None:
        return []
    return [
        line.strip()[len("server") :].strip().rstrip(";").strip()
        for line in found.group(1).splitlines()
        if line.strip().startswith("server ")
    ]


def with_servers(text: str, block: str, servers: list[str]) -> str:
    """``text`` with the ``server`` lines of ``upstream <block>`` replaced by ``servers``;
    the block's other directives (``keepalive``, ``zone``) stay as they are."""
    found = upstream_block(text, block)
    if found is None or not servers:
        raise ValueError(f"no upstream {block} block, or no servers to put in it")
    body = found.group(1)
    first = _SERVER_LINE.search(body)
    indent = first.group(1) if first else "    "
    lines = "".join(f"{indent}server {server};\n" for server in servers)
    stripped = _SERVER_LINE.sub("", body)
    if first is not None:
        new_body = stripped[: first.start()] + lines + stripped[first.start() :]
    else:
        new_body = "\n" + lines + stripped.lstrip("\n")
    start, end = found.span(1)
    return text[:start] + new_body + text[end:]


class UpstreamEditor:
    """Edits of one ``upstream`` block in one nginx unit, with the original kept aside."""

    def __init__(self, unit: Unit, block: str, keep_dir: Path, dump: Callable[[], str]) -> None:
        self.unit = unit
        self.block = block
        self.keep_dir = keep_dir
        self._dump = dump  # nginx -T, asked only when the file must be found

    @property
    def _record(self) -> Path:
        return self.keep_dir / f"upstream-{self.block}.json"

    @property
    def _original(self) -> Path:
        return self.keep_dir / f"upstream-{self.block}.orig"

    def edited(self) -> bool:
        """An edit of ours is in place (or was, when an operation died before restoring)."""
        return self._record.exists()

    def locate(self) -> ConfigFile:
        for loaded in loaded_files(self._dump()):
            if upstream_block(loaded.text, self.block):
                return loaded
        raise OpskitError(
            f"{self.unit.name}: no 'upstream {self.block} {{ … }}' block in the configuration "
            "nginx loads (nginx -T): cannot switch where it sends requests"
        )

    def current_servers(self) -> list[str]:
        return servers_of(self.locate().text, self.block)

    def point_at(self, servers: list[str]) -> None:
        """Write the block with ``servers``; the first edit keeps the file's original bytes."""
        where = self.locate()
        current = self._read(where.path)
        if not self.edited():
            private_dir(self.keep_dir)
            atomic_write(self._original, current)
            digest = hashlib.sha256(current).hexdigest()
            atomic_write_json(self._record, {"path": where.path, "sha256": digest})
        text = with_servers(current.decode("utf-8"), self.block, servers)
        self._write(where.path, text.encode("utf-8"))

    def restore(self) -> bool:
        """Put the original bytes back; False when there was no edit of ours to undo."""
        record = read_json(self._record)
        if not record:
            return False
        original = self._original.read_bytes()
        if hashlib.sha256(original).hexdigest() != record.get("sha256"):
            raise OpskitError(
                f"{self.unit.name}: the kept original of {record.get('path')} does not match its "
                f"checksum ({self._original}); restore it by hand"
            )
        self._write(str(record["path"]), original)
        return True

    def forget(self) -> None:
        """The original is back and loaded: drop what was kept."""
        for path in (self._record, self._original):
            path.unlink(missing_ok=True)

    def _read(self, path: str) -> bytes:
        with self.unit.open_file(path) as handle:
            return handle.read()

    def _write(self, path: str, data: bytes) -> None:
        self.unit.write_file(path, io.BytesIO(data), len(data))
