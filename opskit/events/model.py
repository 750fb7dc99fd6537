"""Masking events as the plugin sends them, and as opskit lets them be seen."""

from __future__ import annotations

import json
from typing import Any

from opskit.redact import Redactor


class EventFormatError(ValueError):
    """A message on the channel that is not a masking event (or a batch of them)."""


def parse_message(data: bytes | str) -> list[dict[str, Any]]:
    """The events in one pub/sub message: a single event, a JSON array of events, or an object
    with an ``events`` array (the planned batched publisher)."""
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise EventFormatError(f"not JSON: {exc}") from None
    if isinstance(value, dict) and isinstance(value.get("events"), list):
        value = value["events"]
    events = value if isinstance(value, list) else [value]
    if not events or not all(isinstance(e, dict) for e in events):
        raise EventFormatError("expected an event object or a list of them")
    return events


def redact_event(
    event: dict[str, Any], redactor: Redactor, original: Redactor | None = None
) -> dict:
    """A copy fit to print: the masked text (and ids) through ``redactor``, which masks secrets
    and any AWS id that escaped masking; the original text replaced by its length, or, when
    the operator asked to see it, through ``original`` (secrets only)."""
    shown = dict(event)
    demo = event.get("demo_data")
    if isinstance(demo, dict):
        demo = dict(demo)
        text = demo.get("original_text")
        if isinstance(text, str):
            shown_text = original(text) if original else f"<redacted: {len(text)} characters>"
            demo["original_text"] = shown_text
        masked = demo.get("masked_text")
        if isinstance(masked, str):
            demo["masked_text"] = redactor(masked)
        shown["demo_data"] = demo
    for key in ("request_id", "event_id"):
        if isinstance(shown.get(key), str):
            shown[key] = redactor(shown[key])
    return shown


def processing_ms(event: dict[str, Any]) -> float | None:
    value = event.get("processing_time_ms")
    return float(value) if isinstance(value, int | float) else None


def patterns_of(event: dict[str, Any]) -> dict[str, int]:
    applied = event.get("patterns_applied")
    if not isinstance(applied, dict):
        return {}
    return {str(k): int(v) for k, v in applied.items() if isinstance(v, int | float)}
