"""When a log line was written, read from the line itself.

A process writes no timestamp the runtime could record (its output goes straight to a file), so
merging services by time needs the one the program printed: nginx's ``$time_iso8601`` in its
JSON access log and ``2026/11/24 10:00:00`` in its error log (Kong's too), Redis's
``24 Nov 2026 10:00:00.123``, Python's ``2026-11-24 10:00:00,123``.

**Zones.** A timestamp without a zone is the local time *of the process that wrote it*: its
``TZ`` (``TZ=Asia/Seoul`` in the stack's ``.env`` reaches every service), or its container's
``/etc/localtime``, not opskit's. Reading it in opskit's zone put every naive line hours off
the backend's and merged them out of order. So a stream is read with the writer's zone
(:func:`zone_from_tz`, from :meth:`Unit.time_zone`); None means "the same local time as this
process". A line with none (a uvicorn access line, a stack trace) takes the time of the line
before it in the same stream (:func:`stamp_stream`).
"""

from __future__ import annotations

import calendar
import re
import time
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta, timezone, tzinfo

_MONTHS = {m: i for i, m in enumerate(calendar.month_abbr) if m}
_ISO = re.compile(r"(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:[.,](\d+))?(Z|[+-]\d\d:?\d\d)?")
_SLASHED = re.compile(r"(\d{4})/(\d\d)/(\d\d) (\d\d):(\d\d):(\d\d)")
_REDIS = re.compile(r"(\d{1,2}) ([A-Z][a-z]{2}) (\d{4}) (\d\d):(\d\d):(\d\d)(?:\.(\d+))?")
_SEARCH_WIDTH = 160  # timestamps sit at the start of a line or in its first JSON field
# POSIX TZ without rules, e.g. ``KST-9`` or ``<+0530>-5:30``: the sign is west-positive.
_POSIX_FIXED = re.compile(r"^(?:[A-Za-z]{3,}|<[^>]+>)([+-]?)(\d{1,2})(?::(\d\d))?$")


def zone_from_tz(value: str | None) -> tzinfo | None:
    """The zone a process with ``TZ=value`` writes local times in; None when ``value`` is None
    (no TZ: the host's local time, like this process's). Read as glibc does: ``:`` prefix
    ignored, empty means UTC, a zone name or file, a fixed POSIX offset; anything else is UTC
    (glibc's answer to a TZ it cannot parse)."""
    if value is None:
        return None
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    name = value[1:] if value.startswith(":") else value
    if not name:
        return timezone.utc
    fixed = _POSIX_FIXED.match(name)
    if fixed:
        sign, hours, minutes = fixed.groups()
        west = timedelta(hours=int(hours), minutes=int(minutes or 0))
        return timezone(west if sign == "-" else -west)
    try:
        if name.startswith("/"):
            with open(name, "rb") as handle:
                return ZoneInfo.from_file(handle, key=name)
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return timezone.utc


def zone_label(zone: tzinfo | None, when: float | None = None) -> str:
    """``UTC+09:00 (Asia/Seoul)``: how output names the zone its times are printed in."""
    moment = datetime.fromtimestamp(time.time() if when is None else when, zone or None)
    if zone is None:
        moment = moment.astimezone()
    offset = moment.strftime("%z")
    name = getattr(zone, "key", None) or moment.tzname() or ""
    label = f"UTC{offset[:3]}:{offset[3:]}" if offset else "UTC"
    return f"{label} ({name})" if name and name not in label else label


def line_time(text: str, zone: tzinfo | None = None) -> float | None:
    """Epoch seconds of the first timestamp near the start of ``text``; None without one.
    A timestamp without a zone is read in ``zone`` (None: this process's local time)."""
    head = text[:_SEARCH_WIDTH]
    match = _ISO.search(head)
    if match:
        year, month, day, hour, minute, second, fraction, offset = match.groups()
        parts = (int(year), int(month), int(day), int(hour), int(minute), int(second))
        return _epoch(parts, offset, zone) + _fraction(fraction)
    match = _SLASHED.search(head)
    if match:
        return _epoch(tuple(int(g) for g in match.groups()), None, zone)
    match = _REDIS.search(head)
    if match and match.group(2) in _MONTHS:
        day, month, year, hour, minute, second, fraction = match.groups()
        parts = (int(year), _MONTHS[month], int(day), int(hour), int(minute), int(second))
        return _epoch(parts, None, zone) + _fraction(fraction)
    return None


def stamp_stream(
    lines: Iterable[tuple[float | None, str]], zone: tzinfo | None = None
) -> Iterator[tuple[float | None, str]]:
    """(time, text) for each line: the runtime's time, else the line's own (naive ones read in
    ``zone``), else the previous line's (a stack trace belongs with the line that began it);
    None before any had one."""
    last: float | None = None
    for recorded, text in lines:
        found = recorded if recorded is not None else line_time(text, zone)
        if found is not None:
            last = found
        yield last, text


def _epoch(parts: tuple[int, ...], offset: str | None, zone: tzinfo | None) -> float:
    year, month, day, hour, minute, second = parts
    try:
        if offset is None and zone is None:
            return time.mktime((year, month, day, hour, minute, second, 0, 0, -1))
        if offset is None:
            return datetime(year, month, day, hour, minute, second, tzinfo=zone).timestamp()
        seconds = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    except (OverflowError, ValueError):
        return 0.0
    if offset != "Z":
        sign = -1 if offset[0] == "-" else 1
        digits = offset[1:].replace(":", "")
        seconds -= sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
    return float(seconds)


def _fraction(digits: str | None) -> float:
    return float(f"0.{digits}") if digits else 0.0
