"""Restore drills: prove that a backup restores, without touching the live stack; and say
what its data holds, from the same throwaway copy.

``validate`` proves the stored bytes are the ones written (seal, sizes, SHA-256, CRC-64); a
drill proves they come back as data. Each service's files are restored into a throwaway
instance of its software — Redis loads the RDB on a free loopback port and must hold the
RDB's keys, its keys without a TTL exactly, and the masker's prefixes; Kong's config must pass
``kong.validate``'s checks; nginx's tree must pass ``nginx -t`` in a scratch folder — and the
outcome is kept for ``inv metrics`` and the alert rules (``backup-drill.json``). The live
services are never stopped, written to or restarted, so cron can run it at any hour.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from opskit.backup.artifacts import ArtifactError, ArtifactReader
from opskit.backup.drills import DrillRecord, last_drill, record_drill
from opskit.backup.manifest import Manifest, written_by_same_kind
from opskit.errors import OpskitError, UsageError
from opskit.ops import copies
from opskit.ops.backup import readable, store_of, validate
from opskit.redact import Redactor
from opskit.results import ExitsByOk
from opskit.services.capabilities import BackingUp, DataInspecting, Drilling
from opskit.stack import Stack
from opskit.vocabulary import BackupState


@dataclass
class DrillResult(ExitsByOk):
    backup_id: str
    problems: list[str] = field(default_factory=list)
    services: dict[str, dict[str, Any]] = field(default_factory=dict)  # figures, per service
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def keys(self) -> int | None:
        return next((f["keys"] for f in self.services.values() if "keys" in f), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.backup_id,
            "ok": self.ok,
            "problems": self.problems,
            "services": self.services,
            "seconds": round(self.seconds, 3),
        }


def newest_complete(stack: Stack) -> str:
    """The newest complete local backup; with none, the newest a copy holds."""
    complete = [e for e in store_of(stack).entries() if e.state is BackupState.COMPLETE]
    if complete:
        return complete[-1].id
    if copies.configured(stack):
        held = copies.listing(stack).ids()
        if held:
            return held[-1]
    raise UsageError(f"{stack.config.backups_dir}: no complete backup to drill")


def _local(stack: Stack, backup_id: str | None) -> str:
    """``backup_id`` (default: the newest), fetched from a copy when the folder lacks it."""
    backup_id = backup_id or newest_complete(stack)
    if copies.missing_locally(stack, backup_id):
        copies.fetch(stack, backup_id)
    return backup_id


def drill(stack: Stack, backup_id: str | None = None) -> DrillResult:
    """Restore ``backup_id`` (default: the newest complete backup) into throwaway instances and
    check what came back; record the outcome. The seal and the file set are checked first:
    nothing from a manifest that fails them is loaded."""
    began = time.monotonic()
    backup_id = backup_id or newest_complete(stack)
    result = DrillResult(backup_id)
    try:
        _local(stack, backup_id)
    except UsageError:
        raise
    except OpskitError as exc:  # no copy could give it: a failed drill, recorded as one
        result.problems.append(str(exc))
    if not result.problems:
        sealed = validate(stack, backup_id, services=[])  # the seal and the files only
        result.problems += sealed.problems
    if not result.problems:
        path = store_of(stack).path(backup_id)
        manifest = Manifest.read(path)
        reader = ArtifactReader(path, manifest, identities=readable(stack, manifest, "a drill"))
        for name in sorted(manifest.services):
            problems, figures = _drill_service(stack, name, manifest, reader)
            result.problems += problems
            result.services[name] = figures
    result.seconds = time.monotonic() - began
    now, before = time.time(), last_drill(stack.state_dir)
    record_drill(
        stack.state_dir,
        DrillRecord(
            at=now,
            ok=result.ok,
            backup_id=backup_id,
            seconds=round(result.seconds, 3),
            keys=result.keys,
            detail=Redactor(stack.secrets())("; ".join(result.problems))[:500],
            last_success=now if result.ok else (before.last_success if before else None),
        ),
    )
    return result


def _drill_service(
    stack: Stack, name: str, manifest: Manifest, reader: ArtifactReader
) -> tuple[list[str], dict[str, Any]]:
    metadata = manifest.services[name]
    role = stack.role(name) if name in stack.config.services else None
    if not isinstance(role, BackingUp) or not written_by_same_kind(metadata, role):
        return [], {"drilled": False, "why": "no role of this stack reads these files"}
    artifacts = reader.for_service(name)
    try:
        if isinstance(role, Drilling):
            drilled = role.drill_backup(artifacts, metadata)
            return drilled.problems, {"drilled": True, **drilled.figures}
        return role.check_backup(artifacts, metadata, True), {"drilled": True}
    except (ArtifactError, OpskitError) as exc:
        return [str(exc)], {"drilled": True}


# -- what is in the data -------------------------------------------------------------------------


@dataclass
class InspectResult(ExitsByOk):
    backup_id: str
    services: dict[str, dict[str, Any]] = field(default_factory=dict)
    seconds: float = 0.0
    ok: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.backup_id,
            "services": self.services,
            "seconds": round(self.seconds, 3),
        }


def inspect(stack: Stack, backup_id: str | None = None) -> InspectResult:
    """Keys and memory per prefix, TTLs, what expires within a day and the biggest keys of
    every service whose data the backup holds, from a throwaway copy (the drill's). A backup
    that fails its seal or file checks is refused: nothing from it is loaded."""
    began = time.monotonic()
    backup_id = _local(stack, backup_id)
    sealed = validate(stack, backup_id, services=[])
    if sealed.problems:
        raise OpskitError(f"backup {backup_id}: " + "; ".join(sealed.problems))
    path = store_of(stack).path(backup_id)
    manifest = Manifest.read(path)
    reader = ArtifactReader(path, manifest, identities=readable(stack, manifest, "inspect"))
    result = InspectResult(backup_id)
    for name in sorted(manifest.services):
        role = stack.role(name) if name in stack.config.services else None
        metadata = manifest.services[name]
        if isinstance(role, DataInspecting) and written_by_same_kind(metadata, role):
            result.services[name] = role.inspect_backup(reader.for_service(name))
    if not result.services:
        raise UsageError(f"backup {backup_id} holds no data opskit can inspect (a Redis's RDB)")
    result.seconds = time.monotonic() - began
    return result
