"""backup.copy, and everything that reads a copy: the backups, off the host, with restic.

A copy is the backup folder as it is on disk, stored as one restic snapshot (tags ``opskit``
and ``opskit-id:<id>``, restic's host = the stack's name) in every repository of
``x-opskit.backups.copies`` (:mod:`opskit.backup.copies`). restic encrypts what it stores and
deduplicates: files that did not change since the last copy — Kong's and nginx's
configuration, the stack file, stored deterministically as zstd — are not sent again.

- **Copying** never undoes a backup: a copy that fails is remembered as owed and retried by
  the next ``inv backup`` or ``inv backup.copy``, and alerted once (the alert dispatcher's
  incident for ``backup copy <name>``, closed with "recovered" by the next copy that works).
  Copies run under their own lock (``copies.lock``): an hour-long upload does not hold up
  ``inv recover``. Only restic writes a snapshot, and only when it has every file.
- **Fetching** brings a backup back from a copy — when the backups folder lost it, or holds it
  damaged — into a private folder, where it must pass validation (seal, id, sizes, SHA-256,
  each role's checks) before it is renamed into the backups folder. A damaged local folder is
  set aside (``.damaged-<id>-<time>``), never deleted.
- **Listing, checking, pruning**: where each backup exists; restic's own ``check`` with a
  read-data subset plus opskit's validation of a fetched copy; the keep rules applied to each
  copy's snapshots as to the local folder.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opskit.backup.copies import CopyRecord, CopySpec, read_records, write_records
from opskit.backup.restic import Restic, ResticError, Snapshot
from opskit.backup.retention import apply_policy
from opskit.backup.store import BackupEntry, parse_id_time
from opskit.errors import LockBusyError, OpskitError, UsageError
from opskit.files import fsync_dir, private_dir
from opskit.lock import stack_lock
from opskit.ops.backup import human_bytes, store_of, validate
from opskit.ops.engine import Event, EventSink, ignore_events, mutation
from opskit.redact import Redactor
from opskit.results import ExitsByOk
from opskit.stack import Stack
from opskit.vocabulary import BackupState, Phase

LOCK_FILE = "copies.lock"
#: How long an operation waits for a copy in progress before it says who holds the lock.
LOCK_WAIT = 30.0


def configured(stack: Stack) -> tuple[CopySpec, ...]:
    settings = stack.config.backups_copies
    return settings.copies if settings is not None else ()


def require_copies(stack: Stack) -> tuple[CopySpec, ...]:
    copies = configured(stack)
    if not copies:
        raise UsageError(
            f"{stack.config.source}: x-opskit.backups.copies is not set: no restic repository "
            "to copy to (docs/backups.md, 'Copies off the host')"
        )
    return copies


def restic_for(stack: Stack, spec: CopySpec, stop: threading.Event | None = None) -> Restic:
    """restic for one copy, its password read from its variable now (a ResticError naming the
    variable when it is not set: nothing else of the stack needs it)."""
    password = stack.config.environ.get(spec.password_from, "")
    if not password:
        raise ResticError(
            f"copy {spec.name}: {spec.password_from} is not set (the repository's password, "
            "x-opskit.backups.copies password_from): put it in the stack's .env"
        )
    cache = stack.state_dir / "restic-cache"
    private_dir(cache)
    return Restic(
        f"copy {spec.name}",
        spec.repository,
        password,
        cache_dir=cache,
        options=spec.options,
        environment=dict(spec.environment),
        redact=Redactor(stack.secrets()),
        stop=stop,
    )


@contextlib.contextmanager
def copies_lock(stack: Stack, operation: str, wait: float = LOCK_WAIT) -> Iterator[None]:
    with stack_lock(stack.state_dir, operation, wait, file=LOCK_FILE):
        yield


# -- copy ------------------------------------------------------------------------------------------


@dataclass
class CopyOutcome:
    """One backup to one copy."""

    copy: str
    backup_id: str | None
    ok: bool
    detail: str
    size: int = 0  # the backup's stored size
    added: int = 0  # what restic stored for it, after deduplication
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "copy": self.copy,
            "id": self.backup_id,
            "ok": self.ok,
            "detail": self.detail,
            "size": self.size,
            "added": self.added,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class CopyResult(ExitsByOk):
    outcomes: list[CopyOutcome] = field(default_factory=list)
    pending: dict[str, list[str]] = field(default_factory=dict)  # copy → backups still owed
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(outcome.ok for outcome in self.outcomes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "copies": [outcome.to_dict() for outcome in self.outcomes],
            "pending": self.pending,
            "seconds": round(self.seconds, 3),
        }


def copy(
    stack: Stack,
    backup_ids: Sequence[str] = (),
    *,
    every_local: bool = False,
    on_event: EventSink = ignore_events,
    stop: threading.Event | None = None,
) -> CopyResult:
    """Copy ``backup_ids`` (default: the newest complete backup; ``every_local``: every complete
    backup) to every copy, and whatever each copy is still owed. A backup a copy already holds
    is not sent again. Failures are kept as owed, recorded and alerted once; never raised."""
    began = time.monotonic()
    copies = require_copies(stack)
    store = store_of(stack)
    complete = {e.id: e for e in store.entries() if e.state is BackupState.COMPLETE}
    for backup_id in backup_ids:
        if backup_id not in complete:
            store.path(backup_id)  # a UsageError naming it when it does not exist
            raise UsageError(f"backup {backup_id} is not complete: it cannot be copied")
    wanted = list(complete) if every_local else list(backup_ids) or list(complete)[-1:]
    result = CopyResult()
    with copies_lock(stack, "backup.copy"):
        promised = _owed_folder(stack)
        markers = sorted(promised.iterdir()) if promised.is_dir() else []
        wanted = [m.name for m in markers if m.name in complete] + wanted
        records = read_records(stack.state_dir)
        for spec in copies:
            record = records.setdefault(spec.name, CopyRecord())
            owed = [i for i in dict.fromkeys([*record.pending, *wanted]) if i in complete]
            outcomes = _copy_to(stack, spec, owed, complete, record, on_event, stop)
            result.outcomes += outcomes
            result.pending[spec.name] = list(record.pending)
            write_records(stack.state_dir, records)  # after each copy: a kill loses no news
        for marker in markers:  # each copy's record now holds what it still owes
            marker.unlink(missing_ok=True)
        if stop is None or not stop.is_set():  # an operator's Ctrl-C is not news to page about
            _alert(stack, copies, records)
    result.seconds = time.monotonic() - began
    return result


def owe(stack: Stack, backup_id: str) -> None:
    """Promise ``backup_id`` to every copy, without the copies' lock (a copy may be running
    for an hour): a marker file the next :func:`copy` takes into each copy's owed list."""
    folder = _owed_folder(stack)
    private_dir(folder)
    (folder / backup_id).touch(mode=0o600)


def _owed_folder(stack: Stack) -> Path:
    return stack.state_dir / "copies-owed"


def _copy_to(
    stack: Stack,
    spec: CopySpec,
    owed: list[str],
    complete: dict[str, BackupEntry],
    record: CopyRecord,
    on_event: EventSink,
    stop: threading.Event | None,
) -> list[CopyOutcome]:
    label = f"copy {spec.name}"
    outcomes: list[CopyOutcome] = []
    record.last_attempt = time.time()
    remaining = list(owed)
    try:
        if not owed:
            return outcomes
        restic = restic_for(stack, spec, stop)
        on_event(Event(label, Phase.STARTING, "opening the repository"))
        held, created = restic.open(stack.name, spec.connect_timeout)
        present = {s.backup_id for s in held}
        if created:
            on_event(Event(label, Phase.RUNNING, "initialized a new restic repository"))
        for backup_id in owed:
            entry = complete[backup_id]
            if backup_id in present:
                outcomes.append(CopyOutcome(spec.name, backup_id, True, "already there"))
                remaining.remove(backup_id)
                continue
            on_event(Event(label, Phase.RUNNING, f"sending {backup_id}"))
            began = time.monotonic()
            summary = restic.backup(entry.path.parent, backup_id, stack.name, spec.timeout)
            added = int(summary.get("data_added") or 0)
            seconds = time.monotonic() - began
            detail = f"stored ({human_bytes(added)} new after deduplication)"
            outcomes.append(
                CopyOutcome(spec.name, backup_id, True, detail, entry.size, added, seconds)
            )
            remaining.remove(backup_id)
            record.last_success = time.time()
            record.last_backup_id, record.last_size = backup_id, entry.size
            record.last_added = added
            on_event(Event(label, Phase.DONE, f"{backup_id}: {detail}"))
        record.last_ok, record.detail = True, ""
    except ResticError as exc:
        record.last_ok, record.detail = False, str(exc)[:500]
        failed = remaining[0] if remaining else None
        outcomes.append(CopyOutcome(spec.name, failed, False, str(exc)))
        on_event(Event(label, Phase.FAILED, str(exc)))
    finally:
        record.pending = remaining
    return outcomes


def _alert(stack: Stack, copies: Sequence[CopySpec], records: dict[str, CopyRecord]) -> None:
    """A copy that fails opens an incident (one alert); one that works again closes it. The
    dispatcher's state is the recover pass's: it is written under the stack lock."""
    from opskit.alerts.dispatch import Dispatcher

    redact = Redactor(stack.secrets())
    try:
        with mutation(stack, "backup.copy: alerts", wait=LOCK_WAIT):
            dispatcher = Dispatcher(stack.name, stack.config.alerts, stack.state_dir, redact)
            for spec in copies:
                record = records[spec.name]
                subject = f"backup copy {spec.name}"
                if record.last_ok:
                    dispatcher.recovered(subject, f"backups reach copy {spec.name} again")
                elif record.last_attempt:
                    owed = len(record.pending)
                    dispatcher.failed(subject, f"{record.detail} ({owed} backup(s) owed)")
            dispatcher.save()
    except LockBusyError:
        pass  # the next copy or recover pass says it: the record and the metrics already do


# -- where each backup exists --------------------------------------------------------------------


@dataclass
class CopyListing:
    """One copy's snapshots, or why they could not be listed."""

    name: str
    snapshots: list[Snapshot] = field(default_factory=list)
    problem: str = ""
    record: CopyRecord = field(default_factory=CopyRecord)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "reachable": not self.problem,
            "problem": self.problem,
            "backups": len(self.snapshots),
            "last_success": self.record.last_success or None,
            "last_ok": self.record.last_ok if self.record.last_attempt else None,
            "last_detail": self.record.detail,
            "pending": list(self.record.pending),
        }


@dataclass
class BackupListing(ExitsByOk):
    """``backup.list``: every backup, local or in a copy, and where it exists."""

    entries: list[BackupEntry]
    copies: list[CopyListing] = field(default_factory=list)
    ok: bool = True

    def where(self, backup_id: str) -> dict[str, bool]:
        local = any(e.id == backup_id for e in self.entries)
        found = {"local": local}
        for listing in self.copies:
            found[listing.name] = any(s.backup_id == backup_id for s in listing.snapshots)
        return found

    def ids(self) -> list[str]:
        """Local entries in their order, then what only copies hold, by time."""
        known = [e.id for e in self.entries]
        remote = {s.backup_id for listing in self.copies for s in listing.snapshots}
        extra = sorted(remote - set(known), key=lambda i: (parse_id_time(i) or 0.0, i))
        return sorted(known + extra, key=lambda i: (self._created(i), i))

    def _created(self, backup_id: str) -> float:
        entry = next((e for e in self.entries if e.id == backup_id), None)
        return entry.created if entry else (parse_id_time(backup_id) or 0.0)

    def to_dict(self, now: float | None = None) -> dict[str, Any]:
        by_id = {e.id: e for e in self.entries}
        rows = []
        for backup_id in self.ids():
            entry = by_id.get(backup_id)
            row = entry.to_dict(now) if entry else {"id": backup_id, "status": "copy only"}
            row["where"] = self.where(backup_id)
            rows.append(row)
        return {"backups": rows, "copies": [listing.to_dict() for listing in self.copies]}


def listing(stack: Stack) -> BackupListing:
    """The local backups, and each copy's snapshots (asked of the copies at once, each bounded
    by its ``connect_timeout``; one that does not answer is listed with why)."""
    result = BackupListing(store_of(stack).entries())
    copies = configured(stack)
    if not copies:
        return result
    records = read_records(stack.state_dir)

    def ask(spec: CopySpec) -> CopyListing:
        found = CopyListing(spec.name, record=records.get(spec.name, CopyRecord()))
        try:
            restic = restic_for(stack, spec)
            found.snapshots = restic.snapshots(stack.name, spec.connect_timeout)
        except ResticError as exc:
            found.problem = str(exc)
        return found

    with ThreadPoolExecutor(len(copies), thread_name_prefix="opskit-list") as pool:
        result.copies = list(pool.map(ask, copies))
    return result


# -- fetch -----------------------------------------------------------------------------------------


@dataclass
class Fetched:
    backup_id: str
    copy: str
    set_aside: Path | None = None  # the damaged local folder, kept under another name
    tried: list[str] = field(default_factory=list)  # copies that could not give it, and why


def missing_locally(stack: Stack, backup_id: str) -> bool:
    """``backup_id`` is not in the backups folder and copies are configured: fetch it."""
    _check_id(backup_id)
    return bool(configured(stack)) and not (store_of(stack).root / backup_id).is_dir()


def _check_id(backup_id: str) -> None:
    if parse_id_time(backup_id) is None:
        raise UsageError(
            f"{backup_id!r} is not a backup id (expected e.g. 20261124T030000Z or "
            "20261124T030000Z-tag; inv backup.list shows them)"
        )


def fetch(
    stack: Stack,
    backup_id: str,
    *,
    replace_damaged: bool = False,
    on_event: EventSink = ignore_events,
    stop: threading.Event | None = None,
) -> Fetched:
    """Bring ``backup_id`` back into the backups folder from the first copy that holds it
    intact (validated: seal, id, files, every role's checks). ``replace_damaged``: the local
    folder exists but fails validation; it is set aside, not deleted. Raises OpskitError
    naming every copy tried when none gives it."""
    copies = require_copies(stack)
    store = store_of(stack)
    _check_id(backup_id)
    with mutation(stack, "backup.fetch"), copies_lock(stack, "backup.fetch"):
        final = store.root / backup_id
        if final.is_dir() and not replace_damaged:
            return Fetched(backup_id, "local")
        tried: list[str] = []
        for spec in copies:
            label = f"copy {spec.name}"
            try:
                restic = restic_for(stack, spec, stop)
                on_event(Event(label, Phase.RUNNING, f"fetching {backup_id}"))
                with fetched_folder(stack, restic, spec, backup_id) as folder:
                    report = validate(stack, backup_id, folder=folder)
                    if not report.ok:
                        raise ResticError(
                            f"{label}: its {backup_id} is not intact: " + "; ".join(report.problems)
                        )
                    set_aside = _set_aside(final) if final.is_dir() else None
                    os.rename(folder, final)
                    fsync_dir(store.root)
                on_event(Event(label, Phase.DONE, f"{backup_id} fetched and validated"))
                return Fetched(backup_id, spec.name, set_aside, tried)
            except ResticError as exc:
                tried.append(str(exc))
                on_event(Event(label, Phase.FAILED, str(exc)))
        raise OpskitError(f"backup {backup_id}: no copy could give it: " + "; ".join(tried))


@contextlib.contextmanager
def fetched_folder(stack: Stack, restic: Restic, spec: CopySpec, backup_id: str) -> Iterator[Path]:
    """``backup_id`` restored from one copy into a private folder beside the backups (same
    file system: it can be renamed into place); removed at the end unless it was moved."""
    snapshots = [
        s for s in restic.snapshots(stack.name, spec.connect_timeout) if s.backup_id == backup_id
    ]
    if not snapshots:
        raise ResticError(f"copy {spec.name}: holds no backup {backup_id}")
    root = store_of(stack).root
    private_dir(root)
    scratch = Path(tempfile.mkdtemp(prefix=f".fetch-{backup_id}-", dir=root))
    try:
        restic.restore(snapshots[-1], scratch, spec.timeout)
        folder = scratch / backup_id
        if not folder.is_dir() or folder.is_symlink():
            raise ResticError(f"copy {spec.name}: its snapshot of {backup_id} holds no such folder")
        os.chmod(folder, 0o700)
        yield folder
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _set_aside(folder: Path) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    aside = folder.parent / f".damaged-{folder.name}-{stamp}"
    os.rename(folder, aside)
    return aside


# -- check -----------------------------------------------------------------------------------------


@dataclass
class CopyCheck:
    copy: str
    backup_id: str | None
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "copy": self.copy,
            "id": self.backup_id,
            "ok": self.ok,
            "problems": self.problems,
            "seconds": round(self.seconds, 3),
        }


def check(stack: Stack, backup_id: str | None = None) -> list[CopyCheck]:
    """Per copy: restic's ``check --read-data-subset`` (the repository's own structure and a
    share of its data re-read), then ``backup_id`` (default: the copy's newest) fetched into
    a scratch folder and validated as a local backup is. Nothing local changes."""
    reports = []
    for spec in require_copies(stack):
        began = time.monotonic()
        report = CopyCheck(spec.name, backup_id)
        try:
            with copies_lock(stack, "backup.validate --copies"):
                restic = restic_for(stack, spec)
                restic.check(spec.check_subset, spec.timeout)
                held = restic.snapshots(stack.name, spec.connect_timeout)
                chosen = backup_id or (held[-1].backup_id if held else None)
                report.backup_id = chosen
                if chosen is None:
                    report.problems.append(f"copy {spec.name}: holds no backup of {stack.name}")
                else:
                    with fetched_folder(stack, restic, spec, chosen) as folder:
                        found = validate(stack, chosen, folder=folder)
                        report.problems += [f"copy {spec.name}: {p}" for p in found.problems]
        except (ResticError, LockBusyError) as exc:
            report.problems.append(str(exc))
        report.seconds = time.monotonic() - began
        reports.append(report)
    return reports


# -- prune -----------------------------------------------------------------------------------------


@dataclass
class CopyPrune:
    copy: str
    keep: list[str] = field(default_factory=list)
    remove: list[str] = field(default_factory=list)
    problem: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "copy": self.copy,
            "keep": self.keep,
            "remove": self.remove,
            "problem": self.problem,
        }


def prune(stack: Stack, *, dry_run: bool = False) -> list[CopyPrune]:
    """Apply ``x-opskit.backups.keep`` to each copy's snapshots, as to the local folder (the
    same restic rules, over what that copy holds). A backup stored twice keeps its newest
    snapshot. restic forgets the others and prunes the data only they held."""
    policy = stack.config.backups_keep
    results = []
    for spec in configured(stack):
        outcome = CopyPrune(spec.name)
        try:
            with copies_lock(stack, "backup.prune"):
                restic = restic_for(stack, spec)
                snapshots = restic.snapshots(stack.name, spec.connect_timeout)
                newest = {s.backup_id: s for s in snapshots}  # oldest first: the last one wins
                doubles = [s for s in snapshots if newest[s.backup_id] is not s]
                decisions = apply_policy(policy, [(i, parse_id_time(i) or 0.0) for i in newest])
                outcome.keep = [d.id for d in decisions if d.keep]
                outcome.remove = [d.id for d in decisions if not d.keep]
                doomed = [newest[i] for i in outcome.remove] + doubles
                if not dry_run:
                    restic.forget(doomed, spec.timeout)
        except (ResticError, LockBusyError) as exc:
            outcome.problem = str(exc)
        results.append(outcome)
    return results
