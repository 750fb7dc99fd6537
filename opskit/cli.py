"""The ``opskit`` console command: the same tasks, flags and exit codes as ``inv`` in the
checkout, usable from any directory, cron, systemd and CI.

Built on invoke's own :class:`~invoke.Program` with opskit's collection (invoke's documented
way to ship a task collection as a command), so ``opskit health -s kong -f /srv/stack.yml``
and ``inv health -s kong`` parse alike. The stack file comes from ``-f``/``--stack`` or
``$OPSKIT_STACK`` (no tasks.py or invoke.yaml is searched for: the command does not depend on
the directory it runs in).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from invoke import Program

from opskit.tasks import ns
from opskit.tasks.parsing import opskit_parsing


class OpskitProgram(Program):
    """invoke's Program whose task parsing has opskit's two fixes (:mod:`opskit.tasks.parsing`)
    for the length of that parse only."""

    def parse_tasks(self) -> None:
        with opskit_parsing():
            super().parse_tasks()


def _version() -> str:
    try:
        return version("opskit")
    except PackageNotFoundError:
        return "unknown"


program = OpskitProgram(namespace=ns, name="opskit", binary="opskit", version=_version())


def main() -> None:
    """Entry point of the ``opskit`` console script."""
    program.run()


if __name__ == "__main__":
    main()
