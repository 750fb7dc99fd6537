"""What an alert says: which stack, which service (or check), what happened, and when."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field

from opskit.vocabulary import AlertKind


@dataclass(frozen=True)
class Alert:
    """One alert. ``subject`` is a service name, or ``e2e`` for the masking check."""

    stack: str
    subject: str
    kind: AlertKind
    summary: str  # one line, already redacted
    opened_at: float = 0.0  # when the incident began (epoch); Alertmanager's startsAt
    at: float = field(default_factory=time.time)
    host: str = field(default_factory=socket.gethostname)

    @property
    def title(self) -> str:
        return f"[opskit] {self.stack}/{self.subject}: {self.kind.value.upper()}"

    @property
    def body(self) -> str:
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.at))
        return f"{self.summary}\n(stack {self.stack} on {self.host}, {when})"

    def as_json(self) -> dict[str, object]:
        """The command notifier's stdin, and what tests compare."""
        return {
            "stack": self.stack,
            "subject": self.subject,
            "kind": self.kind.value,
            "severity": self.kind.severity,
            "summary": self.summary,
            "host": self.host,
            "at": _iso(self.at),
            "opened_at": _iso(self.opened_at or self.at),
        }


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
