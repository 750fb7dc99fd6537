"""manifest.json: what a backup holds, written last, so a backup without one is not a backup.

Every stored file is listed with its size and SHA-256 (of the bytes on disk, as restic names
its files by content hash), so bit rot, a truncated copy, an edited file, an extra or a missing
one are all found by recomputing. Per service: the role that wrote it and its metadata (RDB
version and key counts, Kong's configuration_hash, nginx's config root). The whole of it is
sealed under the stack's key (:mod:`opskit.backup.seal`): a restore relies on no field a
stranger could have edited.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

FORMAT = 1
MANIFEST = "manifest.json"
_MEMBER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$")


class ManifestError(ValueError):
    """manifest.json is missing, unreadable or not what opskit writes."""


@dataclass(frozen=True)
class StoredFile:
    path: str  # relative to the backup folder, '/'-separated
    size: int  # bytes on disk
    sha256: str  # of the bytes on disk
    raw_size: int  # bytes once decompressed
    compression: str = "zstd"


@dataclass
class Manifest:
    id: str
    created: float  # epoch seconds (UTC)
    opskit_version: str
    stack: str
    stack_file: str
    runtime: str
    tag: str | None = None
    includes_secrets: bool = False
    services: dict[str, dict[str, Any]] = field(default_factory=dict)
    files: list[StoredFile] = field(default_factory=list)
    encrypted_to: list[str] = field(default_factory=list)  # age recipients of every file
    format: int = FORMAT
    seal: dict[str, str] | None = None
    #: manifest.json exactly as read (what the seal covers); None for one being written
    document: dict[str, Any] | None = field(default=None, repr=False, compare=False)

    def file(self, path: str) -> StoredFile | None:
        return next((entry for entry in self.files if entry.path == path), None)

    @property
    def size(self) -> int:
        return sum(entry.size for entry in self.files)

    def as_document(self) -> dict[str, Any]:
        document = asdict(self)
        document.pop("document")
        if not document["encrypted_to"]:
            del document["encrypted_to"]  # a plaintext backup's manifest reads as it always did
        return document

    def sealed(self, key: bytes) -> Manifest:
        """This manifest with a seal under ``key`` over everything else it says."""
        from opskit.backup.seal import seal

        self.seal = None
        self.seal = seal(self.as_document(), key)
        self.document = self.as_document()
        return self

    def seal_problem(self, key: bytes | None) -> str | None:
        """Why this manifest (as read from disk) is not sealed by ``key``; None when it is."""
        from opskit.backup.seal import problem

        return problem(self.document if self.document is not None else self.as_document(), key)

    def to_json(self) -> str:
        return json.dumps(self.as_document(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def read(cls, folder: Path) -> Manifest:
        path = folder / MANIFEST
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ManifestError(f"{path}: missing (an interrupted backup?)") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ManifestError(f"{path}: unreadable: {exc}") from None
        try:
            return cls._from(raw)
        except (KeyError, TypeError, ValueError) as exc:
            raise ManifestError(f"{path}: not an opskit manifest: {exc}") from None

    @classmethod
    def _from(cls, raw: dict) -> Manifest:
        if raw.get("format") != FORMAT:
            raise ValueError(f"format {raw.get('format')!r}, expected {FORMAT}")
        files = [StoredFile(**entry) for entry in raw["files"]]
        for entry in files:
            safe_member(entry.path)
            if not isinstance(entry.size, int) or not isinstance(entry.sha256, str):
                raise ValueError(f"bad entry for {entry.path}")
        services = raw["services"]
        if not isinstance(services, dict):
            raise ValueError("services must be a mapping")
        seal = raw.get("seal")
        if seal is not None and not isinstance(seal, dict):
            raise ValueError("seal must be a mapping")
        return cls(
            seal=seal,
            document=raw,
            id=str(raw["id"]),
            created=float(raw["created"]),
            opskit_version=str(raw["opskit_version"]),
            stack=str(raw["stack"]),
            stack_file=str(raw["stack_file"]),
            runtime=str(raw["runtime"]),
            tag=raw.get("tag"),
            includes_secrets=bool(raw.get("includes_secrets", False)),
            services=services,
            files=files,
            encrypted_to=[str(r) for r in raw.get("encrypted_to") or []],
        )


def safe_member(path: str) -> str:
    """A relative, normalised, '/'-separated name inside a backup or archive; anything else
    (absolute, ``..``, empty parts, odd characters) is refused by name."""
    if not _MEMBER.match(path) or ".." in PurePosixPath(path).parts:
        raise ValueError(f"unsafe member name {path!r}")
    return path


def written_by_same_kind(metadata: dict, role: Any) -> bool:
    """Was this service's part of a backup written by a role of the kind the stack now gives
    it? A service renamed or re-roled since must not receive files it cannot read."""
    return metadata.get("role") == role.spec.role
