"""restore: put a backup back, or leave the stack exactly as it was.

Under the stack lock, in this order:

1. **validate** the backup's files for the chosen services (SHA-256, RDB CRC-64, configs);
   anything wrong refuses the restore with nothing changed;
2. **plan** per service (:class:`~opskit.services.capabilities.Restorable`): where its files
   go, and whether it must be stopped; a role that cannot restore here refuses now;
3. take a **safety backup** of the same services (tag ``pre-restore``);
4. **put back**, dependencies first: stop where the plan says so, place the files, bring the
   service up through the engine's ``ensure_ready``, load and verify;
5. on any failure, put the **safety backup** back the same way.

Every step is first written to the journal (``restore.json``, :mod:`opskit.backup.journal`),
so a restore killed half-way is found by the next ``status``, ``health``, ``recover`` or
``restore`` and finished by :func:`resume` or undone by :func:`abort`, each verified like a
restore.

The result says which state the stack is in, and so does the exit code: 0 restored; 1 not
restored and the stack as before (refused, or rolled back); 4 the rollback failed too — the
message says how to finish (``inv restore --abort``); 130 interrupted and rolled back.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from opskit.backup.artifacts import ArtifactReader
from opskit.backup.journal import JournalFile, RestoreJournal
from opskit.backup.manifest import MANIFEST, Manifest, ManifestError, written_by_same_kind
from opskit.errors import Interrupted, OpskitError, UsageError
from opskit.ops import backup as backups
from opskit.ops import copies
from opskit.ops.engine import (
    EventSink,
    StepResult,
    ensure_ready,
    ignore_events,
    mutation,
    walk,
)
from opskit.services.capabilities import Restorable, RestorePlan, Staged, StagingRestorable
from opskit.stack import Stack
from opskit.vocabulary import Direction, ExitCode, RestoreState, StepOutcome


@dataclass
class RestoreResult:
    backup_id: str
    state: str
    detail: str
    outcomes: list[StepResult] = field(default_factory=list)
    rollback: list[StepResult] = field(default_factory=list)
    safety_backup: str | None = None
    seconds: float = 0.0
    interrupted: bool = False  # SIGINT/SIGTERM arrived while it ran
    intact: bool = True  # False: refused because the backup's files are not what was written

    @property
    def ok(self) -> bool:
        return self.exit_code == ExitCode.OK

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.backup_id,
            "state": self.state,
            "detail": self.detail,
            "safety_backup": self.safety_backup,
            "interrupted": self.interrupted,
            "seconds": round(self.seconds, 3),
            "services": [outcome.to_dict() for outcome in self.outcomes],
            "rollback": [outcome.to_dict() for outcome in self.rollback],
        }

    @property
    def exit_code(self) -> int:
        if self.interrupted and self.state in (RestoreState.REFUSED, RestoreState.ROLLED_BACK):
            return Interrupted.exit_code
        if self.state in (RestoreState.RESTORED, RestoreState.PLANNED, RestoreState.ABORTED):
            return ExitCode.OK
        if self.state == RestoreState.INCONSISTENT:
            return ExitCode.INCONSISTENT
        return ExitCode.FAILED


def restore(
    stack: Stack,
    backup_id: str,
    services: Iterable[str] | None = None,
    *,
    dry_run: bool = False,
    deep: bool = False,
    on_event: EventSink = ignore_events,
    stop: threading.Event | None = None,
    without_safety_backup: bool = False,
) -> RestoreResult:
    """Restore ``services`` from ``backup_id`` under the stack lock. Once ``stop`` is set
    (SIGINT/SIGTERM) no further service begins; if any was restored, the safety backup puts it
    back — uninterruptibly — and the result says so (``interrupted``). Each step is journaled
    (:mod:`opskit.backup.journal`); an interrupted earlier restore refuses a new one.

    ``without_safety_backup`` is the operator saying the services' current data is gone (a
    Swarm node lost with Redis's volume, docs/scaling.md): there is nothing live to keep, so
    none is taken, and a failure has nothing to roll back to. Never the default: a service
    that is merely stopped still has its data, and a restore refuses rather than lose it."""
    began = time.monotonic()
    with mutation(stack, "restore"):
        pending = JournalFile(stack.state_dir).interrupted()
        if pending is not None and not dry_run:
            detail = f"refused: {pending.describe()}"
            result = RestoreResult(backup_id, RestoreState.REFUSED, detail)
        else:
            result = _restore_from_anywhere(
                stack, backup_id, services, dry_run, deep, on_event, stop, without_safety_backup
            )
    result.interrupted = stop is not None and stop.is_set()
    result.seconds = time.monotonic() - began
    return result


def _restore_from_anywhere(
    stack, backup_id, services, dry_run, deep, on_event, stop, without_safety=False
) -> RestoreResult:
    """From the backups folder; from a copy (fetched, validated, put in the folder) when the
    folder lost it; and again from a copy when the local one is damaged — found by the
    restore's own validation, which changed nothing."""
    store = backups.store_of(stack)
    fetched = None
    if copies.missing_locally(stack, backup_id):
        fetched = copies.fetch(stack, backup_id, on_event=on_event, stop=stop)
    path = store.path(backup_id)

    def attempt() -> RestoreResult:
        try:
            manifest = Manifest.read(path)
        except ManifestError as exc:
            return RestoreResult(backup_id, RestoreState.REFUSED, str(exc), intact=False)
        if manifest.id != backup_id:  # a sealed manifest of another backup, renamed
            detail = f"{path / MANIFEST}: holds backup {manifest.id}, not {backup_id}"
            return RestoreResult(backup_id, RestoreState.REFUSED, detail, intact=False)
        targets = _targets(stack, manifest, services)
        return _restore_locked(
            stack, path, manifest, targets, dry_run, deep, on_event, stop, without_safety
        )

    result = attempt()
    if not result.intact and fetched is None and copies.configured(stack):
        damaged = result.detail
        fetched = copies.fetch(stack, backup_id, replace_damaged=True, on_event=on_event, stop=stop)
        result = attempt()
        result.detail += (
            f" (the local backup was damaged — {damaged} — and was set aside as "
            f"{fetched.set_aside}; this one came from copy {fetched.copy})"
        )
    elif fetched is not None:
        result.detail += f" (fetched from copy {fetched.copy}: the backups folder lacked it)"
    return result


def interrupted(stack: Stack) -> str | None:
    """One line about a restore that was killed half-way, with the two ways out; or None."""
    pending = JournalFile(stack.state_dir).interrupted()
    return pending.describe() if pending is not None else None


def resume(
    stack: Stack, *, on_event: EventSink = ignore_events, stop: threading.Event | None = None
) -> RestoreResult:
    """Finish an interrupted restore: the same backup into the same services, every one put
    back again from the start (placing an RDB twice is harmless) and verified, against the
    safety backup it had already taken; a failure rolls back to that safety backup."""
    began = time.monotonic()
    with mutation(stack, "restore --resume"):
        journals = JournalFile(stack.state_dir)
        pending = journals.interrupted()
        if pending is None:
            raise UsageError("no interrupted restore to resume (inv status would say so)")
        path = backups.store_of(stack).path(pending.backup_id)
        manifest = Manifest.read(path)
        if pending.safety_backup is None:  # killed before anything changed: start over
            journals.clear()
            result = _restore_locked(
                stack, path, manifest, pending.services, False, False, on_event, stop
            )
        else:
            result = _resume_locked(stack, path, manifest, pending, on_event, stop)
    result.interrupted = stop is not None and stop.is_set()
    result.seconds = time.monotonic() - began
    return result


def abort(stack: Stack, *, on_event: EventSink = ignore_events) -> RestoreResult:
    """Undo an interrupted restore: its safety backup put back into every service it was
    restoring, verified like any restore (not interruptible: it is the way back)."""
    began = time.monotonic()
    with mutation(stack, "restore --abort"):
        journals = JournalFile(stack.state_dir)
        pending = journals.interrupted()
        if pending is None:
            raise UsageError("no interrupted restore to abort (inv status would say so)")
        removed = _discard_staged(stack, pending.services)
        if pending.safety_backup is None:
            journals.clear()
            detail = "the interrupted restore had changed nothing; its journal is cleared" + (
                f"; removed what it had staged: {', '.join(removed)}" if removed else ""
            )
            return RestoreResult(pending.backup_id, RestoreState.ABORTED, detail)
        journal = journals.begin(
            RestoreJournal(
                pending.backup_id,
                pending.services,
                safety_backup=pending.safety_backup,
                step=f"aborting: putting safety backup {pending.safety_backup} back",
            )
        )
        outcomes = _put_safety_back(stack, pending.safety_backup, pending.services, on_event)
        result = RestoreResult(
            pending.backup_id,
            RestoreState.ABORTED,
            "",
            rollback=outcomes,
            safety_backup=pending.safety_backup,
        )
        if all(o.ok for o in outcomes):
            journals.clear()
            result.detail = (
                f"aborted: safety backup {pending.safety_backup} is back in "
                f"{', '.join(pending.services)}, as before the interrupted restore"
            )
        else:
            journals.step(journal, "aborting failed")
            result.state = RestoreState.INCONSISTENT
            broken = _failures(outcomes)
            result.detail = f"the abort failed ({broken}); fix the cause, then inv restore --abort"
    result.seconds = time.monotonic() - began
    return result


def _targets(stack: Stack, manifest: Manifest, services: Iterable[str] | None) -> list[str]:
    wanted = list(services) if services is not None else sorted(manifest.services)
    for name in wanted:
        if name not in manifest.services:
            raise UsageError(f"backup {manifest.id} holds no service {name!r}")
        if name not in stack.config.services:
            raise UsageError(f"service {name!r} of backup {manifest.id} is not in this stack")
        role = stack.role(name)
        if not written_by_same_kind(manifest.services[name], role):
            raise UsageError(
                f"{name}: backed up as a {manifest.services[name].get('role')} service; "
                "the stack now gives it another role"
            )
    restorable = [n for n in wanted if isinstance(stack.role(n), Restorable)]
    if not restorable:
        raise UsageError(f"nothing in backup {manifest.id} can be restored into this stack")
    return stack.start_order(restorable)


def _restore_locked(
    stack, path, manifest, targets, dry_run, deep, on_event, stop=None, without_safety=False
) -> RestoreResult:
    backup_id = manifest.id
    unsealed = manifest.seal_problem(backups.seal_key(stack))
    if unsealed:  # first, and alone: nothing a changed manifest says is used, not even to plan
        detail = f"the backup is not intact, nothing changed: {path / MANIFEST}: {unsealed}"
        return RestoreResult(backup_id, RestoreState.REFUSED, detail, intact=False)
    reader = ArtifactReader(path, manifest, identities=backups.readable(stack, manifest, "restore"))
    try:
        plans = _plans(stack, reader, manifest, targets)
    except OpskitError as exc:
        return RestoreResult(backup_id, RestoreState.REFUSED, f"{exc}; nothing changed")
    if dry_run:
        check = backups.validate(stack, backup_id, deep=deep, services=targets)
        if not check.ok:
            detail = "the backup is not intact, nothing changed: " + "; ".join(check.problems)
            return RestoreResult(backup_id, RestoreState.REFUSED, detail, intact=False)
        outcomes = [StepResult(n, StepOutcome.SKIPPED, f"would {plans[n].detail}") for n in targets]
        return RestoreResult(backup_id, RestoreState.PLANNED, "dry run: nothing changed", outcomes)
    journals = JournalFile(stack.state_dir)
    journal = journals.begin(RestoreJournal(backup_id, list(targets), step="safety backup"))
    staged: dict[str, Staged] = {}
    try:
        # While the safety backup is taken, the backup's data is staged beside the live data
        # (an RDB decompressed next to Redis's file) and checked on the way, and the rest is
        # validated: none of it changes the stack, so a failed check still refuses with
        # nothing changed — and the safety backup it made is removed again.
        with ThreadPoolExecutor(1, thread_name_prefix="opskit-stage") as pool:
            checking = pool.submit(_stage_and_check, stack, reader, manifest, plans, deep, staged)
            safety, refusal = _safety_backup(stack, targets, stop, without_safety)
            check = checking.result()
        if safety is not None and not check.ok:
            _discard(stack, safety.backup_id)
        if (safety is None and not without_safety) or not check.ok:
            journals.clear()
            if check.ok:
                return RestoreResult(backup_id, RestoreState.REFUSED, refusal)
            detail = "the backup is not intact, nothing changed: " + "; ".join(check.problems)
            return RestoreResult(backup_id, RestoreState.REFUSED, detail, intact=False)
        journal.safety_backup = safety.backup_id if safety is not None else ""
        journals.step(journal, "safety backup taken" if safety else "no safety backup (asked)")
        plans = {name: replace(plan, staged=staged.get(name)) for name, plan in plans.items()}
        # The rollback in _finish gets no stop: a second Ctrl-C must not cut it short.
        outcomes = _put_back(stack, reader, manifest, plans, on_event, stop, (journals, journal))
        return _finish(stack, journals, journal, plans, outcomes, stop)
    finally:
        for data in staged.values():
            data.discard()


def _safety_backup(stack, targets, stop, without: bool):
    """(the safety backup, None) or (None, why there is none and nothing changed)."""
    if without:
        return None, ""
    try:
        taken = backups.backup(
            stack, targets, tag="pre-restore", include_secrets=False, stop=stop, quick=True
        )
    except Interrupted:
        return None, "interrupted: nothing changed"
    except OpskitError as exc:
        hint = (
            " (if its data is gone — a lost Swarm node with its volume — restore with "
            "--without-safety-backup: docs/scaling.md)"
            if "not running" in str(exc)
            else ""
        )
        return None, f"could not take the safety backup, nothing changed: {exc}{hint}"
    return taken, ""


def _stage_and_check(stack, reader, manifest, plans, deep, staged: dict) -> backups.Validation:
    """Stage what the roles can stage (into ``staged``), then validate the backup for the
    planned services without reading the staged files a second time. ``deep`` (an RDB loaded
    into a throwaway server) is validate's own: nothing is staged then."""
    checked: dict[str, list[str]] = {}
    for name, plan in plans.items() if not deep else ():
        role = stack.role(name)
        if not plan.needs_stop or not isinstance(role, StagingRestorable):
            continue
        try:
            data = role.stage_backup(reader.for_service(name), manifest.services[name], plan)
        except OpskitError as exc:
            checked[name] = [str(exc)]
            continue
        if data is not None:
            staged[name] = data
            checked[name] = list(data.problems)
    return backups.validate(stack, manifest.id, deep=deep, services=list(plans), checked=checked)


def _resume_locked(stack, path, manifest, pending: RestoreJournal, on_event, stop):
    backup_id = manifest.id
    check = backups.validate(stack, backup_id, services=pending.services)
    if not check.ok:
        detail = "the backup is not intact, nothing resumed: " + "; ".join(check.problems)
        return RestoreResult(backup_id, RestoreState.REFUSED, f"{detail}; {pending.describe()}")
    keys = backups.readable(stack, manifest, "restore --resume")
    reader = ArtifactReader(path, manifest, identities=keys)
    plans = _plans(stack, reader, manifest, pending.services)
    journals = JournalFile(stack.state_dir)
    journal = journals.begin(
        RestoreJournal(
            backup_id,
            pending.services,
            safety_backup=pending.safety_backup,
            step="resuming",
        )
    )
    outcomes = _put_back(stack, reader, manifest, plans, on_event, stop, (journals, journal))
    return _finish(stack, journals, journal, plans, outcomes, stop)


def _finish(stack, journals, journal, plans, outcomes, stop) -> RestoreResult:
    """After the put-back: done, or the safety backup put back into what was touched."""
    backup_id, safety_id = journal.backup_id, journal.safety_backup
    targets = list(plans)
    result = RestoreResult(backup_id, RestoreState.RESTORED, "", outcomes, safety_backup=safety_id)
    if all(o.ok for o in outcomes):
        journals.clear()
        kept = f"safety backup {safety_id}" if safety_id else "no safety backup (asked for)"
        result.detail = f"restored {', '.join(targets)}; {kept}"
        return result
    failed = _failures(outcomes)
    if stop is not None and stop.is_set():
        failed = f"interrupted; {failed}"
    touched = [o.service for o in outcomes if o.state is not StepOutcome.SKIPPED]
    if not touched and journal.step in ("safety backup taken", "resuming"):
        journals.clear()
        result.state = RestoreState.REFUSED
        result.detail = f"restore failed before any service was changed ({failed}): nothing changed"
        return result
    if not safety_id:  # --without-safety-backup: there was nothing live to go back to
        journals.clear()
        result.state = RestoreState.INCONSISTENT
        result.detail = (
            f"restore failed ({failed}) and there is no safety backup to roll back to "
            f"(--without-safety-backup): fix the cause, then restore again"
        )
        return result
    journals.step(journal, f"rolling back to safety backup {safety_id}")
    # The places of the failed restore's own plans, made while the services still ran: a
    # stopped service may no longer be able to say where its data lives (Redis's CONFIG GET).
    result.rollback = _put_safety_back(stack, safety_id, touched or targets, ignore_events, plans)
    if all(o.ok for o in result.rollback):
        journals.clear()
        result.state = RestoreState.ROLLED_BACK
        result.detail = (
            f"restore failed ({failed}); rolled back to safety backup {safety_id}: "
            f"{', '.join(touched or targets)} hold what they held before"
        )
    else:
        journals.step(journal, "rollback failed")
        result.state = RestoreState.INCONSISTENT
        broken = _failures(result.rollback)
        result.detail = (
            f"restore failed ({failed}) AND the rollback failed ({broken}); the stack is "
            f"neither as before nor restored: fix the cause, then inv restore --abort"
        )
    return result


def _failures(outcomes: list[StepResult]) -> str:
    """``service: why`` of each step that did not succeed, for one line."""
    return "; ".join(f"{o.service}: {o.detail}" for o in outcomes if not o.ok)


def _discard_staged(stack: Stack, services: list[str]) -> list[str]:
    """What an interrupted restore staged for ``services``, removed (best effort: a service
    that cannot say where its data lives now keeps it until the next restore stages)."""
    removed: list[str] = []
    for name in services:
        role = stack.role(name) if name in stack.config.services else None
        if isinstance(role, StagingRestorable):
            with contextlib.suppress(OpskitError):
                removed += role.discard_staged()
    return removed


def _discard(stack: Stack, backup_id: str) -> None:
    """Remove a safety backup no restore came to need."""
    store = backups.store_of(stack)
    for entry in store.entries():
        if entry.id == backup_id:
            store.remove(entry)


def _plans(stack, reader, manifest, targets) -> dict[str, RestorePlan]:
    return {
        name: stack.role(name).plan_restore(reader.for_service(name), manifest.services[name])
        for name in targets
    }


def _put_safety_back(stack, safety_id, services, on_event, plans=None) -> list[StepResult]:
    """The safety backup into ``services``, verified; with the given ``plans`` (where the
    failed restore put things) or planned now from the live stack."""
    safety_path = backups.store_of(stack).path(safety_id)
    safety_manifest = Manifest.read(safety_path)
    keys = backups.readable(stack, safety_manifest, "putting the safety backup back")
    safety_reader = ArtifactReader(safety_path, safety_manifest, identities=keys)
    if plans is None:
        plans = _plans(stack, safety_reader, safety_manifest, services)
    # Never what the failed restore staged: the safety backup's own data goes back.
    safety_plans = {name: replace(plans[name], staged=None) for name in services}
    return _put_back(stack, safety_reader, safety_manifest, safety_plans, on_event)


def _put_back(
    stack: Stack,
    reader: ArtifactReader,
    manifest: Manifest,
    plans: dict[str, RestorePlan],
    on_event: EventSink,
    stop: threading.Event | None = None,
    journal: tuple[JournalFile, RestoreJournal] | None = None,
) -> list[StepResult]:
    def note(step: str, done: str | None = None) -> None:
        if journal is not None:
            journal[0].step(journal[1], step, done)

    def step(name: str) -> StepResult:
        began = time.monotonic()
        role = stack.role(name)
        metadata = manifest.services[name]
        artifacts = reader.for_service(name)
        launch = None
        if plans[name].needs_stop:
            note(f"{name}: stopping it and placing the backup's data")
            launch = role.place_backup(artifacts, metadata, plans[name])
        note(f"{name}: starting it and loading the backup")
        ready = ensure_ready(stack, name, emit=on_event, launch=launch)
        if not ready.ok:
            return StepResult(name, StepOutcome.FAILED, ready.detail, time.monotonic() - began)
        verdict = role.apply_backup(artifacts, metadata, plans[name])
        state = StepOutcome.DONE if verdict.ok else StepOutcome.FAILED
        if verdict.ok:
            note(f"{name}: restored", done=name)
        return StepResult(name, state, verdict.detail, time.monotonic() - began)

    return walk(
        stack,
        list(plans),
        step,
        direction=Direction.DEPENDENCIES_FIRST,
        emit=on_event,
        skipped="not restored: {} failed first",
        stop=stop,
    )
