"""Task reload: new configuration without a restart, where the role can (nginx, Kong).

Exit codes: 0 reloaded or nothing to do · 1 a reload failed · 2 bad config/usage.
"""

from __future__ import annotations

from invoke import Exit, task

from opskit.tasks import common


@task(
    klass=common.OpskitTask,
    iterable=["service"],
    help=common.COMMON_HELP,
)
@common.handles_errors
def reload(c, service=None, stack=None, runtime=None):
    """Validate and load new configuration (nginx -t + HUP, Kong POST /config); no restart."""
    from opskit.console import Progress, print_lifecycle
    from opskit.ops.reload import reload as run_reload
    from opskit.redact import Redactor

    names = common.services_option(service)
    loaded = common.load(c, stack, runtime)
    redact = Redactor(loaded.secrets())
    with Progress(redact, loaded.start_order(loaded.resolve(names))) as progress:
        result = run_reload(loaded, names, on_event=progress)
    print_lifecycle(result, redact)
    if result.exit_code:
        raise Exit(code=result.exit_code)


COLLECTIONS = [common.collection("reload", reload)]
