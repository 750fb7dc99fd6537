"""``x-opskit.alerts``: where alerts go and how often.

```yaml
x-opskit:
  alerts:
    notify:
      - apprise: ${OPSKIT_ALERT_URL:-}          # any apprise URL: slack://…, mailto://…, json://…
      - alertmanager: http://127.0.0.1:9093     # Prometheus Alertmanager (API v2)
      - command: [/usr/local/bin/page-ops]     # the alert as JSON on stdin
    webhook: ${OPSKIT_ALERT_WEBHOOK:-}          # shorthand: an http(s) URL that receives JSON
    cooldown: 10m                               # no second "failed" for a service within this
    remind: 1h                                  # repeat while still failing (default: never)
    timeout: 5s                                 # per notifier
```

An empty value (``${VAR:-}`` with VAR unset) switches that notifier off, so one stack file
serves machines with and without a webhook. Every notifier URL counts as a secret
(:func:`opskit.redact.secret_values`): tokens live in them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from opskit.options import OptionReader
from opskit.vocabulary import NotifierKind


@dataclass(frozen=True)
class NotifierSpec:
    """One configured notifier. ``target`` is a URL, or an argv for ``command``."""

    kind: NotifierKind
    target: str | tuple[str, ...]
    key: str  # where it is configured, for error lines: x-opskit.alerts.notify[1]


@dataclass(frozen=True)
class AlertSettings:
    notifiers: tuple[NotifierSpec, ...] = ()
    cooldown: float = 600.0
    remind: float = 0.0  # 0: no reminders
    timeout: float = 5.0

    @classmethod
    def read(cls, reader: OptionReader) -> AlertSettings:
        defaults = cls()
        notifiers: list[NotifierSpec] = []
        webhook = reader.string("webhook")
        if webhook:
            url = _webhook_url(reader, webhook)
            notifiers.append(NotifierSpec(NotifierKind.APPRISE, url, reader.key("webhook")))
        for index, item in enumerate(reader.items("notify")):
            spec = _notifier(reader, f"notify[{index}]", item)
            if spec is not None:
                notifiers.append(spec)
        cooldown = reader.duration("cooldown", defaults.cooldown)
        remind = reader.duration("remind", defaults.remind)
        timeout = reader.positive_duration("timeout", defaults.timeout)
        reader.finish()
        return cls(tuple(notifiers), cooldown or 0.0, remind or 0.0, timeout)

    def urls(self) -> list[str]:
        """Every notifier URL: secrets, for redaction."""
        return [spec.target for spec in self.notifiers if isinstance(spec.target, str)]


def _notifier(reader: OptionReader, name: str, item: Any) -> NotifierSpec | None:
    key = reader.key(name)
    kinds = ", ".join(kind.value for kind in NotifierKind)
    if not isinstance(item, dict) or len(item) != 1:
        raise reader.fail(name, f"expected a mapping with one key ({kinds})")
    ((kind_name, value),) = item.items()
    try:
        kind = NotifierKind(kind_name)
    except ValueError:
        problem = f"unknown notifier {kind_name!r}; expected one of {kinds}"
        raise reader.fail(name, problem) from None
    if value is None or value == "" or value == []:
        return None  # switched off through an empty variable
    if kind is NotifierKind.COMMAND:
        import shlex

        if isinstance(value, str):
            argv = tuple(shlex.split(value))
        elif isinstance(value, list) and all(isinstance(v, (str, int, float)) for v in value):
            argv = tuple(str(v) for v in value)
        else:
            raise reader.fail(f"{name}.command", "expected a command (a string or a list)")
        return NotifierSpec(kind, argv, key)
    if not isinstance(value, str) or "://" not in value:
        expected = "an http(s) URL" if kind is NotifierKind.ALERTMANAGER else "an apprise URL"
        raise reader.fail(f"{name}.{kind.value}", f"expected {expected} (scheme://…)")
    if kind is NotifierKind.ALERTMANAGER and not value.startswith(("http://", "https://")):
        raise reader.fail(f"{name}.{kind.value}", "expected an http(s) URL of Alertmanager")
    target = value.rstrip("/") if kind is NotifierKind.ALERTMANAGER else value
    return NotifierSpec(kind, target, key)


def _webhook_url(reader: OptionReader, url: str) -> str:
    """An http(s) URL that receives JSON is apprise's ``json://`` / ``jsons://``."""
    if url.startswith("https://"):
        return "jsons://" + url[len("https://") :]
    if url.startswith("http://"):
        return "json://" + url[len("http://") :]
    raise reader.fail("webhook", "expected an http(s) URL (the value is not shown: it is a secret)")
