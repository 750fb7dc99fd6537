"""Tasks kong.validate, kong.diff, kong.apply, kong.history and kong.rollback.

Without FILE they work on the declarative file Kong loads at start (rendered first when opskit
renders it). Exit codes: 0 ok (for diff: no difference) · 1 invalid, a difference (diff), or
the apply/rollback failed and Kong keeps what it ran · 2 bad usage or stack file.
"""

from __future__ import annotations

import sys
import time

from invoke import Exit, task

from opskit.results import result_json
from opskit.tasks import common

_HELP = {
    "stack": common.COMMON_HELP["stack"],
    "runtime": common.COMMON_HELP["runtime"],
    "file": "a declarative file (default: the one Kong loads at start)",
    "json": "print the result as JSON",
    "memory_only": "change only Kong's running memory: its next start or HUP loads its "
    "declarative file again (kong.config_drift warns until then)",
}


def _help(*names: str, **extra: str) -> dict[str, str]:
    return common.help_for(_HELP, *names, **extra)


@task(klass=common.OpskitTask, positional=["file"], help=_help("file", "json", "stack", "runtime"))
@common.handles_errors
def validate(c, file=None, json=False, stack=None, runtime=None):
    """Check a declarative config as Kong would: format, entities, references, plugin fields."""
    from opskit.ops import declarative

    loaded = common.load(c, stack, runtime)
    doc, findings = declarative.check(loaded, file or None)
    if json:
        print(result_json(declarative.ConfigCheck(doc, findings), indent=None))
    else:
        for problem in findings.problems:
            print(f"{doc.source}: {problem}")
        for warning in findings.warnings:
            print(f"{doc.source}: warning: {warning}")
        if findings.parsed_by:
            print(f"{doc.source}: {findings.parsed_by}")
        count = len(findings.problems)
        verdict = "valid" if findings.ok else f"INVALID ({count} problem{'s' * (count != 1)})"
        print(f"{doc.source}: {verdict}; md5 {doc.md5[:12]}")
    if not findings.ok:
        raise Exit(code=1)


@task(klass=common.OpskitTask, positional=["file"], help=_help("file", "stack", "runtime"))
@common.handles_errors
def diff(c, file=None, stack=None, runtime=None):
    """What would change: Kong's running config against FILE, ids/defaults/order left out."""
    from opskit.ops import declarative

    loaded = common.load(c, stack, runtime)
    doc, lines = declarative.compare(loaded, file or None)
    if not lines:
        print(f"no difference: Kong runs what {doc.source} says")
        return
    for line in lines:
        print(line)
    raise Exit(code=1)


@task(
    klass=common.OpskitTask,
    positional=["file"],
    help=_help("file", "memory_only", "json", "stack", "runtime"),
)
@common.handles_errors
def apply(c, file=None, memory_only=False, json=False, stack=None, runtime=None):
    """Validate, POST /config (429 retried), verify configuration_hash, keep it in the history,
    and make it the file Kong loads at start."""
    from opskit.ops import declarative
    from opskit.redact import Redactor

    loaded = common.load(c, stack, runtime)
    result = declarative.apply(loaded, file or None, memory_only=memory_only)
    _report(result, Redactor(loaded.secrets()), json)


@task(
    klass=common.OpskitTask,
    help=_help(
        "memory_only",
        "json",
        "stack",
        "runtime",
        to="the history number to go back to (default: the one before what runs)",
    ),
)
@common.handles_errors
def rollback(c, to=None, memory_only=False, json=False, stack=None, runtime=None):
    """Apply an earlier config from the history, byte for byte, and verify its hash."""
    from opskit.ops import declarative
    from opskit.redact import Redactor

    number = None
    if to is not None:
        try:
            number = int(to)
        except ValueError:
            raise common.UsageError(f"--to: expected a history number, got {to!r}") from None
    loaded = common.load(c, stack, runtime)
    result = declarative.rollback(loaded, number, memory_only=memory_only)
    _report(result, Redactor(loaded.secrets()), json)


@task(klass=common.OpskitTask, help=_help("json", "stack", "runtime"))
@common.handles_errors
def history(c, json=False, stack=None, runtime=None):
    """Every config opskit applied: number, time, md5, source; the running one marked."""
    from opskit.ops import declarative

    loaded = common.load(c, stack, runtime)
    entries, running = declarative.history(loaded)
    if json:
        print(result_json(declarative.History(entries, running), indent=None))
        return
    if not entries:
        print("no config applied by opskit yet (inv kong.apply keeps each one)")
    for entry in entries:
        mark = "*" if entry.md5 == running else " "
        when = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(entry.at))
        print(
            f"{mark} #{entry.number:<4} {when}  {entry.md5[:12]}  {entry.size:>7} B  {entry.source}"
        )
    if running and all(e.md5 != running for e in entries):
        print(f"  Kong runs {running[:12]}, which is not in this history")


@task(
    klass=common.OpskitTask,
    iterable=["set", "stage"],
    help=_help(
        "memory_only",
        "json",
        "stack",
        "runtime",
        plugin="the plugin whose settings change (default aws-masker)",
        set="KEY=VALUE: one stage's setting (repeatable: one stage with all of them)",
        stage="KEY=VALUE[,KEY=VALUE…]: a stage (repeatable, in order; settings accumulate)",
        soak="seconds each stage is watched before the next (default 30)",
        max_error_rate="the 5xx share that trips a stage (default 0.01)",
        max_p95="the p95 latency in seconds that trips a stage (default 2)",
    ),
)
@common.handles_errors
def rollout(
    c,
    plugin="aws-masker",
    set=None,
    stage=None,
    soak=None,
    max_error_rate=None,
    max_p95=None,
    memory_only=False,
    json=False,
    stack=None,
    runtime=None,
):
    """Change a plugin's settings stage by stage, each watched by guards; roll back on a trip.
    The last good config is then made the file Kong loads at start (unless --memory-only)."""
    from opskit.ops.rollout import Guards
    from opskit.ops.rollout import rollout as run
    from opskit.vocabulary import StageOutcome

    stages = [_settings(item, "--stage") for item in stage or []]
    if set:
        stages.append(_settings(",".join(str(item) for item in set), "--set"))
    if not stages:
        raise common.UsageError("kong.rollout needs --set KEY=VALUE or --stage KEY=VALUE,…")
    guards = Guards(
        soak=common.seconds_option("soak", soak) or 30.0,
        max_error_rate=_fraction(max_error_rate),
        max_p95=common.seconds_option("max-p95", max_p95) or 2.0,
    )
    loaded = common.load(c, stack, runtime)

    def show(report) -> None:
        if not json:
            print(_stage_line(report), flush=True)

    def note(text: str) -> None:
        if not json:
            print(f"note: {text}", flush=True)

    with common.finishing_on_signals() as stop:
        result = run(
            loaded,
            plugin,
            stages,
            guards,
            on_stage=show,
            on_note=note,
            stop=stop,
            memory_only=memory_only,
        )
    if json:
        print(result_json(result, indent=None))
    else:
        for report in result.stages:
            if report.outcome is StageOutcome.FAILED:  # never reached on_stage
                print(_stage_line(report))
        if result.restored is not None:
            print(
                f"rolled back: config #{result.restored.number} ({result.restored.md5[:12]}) "
                "runs again"
            )
        _say_persisted(result.persisted)
        print("rollout: complete" if result.ok else "rollout: NOT complete")
    if not result.ok:
        raise Exit(code=1)


def _settings(text: str, flag: str) -> dict:
    import yaml

    settings = {}
    for part in str(text).split(","):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise common.UsageError(f"{flag}: expected KEY=VALUE, got {part!r}")
        settings[key.strip()] = yaml.safe_load(value.strip()) if value.strip() else ""
    return settings


def _fraction(value) -> float:
    if value is None:
        return 0.01
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not 0 <= number <= 1:
        raise common.UsageError(f"--max-error-rate: expected a fraction 0..1, got {value!r}")
    return number


def _stage_line(report) -> str:
    p95 = f"{report.p95 * 1000:.0f} ms" if report.p95 is not None else "-"
    settings = ", ".join(f"{k}={v}" for k, v in report.settings.items())
    return (
        f"stage {report.number} ({settings}): {report.verdict} — {report.requests} requests, "
        f"{report.error_rate:.1%} 5xx, p95 {p95}, {report.events} masking events, "
        f"hash {report.applied[:12] or '-'}"
    )


def _report(result, redact, json: bool) -> None:
    if json:
        print(result_json(result, redact, indent=None))
    else:
        for problem in result.findings.problems:
            print(f"problem: {problem}")
        for warning in result.findings.warnings:
            print(f"warning: {warning}")
        print(redact(result.detail), file=sys.stdout if result.ok else sys.stderr)
        if result.ok:
            _say_persisted(result.persisted, redact)
            if result.persisted is None and result.file_differs:
                print(
                    "WARNING: memory only: Kong's declarative file holds other bytes, and its "
                    "next start or HUP loads them again (kong.config_drift warns until then)",
                    file=sys.stderr,
                )
    if not result.ok:
        raise Exit(code=1)


def _say_persisted(verdict, redact=str) -> None:
    """Where the config now lives for Kong's next start — or, loudly, that it does not."""
    if verdict is None:
        return
    if verdict.ok:
        print(f"kept for restarts: {redact(verdict.detail)}")
    else:
        print(
            f"WARNING: NOT kept for restarts: {redact(verdict.detail)} "
            "(kong.config_drift warns until the two agree)",
            file=sys.stderr,
        )


def _namespace():
    """``inv kong.<task>`` — with no default task: a bare ``kong`` must stay free to be a
    service name after ``--service`` (``inv health -s kong``), which invoke would otherwise
    find ambiguous."""
    from invoke import Collection

    tasks = Collection("kong")  # the CLI namespace the operators type, not a role test
    for each in (validate, diff, apply, history, rollback, rollout):
        tasks.add_task(each)
    return tasks


COLLECTIONS = [_namespace()]
