"""The ``opskit`` console command: the same tasks, flags and exit codes as ``inv`` in the
checkout, usable from any directory, cron, systemd and CI.

Built on invoke's own :class:`~invoke.Program` with opskit's collection (invoke's documented
way to ship a task collection as a command), so ``opskit health -s kong -f /srv/stack.yml``
and ``inv health -s kong`` parse alike. The stack file comes from ``-f``/``--stack`` or
``$OPSKIT_STACK`` (no tasks.py or invoke.yaml is searched for: the command does not depend on
the directory it runs in).
"""

from __future__ import annotations

import os
import sys

from invoke import Program

from opskit import __version__
from opskit.tasks import ns
from opskit.tasks.parsing import opskit_parsing


class OpskitProgram(Program):
    """invoke's Program whose task parsing has opskit's two fixes (:mod:`opskit.tasks.parsing`)
    for the length of that parse only."""

    def parse_core(self, argv: list[str] | None) -> None:
        super().parse_core(argv)
        # invoke turns bytecode writing off here (for a tasks.py beside the user's files);
        # opskit's lazily imported modules are cached as any installed package's are.
        sys.dont_write_bytecode = bool(os.environ.get("PYTHONDONTWRITEBYTECODE"))

    def parse_tasks(self) -> None:
        with opskit_parsing():
            super().parse_tasks()


program = OpskitProgram(namespace=ns, name="opskit", binary="opskit", version=__version__)


def main() -> None:
    """Entry point of the ``opskit`` console script."""
    program.run()


if __name__ == "__main__":
    main()
