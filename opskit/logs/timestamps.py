"""When a log line was written, read from the line itself.

A process writes no timestamp the runtime could record (its output goes straight to a file), so
merging services by time needs the one the program printed: nginx's ``$time_iso8601`` in its
JSON access log and ``2026/11/24 10:00:00`` in its error log (Kong's too), Redis's
``24 Nov 2026 10:00:00.123``, Python's ``2026-11-24 10:00:00,123``. Times without a zone are the
host's local time, as those programs print them. A line with none (a uvicorn access line, a
stack trace) takes the time of the line before it in the same stream (:func:`stamp_stream`).
"""

from __future__ import annotations

import calendar
import re
import time
from collections.abc import Iterable, Iterator

_MONTHS = {m: i for i, m in enumerate(calendar.month_abbr) if m}
_ISO = re.compile(r"(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:[.,](\d+))?(Z|[+-]\d\d:?\d\d)?")
_SLASHED = re.compile(r"(\d{4})/(\d\d)/(\d\d) (\d\d):(\d\d):(\d\d)")
_REDIS = re.compile(r"(\d{1,2}) ([A-Z][a-z]{2}) (\d{4}) (\d\d):(\d\d):(\d\d)(?:\.(\d+))?")
_SEARCH_WIDTH = 160  # timestamps sit at the start of a line or in its first JSON field


def line_time(text: str) -> float | None:
    """Epoch seconds of the first timestamp near the start of ``text``; None without one."""
    head = text[:_SEARCH_WIDTH]
    match = _ISO.search(head)
    if match:
        year, month, day, hour, minute, second, fraction, zone = match.groups()
        parts = (int(year), int(month), int(day), int(hour), int(minute), int(second))
        return _epoch(parts, zone) + _fraction(fraction)
    match = _SLASHED.search(head)
    if match:
        return _epoch(tuple(int(g) for g in match.groups()), None)
    match = _REDIS.search(head)
    if match and match.group(2) in _MONTHS:
        day, month, year, hour, minute, second, fraction = match.groups()
        parts = (int(year), _MONTHS[month], int(day), int(hour), int(minute), int(second))
        return _epoch(parts, None) + _fraction(fraction)
    return None


def stamp_stream(lines: Iterable[tuple[float | None, str]]) -> Iterator[tuple[float | None, str]]:
    """(time, text) for each line: the runtime's time, else the line's own, else the previous
    line's (a stack trace belongs with the line that began it); None before any had one."""
    last: float | None = None
    for recorded, text in lines:
        found = recorded if recorded is not None else line_time(text)
        if found is not None:
            last = found
        yield last, text


def _epoch(parts: tuple[int, ...], zone: str | None) -> float:
    year, month, day, hour, minute, second = parts
    try:
        if zone is None:
            return time.mktime((year, month, day, hour, minute, second, 0, 0, -1))
        seconds = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    except (OverflowError, ValueError):
        return 0.0
    if zone != "Z":
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        seconds -= sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
    return float(seconds)


def _fraction(digits: str | None) -> float:
    return float(f"0.{digits}") if digits else 0.0
