"""Tasks backup, backup.validate, backup.list, backup.prune and restore.

Exit codes: 0 ok · 1 failed (a backup failed and nothing was kept; a validation found a
problem; a restore did not happen or was rolled back) · 2 bad usage or stack file · 4 a
restore failed and so did its rollback (the message names the safety backup) · 130 interrupted.
"""

from __future__ import annotations

import sys

from invoke import Exit, task

from opskit.results import result_json
from opskit.tasks import common

_HELP = {
    **common.COMMON_HELP,
    "tag": "a label for this backup, part of its id (letters, digits, . _ -)",
    "include_secrets": "keep secret values in the stack's .env and stack file copies",
    "json": "print the result as JSON",
    "dry_run": "say what would be done; change nothing",
}


def _help(*names: str, **extra: str) -> dict[str, str]:
    return common.help_for(_HELP, *names, **extra)


@task(
    klass=common.OpskitTask,
    iterable=["service"],
    help=_help(
        "service",
        "tag",
        "include_secrets",
        "json",
        "stack",
        "runtime",
        count_prefixes="also count Redis's keys per aws_masker: prefix (a second pass)",
        no_copy="do not send it to x-opskit.backups.copies now (inv backup.copy later)",
    ),
)
@common.handles_errors
def backup(
    c,
    service=None,
    tag=None,
    include_secrets=False,
    count_prefixes=False,
    no_copy=False,
    json=False,
    stack=None,
    runtime=None,
):
    """Back up Redis's data and Kong's and nginx's configuration into one verified folder,
    then send it to every copy (a copy that fails is retried later and alerted, the backup
    stays: exit 0)."""
    from opskit.console import Progress, print_lifecycle
    from opskit.errors import LockBusyError
    from opskit.ops import backup as backups
    from opskit.ops import copies
    from opskit.redact import Redactor

    names = common.services_option(service)
    loaded = common.load(c, stack, runtime)
    redact = Redactor(loaded.secrets())
    with (
        common.finishing_on_signals() as stop,
        Progress(redact, loaded.start_order(loaded.resolve(names))) as progress,
    ):
        try:
            result = backups.backup(
                loaded,
                names,
                tag=tag,
                include_secrets=include_secrets,
                on_event=progress,
                stop=stop,
                count_prefixes=count_prefixes,
            )
        except backups.BackupFailed as exc:
            result = exc.result
    copied, busy = None, None
    if result.ok and copies.configured(loaded) and not stop.is_set():
        copies.owe(loaded, result.backup_id)  # kept even if this process dies now
        if not no_copy:
            try:
                with Progress(redact, []) as progress, common.finishing_on_signals() as stop:
                    copied = copies.copy(loaded, [result.backup_id], on_event=progress, stop=stop)
                result.copies = copied
            except LockBusyError as exc:
                busy = str(exc)
    if json:
        print(result_json(result, redact))
    else:
        print_lifecycle(result, redact)
        if result.ok:
            secrets = " (WITH SECRETS)" if result.includes_secrets else ""
            print(f"backup {result.backup_id}{secrets}: {result.path}")
        else:
            print("backup failed: nothing was kept", file=sys.stderr)
        if copied is not None:
            _print_copies(copied, redact)
    if busy:
        print(
            f"copies: not sent now ({redact(busy)}); the backup is owed to every copy and goes "
            "with the next inv backup or inv backup.copy",
            file=sys.stderr,
        )
    if not result.ok:
        raise Exit(code=1)


def _print_copies(result, redact) -> None:
    for outcome in result.outcomes:
        what = outcome.backup_id or "-"
        if outcome.ok:
            print(f"copy {outcome.copy}: {what}: {redact(outcome.detail)}")
        else:
            owed = ", ".join(result.pending.get(outcome.copy, [])) or "nothing"
            print(
                f"copy {outcome.copy}: FAILED: {redact(outcome.detail)} — retried by the next "
                f"inv backup or inv backup.copy (owed: {owed})",
                file=sys.stderr,
            )


@task(
    name="copy",
    klass=common.OpskitTask,
    positional=["backup_id"],
    help=_help(
        "json",
        "stack",
        "runtime",
        backup_id="the backup to send (default: the newest, and whatever a copy is owed)",
        all="send every complete local backup a copy does not hold yet",
    ),
)
@common.handles_errors
def copy_(c, backup_id=None, all=False, json=False, stack=None, runtime=None):
    """Send backups to every restic repository of x-opskit.backups.copies (exit 1 when one
    failed; it stays owed and is retried next time)."""
    from opskit.console import Progress
    from opskit.ops import copies
    from opskit.redact import Redactor

    if backup_id and all:
        raise common.UsageError("backup.copy: a backup id or --all, not both")
    loaded = common.load(c, stack, runtime)
    redact = Redactor(loaded.secrets())
    with Progress(redact, []) as progress, common.finishing_on_signals() as stop:
        result = copies.copy(
            loaded,
            [backup_id] if backup_id else [],
            every_local=all,
            on_event=progress,
            stop=stop,
        )
    if json:
        print(result_json(result, redact))
    else:
        _print_copies(result, redact)
    if result.exit_code:
        raise Exit(code=result.exit_code)


@task(
    klass=common.OpskitTask,
    positional=["backup_id"],
    help=_help(
        "json",
        "stack",
        "runtime",
        backup_id="the backup to check (default: the newest)",
        all="check every backup",
        deep="also load each RDB into a throwaway redis-server and count its keys",
        copies="check every copy instead: restic check (a share of the data re-read), then "
        "the backup (default: the copy's newest) fetched and validated",
    ),
)
@common.handles_errors
def validate(
    c, backup_id=None, all=False, deep=False, copies=False, json=False, stack=None, runtime=None
):
    """Check a backup: every SHA-256, the RDB's CRC-64, Kong's YAML, nginx -t on the tree."""
    from opskit.ops import backup as backups
    from opskit.vocabulary import BackupState

    loaded = common.load(c, stack, runtime)
    if copies:
        _validate_copies(loaded, backup_id, all, deep, json)
        return
    entries = [e for e in backups.entries(loaded) if not e.id.startswith(".")]
    if all:
        ids = [e.id for e in entries]
    elif backup_id:
        ids = [backup_id]
    else:
        complete = [e.id for e in entries if e.state is BackupState.COMPLETE]
        if not complete:
            raise common.UsageError("no backup to validate (inv backup.list shows none)")
        ids = complete[-1:]
    reports = [backups.validate(loaded, i, deep=deep) for i in ids]
    if json:
        print(result_json(reports))
    else:
        for report in reports:
            if report.ok:
                how = "deep" if report.deep else "files, checksums and contents"
                if report.notes:
                    how = "files and checksums"
                print(f"{report.backup_id}: ok ({how}, {report.seconds:.2f}s)")
            for note in report.notes:
                print(f"{report.backup_id}: note: {note}")
            for problem in report.problems:
                print(f"{report.backup_id}: FAILED: {problem}")
    if not reports or any(not r.ok for r in reports):
        raise Exit(code=1)


def _validate_copies(loaded, backup_id, all, deep, json) -> None:
    from opskit.ops import copies
    from opskit.redact import Redactor

    if all or deep:
        raise common.UsageError("backup.validate --copies takes no --all or --deep")
    redact = Redactor(loaded.secrets())
    reports = copies.check(loaded, backup_id or None)
    if json:
        print(result_json(reports, redact))
    else:
        for report in reports:
            if report.ok:
                print(
                    f"copy {report.copy}: ok (restic check, {report.backup_id} fetched and "
                    f"validated, {report.seconds:.2f}s)"
                )
            for problem in report.problems:
                print(f"copy {report.copy}: FAILED: {redact(problem)}")
    if any(not r.ok for r in reports):
        raise Exit(code=1)


@task(
    klass=common.OpskitTask,
    positional=["backup_id"],
    help=_help("json", "stack", "runtime", backup_id="the backup to drill (default: the newest)"),
)
@common.handles_errors
def drill(c, backup_id=None, json=False, stack=None, runtime=None):
    """Restore a backup into throwaway instances (never the live stack) and check what came back."""
    from opskit.ops.drill import drill as run_drill
    from opskit.redact import Redactor

    loaded = common.load(c, stack, runtime)
    redact = Redactor(loaded.secrets())
    result = run_drill(loaded, backup_id or None)
    if json:
        print(result_json(result, redact))
    else:
        for name, figures in result.services.items():
            shown = ", ".join(
                f"{key} {value}" for key, value in figures.items() if key in ("keys", "expires")
            )
            state = "drilled" if figures.get("drilled") else f"skipped ({figures.get('why')})"
            print(f"{name}: {state}" + (f": {shown}" if shown else ""))
        for problem in result.problems:
            print(f"{result.backup_id}: FAILED: {redact(problem)}", file=sys.stderr)
        verdict = "restores" if result.ok else "does NOT restore"
        print(f"{result.backup_id}: {verdict} ({result.seconds:.2f}s)")
    if result.exit_code:
        raise Exit(code=result.exit_code)


@task(
    klass=common.OpskitTask,
    positional=["backup_id"],
    help=_help(
        "json",
        "stack",
        "runtime",
        backup_id="the backup to look into (default: the newest)",
        show_keys="print the biggest keys' names as stored (AWS ids in them are masked otherwise)",
    ),
)
@common.handles_errors
def inspect(c, backup_id=None, json=False, show_keys=False, stack=None, runtime=None):
    """What a backup's Redis holds — memory per prefix, TTLs, the biggest keys — from a copy."""
    from opskit.ops.drill import inspect as run_inspect
    from opskit.redact import Redactor

    loaded = common.load(c, stack, runtime)
    result = run_inspect(loaded, backup_id or None)
    redactor = Redactor(loaded.secrets(), mask_aws=not show_keys)
    if json or not sys.stdout.isatty():  # a table for a person, JSON for a pipe
        print(result_json(result, redactor))
        return
    _print_inspection(result, redactor)


def _print_inspection(result, redact) -> None:
    from opskit.console import Grid, print_grid
    from opskit.ops.backup import human_bytes

    for name, data in result.services.items():
        print(
            f"{name} in {result.backup_id}: {data['keys']} keys, "
            f"{human_bytes(data['memory_bytes'])}; {data['expiring_within_a_day']} expire "
            f"within a day ({result.seconds:.2f}s, from a throwaway copy)"
        )
        prefixes = Grid(("prefix", "keys", "memory"), right_aligned=frozenset({"keys", "memory"}))
        for prefix, group in data["prefixes"].items():
            prefixes.add_row(redact(prefix), str(group["keys"]), human_bytes(group["bytes"]))
        print_grid(prefixes)
        ttl = Grid(("TTL left", "keys"), right_aligned=frozenset({"keys"}))
        for bucket, count in data["ttl"].items():
            ttl.add_row(bucket, str(count))
        print_grid(ttl)
        biggest = Grid(("key", "memory", "TTL"), right_aligned=frozenset({"memory", "TTL"}))
        for entry in data["biggest"]:
            left = "-" if entry["ttl_seconds"] is None else f"{entry['ttl_seconds']}s"
            biggest.add_row(redact(entry["key"]), human_bytes(entry["bytes"]), left)
        print_grid(biggest)


@task(
    name="seal",
    klass=common.OpskitTask,
    positional=["backup_id"],
    help=_help("stack", "runtime", backup_id="the backup to vouch for"),
)
@common.handles_errors
def seal(c, backup_id=None, stack=None, runtime=None):
    """Vouch for a backup whose manifest is not sealed by this stack's key (made before
    sealing, or under a lost key): its files are checked against it, then it is sealed."""
    from opskit.ops import backup as backups

    if not backup_id:
        raise common.UsageError("backup.seal needs a backup id (inv backup.list shows them)")
    loaded = common.load(c, stack, runtime)
    vouched = backups.vouch(loaded, backup_id)
    manifest = vouched.manifest
    print(f"{backup_id}: was {vouched.was}")
    print(
        f"{backup_id}: sealed with this stack's key: {len(manifest.files)} files of "
        f"{', '.join(sorted(manifest.services))}, taken {manifest.stack_file} "
        f"({manifest.runtime}); a restore still writes only where the running stack says"
    )


@task(name="list", klass=common.OpskitTask, help=_help("json", "stack", "runtime"))
@common.handles_errors
def list_(c, json=False, stack=None, runtime=None):
    """The backups: id, age, size, services, status (incomplete ones too, never as complete),
    and with copies configured, where each exists and each copy's last success."""
    import time

    from opskit.ops import copies

    loaded = common.load(c, stack, runtime)
    listed = copies.listing(loaded)
    now = time.time()
    document = listed.to_dict(now)
    if json:
        from opskit.redact import Redactor

        print(result_json(listed, Redactor(loaded.secrets())))
        return
    from opskit.console import Grid, print_grid
    from opskit.ops.backup import human_bytes

    names = [c.name for c in listed.copies]
    grid = Grid(
        ("id", "age", "size", "services", "status", *(["where"] if names else [])),
        title=f"backups in {loaded.config.backups_dir.resolve()}",
    )
    for row in document["backups"]:
        if "age_seconds" not in row:  # only a copy holds it
            row.update(age_seconds=now - (_created(row["id"]) or now), size=None, services=[])
        status = row["status"] + (" (WITH SECRETS)" if row.get("includes_secrets") else "")
        if row.get("detail"):
            status += f": {row['detail']}"
        where = [place for place, present in row["where"].items() if present]
        grid.add_row(
            row["id"],
            _age(row["age_seconds"]),
            human_bytes(row["size"]) if row["size"] is not None else "-",
            ", ".join(row["services"]),
            status,
            *([", ".join(where) or "nowhere"] if names else []),
        )
    print_grid(grid)
    for listing in document["copies"]:
        print(_copy_line(listing, now))


def _created(backup_id: str) -> float | None:
    from opskit.backup.store import parse_id_time

    return parse_id_time(backup_id)


def _copy_line(listing: dict, now: float) -> str:
    success = listing["last_success"]
    last = f"last success {_age(now - success)} ago" if success else "no copy has succeeded yet"
    line = f"copy {listing['name']}: {listing['backups']} backup(s); {last}"
    if listing["problem"]:
        line += f"; cannot be listed now: {listing['problem']}"
    elif listing["last_ok"] is False:
        line += f"; last attempt FAILED: {listing['last_detail']}"
    if listing["pending"]:
        line += f"; owed: {', '.join(listing['pending'])}"
    return line


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{max(seconds, 0):.0f}s"


@task(klass=common.OpskitTask, help=_help("dry_run", "json", "stack", "runtime"))
@common.handles_errors
def prune(c, dry_run=False, json=False, stack=None, runtime=None):
    """Remove backups that x-opskit.backups.keep does not keep (restic's rules), and
    interrupted builds whose process is gone; then the same rules in every copy."""
    from opskit.ops import backup as backups
    from opskit.ops import copies
    from opskit.redact import Redactor

    loaded = common.load(c, stack, runtime)
    result = backups.prune(loaded, dry_run=dry_run)
    result.copies = copies.prune(loaded, dry_run=dry_run)  # the same rules, in every copy
    if json:
        print(result_json(result, Redactor(loaded.secrets())))
    else:
        verb = "would remove" if dry_run else "removed"
        print(f"policy: {result.policy}")
        for decision in result.decisions:
            if decision.keep:
                print(f"keep    {decision.id}  ({', '.join(decision.reasons)})")
            else:
                print(f"{'remove' if dry_run else 'removed'}  {decision.id}")
        for leftover in result.leftovers:
            print(f"{verb} interrupted build {leftover.id}")
        for copy in result.copies:
            if copy.problem:
                print(f"copy {copy.copy}: FAILED: {copy.problem}", file=sys.stderr)
                continue
            gone = ", ".join(copy.remove) or "nothing"
            print(f"copy {copy.copy}: keep {len(copy.keep)}; {verb}: {gone}")
    if result.exit_code:
        raise Exit(code=result.exit_code)


@task(
    klass=common.OpskitTask,
    iterable=["service"],
    positional=["backup_id"],
    help=_help(
        "service",
        "dry_run",
        "json",
        "stack",
        "runtime",
        backup_id="the backup to restore (inv backup.list)",
        yes="do not ask for confirmation (required when stdin is not a terminal)",
        deep="validate with a throwaway redis-server first",
        resume="finish a restore that was interrupted (killed) half-way",
        abort="undo a restore that was interrupted: put its safety backup back",
        without_safety_backup=(
            "the services' current data is gone (a lost Swarm node with its volume): take no "
            "safety backup first (docs/scaling.md)"
        ),
    ),
)
@common.handles_errors
def restore(
    c,
    backup_id=None,
    service=None,
    dry_run=False,
    yes=False,
    deep=False,
    resume=False,
    abort=False,
    json=False,
    stack=None,
    runtime=None,
    without_safety_backup=False,
):
    """Restore a backup: validate, safety backup, put back, verify; roll back on failure.
    --resume / --abort finish or undo one that was killed half-way."""
    from opskit.console import Progress
    from opskit.ops import restore as restores
    from opskit.redact import Redactor

    if resume and abort:
        raise common.UsageError("restore: --resume or --abort, not both")
    if (resume or abort) and (backup_id or service or dry_run):
        raise common.UsageError("restore --resume/--abort take no backup id, -s or --dry-run")
    if not backup_id and not (resume or abort):
        raise common.UsageError("restore needs a backup id (inv backup.list shows them)")
    names = common.services_option(service)
    loaded = common.load(c, stack, runtime)
    if not dry_run and not yes:
        if not sys.stdin.isatty():
            raise common.UsageError(
                "restore replaces the stack's data: pass --yes (stdin is not a terminal to ask)"
            )
        what = "finish the interrupted restore" if resume else f"restore {backup_id}"
        if abort:
            what = "undo the interrupted restore"
        answer = input(f"{what} in stack {loaded.name}, replacing its data? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("not restored")
            raise Exit(code=1)
    redact = Redactor(loaded.secrets())
    with (
        common.finishing_on_signals() as stop,
        Progress(redact, loaded.start_order(loaded.resolve(names))) as progress,
    ):
        if resume:
            result = restores.resume(loaded, on_event=progress, stop=stop)
        elif abort:
            result = restores.abort(loaded, on_event=progress)
        else:
            result = restores.restore(
                loaded,
                backup_id,
                names,
                dry_run=dry_run,
                deep=deep,
                on_event=progress,
                stop=stop,
                without_safety_backup=without_safety_backup,
            )
    if json:
        print(result_json(result, redact))
    else:
        for outcome in result.outcomes:
            print(f"{outcome.service}: {outcome.state.value}: {redact(outcome.detail)}")
        for outcome in result.rollback:
            print(f"rollback {outcome.service}: {outcome.state.value}: {redact(outcome.detail)}")
        stream = sys.stdout if result.exit_code == 0 else sys.stderr
        print(f"{result.state}: {redact(result.detail)} ({result.seconds:.2f}s)", file=stream)
    if result.exit_code:
        raise Exit(code=result.exit_code)


COLLECTIONS = [
    common.collection("backup", backup, copy_, validate, drill, inspect, list_, prune, seal),
    common.collection("restore", restore),
]
