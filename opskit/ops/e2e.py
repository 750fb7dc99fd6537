"""The end-to-end masking check: proof that masking happened, not only that text came back.

An echo round trip passes with the plugin switched off, so this check asks Redis: a unique
synthetic EC2 id goes through nginx → Kong → the Claude API; the client must get the original
back with no ``AWS_*_NNN`` token, **and** ``aws_masker:rev:<b64(id)>`` → M and
``aws_masker:map:M`` → id (with a TTL) must exist — only masking writes those. The masking event
with our request id on ``aws-masker:events:masking`` is checked too.

``fail_secure`` (opt-in) stops Redis through the runtime, expects 503 ``AWS_MASKER_1001``, and
always starts Redis again — in a ``finally``, so Ctrl-C or an exception cannot leave it down.

Against the real Claude API this costs tokens: it runs only with ``allow_cost`` and asks for
at most 16 output tokens.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import time
import uuid
from collections.abc import Callable

import httpx

from opskit.report import CRITICAL, OK, UNKNOWN, WARNING, CheckResult
from opskit.stack import Stack

SERVICE = "e2e"
MAX_TOKENS = 16
EVENTS_CHANNEL = "aws-masker:events:masking"
MASKED_TOKEN = re.compile(r"AWS_[A-Z0-9_]+?_\d{3,}")
COSTLY_HOSTS = ("anthropic.com",)


def synthetic_instance_id() -> str:
    """A random, well-formed EC2 instance id Redis cannot already hold a mapping for."""
    return "i-" + secrets.token_hex(9)[:17]


class _Steps:
    """Collects one CheckResult per step, timing each."""

    def __init__(self) -> None:
        self.results: list[CheckResult] = []

    def add(self, name: str, began: float, status: str, detail: str) -> None:
        elapsed = (time.perf_counter() - began) * 1000
        self.results.append(CheckResult(name, SERVICE, status, detail, round(elapsed, 1)))


def _first(stack: Stack, role: str) -> str | None:
    return next((name for name, spec in stack.services.items() if spec.role == role), None)


def masking_checks(
    stack: Stack,
    *,
    fail_secure: bool = False,
    allow_cost: bool = False,
    event_wait: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
) -> list[CheckResult]:
    steps = _Steps()
    began = time.perf_counter()
    names = {role: _first(stack, role) for role in ("nginx", "kong", "redis")}
    missing = [role for role, name in names.items() if name is None]
    if missing:
        steps.add("masking", began, UNKNOWN, f"stack has no {', '.join(missing)} service")
        return steps.results
    nginx, kong, redis_role = (stack.role(names[r]) for r in ("nginx", "kong", "redis"))
    costly = _costly_upstream(kong)
    if costly and not allow_cost:
        steps.add(
            "masking",
            began,
            UNKNOWN,
            f"Kong forwards to {costly}: the check costs API tokens; pass --allow-cost",
        )
        return steps.results

    host, port = nginx.address()
    url = f"http://{host}:{port}{kong.masked_path}"
    api_key = stack.config.environ.get("ANTHROPIC_API_KEY") or "opskit-e2e-check"
    original = synthetic_instance_id()
    request_id = f"opskit-e2e-{uuid.uuid4().hex}"
    client = redis_role.client(timeout=2.0)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    try:
        pubsub.subscribe(EVENTS_CHANNEL)
        pubsub.get_message(timeout=0.5)  # the subscribe confirmation
        step = time.perf_counter()
        status, detail = _round_trip(url, api_key, request_id, original)
        steps.add("round_trip", step, status, detail)

        step = time.perf_counter()
        status, detail = _masked_in_redis(client, original)
        steps.add("masked_in_redis", step, status, detail)

        step = time.perf_counter()
        status, detail = _event(pubsub, request_id, original, event_wait)
        steps.add("masking_event", step, status, detail)
    finally:
        pubsub.close()
        client.close()

    if fail_secure:
        step = time.perf_counter()
        status, detail = _fail_secure(redis_role, url, api_key, sleep)
        steps.add("fail_secure", step, status, detail)
    return steps.results


def _costly_upstream(kong) -> str | None:
    try:
        services = kong.http().get(f"{kong.admin_url}/services").json().get("data", [])
    except (httpx.HTTPError, ValueError):
        return None  # Kong's own checks report an unreachable admin API
    for service in services:
        host = httpx.URL(service.get("url") or f"http://{service.get('host', '')}").host
        if host.endswith(COSTLY_HOSTS):
            return host
    return None


def _send(url: str, api_key: str, request_id: str, text: str) -> httpx.Response:
    return httpx.post(
        url,
        headers={
            "x-api-key": api_key,
            "anthropic-version": "2023-06-01",
            "x-request-id": request_id,
        },
        json={
            "model": "claude-3-5-haiku-latest",
            "max_tokens": MAX_TOKENS,
            "messages": [{"role": "user", "content": f"Repeat exactly: {text}"}],
        },
        timeout=httpx.Timeout(30.0, connect=2.0),
        trust_env=False,
    )


def _round_trip(url: str, api_key: str, request_id: str, original: str) -> tuple[str, str]:
    try:
        response = _send(url, api_key, request_id, original)
    except httpx.HTTPError as exc:
        return CRITICAL, f"POST {url}: {type(exc).__name__}"
    if response.status_code != 200:
        return CRITICAL, f"POST {url}: HTTP {response.status_code} {response.text[:200]}"
    try:
        content = response.json()["content"]
        text = "".join(b.get("text", "") for b in content if b.get("type") == "text")
    except (ValueError, KeyError, TypeError, AttributeError):
        return CRITICAL, "response is not an Anthropic message"
    leaked = MASKED_TOKEN.findall(text)
    if leaked:
        return CRITICAL, f"masked token {leaked[0]} reached the client: unmasking failed"
    if original not in text:
        return CRITICAL, "the synthetic id did not come back in the response"
    return OK, "synthetic id came back unmasked, no AWS_* token in the response"


def _masked_in_redis(client, original: str) -> tuple[str, str]:
    import redis

    rev_key = "aws_masker:rev:" + base64.b64encode(original.encode()).decode()
    try:
        masked = client.get(rev_key)
        if masked is None:
            return CRITICAL, "no aws_masker:rev key for the synthetic id: it was NOT masked"
        masked = masked.decode()
        stored = client.get(f"aws_masker:map:{masked}")
        ttl = client.ttl(f"aws_masker:map:{masked}")
    except redis.RedisError as exc:
        return CRITICAL, f"cannot read the masking maps: {exc}"
    if stored is None or stored.decode() != original:
        return CRITICAL, f"aws_masker:map:{masked} does not map back to the synthetic id"
    if ttl is None or ttl <= 0:
        return WARNING, f"masked as {masked}, but the mapping has no TTL ({ttl})"
    return OK, f"masked as {masked} (map and rev keys present, TTL {ttl}s)"


def _event(pubsub, request_id: str, original: str, wait: float) -> tuple[str, str]:
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        message = pubsub.get_message(timeout=max(0.0, deadline - time.monotonic()))
        if not message or message.get("type") != "message":
            continue
        try:
            event = json.loads(message["data"])
        except (ValueError, TypeError):
            continue
        if event.get("request_id") == request_id:
            masked_text = (event.get("demo_data") or {}).get("masked_text", "")
            if original in masked_text:
                return CRITICAL, "the masking event's masked_text holds the original id"
            return OK, f"masking event {event.get('event_id')} with our request id"
    return WARNING, f"no masking event with our request id within {wait:g}s"


def _fail_secure(redis_role, url: str, api_key: str, sleep) -> tuple[str, str]:
    """Stop Redis, expect 503 AWS_MASKER_1001, and start Redis again whatever happens."""
    stopped = redis_role.stop()
    if not stopped.was_running:
        return UNKNOWN, "redis was not running; fail-secure probe skipped"
    restored = False
    try:
        request_id = f"opskit-failsecure-{uuid.uuid4().hex}"
        response = _send(url, api_key, request_id, synthetic_instance_id())
        if response.status_code == 503 and "AWS_MASKER_1001" in response.text:
            result = OK, "with Redis down, AWS-bearing request refused: 503 AWS_MASKER_1001"
        else:
            result = (
                CRITICAL,
                (
                    f"with Redis down the gateway answered {response.status_code}, "
                    "not 503 AWS_MASKER_1001: AWS ids may leave unmasked"
                ),
            )
    except httpx.HTTPError as exc:
        result = CRITICAL, f"fail-secure request failed: {type(exc).__name__}"
    finally:  # also on Ctrl-C and unexpected exceptions: never leave Redis down
        restored = _restart_redis(redis_role, sleep)
    if not restored:
        return CRITICAL, f"{result[1]}; Redis did NOT become ready again after the probe"
    return result


def _restart_redis(redis_role, sleep) -> bool:
    if not redis_role.unit.status().running:
        redis_role.prepare()
        redis_role.unit.start(redis_role.launch())
    deadline = time.monotonic() + redis_role.spec.start_timeout
    while time.monotonic() < deadline:
        if redis_role.probe_ready().ready:
            return True
        sleep(0.02)
    return False
