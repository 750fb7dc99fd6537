"""Alerts that reach a person once: one when a service fails, one when it recovers, one when
recovery gives up — through notifiers from well-kept libraries, never through hand-written
clients.

- :mod:`.model` — the :class:`Alert` and its closed :class:`AlertKind` vocabulary.
- :mod:`.settings` — ``x-opskit.alerts``: notifiers, cooldown, reminders, timeout.
- :mod:`.notifiers` — apprise URLs (Slack, Teams, e-mail, JSON webhooks, …), Prometheus
  Alertmanager (``POST /api/v2/alerts``, ``endsAt`` on recovery), and a command that reads the
  alert as JSON on stdin.
- :mod:`.dispatch` — monit's alert semantics, persisted: an incident per subject, alerts on
  state changes only, a cooldown against flapping, optional reminders, and an outbox so an
  alert that no notifier took is retried on the next pass. A failing notifier never raises.
"""

from opskit.alerts.model import Alert
from opskit.vocabulary import AlertKind

__all__ = ["Alert", "AlertKind"]
