"""What every task does: find the stack file, load it, and turn errors into exit codes."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from invoke import Context, Exit

if TYPE_CHECKING:
    from opskit.stack import Stack

HELP_STACK = "stack file (default: $OPSKIT_STACK, then invoke config opskit.stack)"
HELP_RUNTIME = "process or docker (overrides x-opskit.runtime and $OPSKIT_RUNTIME)"
HELP_SERVICE = "limit to this service (repeatable)"


def stack_path(c: Context, stack: str | None) -> Path:
    """``--stack``, then ``$OPSKIT_STACK``, then ``opskit.stack`` from invoke config.

    A relative path from invoke config is resolved against the folder of that config (the
    project's tasks.py), so ``inv`` works from any working directory inside the project.
    """
    if stack:
        return Path(stack)
    if os.environ.get("OPSKIT_STACK"):
        return Path(os.environ["OPSKIT_STACK"])
    configured = c.config.get("opskit", {}).get("stack")
    if not configured:
        from opskit.errors import UsageError

        raise UsageError("no stack file: pass --stack, set OPSKIT_STACK, or set opskit.stack")
    path = Path(configured)
    prefix = getattr(c.config, "_project_prefix", None)
    if not path.is_absolute() and prefix:
        path = Path(prefix) / path
    return path


def load(c: Context, stack: str | None, runtime: str | None) -> Stack:
    from opskit.stack import load_stack

    runtime = runtime or c.config.get("opskit", {}).get("runtime")
    return load_stack(stack_path(c, stack), runtime=runtime)


def handles_errors(
    task_body: Callable[..., Any] | None = None, *, exit_code: int | None = None
) -> Callable[..., Any]:
    """Turn an OpskitError into its one-line message on stderr and its exit code.

    ``exit_code`` replaces the error's own code: health checks report every failure to run as
    Nagios UNKNOWN (3), whatever its cause.
    """
    if task_body is None:
        return functools.partial(handles_errors, exit_code=exit_code)

    @functools.wraps(task_body)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from opskit.errors import OpskitError

        try:
            return task_body(*args, **kwargs)
        except OpskitError as exc:
            print(f"opskit: {exc}", file=sys.stderr, flush=True)
            raise Exit(code=exit_code if exit_code is not None else exc.exit_code) from None
        except KeyboardInterrupt:
            print("opskit: interrupted", file=sys.stderr, flush=True)
            raise Exit(code=130) from None

    return wrapper
