"""Per-service recovery memory: failed observations in a row, restarts within the window, and
whether recovery gave up — monit's ``FOR n CYCLES`` and ``n RESTARTS WITHIN m CYCLES``, in
wall-clock time so cron runs and the watcher share one budget.

Stored in ``<state_dir>/recover.json`` (atomic write, under the stack lock), so a reboot or an
overlapping cron run neither resets a budget nor doubles a count.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from opskit.files import atomic_write_json, read_json


@dataclass(frozen=True)
class RestartBudget:
    """At most ``restarts`` restart attempts within ``window`` seconds, per service."""

    restarts: int = 3
    window: float = 15 * 60.0

    def used(self, attempts: list[float], now: float) -> int:
        return sum(1 for at in attempts if now - at < self.window)

    def spent(self, attempts: list[float], now: float) -> bool:
        return self.used(attempts, now) >= self.restarts

    def describe(self) -> str:
        minutes = self.window / 60
        return f"{self.restarts} in {minutes:g}m"


@dataclass
class ServiceRecord:
    failures: int = 0  # consecutive failed observations
    attempts: list[float] = field(default_factory=list)  # restart attempts (epoch seconds)
    gave_up_at: float | None = None
    last_problem: str = ""


class RecoveryState:
    """``recover.json``: one :class:`ServiceRecord` per service."""

    def __init__(self, state_dir: Path):
        self.path = state_dir / "recover.json"
        raw = read_json(self.path)
        raw = raw if isinstance(raw, dict) else {}
        self.services: dict[str, ServiceRecord] = {}
        last = raw.get("last_e2e")
        self.last_e2e: float = float(last) if isinstance(last, (int, float)) else 0.0
        for name, record in (raw.get("services") or {}).items():
            try:
                self.services[name] = ServiceRecord(**record)
            except TypeError:
                continue  # written by another version: start that service's memory afresh

    def record(self, name: str) -> ServiceRecord:
        return self.services.setdefault(name, ServiceRecord())

    def healthy(self, name: str) -> None:
        """An OK observation ends the failure streak (attempts age out of the window)."""
        record = self.record(name)
        record.failures = 0
        record.last_problem = ""
        if record.gave_up_at is not None:  # healthy again: re-armed with a fresh budget
            record.gave_up_at = None
            record.attempts.clear()

    def reset(self, name: str) -> None:
        """``inv recover --reset S``: forget the streak, the attempts and the give-up."""
        self.services[name] = ServiceRecord()

    def prune(self, budget: RestartBudget, now: float) -> None:
        for record in self.services.values():
            record.attempts = [at for at in record.attempts if now - at < budget.window]

    def save(self) -> None:
        services = {name: asdict(r) for name, r in self.services.items()}
        atomic_write_json(self.path, {"services": services, "last_e2e": self.last_e2e})
