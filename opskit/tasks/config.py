"""Task reload: new configuration without a restart, where the role can (nginx, Kong).

Exit codes: 0 reloaded or nothing to do · 1 a reload failed · 2 bad config/usage.
"""

from __future__ import annotations

from invoke import Exit, task

from opskit.tasks.common import (
    HELP_RUNTIME,
    HELP_SERVICE,
    HELP_STACK,
    OpskitTask,
    collection,
    handles_errors,
    load,
    services_option,
)


@task(
    klass=OpskitTask,
    iterable=["service"],
    help={"stack": HELP_STACK, "runtime": HELP_RUNTIME, "service": HELP_SERVICE},
)
@handles_errors
def reload(c, service=None, stack=None, runtime=None):
    """Validate and load new configuration (nginx -t + HUP, Kong POST /config); no restart."""
    from opskit.console import Progress, print_lifecycle
    from opskit.ops.reload import reload as run_reload
    from opskit.redact import Redactor

    names = services_option(service)
    loaded = load(c, stack, runtime)
    redact = Redactor(loaded.secrets())
    with Progress(redact, loaded.start_order(loaded.resolve(names))) as progress:
        result = run_reload(loaded, names, on_event=progress)
    print_lifecycle(result, redact)
    if result.exit_code:
        raise Exit(code=result.exit_code)


COLLECTIONS = [collection("reload", reload)]
