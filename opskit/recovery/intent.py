"""What the operator wants running: ``inv stop`` means *stay stopped*.

Without this, a cron ``inv recover`` would start again, a minute later, the service an operator
had just stopped for maintenance. ``start``/``restart`` record *running* for their targets and
``stop`` records *stopped*; recovery acts only on services wanted running. A service with no
record (a stack started by ``docker compose up``, or before this file existed) is wanted
running: the stack exists to run.

Stored in ``<state_dir>/intent.json``, written under the stack lock by the operation itself.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path

from opskit.files import atomic_write_json, private_dir, read_json
from opskit.vocabulary import Wanted


def _path(state_dir: Path) -> Path:
    return state_dir / "intent.json"


def record(state_dir: Path, services: Iterable[str], wanted: Wanted, by: str) -> None:
    """Remember that ``by`` (``inv stop``) wants ``services`` ``wanted``."""
    names = list(services)
    if not names:
        return
    private_dir(state_dir)
    current = read_json(_path(state_dir))
    current = current if isinstance(current, dict) else {}
    now = time.time()
    for name in names:
        current[name] = {"wanted": wanted.value, "by": by, "at": now}
    atomic_write_json(_path(state_dir), current)


def wanted_stopped(state_dir: Path) -> dict[str, str]:
    """Services an operator stopped on purpose, each with who and when, as one phrase."""
    current = read_json(_path(state_dir))
    if not isinstance(current, dict):
        return {}
    stopped = {}
    for name, entry in current.items():
        if isinstance(entry, dict) and entry.get("wanted") == Wanted.STOPPED.value:
            when = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(entry.get("at") or 0))
            stopped[name] = f"stopped by {entry.get('by', 'an operator')} at {when}"
    return stopped
