"""What the redis role reports as metrics: one ``INFO``, a bounded ``SCAN`` of the plugin's keys.

Names follow redis_exporter where it has one (``memory_used_bytes``, ``connected_clients``,
``rdb_last_bgsave_status``) under opskit's prefix. The aws-masker plugin's keys are counted per
kind (``aws_masker:map:``, ``rev:``, ``cnt:``, ``stats:``, ``health:``); ``cnt:<type>`` holds the
number of masked ids the plugin ever created for that type (``INCR``, no TTL), which is the one
masking counter that survives between two cron runs of ``inv metrics --textfile``.

The scan is bounded: on a store larger than :data:`SCAN_BUDGET` seconds of scanning, the
per-kind key gauge is left out rather than reported short (an absent series is honest, a low
one would look like lost maps).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from opskit.services.capabilities import MetricValue
from opskit.services.probes import RedisProbeError
from opskit.vocabulary import MetricType

if TYPE_CHECKING:
    from opskit.services.probes import RedisProbe

PLUGIN_PREFIX = "aws_masker:"
KEY_KINDS = ("map", "rev", "cnt", "stats", "health")
SCAN_BUDGET = 1.0  # seconds
SCAN_COUNT = 1000


def redis_metric_values(connection: RedisProbe) -> list[MetricValue]:
    info = connection.info()
    values = [
        MetricValue(
            "redis_memory_used_bytes", "Memory Redis has allocated.", _num(info, "used_memory")
        ),
        MetricValue(
            "redis_memory_max_bytes",
            "Redis maxmemory (0: no limit).",
            _num(info, "maxmemory"),
        ),
        MetricValue(
            "redis_connected_clients", "Client connections.", _num(info, "connected_clients")
        ),
        MetricValue("redis_blocked_clients", "Blocked clients.", _num(info, "blocked_clients")),
        MetricValue(
            "redis_commands_processed_total",
            "Commands Redis processed since it started.",
            _num(info, "total_commands_processed"),
            MetricType.COUNTER,
        ),
        MetricValue(
            "redis_rejected_connections_total",
            "Connections refused because maxclients was reached.",
            _num(info, "rejected_connections"),
            MetricType.COUNTER,
        ),
        MetricValue(
            "redis_rdb_last_bgsave_ok",
            "1 when the last background save succeeded.",
            1.0 if info.get("rdb_last_bgsave_status") == "ok" else 0.0,
        ),
        MetricValue(
            "redis_rdb_last_save_timestamp_seconds",
            "When Redis last saved its dataset (epoch seconds).",
            _num(info, "rdb_last_save_time"),
        ),
        MetricValue(
            "redis_rdb_changes_since_last_save",
            "Writes not yet in the RDB file.",
            _num(info, "rdb_changes_since_last_save"),
        ),
    ]
    refused = _auth_failures(connection, info)
    if refused is not None:
        values.append(
            MetricValue(
                "redis_auth_failures_total",
                "AUTH attempts Redis refused (wrong password or user) since it started.",
                refused,
                MetricType.COUNTER,
            )
        )
    counts, created = _plugin_keys(connection)
    if counts is not None:
        values.extend(
            MetricValue(
                "redis_masking_keys",
                "aws-masker keys in Redis, by kind (map, rev, cnt, stats, health).",
                float(counts.get(kind, 0)),
                labels=(("kind", kind),),
            )
            for kind in KEY_KINDS
        )
    values.extend(
        MetricValue(
            "masking_ids_created_total",
            "Masked ids the aws-masker plugin created, by resource type (its cnt: keys).",
            float(count),
            MetricType.COUNTER,
            labels=(("type", kind),),
        )
        for kind, count in sorted(created.items())
    )
    return values


def _auth_failures(connection: RedisProbe, info: dict[str, str]) -> float | None:
    """INFO's ``acl_access_denied_auth`` (Redis 7.2 and later); before it, the sum of the
    ``auth`` entries' counts in ``ACL LOG`` (Redis 6+: repeated failures of one client are one
    entry with a count; the log keeps its newest 128 entries). None without either."""
    if "acl_access_denied_auth" in info:
        return _num(info, "acl_access_denied_auth")
    try:
        entries = connection.call("ACL", "LOG", "128")
    except (RedisProbeError, OSError):
        return None
    total = 0
    for entry in entries if isinstance(entries, list) else []:
        fields = dict(zip(entry[::2], entry[1::2], strict=False)) if isinstance(entry, list) else {}
        if fields.get(b"reason") == b"auth":
            total += int(fields.get(b"count", 0))
    return float(total)


def _plugin_keys(connection: RedisProbe) -> tuple[dict[str, int] | None, dict[str, int]]:
    """(keys per kind, or None when the scan ran out of time; the cnt: counters)."""
    counts: dict[str, int] = {}
    counters: list[str] = []
    cursor = "0"
    deadline = time.monotonic() + SCAN_BUDGET
    while True:
        cursor_raw, keys = connection.call(
            "SCAN", cursor, "MATCH", PLUGIN_PREFIX + "*", "COUNT", SCAN_COUNT
        )
        for raw in keys:
            key = raw.decode(errors="replace")
            kind = key[len(PLUGIN_PREFIX) :].split(":", 1)[0]
            counts[kind] = counts.get(kind, 0) + 1
            if kind == "cnt":
                counters.append(key)
        cursor = cursor_raw.decode()
        if cursor == "0":
            break
        if time.monotonic() > deadline:
            return None, _counters(connection, counters)
    return counts, _counters(connection, counters)


def _counters(connection: RedisProbe, keys: list[str]) -> dict[str, int]:
    if not keys:
        return {}
    replies = connection.call("MGET", *keys)
    created: dict[str, int] = {}
    for key, reply in zip(keys, replies, strict=True):
        try:
            created[key.rsplit(":", 1)[1]] = int(reply)
        except (TypeError, ValueError):
            continue  # not an integer counter: not the plugin's
    return created


def _num(info: dict, key: str) -> float:
    try:
        return float(info.get(key, 0))
    except ValueError:
        return 0.0
