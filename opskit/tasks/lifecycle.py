"""Tasks start, stop, restart and status.

Exit codes: 0 ok · 1 a service failed (or, for status, is not running) · 2 bad config/usage.
"""

from __future__ import annotations

import sys

from invoke import Context, Exit, task

from opskit.tasks import common

_COMMON_HELP = common.COMMON_HELP


def _run(c: Context, action: str, service, stack, runtime, **options) -> None:
    from opskit.console import Progress, print_lifecycle
    from opskit.ops import lifecycle
    from opskit.redact import Redactor

    names = common.services_option(service)
    loaded = common.load(c, stack, runtime)
    redact = Redactor(loaded.secrets())
    resolved = loaded.resolve(names)
    shown = loaded.start_order(
        loaded.with_dependents(resolved)
        if action != "start"
        else loaded.with_dependencies(resolved)
    )
    if action == "stop":
        shown.reverse()
    with Progress(redact, shown) as progress:
        result = getattr(lifecycle, action)(loaded, names, on_event=progress, **options)
    if action == "start" and result.nothing_to_do:
        print("opskit: every requested service is already running and ready; nothing to start")
    elif action == "stop" and result.nothing_to_do:
        print("opskit: nothing was running; nothing to stop")
    else:
        print_lifecycle(result, redact)
    if result.exit_code:
        raise Exit(code=result.exit_code)


@task(
    klass=common.OpskitTask,
    iterable=["service"],
    help={
        **_COMMON_HELP,
        "rollback": "stop what this run started if a service fails",
        "timeout": "readiness timeout per service, seconds (default: healthcheck, else 60)",
    },
)
@common.handles_errors
def start(c, service=None, stack=None, runtime=None, rollback=False, timeout=None):
    """Start services and their dependencies in order, each gated on readiness."""
    seconds = common.seconds_option("timeout", timeout)
    _run(c, "start", service, stack, runtime, rollback=rollback, timeout=seconds)


@task(klass=common.OpskitTask, iterable=["service"], help=_COMMON_HELP)
@common.handles_errors
def stop(c, service=None, stack=None, runtime=None):
    """Stop services and everything that depends on them, dependents first."""
    _run(c, "stop", service, stack, runtime)


@task(
    klass=common.OpskitTask,
    iterable=["service"],
    help={**_COMMON_HELP, "timeout": "readiness timeout in seconds"},
)
@common.handles_errors
def restart(c, service=None, stack=None, runtime=None, timeout=None):
    """Stop dependents, restart the service, start the dependents again (one locked run)."""
    seconds = common.seconds_option("timeout", timeout)
    _run(c, "restart", service, stack, runtime, timeout=seconds)


@task(klass=common.OpskitTask, iterable=["service"], help={**_COMMON_HELP, "json": "print JSON"})
@common.handles_errors
def status(c, service=None, stack=None, runtime=None, json=False):
    """Runtime state of every service: running / exited(code) / absent, pid, uptime."""
    from opskit.console import print_status
    from opskit.ops import lifecycle
    from opskit.results import result_json

    names = common.services_option(service)
    loaded = common.load(c, stack, runtime)
    result = lifecycle.status(loaded, names)
    if json:
        print(result_json(result))
    else:
        print_status(result)
    if result.interrupted_restore:
        print(f"opskit: {result.interrupted_restore}", file=sys.stderr)
    if result.exit_code:
        raise Exit(code=result.exit_code)


COLLECTIONS = [
    common.collection("start", start),
    common.collection("stop", stop),
    common.collection("restart", restart),
    common.collection("status", status),
]
