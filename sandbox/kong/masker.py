"""The aws-masker plugin's behaviour: mask with Redis maps, unmask, publish events.

Keys (as the plugin writes them, reference row 19): ``aws_masker:map:<M>`` → original,
``aws_masker:rev:<base64(original)>`` → M, both with ``mapping_ttl``; ``aws_masker:cnt:<kind>``
counters without TTL. The same original gets the same M while its rev key lives.

**When Redis fails** (reference rows 21-22) the real plugin does not fail secure:

- a worker that has not built its Redis store yet hits an undefined error code and
  ``kong.response.exit(nil)`` raises: **HTTP 500**;
- a worker that already has its store masks with counter-0 ids (``AWS_EC2_000``) that are never
  stored, forwards, and answers **HTTP 200** — tokens collide across ids and the mapping is lost;
- Redis errors during masking do not count towards its circuit breaker, which therefore
  practically never opens.

``AWS_MASKER_FAIL_SECURE=true`` gives the *fixed* plugin instead: 503 ``AWS_MASKER_1001`` for an
AWS-bearing body while Redis is unusable, with a breaker that counts those failures — so that
opskit's verdicts are tested against both.
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


class StoreMissing(Exception):
    """The real plugin's worker has no Redis store yet and raises (HTTP 500)."""


def fail_secure_mode() -> bool:
    """The fixed plugin (``AWS_MASKER_FAIL_SECURE=true``) instead of the real one."""
    return os.environ.get("AWS_MASKER_FAIL_SECURE", "false").lower() in ("1", "true", "yes")


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
    """A Kong error-log line: ``[TAG] {json}`` after nginx's error-log prefix, as
    ``kong.log.info`` writes it (``2026/11/24 10:00:00 [info] 1#0: [kong] …``)."""
    error_log_line(f"[{tag}] {json.dumps(payload, separators=(',', ':'))}")


def error_log_line(message: str, level: str = "info") -> None:
    stamp = time.strftime("%Y/%m/%d %H:%M:%S")
    prefix = f"{stamp} [{level}] {os.getpid()}#0: [kong] handler.lua [aws-masker] "
    print(prefix + message, file=sys.stderr, flush=True)


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
        self.fail_secure = fail_secure_mode()
        # The real plugin builds its Redis store on a worker's first request that reaches Redis.
        self.has_store = False

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
        # Only the fixed plugin's breaker counts Redis errors during masking (row 22).
        if self.fail_secure and not self.breaker.allow():
            coroutine.close()
            raise RedisUnavailable("circuit breaker open")
        try:
            result = await coroutine
        except (aioredis.ConnectionError, aioredis.TimeoutError, OSError) as exc:
            if self.fail_secure:
                self.breaker.failure()
            raise RedisUnavailable(str(exc)) from None
        self.breaker.success()
        self.has_store = True
        return result

    async def mask(self, text: str, ttl: int) -> MaskResult:
        """Mask every AWS id in ``text``. Redis failing: the fixed plugin raises
        RedisUnavailable (503), the real one StoreMissing (500) or counter-0 ids (200)."""
        result = MaskResult(text)
        found = self.find(text)
        if not found:
            return result
        try:
            await self._mask_stored(found, result, ttl)
        except RedisUnavailable:
            if self.fail_secure:
                raise
            if not self.has_store:
                raise StoreMissing("attempt to call undefined error code") from None
            for original, pattern in found:  # masker_ngx_re.lua:505-510: counter 0, not stored
                result.mapping[original] = pattern.masked(0)
                result.patterns[pattern.name] = result.patterns.get(pattern.name, 0) + 1
        for original in sorted(result.mapping, key=len, reverse=True):
            result.text = result.text.replace(original, result.mapping[original])
        return result

    async def _mask_stored(self, found: list, result: MaskResult, ttl: int) -> None:
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

    async def unmask(self, text: str, known: dict[str, str]) -> tuple[str, int]:
        """Replace this request's tokens from its in-memory map; Redis is never read (row 23:
        handler.lua:560-602). Colliding counter-0 tokens restore to one of their originals."""
        reverse = {masked: original for original, masked in known.items()}
        count = 0
        tokens = set(MASKED_TOKEN.findall(text))
        for token in sorted(tokens, key=len, reverse=True):
            original = reverse.get(token)
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
    """The plugin's masking event shape (event_publisher.lua). ``request_id`` is nginx's own
    ``$request_id`` (32 random hex), not the client's X-Request-ID (row 20)."""
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
