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

The result says which state the stack is in, and so does the exit code: 0 restored; 1 not
restored and the stack as before (refused, or rolled back); 4 the rollback failed too — the
message names the safety backup to restore by hand.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from opskit.backup.artifacts import ArtifactReader
from opskit.backup.manifest import Manifest, written_by_same_kind
from opskit.errors import Interrupted, OpskitError, UsageError
from opskit.ops import backup as backups
from opskit.ops.engine import (
    EventSink,
    StepResult,
    ensure_ready,
    ignore_events,
    mutation,
    walk,
)
from opskit.services.capabilities import Restorable, RestorePlan
from opskit.stack import Stack
from opskit.vocabulary import Direction, ExitCode, StepOutcome


class RestoreState:
    RESTORED = "restored"
    PLANNED = "planned"  # --dry-run
    REFUSED = "refused"  # nothing changed
    ROLLED_BACK = "rolled back"  # failed, and the safety backup is back
    INCONSISTENT = "inconsistent"  # failed, and so did the rollback


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

    @property
    def exit_code(self) -> int:
        if self.interrupted and self.state in (RestoreState.REFUSED, RestoreState.ROLLED_BACK):
            return Interrupted.exit_code
        if self.state in (RestoreState.RESTORED, RestoreState.PLANNED):
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
) -> RestoreResult:
    """Restore ``services`` from ``backup_id`` under the stack lock. Once ``stop`` is set
    (SIGINT/SIGTERM) no further service begins; if any was restored, the safety backup puts it
    back — uninterruptibly — and the result says so (``interrupted``)."""
    began = time.monotonic()
    store = backups.store_of(stack)
    path = store.path(backup_id)
    with mutation(stack, "restore"):
        manifest = Manifest.read(path)
        targets = _targets(stack, manifest, services)
        result = _restore_locked(stack, path, manifest, targets, dry_run, deep, on_event, stop)
    result.interrupted = stop is not None and stop.is_set()
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
    stack, path, manifest, targets, dry_run, deep, on_event, stop=None
) -> RestoreResult:
    backup_id = manifest.id
    check = backups.validate(stack, backup_id, deep=deep, services=targets)
    if not check.ok:
        detail = "the backup is not intact, nothing changed: " + "; ".join(check.problems)
        return RestoreResult(backup_id, RestoreState.REFUSED, detail)
    reader = ArtifactReader(path, manifest)
    plans: dict[str, RestorePlan] = {}
    for name in targets:
        try:
            plans[name] = stack.role(name).plan_restore(
                reader.for_service(name), manifest.services[name]
            )
        except OpskitError as exc:
            return RestoreResult(backup_id, RestoreState.REFUSED, f"{exc}; nothing changed")
    if dry_run:
        outcomes = [StepResult(n, StepOutcome.SKIPPED, f"would {plans[n].detail}") for n in targets]
        return RestoreResult(backup_id, RestoreState.PLANNED, "dry run: nothing changed", outcomes)
    try:
        safety = backups.backup(stack, targets, tag="pre-restore", include_secrets=False, stop=stop)
    except Interrupted:
        return RestoreResult(backup_id, RestoreState.REFUSED, "interrupted: nothing changed")
    except OpskitError as exc:
        detail = f"could not take the safety backup, nothing changed: {exc}"
        return RestoreResult(backup_id, RestoreState.REFUSED, detail)
    # The rollback below gets no stop: a second Ctrl-C must not cut it short.
    outcomes = _put_back(stack, reader, manifest, plans, on_event, stop)
    result = RestoreResult(
        backup_id, RestoreState.RESTORED, "", outcomes, safety_backup=safety.backup_id
    )
    if all(o.ok for o in outcomes):
        result.detail = f"restored {', '.join(targets)}; safety backup {safety.backup_id}"
        return result
    failed = "; ".join(f"{o.service}: {o.detail}" for o in outcomes if not o.ok)
    if stop is not None and stop.is_set():
        failed = f"interrupted; {failed}"
    touched = [o.service for o in outcomes if o.state is not StepOutcome.SKIPPED]
    if not touched:
        result.state = RestoreState.REFUSED
        result.detail = f"restore failed before any service was changed ({failed}): nothing changed"
        return result
    safety_path = backups.store_of(stack).path(safety.backup_id)
    safety_manifest = Manifest.read(safety_path)
    safety_reader = ArtifactReader(safety_path, safety_manifest)
    # The same places as the failed restore's, planned while the services still ran: a
    # stopped service may no longer be able to say where its data lives (Redis's CONFIG GET).
    safety_plans = {name: plans[name] for name in touched}
    result.rollback = _put_back(stack, safety_reader, safety_manifest, safety_plans, on_event)
    if all(o.ok for o in result.rollback):
        result.state = RestoreState.ROLLED_BACK
        result.detail = (
            f"restore failed ({failed}); rolled back to safety backup {safety.backup_id}: "
            f"{', '.join(touched)} hold what they held before"
        )
    else:
        result.state = RestoreState.INCONSISTENT
        broken = "; ".join(f"{o.service}: {o.detail}" for o in result.rollback if not o.ok)
        result.detail = (
            f"restore failed ({failed}) AND the rollback failed ({broken}); the stack is "
            f"neither as before nor restored: fix the cause, then inv restore {safety.backup_id}"
        )
    return result


def _put_back(
    stack: Stack,
    reader: ArtifactReader,
    manifest: Manifest,
    plans: dict[str, RestorePlan],
    on_event: EventSink,
    stop: threading.Event | None = None,
) -> list[StepResult]:
    def step(name: str) -> StepResult:
        began = time.monotonic()
        role = stack.role(name)
        metadata = manifest.services[name]
        artifacts = reader.for_service(name)
        if plans[name].needs_stop:
            role.place_backup(artifacts, metadata, plans[name])
        ready = ensure_ready(stack, name, emit=on_event)
        if not ready.ok:
            return StepResult(name, StepOutcome.FAILED, ready.detail, time.monotonic() - began)
        verdict = role.apply_backup(artifacts, metadata, plans[name])
        state = StepOutcome.DONE if verdict.ok else StepOutcome.FAILED
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
