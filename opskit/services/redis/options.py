"""The redis role's ``x-opskit`` settings, read by the role and by its backup."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from opskit.vocabulary import ShutdownMode

EVENTS_CHANNEL = "aws-masker:events:masking"


@dataclass(frozen=True)
class RedisOptions:
    password: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    shutdown: ShutdownMode = ShutdownMode.SAVE
    memory_warning_percent: float = 90.0
    save_age_warning: float = 3600.0
    rdb_path: str | None = None  # where the RDB is when CONFIG GET is renamed away
    events_channel: str = EVENTS_CHANNEL  # where the aws-masker plugin publishes its events
