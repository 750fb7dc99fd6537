"""backup, backup.validate, backup.list, backup.prune: the stack's state as files you can trust.

A backup walks every service whose role is :class:`~opskit.services.capabilities.BackingUp`
(redis: its RDB; kong: its running and declarative configuration; nginx: its config tree) under
the stack lock, concurrently, into a private ``.partial-`` folder; the stack file and its
``.env`` (secret values removed unless asked) join them; ``manifest.json`` is written last and
the folder renamed into place. Any failure, Ctrl-C or kill -9 leaves no folder that looks
complete. Validation recomputes every SHA-256 and asks each role to check its own files.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opskit import __version__
from opskit.backup.artifacts import (
    ZSTD_LEVEL,
    ArtifactError,
    ArtifactReader,
    ArtifactWriter,
    drain,
    stored_problem,
)
from opskit.backup.artifacts import open_checked as open_stored
from opskit.backup.attempts import BackupAttempt, record_attempt
from opskit.backup.manifest import MANIFEST, Manifest, ManifestError, written_by_same_kind
from opskit.backup.retention import Decision, apply_policy
from opskit.backup.seal import KEY_VARIABLE, MIN_KEY_LENGTH
from opskit.backup.store import BackupEntry, BackupStore
from opskit.errors import Interrupted, OpskitError, UsageError
from opskit.files import atomic_write
from opskit.ops.engine import (
    EventSink,
    OperationResult,
    StepResult,
    for_each_capable,
    ignore_events,
    mutation,
)
from opskit.redact import Redactor, is_secret_name
from opskit.results import ExitsByOk, Result
from opskit.services.capabilities import BackingUp
from opskit.stack import Stack
from opskit.vocabulary import BackupState, ExitCode, StepOutcome

STACK_FOLDER = "stack"


class BackupFailed(OpskitError):
    """A service's part of a backup failed; nothing was kept."""

    def __init__(self, result: BackupResult):
        self.result = result
        failed = [f"{o.service}: {o.detail}" for o in result.outcomes if not o.ok]
        super().__init__("backup failed, nothing kept: " + "; ".join(failed))


@dataclass
class BackupResult(OperationResult):
    backup_id: str | None = None
    path: Path | None = None
    size: int = 0
    includes_secrets: bool = False
    copies: Result | None = None  # the copies sent after it (never part of ok: the backup stays)

    def to_dict(self) -> dict[str, Any]:
        found = {
            "ok": self.ok,
            "id": self.backup_id if self.ok else None,
            "path": str(self.path) if self.path else None,
            "size": self.size,
            "includes_secrets": self.includes_secrets,
            "seconds": round(self.seconds, 3),
            "services": [outcome.to_dict() for outcome in self.outcomes],
        }
        if self.copies is not None:
            found["copies"] = self.copies.to_dict()
        return found


def store_of(stack: Stack) -> BackupStore:
    if stack.config.backups_dir is None:
        raise UsageError(f"{stack.config.source}: x-opskit.backups.dir is not set")
    return BackupStore(stack.config.backups_dir)


def seal_key(stack: Stack) -> bytes | None:
    """The key manifests are sealed with (``OPSKIT_BACKUP_KEY``), or None without one."""
    value = stack.config.environ.get(KEY_VARIABLE, "")
    return value.encode() if len(value) >= MIN_KEY_LENGTH else None


def identities(stack: Stack) -> list[Any] | None:
    """The age identities the stack's environment gives for reading encrypted backups."""
    from opskit.backup.encryption import identities as from_environ

    return from_environ(stack.config.environ)


def readable(stack: Stack, manifest: Manifest, what: str) -> list[Any] | None:
    """The identities to read ``manifest``'s files; a UsageError naming the variable when the
    backup is encrypted and the environment gives none (nothing has been changed yet)."""
    keys = identities(stack)
    if manifest.encrypted_to and not keys:
        from opskit.backup.encryption import IDENTITY_FILE_VARIABLE, IDENTITY_VARIABLE

        raise UsageError(
            f"backup {manifest.id} is encrypted: {what} needs its age identity in "
            f"{IDENTITY_VARIABLE} or {IDENTITY_FILE_VARIABLE}"
        )
    return keys


def require_seal_key(stack: Stack) -> bytes:
    key = seal_key(stack)
    if key is None:
        raise UsageError(
            f"{stack.config.source}: {KEY_VARIABLE} is not set (or shorter than "
            f"{MIN_KEY_LENGTH} characters): backups are sealed with it. Add a random one to the "
            f"stack's .env, e.g. {KEY_VARIABLE}=$(python3 -c 'import secrets; "
            "print(secrets.token_urlsafe(32))'), and keep a copy where you keep the backups' "
            "other secrets (docs/backups.md)"
        )
    return key


def backup(
    stack: Stack,
    services: Iterable[str] | None = None,
    *,
    tag: str | None = None,
    include_secrets: bool = False,
    on_event: EventSink = ignore_events,
    stop: threading.Event | None = None,
    count_prefixes: bool = False,
    quick: bool = False,
) -> BackupResult:
    """``count_prefixes``: roles also count keys by prefix (a second pass over Redis's
    keyspace). ``quick``: the fastest compression (a restore's safety copy).

    One backup of ``services`` (default: every service that can be backed up); its outcome
    is recorded as the last attempt (:mod:`opskit.backup.attempts`), failed or not. Once
    ``stop`` is set the backup ends at the next chunk or step and keeps nothing
    (:class:`~opskit.errors.Interrupted`)."""
    began = time.monotonic()
    store = store_of(stack)
    names = stack.resolve(services)
    key = require_seal_key(stack)
    with mutation(stack, "backup"):
        try:
            writer_options = {
                "level": 1 if quick else ZSTD_LEVEL,
                "count_prefixes": count_prefixes,
                "recipients": stack.config.backups_encrypt_to,
            }
            result = _backup(
                stack, store, names, tag, include_secrets, on_event, stop, key, writer_options
            )
        except OpskitError as exc:
            seconds = time.monotonic() - began
            reason = Redactor(stack.secrets())(str(exc))
            record_attempt(
                stack.state_dir, BackupAttempt(time.time(), False, None, 0, seconds, reason)
            )
            raise
        result.seconds = time.monotonic() - began
        record_attempt(
            stack.state_dir,
            BackupAttempt(time.time(), True, result.backup_id, result.size, result.seconds),
        )
    return result


def _backup(
    stack: Stack,
    store: BackupStore,
    names: list[str],
    tag: str | None,
    include_secrets: bool,
    on_event: EventSink,
    stop: threading.Event | None,
    key: bytes,
    writer_options: dict,
) -> BackupResult:
    backup_id = store.new_id(tag=tag)
    result = BackupResult("backup", [], backup_id=backup_id, includes_secrets=include_secrets)
    with store.building(backup_id) as folder:
        writer = ArtifactWriter(folder, stop, **writer_options)
        metadata: dict[str, dict] = {}

        def step(name: str, role: BackingUp) -> StepResult:
            if not stack.role(name).unit.status().running:
                return StepResult(name, StepOutcome.FAILED, "not running: nothing to back up")
            service_began = time.monotonic()
            details = role.back_up(writer.for_service(name))
            metadata[name] = {"role": stack.role(name).spec.role, **details}
            files = [f for f in writer.files if f.path.startswith(f"{name}/")]
            raw = sum(f.raw_size for f in files)
            stored = sum(f.size for f in files)
            how = "zstd + age" if writer.recipients else "zstd"
            detail = f"{len(files)} file(s), {human_bytes(raw)} → {human_bytes(stored)} {how}"
            seconds = time.monotonic() - service_began
            return StepResult(name, StepOutcome.DONE, detail, seconds)

        result.outcomes = for_each_capable(stack, names, BackingUp, step, emit=on_event, stop=stop)
        if stop is not None and stop.is_set():
            raise Interrupted("backup interrupted: nothing was kept")
        if not result.ok:
            raise BackupFailed(result)
        if not any(o.state is StepOutcome.DONE for o in result.outcomes):
            raise OpskitError("nothing to back up: no selected service can be backed up")
        _add_stack_files(stack, writer, include_secrets)
        manifest = Manifest(
            id=backup_id,
            created=time.time(),
            opskit_version=__version__,
            stack=stack.name,
            stack_file=str(stack.config.source),
            runtime=stack.config.runtime,
            tag=tag,
            includes_secrets=include_secrets,
            services=metadata,
            files=sorted(writer.files, key=lambda f: f.path),
            encrypted_to=list(writer.recipients),
        )
        atomic_write(folder / MANIFEST, manifest.sealed(key).to_json())
    result.path = store.root / backup_id
    result.size = manifest.size
    return result


def _add_stack_files(stack: Stack, writer: ArtifactWriter, include_secrets: bool) -> None:
    """The stack file and the ``.env`` beside it; secret values removed unless asked for."""
    redact = Redactor(() if include_secrets else stack.secrets())
    source = Path(stack.config.source)
    writer.add_bytes(f"{STACK_FOLDER}/{source.name}", redact(source.read_text()).encode())
    env_file = stack.config.project_dir / ".env"
    if env_file.is_file():
        text = env_file.read_text()
        if not include_secrets:
            text = redact("".join(_without_secret_value(line) for line in text.splitlines(True)))
        writer.add_bytes(f"{STACK_FOLDER}/env", text.encode())


def _without_secret_value(line: str) -> str:
    name, sep, _value = line.partition("=")
    key = name.strip().removeprefix("export ").strip()
    if sep and not key.startswith("#") and is_secret_name(key):
        return f"{name}=  # value removed by opskit backup (use --include-secrets to keep it)\n"
    return line


def human_bytes(count: int) -> str:
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{count} B"


# -- validate ------------------------------------------------------------------------------------


@dataclass
class Validation(ExitsByOk):
    backup_id: str
    problems: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)
    deep: bool = False
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)  # what was not checked, and why

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.backup_id,
            "ok": self.ok,
            "deep": self.deep,
            "problems": self.problems,
            "notes": self.notes,
        }


def validate(
    stack: Stack,
    backup_id: str,
    *,
    deep: bool = False,
    services: Iterable[str] | None = None,
    check_seal: bool = True,
    checked: Mapping[str, Sequence[str]] | None = None,
    folder: Path | None = None,
) -> Validation:
    """The manifest's seal under the stack's key first (a manifest that was changed, is not
    sealed, or was sealed with another key is one problem, and nothing else in it is trusted);
    then every file against the manifest (present, nothing extra, size, SHA-256, a valid zstd
    stream), then each role's own check of its files (RDB header and CRC-64, Kong YAML,
    ``nginx -t``); ``deep`` loads the RDB into a throwaway redis-server. ``checked`` holds the
    problems of role checks the caller already made (a restore staging an RDB reads it through
    the same checks): those services' files are not read again. ``folder``: validate a copy
    fetched elsewhere (from a restic repository) instead of the backups folder's."""
    began = time.monotonic()
    path = folder if folder is not None else store_of(stack).path(backup_id)
    report = Validation(backup_id, deep=deep)
    try:
        manifest = Manifest.read(path)
    except ManifestError as exc:
        report.problems.append(str(exc))
        return report
    unsealed = manifest.seal_problem(seal_key(stack))
    if unsealed and check_seal:
        report.problems.append(f"{path / MANIFEST}: {unsealed}")  # nothing in it is trusted
        report.seconds = time.monotonic() - began
        return report
    if manifest.id != backup_id:  # a sealed manifest of another backup, renamed
        report.problems.append(f"{path / MANIFEST}: holds backup {manifest.id}, not {backup_id}")
        report.seconds = time.monotonic() - began
        return report
    wanted = set(services) if services is not None else set(manifest.services)
    unknown = wanted - set(manifest.services)
    if unknown:
        raise UsageError(f"backup {backup_id} holds no {', '.join(sorted(unknown))}")
    report.problems += _file_set_problems(path, manifest)
    keys = identities(stack)
    if manifest.encrypted_to and not keys:
        if deep:
            readable(stack, manifest, "validate --deep")  # raises: it must read the content
        report.problems += _stored_problems(path, manifest, wanted)
        report.notes.append(
            "encrypted: sizes and SHA-256 of the stored files checked; their content needs the "
            "age identity (validate --deep, drill, restore)"
        )
        report.seconds = time.monotonic() - began
        return report
    checked_by_role: set[str] = set()
    reader = ArtifactReader(path, manifest, identities=keys)
    for name in sorted(wanted):
        metadata = manifest.services[name]
        role = stack.role(name) if name in stack.config.services else None
        if not isinstance(role, BackingUp) or not written_by_same_kind(metadata, role):
            continue  # its files still get the generic check below
        prefix = f"{name}/"
        present = [f for f in manifest.files if f.path.startswith(prefix)]
        if any(not (path / f.path).is_file() for f in present):
            continue  # reported as missing already
        try:
            if checked is not None and name in checked:
                report.problems += checked[name]
            else:
                report.problems += role.check_backup(reader.for_service(name), metadata, deep)
        except (ArtifactError, OpskitError) as exc:
            report.problems.append(str(exc))
        checked_by_role.update(f.path for f in present)
        report.checked.append(name)
    for entry in manifest.files:
        if entry.path in checked_by_role or not (path / entry.path).is_file():
            continue
        service = entry.path.split("/", 1)[0]
        if service in manifest.services and service not in wanted:
            continue
        try:
            with open_stored(path, entry, keys) as data:
                drain(data)
        except ArtifactError as exc:
            report.problems.append(str(exc))
    report.seconds = time.monotonic() - began
    return report


def _stored_problems(path: Path, manifest: Manifest, wanted: set[str]) -> list[str]:
    """Size and SHA-256 of every stored file of ``wanted`` services (and of the stack's own
    files), without reading what is inside: what can be checked without the identity."""
    problems = []
    for entry in manifest.files:
        service = entry.path.split("/", 1)[0]
        if service in manifest.services and service not in wanted:
            continue
        if (path / entry.path).is_file():  # a missing one is reported already
            problems += filter(None, [stored_problem(path, entry)])
    return problems


@dataclass
class Vouched:
    backup_id: str
    was: str  # why it was not sealed by this stack's key
    manifest: Manifest


def vouch(stack: Stack, backup_id: str) -> Vouched:
    """Seal a backup's manifest with this stack's key — an operator vouching for an old,
    unsealed backup, or one sealed with a lost key. Its files must match the manifest and
    pass their roles' checks first; what it records (paths included) is returned to be shown.
    Restores still write only where the live stack says."""
    key = require_seal_key(stack)
    path = store_of(stack).path(backup_id)
    with mutation(stack, "backup.seal"):
        try:
            manifest = Manifest.read(path)
        except ManifestError as exc:
            raise OpskitError(str(exc)) from None
        was = manifest.seal_problem(key)
        if was is None:
            raise UsageError(f"backup {backup_id} is already sealed with this stack's key")
        report = validate(stack, backup_id, check_seal=False)
        if not report.ok:
            raise OpskitError(
                f"backup {backup_id} does not match its own manifest, not sealed: "
                + "; ".join(report.problems)
            )
        atomic_write(path / MANIFEST, manifest.sealed(key).to_json())
    return Vouched(backup_id, was, manifest)


def _file_set_problems(path: Path, manifest: Manifest) -> list[str]:
    problems = []
    listed = {entry.path for entry in manifest.files}
    on_disk = set()
    for folder, dirs, files in os.walk(path):
        for name in dirs + files:
            full = Path(folder) / name
            relative = full.relative_to(path).as_posix()
            if full.is_symlink():
                problems.append(f"{relative}: a symbolic link (backups hold none)")
            elif full.is_file():
                on_disk.add(relative)
    for relative in sorted(on_disk - listed - {MANIFEST}):
        problems.append(f"{relative}: extra file, not in the manifest")
    for relative in sorted(listed - on_disk):
        problems.append(f"{relative}: missing (listed in the manifest)")
    return problems


# -- list and prune ----------------------------------------------------------------------------


def entries(stack: Stack) -> list[BackupEntry]:
    return store_of(stack).entries()


@dataclass
class PruneResult:
    decisions: list[Decision]
    leftovers: list[BackupEntry]
    removed: list[str]
    dry_run: bool
    policy: str
    # opskit.ops.copies.CopyPrune per copy: the same rules over each copy (inv backup.prune
    # applies them after the local ones, under the copies' lock, not the stack's)
    copies: list[Any] = field(default_factory=list)

    @property
    def ok(self) -> bool:  # a rule that removes nothing is not a failure; a copy not pruned is
        return not any(copy.problem for copy in self.copies)

    @property
    def exit_code(self) -> int:
        return ExitCode.OK if self.ok else ExitCode.FAILED

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "policy": self.policy,
            "keep": [{"id": d.id, "reasons": d.reasons} for d in self.decisions if d.keep],
            "remove": [d.id for d in self.decisions if not d.keep],
            "interrupted": [e.id for e in self.leftovers],
            "removed": self.removed,
            "copies": [copy.to_dict() for copy in self.copies],
        }


def prune(stack: Stack, *, dry_run: bool = False) -> PruneResult:
    """Apply ``x-opskit.backups.keep`` (restic's forget rules) to the complete backups, and
    remove interrupted builds whose process is gone. Damaged backups are never removed by a
    rule: they are shown for a person to look at."""
    policy = stack.config.backups_keep
    if policy is None or policy.empty:
        raise UsageError(
            f"{stack.config.source}: x-opskit.backups.keep has no rule (last, hourly, daily, "
            "weekly, monthly, yearly); prune removes nothing without one"
        )
    store = store_of(stack)
    with mutation(stack, "backup.prune"):
        complete = [e for e in store.entries() if e.state is BackupState.COMPLETE]
        decisions = apply_policy(policy, [(e.id, e.created) for e in complete])
        leftovers = store.leftovers()
        removed: list[str] = []
        if not dry_run:
            by_id = {e.id: e for e in complete}
            for decision in decisions:
                if not decision.keep:
                    store.remove(by_id[decision.id])
                    removed.append(decision.id)
            for leftover in leftovers:
                store.remove(leftover)
                removed.append(leftover.id)
    return PruneResult(decisions, leftovers, removed, dry_run, policy.describe())
