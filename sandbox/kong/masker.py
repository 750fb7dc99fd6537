"""The aws-masker plugin's behaviour: mask with Redis maps, unmask, fail secure, publish events.

Keys (as the plugin writes them, original-scripts.md §c.2): ``aws_masker:map:<M>`` → original,
``aws_masker:rev:<base64(original)>`` → M, both with ``mapping_ttl``; ``aws_masker:cnt:<kind>``
counters without TTL. The same original gets the same M while its rev key lives.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import random
import sys
import time
from dataclasses import dataclass, field

import redis.asyncio as aioredis
from redis.backoff import NoBackoff
from redis.retry import Retry

from sandbox.kong.patterns import MASKED_TOKEN, PATTERNS, accepts

PREFIX = "aws_masker:"
EVENTS_CHANNEL = "aws-masker:events:masking"
FAIL_SECURE_CODE = "AWS_MASKER_1001"


class RedisUnavailable(Exception):
    """Redis cannot be used (down, or the circuit breaker is open)."""


@dataclass
class CircuitBreaker:
    """Open after ``threshold`` consecutive failures; half-open after ``reset_after`` seconds."""

    threshold: int = 5
    reset_after: float = 30.0
    failures: int = 0
    opened_at: float | None = None

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        if time.monotonic() - self.opened_at >= self.reset_after:
            return "half-open"
        return "open"

    def allow(self) -> bool:
        return self.state != "open"

    def success(self) -> None:
        self.failures, self.opened_at = 0, None

    def failure(self) -> None:
        self.failures += 1
        if self.failures >= self.threshold or self.state == "half-open":
            self.opened_at = time.monotonic()


@dataclass
class MaskResult:
    text: str
    mapping: dict[str, str] = field(default_factory=dict)  # original -> masked
    patterns: dict[str, int] = field(default_factory=dict)


def log(tag: str, payload: dict) -> None:
    """A Kong error-log line: ``[TAG] {json}``."""
    print(f"[{tag}] {json.dumps(payload, separators=(',', ':'))}", file=sys.stderr, flush=True)


class Masker:
    def __init__(self, host: str, port: int, password: str | None, db: int = 0):
        self.redis = aioredis.Redis(
            host=host,
            port=port,
            password=password or None,
            db=db,
            socket_timeout=1.0,
            socket_connect_timeout=1.0,
            retry=Retry(NoBackoff(), 0),
            decode_responses=True,
        )
        # The plugin's breaker: 5 failures, 30 s open. The variables exist only in the stand-in,
        # so tests can watch it recover without waiting 30 s.
        self.breaker = CircuitBreaker(
            threshold=int(os.environ.get("AWS_MASKER_BREAKER_THRESHOLD", "5")),
            reset_after=float(os.environ.get("AWS_MASKER_BREAKER_RESET", "30")),
        )

    @staticmethod
    def find(text: str) -> list[tuple[str, object]]:
        """Every (original, pattern) in ``text``, in pattern order, each original once."""
        found: list[tuple[str, object]] = []
        seen: set[str] = set()
        remaining = text
        for pattern in PATTERNS:
            for match in pattern.regex.finditer(remaining):
                original = match.group(0)
                if original not in seen and accepts(pattern, original):
                    seen.add(original)
                    found.append((original, pattern))
            for original, _ in found:  # later patterns must not see inside earlier matches
                remaining = remaining.replace(original, " ")
        return found

    async def _call(self, coroutine):
        if not self.breaker.allow():
            coroutine.close()
            raise RedisUnavailable("circuit breaker open")
        try:
            result = await coroutine
        except (aioredis.ConnectionError, aioredis.TimeoutError, OSError) as exc:
            self.breaker.failure()
            raise RedisUnavailable(str(exc)) from None
        self.breaker.success()
        return result

    async def mask(self, text: str, ttl: int) -> MaskResult:
        result = MaskResult(text)
        found = self.find(text)
        if not found:
            return result
        for original, pattern in found:
            rev_key = PREFIX + "rev:" + base64.b64encode(original.encode()).decode()
            masked = await self._call(self.redis.get(rev_key))
            if masked is None:
                counter = await self._call(self.redis.incr(PREFIX + "cnt:" + pattern.kind))
                masked = pattern.masked(counter)
                await self._call(self.redis.setex(PREFIX + "map:" + masked, ttl, original))
                await self._call(self.redis.setex(rev_key, ttl, masked))
            result.mapping[original] = masked
            result.patterns[pattern.name] = result.patterns.get(pattern.name, 0) + 1
        for original in sorted(result.mapping, key=len, reverse=True):
            result.text = result.text.replace(original, result.mapping[original])
        return result

    async def unmask(self, text: str, known: dict[str, str]) -> tuple[str, int]:
        """Replace AWS_*_NNN tokens with their originals (request mapping first, then Redis)."""
        reverse = {masked: original for original, masked in known.items()}
        count = 0

        tokens = set(MASKED_TOKEN.findall(text))
        for token in sorted(tokens, key=len, reverse=True):
            original = reverse.get(token)
            if original is None:
                try:
                    original = await self._call(self.redis.get(PREFIX + "map:" + token))
                except RedisUnavailable:
                    original = None
            if original is not None:
                text = text.replace(token, original)
                count += 1
        return text, count

    async def publish(self, event: dict) -> None:
        """Fire-and-forget, as the plugin: a failed publish never fails the request."""
        with contextlib.suppress(RedisUnavailable):
            await self._call(self.redis.publish(EVENTS_CHANNEL, json.dumps(event)))

    async def close(self) -> None:
        await self.redis.aclose()


def masking_event(request_id: str, original: str, result: MaskResult, ms: float) -> dict:
    """The plugin's masking event shape (event_publisher.lua)."""
    now = time.time()
    return {
        "event_id": f"mask_{now:.3f}_{random.randint(10000, 99999)}",
        "event_type": "masking_applied",
        "timestamp": now * 1000,
        "request_id": request_id,
        "success": True,
        "patterns_applied": result.patterns,
        "total_patterns": sum(result.patterns.values()),
        "processing_time_ms": round(ms, 3),
        "request_size_bytes": len(original.encode()),
        "demo_data": {
            "original_text": original[:500],
            "masked_text": result.text[:500],
            "is_demo_mode": True,
            "truncated": len(original) > 500,
        },
        "source": "kong-aws-masker",
        "version": "1.0.0",
    }
