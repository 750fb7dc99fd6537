"""Transports. Each :class:`Notifier` sends one alert or raises :class:`NotifyError` with one
line that names no secret; :mod:`opskit.alerts.dispatch` decides what to send and when.

- :class:`AppriseNotifier` — every apprise URL (Slack, Teams, e-mail, Telegram, generic JSON
  webhooks, …). apprise logs through :mod:`logging`; that output is captured, never printed,
  and only its last warning, redacted, becomes the failure line.
- :class:`AlertmanagerNotifier` — ``POST /api/v2/alerts``. An incident is one alert (same
  labels from failure to recovery); while it is open each pass re-posts it with ``endsAt`` a
  hold time ahead (as Prometheus does), so Alertmanager keeps it firing without a resolve
  timeout and resolves it on its own if opskit stops running; recovery posts ``endsAt`` = now.
  Routing, grouping, silences and repeat intervals are then Alertmanager's.
- :class:`CommandNotifier` — runs a program with the alert as JSON on stdin; its environment
  holds no secret variable and its argv is the operator's own.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

from opskit.alerts.model import Alert
from opskit.alerts.settings import AlertSettings, NotifierSpec
from opskit.errors import OpskitError
from opskit.redact import is_secret_name
from opskit.vocabulary import AlertKind, NotifierKind

#: How far ahead an open incident's ``endsAt`` is set on each re-post to Alertmanager.
ALERTMANAGER_HOLD = 15 * 60.0


class NotifyError(OpskitError):
    """A notifier did not take an alert; the message is safe to print."""


class Notifier(ABC):
    """One configured destination."""

    def __init__(self, spec: NotifierSpec, timeout: float, redact: Callable[[str], str]):
        self.spec = spec
        self.timeout = timeout
        self.redact = redact

    @property
    def label(self) -> str:
        """How output names this notifier: kind and scheme/host, never a token or a path."""
        target = self.spec.target
        if isinstance(target, str):
            parts = urlsplit(target)
            host = parts.hostname or ""
            return (
                f"{self.spec.kind.value} {parts.scheme}://{host}"
                if host
                else (f"{self.spec.kind.value} {parts.scheme}://")
            )
        return f"{self.spec.kind.value} {os.path.basename(target[0])}"

    @abstractmethod
    def send(self, alert: Alert) -> None:
        """Deliver ``alert`` or raise NotifyError."""

    def refresh(self, open_alerts: Sequence[Alert]) -> None:  # noqa: B027 - optional
        """Re-assert the incidents still open (Alertmanager only)."""


class AppriseNotifier(Notifier):
    def send(self, alert: Alert) -> None:
        import logging

        import apprise

        asset = apprise.AppriseAsset(
            storage_mode=apprise.PersistentStoreMode.MEMORY  # never write under $HOME
        )
        sender = apprise.Apprise(asset=asset)
        logger = logging.getLogger("apprise")
        logger.propagate = False  # its warnings carry hosts and sometimes URLs: not on stderr
        with apprise.LogCapture(level=logging.WARNING) as captured:
            if not sender.add(self._with_timeout(self.spec.target)):
                raise NotifyError(f"{self.label}: not an apprise URL apprise understands")
            kind = {
                AlertKind.RECOVERED: apprise.NotifyType.SUCCESS,
                AlertKind.TEST: apprise.NotifyType.INFO,
            }.get(alert.kind, apprise.NotifyType.FAILURE)
            delivered = sender.notify(title=alert.title, body=alert.body, notify_type=kind)
            log = captured.getvalue()
        if not delivered:
            lines = [line.strip() for line in log.splitlines() if line.strip()]
            reason = self.redact(lines[-1]) if lines else "apprise reported a failure"
            raise NotifyError(f"{self.label}: {reason}")

    def _with_timeout(self, url: str) -> str:
        """apprise's connect/read timeouts (``cto``/``rto``) from ``alerts.timeout``."""
        joiner = "&" if "?" in url else "?"
        return f"{url}{joiner}cto={self.timeout:g}&rto={self.timeout:g}"


class AlertmanagerNotifier(Notifier):
    def send(self, alert: Alert) -> None:
        if alert.kind is AlertKind.TEST:
            ends = time.time() + 60  # a test alert resolves itself a minute later
        elif alert.kind is AlertKind.RECOVERED:
            ends = alert.at
        else:
            ends = alert.at + ALERTMANAGER_HOLD
        self._post([self._payload(alert, ends)])

    def refresh(self, open_alerts: Sequence[Alert]) -> None:
        if open_alerts:
            now = time.time()
            self._post([self._payload(alert, now + ALERTMANAGER_HOLD) for alert in open_alerts])

    def _payload(self, alert: Alert, ends: float) -> dict[str, object]:
        name = "OpskitTestAlert" if alert.kind is AlertKind.TEST else "OpskitServiceFailing"
        severity = "info" if alert.kind is AlertKind.TEST else "critical"
        return {
            "labels": {
                "alertname": name,
                "stack": alert.stack,
                "service": alert.subject,
                "severity": severity,
                "instance": alert.host,
            },
            "annotations": {"summary": alert.summary, "state": alert.kind.value},
            "startsAt": _rfc3339(alert.opened_at or alert.at),
            "endsAt": _rfc3339(ends),
        }

    def _post(self, alerts: list[dict[str, object]]) -> None:
        import httpx

        url = f"{self.spec.target}/api/v2/alerts"
        try:
            reply = httpx.post(url, json=alerts, timeout=self.timeout)
        except httpx.HTTPError as exc:
            reason = self.redact(f"{type(exc).__name__}: {exc}")
            raise NotifyError(f"{self.label}: {reason}") from None
        if reply.status_code != 200:
            text = self.redact(reply.text.strip()[:200])
            raise NotifyError(f"{self.label}: HTTP {reply.status_code} {text}")


class CommandNotifier(Notifier):
    def send(self, alert: Alert) -> None:
        argv = list(self.spec.target)
        environment = {k: v for k, v in os.environ.items() if not is_secret_name(k)}
        try:
            child = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=environment,
                start_new_session=True,  # its own process group: killed whole at the timeout
            )
        except OSError as exc:
            raise NotifyError(f"{self.label}: cannot run: {exc.strerror or exc}") from None
        payload = json.dumps(alert.as_json()).encode()
        try:
            stdout, stderr = child.communicate(payload, timeout=self.timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)
            child.communicate()
            raise NotifyError(f"{self.label}: no exit within {self.timeout:g}s (killed)") from None
        done = subprocess.CompletedProcess(argv, child.returncode, stdout, stderr)
        if done.returncode != 0:
            output = (done.stderr or done.stdout).decode(errors="replace").strip().splitlines()
            last = self.redact(output[-1][:200]) if output else "no output"
            raise NotifyError(f"{self.label}: exited with code {done.returncode}: {last}")


_CLASSES: dict[NotifierKind, type[Notifier]] = {
    NotifierKind.APPRISE: AppriseNotifier,
    NotifierKind.ALERTMANAGER: AlertmanagerNotifier,
    NotifierKind.COMMAND: CommandNotifier,
}


def build_notifiers(settings: AlertSettings, redact: Callable[[str], str]) -> list[Notifier]:
    return [_CLASSES[spec.kind](spec, settings.timeout, redact) for spec in settings.notifiers]


def _rfc3339(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + f".{int(epoch % 1 * 1000):03d}Z"
