"""opskit's invoke collection.

Import it into your own tasks.py (``from opskit.tasks import ns``) or use the repository's.
Tasks parse arguments, call :mod:`opskit.ops`, render, and exit with a documented code; they
import nothing heavy at module level so that ``inv --list`` stays fast.
"""

from invoke import Collection

from opskit.tasks import health, lifecycle

ns = Collection()
for _task in (
    lifecycle.start,
    lifecycle.stop,
    lifecycle.restart,
    lifecycle.status,
    health.health,
    health.smoke,
):
    ns.add_task(_task)
ns.configure({"opskit": {"stack": None, "runtime": None}})

__all__ = ["ns"]
