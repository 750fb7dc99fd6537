"""monit's alert semantics, persisted across runs: alert on a change of state, once.

An *incident* opens when a subject (a service, or ``e2e``) is confirmed failing and closes when
it is healthy again. The first alert of an incident is ``failed``; ``gave up`` follows once if
recovery stops trying; ``recovered`` closes it — sent only when something was announced, so a
person never gets a "recovered" for a failure nobody told them about.

- **Cooldown** — a second ``failed`` for the same subject within ``alerts.cooldown`` of the
  previous one is not sent (a flapping service is one alert, not one a minute); the incident
  is still tracked and its suppressed count is told with the next alert that goes out.
- **Reminders** — with ``alerts.remind`` set, an incident still open after that long is
  announced again, every ``remind``.
- **Outbox** — an alert a notifier did not take is retried on the next pass (for a day), so a
  webhook that was down at 03:00 still hears about the failure; the other notifiers are not
  sent it twice.

State lives in ``<state_dir>/alerts.json`` (written atomically under the stack lock). Sending
never raises: every attempt comes back as a :class:`Delivery` for the report.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from opskit.alerts.model import Alert
from opskit.alerts.notifiers import Notifier, NotifyError, build_notifiers
from opskit.alerts.settings import AlertSettings
from opskit.files import atomic_write_json, read_json
from opskit.vocabulary import AlertKind

OUTBOX_TTL = 24 * 3600.0
#: How much longer than ``alerts.timeout`` a send may take before it is abandoned.
SEND_GRACE = 2.0


@dataclass
class Incident:
    subject: str
    opened_at: float
    summary: str
    announced: bool = False  # a failed/gave-up alert went out (or was queued) for it
    gave_up: bool = False
    last_sent: float = 0.0
    suppressed: int = 0  # failures not announced because of the cooldown


@dataclass(frozen=True)
class Delivery:
    """One attempt to hand one alert to one notifier."""

    notifier: str
    subject: str
    kind: AlertKind
    ok: bool
    detail: str = ""


@dataclass
class _Queued:
    alert: dict
    notifiers: list[str]  # labels still owed this alert
    first_failed: float = field(default_factory=time.time)


class Dispatcher:
    """Decides which alerts go out and sends them; one per recover pass."""

    def __init__(
        self,
        stack_name: str,
        settings: AlertSettings,
        state_dir: Path,
        redact: Callable[[str], str],
        *,
        notifiers: list[Notifier] | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.stack_name = stack_name
        self.settings = settings
        self.path = state_dir / "alerts.json"
        self.redact = redact
        self.notifiers = notifiers if notifiers is not None else build_notifiers(settings, redact)
        self.clock = clock
        self.deliveries: list[Delivery] = []
        raw = read_json(self.path)
        raw = raw if isinstance(raw, dict) else {}
        self.incidents: dict[str, Incident] = {}
        for subject, record in (raw.get("incidents") or {}).items():
            try:
                self.incidents[subject] = Incident(**record)
            except TypeError:
                continue  # a record from another version: forget it rather than crash
        self.last_failed: dict[str, float] = dict(raw.get("last_failed") or {})
        self.outbox: list[_Queued] = []
        for item in raw.get("outbox") or []:
            try:
                self.outbox.append(_Queued(**item))
            except TypeError:
                continue

    # -- state changes ---------------------------------------------------------------------

    def failed(self, subject: str, summary: str) -> None:
        """``subject`` is confirmed failing: open its incident; alert unless one is open."""
        if subject in self.incidents:
            return
        now = self.clock()
        incident = Incident(subject, now, self.redact(summary))
        self.incidents[subject] = incident
        previous = self.last_failed.get(subject, 0.0)
        if now - previous < self.settings.cooldown:
            incident.suppressed += 1
            return
        self._announce(incident, AlertKind.FAILED, incident.summary)

    def gave_up(self, subject: str, summary: str) -> None:
        """Recovery stopped trying: said once per incident, cooldown or not."""
        incident = self.incidents.get(subject)
        if incident is None:
            incident = Incident(subject, self.clock(), self.redact(summary))
            self.incidents[subject] = incident
        if incident.gave_up:
            return
        incident.gave_up = True
        self._announce(incident, AlertKind.GAVE_UP, self.redact(summary))

    def recovered(self, subject: str, summary: str) -> None:
        """``subject`` is healthy: close its incident, and say so if its failure was said."""
        incident = self.incidents.pop(subject, None)
        if incident is None or not incident.announced:
            return
        seconds = self.clock() - incident.opened_at
        text = f"{self.redact(summary)} (after {seconds:.0f}s)"
        self._send(self._alert(incident, AlertKind.RECOVERED, text))

    def is_open(self, subject: str) -> bool:
        return subject in self.incidents

    def forget(self, subject: str) -> None:
        """``inv recover --reset``: the operator has taken over; close without alerting."""
        self.incidents.pop(subject, None)

    # -- every pass ------------------------------------------------------------------------

    def start_of_pass(self) -> None:
        """Retry what the outbox still owes (sent before this pass's news)."""
        self._flush_outbox()

    def end_of_pass(self) -> None:
        """Send reminders, re-assert open incidents, save the state."""
        now = self.clock()
        if self.settings.remind > 0:
            for incident in self.incidents.values():
                if incident.announced and now - incident.last_sent >= self.settings.remind:
                    minutes = (now - incident.opened_at) / 60
                    summary = f"still failing after {minutes:.0f} min: {incident.summary}"
                    self._announce(incident, AlertKind.REMINDER, summary)
        open_alerts = [
            self._alert(i, AlertKind.GAVE_UP if i.gave_up else AlertKind.FAILED, i.summary)
            for i in self.incidents.values()
            if i.announced
        ]
        for notifier in self.notifiers:
            try:
                notifier.refresh(open_alerts)
            except NotifyError as exc:
                failed = Delivery(notifier.label, "*", AlertKind.REMINDER, False, str(exc))
                self.deliveries.append(failed)
        self.save()

    def save(self) -> None:
        atomic_write_json(
            self.path,
            {
                "incidents": {s: asdict(i) for s, i in self.incidents.items()},
                "last_failed": self.last_failed,
                "outbox": [asdict(q) for q in self.outbox],
            },
        )

    def test(self) -> list[Delivery]:
        """``inv alerts.test``: one test alert through every notifier; no state."""
        summary = "a test alert from inv alerts.test"
        alert = Alert(self.stack_name, "opskit", AlertKind.TEST, summary)
        return [self._deliver(notifier, alert) for notifier in self.notifiers]

    # -- sending ---------------------------------------------------------------------------

    def _announce(self, incident: Incident, kind: AlertKind, summary: str) -> None:
        if incident.suppressed and kind is not AlertKind.FAILED:
            count = incident.suppressed
            summary += f" ({count} earlier failure(s) within the cooldown were not announced)"
        incident.announced = True
        incident.last_sent = self.clock()
        if kind is AlertKind.FAILED:
            self.last_failed[incident.subject] = incident.last_sent
        self._send(self._alert(incident, kind, summary))

    def _alert(self, incident: Incident, kind: AlertKind, summary: str) -> Alert:
        at = self.clock()
        return Alert(self.stack_name, incident.subject, kind, summary, incident.opened_at, at)

    def _send(self, alert: Alert) -> None:
        owed = [n.label for n in self.notifiers if not self._deliver(n, alert).ok]
        if owed:
            self.outbox.append(_Queued(_alert_record(alert), owed, self.clock()))

    def _deliver(self, notifier: Notifier, alert: Alert) -> Delivery:
        """Send on a daemon thread and wait at most the notifier timeout (plus a grace): a
        transport that ignores its own timeout (an SMTP server that accepts and never answers)
        is abandoned, never allowed to hold up recovery."""
        outcome: list[Delivery] = []

        def send() -> None:
            try:
                notifier.send(alert)
            except NotifyError as exc:
                outcome.append(Delivery(notifier.label, alert.subject, alert.kind, False, str(exc)))
            except Exception as exc:  # a notifier's own bug must never stop recovery
                detail = self.redact(f"{notifier.label}: {type(exc).__name__}: {exc}")
                outcome.append(Delivery(notifier.label, alert.subject, alert.kind, False, detail))
            else:
                outcome.append(Delivery(notifier.label, alert.subject, alert.kind, True))

        worker = threading.Thread(target=send, name=f"opskit-alert-{notifier.label}", daemon=True)
        worker.start()
        worker.join(self.settings.timeout + SEND_GRACE)
        if outcome:
            delivery = outcome[0]
        else:
            wait = self.settings.timeout + SEND_GRACE
            detail = f"{notifier.label}: no answer within {wait:g}s (abandoned)"
            delivery = Delivery(notifier.label, alert.subject, alert.kind, False, detail)
        self.deliveries.append(delivery)
        return delivery

    def _flush_outbox(self) -> None:
        now = self.clock()
        waiting, self.outbox = self.outbox, []
        by_label = {n.label: n for n in self.notifiers}
        for queued in waiting:
            if now - queued.first_failed > OUTBOX_TTL:
                continue
            alert = _alert_from_record(queued.alert)
            owed = [
                label
                for label in queued.notifiers
                if label in by_label and not self._deliver(by_label[label], alert).ok
            ]
            if owed:
                self.outbox.append(_Queued(queued.alert, owed, queued.first_failed))


def _alert_record(alert: Alert) -> dict:
    record = asdict(alert)
    record["kind"] = alert.kind.value
    return record


def _alert_from_record(record: dict) -> Alert:
    return Alert(**{**record, "kind": AlertKind(record["kind"])})
