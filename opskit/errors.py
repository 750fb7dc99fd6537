"""Exceptions that carry the exit code an operator (or cron) will see.

Every error opskit raises on purpose is an :class:`OpskitError`. Its message is one line meant
for a person at 3 a.m.: what is wrong, where, and what was expected. The task layer prints
``str(error)`` and exits with ``error.exit_code``; nothing else is printed.
"""

from __future__ import annotations

from pathlib import Path

from opskit.vocabulary import ExitCode


class OpskitError(Exception):
    """Base class: a failure with a documented exit code."""

    exit_code = ExitCode.FAILED


class ConfigError(OpskitError):
    """The stack file, its environment or a command line is not what opskit expects.

    The message names the file, the key path inside it, and what was expected, e.g.
    ``sandbox/stack.yml: services.redis.depends_on.kong: unknown service (known: nginx, redis)``.
    """

    exit_code = ExitCode.USAGE

    def __init__(self, source: str | Path | None, key: str, problem: str):
        self.source = str(source) if source is not None else None
        self.key = key
        self.problem = problem
        where = ": ".join(part for part in (self.source, key) if part)
        super().__init__(f"{where}: {problem}" if where else problem)


class UsageError(OpskitError):
    """The command line names something that does not exist (a service, a runtime)."""

    exit_code = ExitCode.USAGE


class PreflightError(OpskitError):
    """The machine is not ready to start the stack: a port is held, a binary is missing."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("preflight failed: " + "; ".join(self.problems))


class Interrupted(OpskitError):
    """SIGINT or SIGTERM asked a long operation to end: it ended at a safe point, cleanly (a
    backup kept nothing, a restore rolled back, a recover pass finished what it had begun)."""

    exit_code = ExitCode.INTERRUPTED


class RollingImpossible(OpskitError):
    """A rolling replacement cannot work here (a start-first roll with nowhere to place the
    new instance); raised before anything was changed, so the caller may try another way."""


class LockBusyError(OpskitError):
    """Another opskit operation is mutating this stack right now (cron overlap)."""


class RuntimeUnavailableError(OpskitError):
    """The runtime cannot be used on this machine (no docker engine, state dir unwritable)."""
