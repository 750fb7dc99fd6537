"""Which backups to keep: restic's ``forget`` policy, rule for rule (doc/060_forget.rst).

- ``last`` keeps the newest N; ``hourly``/``daily``/``weekly``/``monthly``/``yearly`` keep the
  newest backup of each of the newest N calendar buckets (hours, days, ISO weeks Mon–Sun,
  months, years, in UTC) that hold a backup — empty buckets do not count.
- The rules are OR'd: a backup that any rule keeps is kept, with every reason that applies.
- A rule that still has count left when the backups run out also keeps the oldest backup
  ("oldest daily"), so a young series keeps its full history.
- ``-1`` means unlimited. A policy with no rule keeps everything (restic refuses to forget
  without one; so does ``inv backup.prune``).

Backups are walked newest first, ties broken by id, exactly as restic walks snapshots.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from opskit.errors import ConfigError

RULES = ("last", "hourly", "daily", "weekly", "monthly", "yearly")


def _bucket(rule: str) -> Callable[[float, int], object]:
    if rule == "last":
        return lambda _created, index: index
    fmt = {"hourly": "%Y%m%d%H", "daily": "%Y%m%d", "monthly": "%Y%m", "yearly": "%Y"}.get(rule)
    if fmt:
        return lambda created, _index: time.strftime(fmt, time.gmtime(created))
    return lambda created, _index: time.strftime("%G-%V", time.gmtime(created))  # ISO week


@dataclass(frozen=True)
class KeepPolicy:
    last: int = 0
    hourly: int = 0
    daily: int = 0
    weekly: int = 0
    monthly: int = 0
    yearly: int = 0

    @property
    def empty(self) -> bool:
        return all(getattr(self, rule) == 0 for rule in RULES)

    @classmethod
    def from_mapping(cls, raw: dict, source: str, key: str = "x-opskit.backups.keep") -> KeepPolicy:
        values = {}
        for name, value in raw.items():
            if name not in RULES:
                raise ConfigError(
                    source, f"{key}.{name}", f"unknown rule; known: {', '.join(RULES)}"
                )
            if value in ("unlimited", "all"):
                value = -1
            if isinstance(value, bool) or not isinstance(value, int) or value < -1:
                raise ConfigError(
                    source, f"{key}.{name}", f"expected a count >= 0 or 'unlimited', got {value!r}"
                )
            values[name] = value
        return cls(**values)

    def describe(self) -> str:
        parts = [f"{rule} {getattr(self, rule)}" for rule in RULES if getattr(self, rule)]
        return ", ".join(part.replace("-1", "unlimited") for part in parts) or "no rule"


@dataclass
class Decision:
    id: str
    created: float
    keep: bool
    reasons: list[str] = field(default_factory=list)


def apply_policy(policy: KeepPolicy, backups: Sequence[tuple[str, float]]) -> list[Decision]:
    """Decide keep/remove for every ``(id, created)``; returned newest first."""
    ordered = sorted(backups, key=lambda item: (item[1], item[0]), reverse=True)
    if policy.empty:
        return [Decision(i, c, True, ["no keep rule"]) for i, c in ordered]
    counts = {rule: getattr(policy, rule) for rule in RULES}
    buckets = {rule: _bucket(rule) for rule in RULES}
    last_seen: dict[str, object] = {}
    decisions = []
    for index, (backup_id, created) in enumerate(ordered):
        reasons = []
        oldest = index == len(ordered) - 1
        for rule in RULES:
            if counts[rule] == 0:
                continue
            value = buckets[rule](created, index)
            if rule not in last_seen or value != last_seen[rule] or oldest:
                prefix = (
                    "oldest " if oldest and rule in last_seen and value == last_seen[rule] else ""
                )
                last_seen[rule] = value
                if counts[rule] > 0:
                    counts[rule] -= 1
                reasons.append(f"{prefix}{_label(rule)}")
        decisions.append(Decision(backup_id, created, bool(reasons), reasons))
    return decisions


def _label(rule: str) -> str:
    return "last backup" if rule == "last" else f"{rule} backup"
