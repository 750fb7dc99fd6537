"""Compose duration strings (``1m30s``, ``500ms``, ``10s``) and human sizes (``10MB``)."""

from __future__ import annotations

import re

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(us|ms|s|m|h)")
_UNIT_SECONDS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*$", re.IGNORECASE)
_SIZE_FACTOR = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def parse_duration(value: object) -> float:
    """Return seconds for a Compose duration; a bare number means seconds.

    Raises ValueError with the offending text, so callers can name the key.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like '10s', got {value!r}")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"expected a non-negative duration, got {value!r}")
        return float(value)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected a duration like '10s' or '1m30s', got {value!r}")
    text = value.strip()
    total, pos = 0.0, 0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if pos != len(text) or pos == 0:
        raise ValueError(f"expected a duration like '10s' or '1m30s', got {value!r}")
    return total


def parse_size(value: object) -> int:
    """Return bytes for ``10MB``, ``512k``, ``1g`` or a plain integer (bytes)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a size like '10MB', got {value!r}")
    if isinstance(value, int):
        return value
    match = _SIZE.match(str(value))
    if not match:
        raise ValueError(f"expected a size like '10MB', got {value!r}")
    unit = (match.group(2) or "").lower().rstrip("b").rstrip("i")
    return int(float(match.group(1)) * _SIZE_FACTOR[unit])
