"""opskit's invoke collection: one sub-collection per operation (invocations' layout).

Import it into your own tasks.py (``from opskit.tasks import ns``) or use the repository's.
Each operation is a collection whose default task answers the bare verb (``inv start``); later
operations add their sub-tasks beside it (``inv backup.validate``). Tasks parse arguments, call
:mod:`opskit.ops`, render, and exit with a documented code; they import nothing heavy at module
level so that ``inv --list`` stays fast.
"""

from invoke import Collection

from opskit.tasks import (
    backup,
    config,
    events,
    graceful,
    health,
    kong,
    lifecycle,
    logs,
    metrics,
    monitor,
    recover,
)

ns = Collection()
_MODULES = (
    lifecycle,
    graceful,
    health,
    config,
    backup,
    recover,
    kong,
    logs,
    events,
    metrics,
    monitor,
)
for _module in _MODULES:
    for _collection in _module.COLLECTIONS:
        ns.add_collection(_collection)
ns.configure({"opskit": {"stack": None, "runtime": None}})

__all__ = ["ns"]
