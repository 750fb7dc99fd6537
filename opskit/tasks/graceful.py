"""Task graceful-restart: new configuration or workers without dropping a request.

Exit codes: 0 every service restarted gracefully (or, with no --service, left running because
it cannot be restarted without downtime) · 1 a restart failed or was refused · 2 usage.
"""

from __future__ import annotations

from invoke import Exit, task

from opskit.tasks import common


@task(
    klass=common.OpskitTask,
    name="graceful-restart",
    iterable=["service"],
    help={
        **common.COMMON_HELP,
        "allow_downtime": "restart services that cannot restart gracefully anyway (Redis: "
        "SHUTDOWN SAVE, start, wait ready)",
    },
)
@common.handles_errors
def graceful_restart(c, service=None, allow_downtime=False, stack=None, runtime=None):
    """nginx -t + HUP with new workers verified; Kong POST /config + ready + hash verified."""
    from opskit.console import Progress, print_lifecycle
    from opskit.ops.graceful import graceful_restart as run
    from opskit.redact import Redactor

    names = common.services_option(service)
    loaded = common.load(c, stack, runtime)
    redact = Redactor(loaded.secrets())
    with Progress(redact, loaded.start_order(loaded.resolve(names))) as progress:
        result = run(loaded, names, allow_downtime=allow_downtime, on_event=progress)
    print_lifecycle(result, redact)
    if result.exit_code:
        raise Exit(code=result.exit_code)


COLLECTIONS = [common.collection("graceful-restart", graceful_restart)]
