"""What is in a Redis, computed on a throwaway copy (``inv backup.inspect``): keys and memory
per prefix, how long keys have left to live, what expires within a day, the biggest keys — the
"which keys use the memory" answer operators otherwise ask redis_exporter or ``redis-cli
--bigkeys`` for, without a single command against production.

One small script per SCAN step returns each key's name, ``MEMORY USAGE`` and ``PTTL``; the
aggregation is here, in bounded memory (a heap for the biggest keys).
"""

from __future__ import annotations

import heapq
from typing import Any

from opskit.services.probes import RedisProbe

SCAN_BATCH = 1000
BIGGEST = 20
DAY_MS = 86_400_000
# (label, upper bound in ms): where a key's remaining TTL falls
TTL_BUCKETS = (("< 1h", 3_600_000), ("< 1d", DAY_MS), ("< 7d", 7 * DAY_MS), (">= 7d", None))
NO_TTL = "no TTL"

_BATCH = """
local step = redis.call('SCAN', ARGV[1], 'COUNT', ARGV[2])
local flat = {}
for _, key in ipairs(step[2]) do
  table.insert(flat, key)
  table.insert(flat, redis.call('MEMORY', 'USAGE', key, 'SAMPLES', '0') or 0)
  table.insert(flat, redis.call('PTTL', key))
end
return {step[1], flat}
"""


def prefix_of(key: str) -> str:
    """``aws_masker:map:X`` → ``aws_masker:map:``; ``session:42`` → ``session:``; a key with
    no ``:`` is its own group, ``(no prefix)``."""
    parts = key.split(":")
    if key.startswith("aws_masker:") and len(parts) > 2:
        return f"aws_masker:{parts[1]}:"
    return f"{parts[0]}:" if len(parts) > 1 else "(no prefix)"


def ttl_bucket(pttl: int) -> str:
    if pttl < 0:
        return NO_TTL
    for label, bound in TTL_BUCKETS:
        if bound is None or pttl < bound:
            return label
    raise AssertionError("unreachable: the last bucket has no bound")


def inspect_redis(port: int) -> dict[str, Any]:
    """Walk every key of the Redis on loopback ``port`` (db0, no password: a throwaway)."""
    prefixes: dict[str, dict[str, int]] = {}
    ttl: dict[str, int] = {NO_TTL: 0, **{label: 0 for label, _ in TTL_BUCKETS}}
    biggest: list[tuple[int, str, int]] = []  # a min-heap of (bytes, key, pttl)
    keys = memory = expiring = 0
    cursor = "0"
    with RedisProbe("127.0.0.1", port, None, 60.0) as redis:
        while True:
            cursor, flat = redis.call("EVAL", _BATCH, 0, cursor, SCAN_BATCH)
            cursor = cursor.decode() if isinstance(cursor, bytes) else str(cursor)
            for raw, size, pttl in zip(flat[::3], flat[1::3], flat[2::3], strict=True):
                key, size, pttl = raw.decode("utf-8", errors="replace"), int(size), int(pttl)
                keys, memory = keys + 1, memory + size
                group = prefixes.setdefault(prefix_of(key), {"keys": 0, "bytes": 0})
                group["keys"] += 1
                group["bytes"] += size
                ttl[ttl_bucket(pttl)] += 1
                expiring += 0 <= pttl < DAY_MS
                entry = (size, key, pttl)
                if len(biggest) < BIGGEST:
                    heapq.heappush(biggest, entry)
                elif entry > biggest[0]:
                    heapq.heapreplace(biggest, entry)
            if cursor == "0":
                break
    return {
        "keys": keys,
        "memory_bytes": memory,
        "prefixes": dict(sorted(prefixes.items(), key=lambda item: -item[1]["bytes"])),
        "ttl": ttl,
        "expiring_within_a_day": expiring,
        "biggest": [
            {"key": key, "bytes": size, "ttl_seconds": round(pttl / 1000) if pttl >= 0 else None}
            for size, key, pttl in sorted(biggest, reverse=True)
        ],
    }
