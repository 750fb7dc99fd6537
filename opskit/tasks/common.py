"""What every task shares: its Task class, its flags, the stack file, and exit codes.

- :class:`OpskitTask` gives every task the same short flags (:data:`SHORT_FLAGS`: ``-s`` is
  ``--service`` everywhere) instead of invoke's first-free-letter guess, and makes a bare
  ``--service`` (no name after it) an error instead of invoke's silent empty list — which meant
  "all" and once stopped a whole stack.
- :func:`services_option` and :func:`seconds_option` turn raw flag values into clean ones or
  one-line UsageErrors; :func:`handles_errors` turns any OpskitError into its line on stderr
  and the task's exit code (``ExitCode`` in :mod:`opskit.vocabulary`).
- :func:`finishing_on_signals` is how a long-running task (a rollout, a watcher, a server)
  learns of Ctrl-C or SIGTERM: an event it checks, with the old handlers put back after.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from invoke import Context, Exit, Task

from opskit.errors import UsageError
from opskit.vocabulary import ExitCode

if TYPE_CHECKING:
    from opskit.stack import Stack

#: Help of the flags every task shares.
COMMON_HELP = {
    "stack": "stack file (default: $OPSKIT_STACK, then invoke config opskit.stack)",
    "runtime": "process, docker or swarm (overrides x-opskit.runtime and $OPSKIT_RUNTIME)",
    "service": "limit to this service (repeatable)",
}

#: One letter per flag, the same in every task. Flags not listed have no short form.
SHORT_FLAGS = {
    "service": "s",
    "stack": "f",
    "runtime": "r",
    "timeout": "t",
    "json": "j",
    "quiet": "q",
    "e2e": "e",
    "lines": "n",
}


class OpskitTask(Task):
    """An invoke Task with opskit's flag table and strict list flags."""

    def __init__(self, *args: Any, **kwargs: Any):
        kwargs["auto_shortflags"] = False
        super().__init__(*args, **kwargs)

    def get_arguments(self, ignore_unknown_help: bool | None = None):
        arguments = super().get_arguments(ignore_unknown_help)
        for argument in arguments:
            short = SHORT_FLAGS.get(argument.name)
            if short:
                argument.names = (*argument.names, short)
            if argument.positional and argument.default is None:
                argument.opskit_optional = True  # see opskit.tasks.parsing
            if argument.kind is list:
                # invoke starts a list flag as [] and so accepts `--service` with no value;
                # as an optional flag starting from None, a bare one arrives as [True].
                argument.optional = True
                argument.opskit_list = True  # see opskit.tasks.parsing
                argument.raw_value = argument._value = None
        return arguments


def help_for(table: dict[str, str], *names: str, **extra: str) -> dict[str, str]:
    """The ``help=`` of one task: the named entries of its module's table, plus its own."""
    return {**{name: table[name] for name in names}, **extra}


def services_option(values: list | None, flag: str = "service") -> list[str] | None:
    """The ``--service`` names, or None for "all"; a bare ``--service`` is a usage error."""
    if not values:
        return None
    if any(value is True or not str(value).strip() for value in values):
        raise UsageError(f"--{flag} needs a service name (e.g. --{flag} kong)")
    return [str(value) for value in values]


def count_option(flag: str, value: object) -> int:
    """A whole number above zero (``--lines 50``, ``--rate 20``), or a one-line UsageError."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if isinstance(value, bool) or number < 1:
        raise UsageError(f"--{flag}: expected a whole number above zero, got {value!r}")
    return number


def seconds_option(flag: str, value: object) -> float | None:
    """A positive number of seconds (``5``, ``2.5``, ``10s``, ``1m``), or None when not given."""
    if value is None:
        return None
    from opskit.durations import parse_duration

    text = value.strip() if isinstance(value, str) else value
    try:
        seconds = float(text)  # a plain number: seconds
    except (TypeError, ValueError):
        try:
            seconds = parse_duration(text)
        except ValueError:
            seconds = -1.0
    if seconds != seconds or seconds == float("inf"):  # nan, inf
        seconds = -1.0
    if isinstance(value, bool) or seconds <= 0:
        raise UsageError(f"--{flag}: expected a number of seconds above zero, got {value!r}")
    return seconds


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
        raise UsageError("no stack file: pass --stack, set OPSKIT_STACK, or set opskit.stack")
    path = Path(configured)
    prefix = getattr(c.config, "_project_prefix", None)
    if not path.is_absolute() and prefix:
        path = Path(prefix) / path
    return path


def load(c: Context, stack: str | None, runtime: str | None) -> Stack:
    from opskit.console import log_line
    from opskit.lock import report_waits_to
    from opskit.stack import load_stack

    report_waits_to(lambda text: log_line("WAIT", text))
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
            raise Exit(code=ExitCode.INTERRUPTED) from None

    return wrapper


@contextlib.contextmanager
def finishing_on_signals(
    on_signal: Callable[[signal.Signals], None] | None = None,
) -> Iterator[threading.Event]:
    """An event set by SIGINT or SIGTERM while the block runs; the old handlers come back after.

    Long operations that must end clean (a rollout puts the last good config back, a watcher
    finishes its pass) check the event at points they choose. Why not KeyboardInterrupt: it
    lands on any bytecode — inside a library that swallows it, or (CPython 3.11) inside a
    dataclass's generated ``exec``, after which the process dies by SIGINT whatever exit code
    it chose. SIGTERM is what systemd and ``timeout`` send, and deserves the same clean end.
    """
    stop = threading.Event()

    def finish(signum: int, _frame: Any) -> None:
        stop.set()
        if on_signal is not None:
            on_signal(signal.Signals(signum))

    previous = {sig: signal.signal(sig, finish) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def collection(name: str, default: Task, *others: Task):
    """One sub-collection per operation; ``default`` runs for the bare verb (``inv start``)."""
    from invoke import Collection

    tasks = Collection(name)
    tasks.add_task(default, default=True)
    for other in others:
        tasks.add_task(other)
    return tasks
