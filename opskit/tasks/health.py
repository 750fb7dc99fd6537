"""Tasks health and smoke. Exit codes follow Nagios: 0 OK · 1 WARNING · 2 CRITICAL · 3 UNKNOWN
(3 also for a bad stack file, an unknown service or a bad flag: the check could not run)."""

from __future__ import annotations

from pathlib import Path

from invoke import Context, Exit, task

from opskit.tasks import common
from opskit.vocabulary import ExitCode

UNKNOWN_EXIT = ExitCode.UNKNOWN


def _write(path: Path, text: str) -> None:
    from opskit.files import atomic_write, private_dir

    private_dir(path.parent)
    atomic_write(path, text)


@task(
    klass=common.OpskitTask,
    iterable=["service"],
    help={
        **common.COMMON_HELP,
        "e2e": "also prove masking end to end (synthetic id through nginx → Kong → upstream)",
        "fail_secure": "with --e2e: stop Redis, expect 503 AWS_MASKER_1001, start Redis again "
        "(a drill under the stack lock, after the checks)",
        "allow_cost": "allow --e2e against the real Claude API (max_tokens 16)",
        "json": "print the report as JSON on stdout",
        "junit": "also write the report as JUnit XML to this path",
        "quiet": "print one summary line (for cron and Nagios)",
        "timeout": "per-check timeout in seconds (default 5, x-opskit.health.check_timeout)",
    },
)
@common.handles_errors(exit_code=UNKNOWN_EXIT)
def health(
    c: Context,
    service=None,
    stack=None,
    runtime=None,
    e2e=False,
    fail_secure=False,
    allow_cost=False,
    json=False,
    junit=None,
    quiet=False,
    timeout=None,
):
    """Check every service (or --service S) concurrently; Nagios exit codes."""
    import dataclasses

    from opskit.errors import UsageError
    from opskit.ops.health import run_health

    names = common.services_option(service)
    seconds = common.seconds_option("timeout", timeout)
    if fail_secure and not e2e:
        raise UsageError("--fail-secure needs --e2e")
    loaded = common.load(c, stack, runtime)
    settings = loaded.config.health
    if seconds is not None:
        settings = dataclasses.replace(settings, check_timeout=seconds)
    report = run_health(
        loaded, names, e2e=e2e, fail_secure=fail_secure, allow_cost=allow_cost, settings=settings
    )
    if junit:
        _write(Path(junit), report.to_junit())
    if json:
        print(report.to_json())
    elif quiet:
        print(report.one_line())
    else:
        from opskit.console import print_report

        print_report(report)
    if report.exit_code:
        raise Exit(code=report.exit_code)


@task(
    klass=common.OpskitTask,
    help={
        "stack": common.COMMON_HELP["stack"],
        "runtime": common.COMMON_HELP["runtime"],
        "report_dir": "where health.json and health.junit.xml go (default: reports)",
        "fail_secure": "also run the fail-secure drill (stops and restarts Redis)",
        "allow_cost": "allow the end-to-end check against the real Claude API",
    },
)
@common.handles_errors(exit_code=UNKNOWN_EXIT)
def smoke(c, stack=None, runtime=None, report_dir="reports", fail_secure=False, allow_cost=False):
    """For CI: start if needed, health with --e2e, JSON + JUnit reports, stop what it started."""
    from opskit.console import Progress, print_report
    from opskit.ops.smoke import smoke as run_smoke
    from opskit.redact import Redactor

    loaded = common.load(c, stack, runtime)
    with Progress(Redactor(loaded.secrets()), loaded.start_order()) as progress:
        result = run_smoke(
            loaded, fail_secure=fail_secure, allow_cost=allow_cost, on_event=progress
        )
    directory = Path(report_dir)
    _write(directory / "health.json", result.report.to_json() + "\n")
    _write(directory / "health.junit.xml", result.report.to_junit())
    print_report(result.report)
    started = ", ".join(result.started) or "nothing"
    print(f"smoke: started {started}; reports in {directory}/ (health.json, health.junit.xml)")
    if result.exit_code:
        raise Exit(code=result.exit_code)


COLLECTIONS = [common.collection("health", health), common.collection("smoke", smoke)]
