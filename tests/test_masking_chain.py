"""Masking through the real chain: nginx → Kong stand-in → Claude stand-in, with real Redis.

What the aws-masker plugin does (shared/reference/original-scripts.md §c and
kong-real-behaviour.md rows 19-23): mask AWS ids into ``AWS_<TYPE>_NNN`` with
``aws_masker:map:``/``rev:`` keys (TTL ``mapping_ttl``) and ``cnt:`` counters, keep ids
consistent, unmask the response from the request's own map, publish ``aws-masker:events:masking``
with nginx's own request id — and, with Redis unusable, what the *real* plugin does (500 on a
worker without a store, unstored counter-0 masks on one with a store) or, with
``AWS_MASKER_FAIL_SECURE=true``, what the fixed plugin does (503 ``AWS_MASKER_1001``).
"""

from __future__ import annotations

import base64
import json
import re
import time
import uuid

import httpx
import pytest
import redis

from opskit.ops import lifecycle
from sandbox.kong.masker import Masker

from .test_patterns import CASES

TOKEN = re.compile(r"AWS_[A-Z0-9_]+?_\d{3,}")


class Chain:
    """Requests through nginx, plus what the upstream saw and what Redis holds."""

    def __init__(self, stack):
        env = stack.config.environ
        self.nginx = f"http://127.0.0.1:{env['NGINX_PROXY_PORT']}"
        self.kong = f"http://127.0.0.1:{env['KONG_PROXY_PORT']}"
        self.upstream = f"http://127.0.0.1:{env['UPSTREAM_PORT']}"
        self.http = httpx.Client(timeout=10, trust_env=False)
        self.redis = redis.Redis(
            port=int(env["REDIS_PORT"]), password=env["REDIS_PASSWORD"], decode_responses=True
        )

    def send(self, text: str, base: str | None = None, request_id: str | None = None):
        request_id = request_id or uuid.uuid4().hex
        response = self.http.post(
            f"{base or self.nginx}/v1/messages",
            headers={"x-api-key": "test-key", "x-request-id": request_id},
            json={"model": "m", "max_tokens": 16, "messages": [{"role": "user", "content": text}]},
        )
        return response, request_id

    def seen_by_upstream(self, request_id: str) -> str:
        for item in reversed(
            self.http.get(f"{self.upstream}/_standin/requests").json()["requests"]
        ):
            if item["request_id"] == request_id:
                return item["text"]
        raise AssertionError(f"upstream never saw request {request_id}")

    def reply_text(self, response) -> str:
        assert response.status_code == 200, response.text
        return response.json()["content"][0]["text"]

    def close(self):
        self.http.close()
        self.redis.close()


@pytest.fixture(scope="module")
def chain(running_sandbox):
    chain = Chain(running_sandbox)
    yield chain
    chain.close()


@pytest.mark.parametrize(("name", "original", "misses"), CASES)
def test_every_pattern_is_masked_upstream_and_restored_for_the_client(
    chain, name, original, misses
):
    text = f"Please repeat exactly: {original} ."
    response, request_id = chain.send(text)
    assert chain.reply_text(response) == text
    assert not TOKEN.search(chain.reply_text(response))
    upstream = chain.seen_by_upstream(request_id)
    assert original not in upstream
    [masked] = TOKEN.findall(upstream)
    assert upstream == text.replace(original, masked)
    rev = "aws_masker:rev:" + base64.b64encode(original.encode()).decode()
    assert chain.redis.get(rev) == masked
    assert chain.redis.get(f"aws_masker:map:{masked}") == original
    assert 0 < chain.redis.ttl(f"aws_masker:map:{masked}") <= 86400
    assert 0 < chain.redis.ttl(rev) <= 86400


# Near misses no pattern matches at all (172.32.5.4, say, is not private but is public).
NEAR_MISSES = sorted({m for _, _, misses in CASES for m in misses if not Masker.find(m)})


@pytest.mark.parametrize("miss", NEAR_MISSES)
def test_near_misses_reach_the_upstream_unchanged(chain, miss):
    text = f"not an AWS id: {miss}"
    response, request_id = chain.send(text)
    assert chain.reply_text(response) == text
    assert chain.seen_by_upstream(request_id) == text


def test_ids_are_consistent_across_requests_and_distinct_between_ids(chain):
    first, second = "i-0aaaaaaaaaaaaaaa1", "i-0aaaaaaaaaaaaaaa2"
    _, one = chain.send(f"{first}")
    _, two = chain.send(f"{first} {second}")
    masked_once = chain.seen_by_upstream(one)
    masked_first, masked_second = chain.seen_by_upstream(two).split()
    assert masked_once == masked_first
    assert masked_first != masked_second
    assert int(chain.redis.get("aws_masker:cnt:ec2")) >= 2
    assert chain.redis.ttl("aws_masker:cnt:ec2") == -1  # counters never expire, as the plugin


def test_masking_event_on_pubsub_has_the_plugins_shape(chain):
    """Row 20 (P:E2/event_publisher.lua:12-17,46-65): the event's request_id is nginx's own
    $request_id — the one Kong returns as X-Kong-Request-Id — never the client's X-Request-ID."""
    pubsub = chain.redis.pubsub()
    pubsub.subscribe("aws-masker:events:masking")
    assert pubsub.get_message(timeout=2)["type"] == "subscribe"
    original = "vpc-0abc12345678def91"
    response, client_request_id = chain.send(f"in {original}")
    deadline = time.monotonic() + 5
    event = None
    while time.monotonic() < deadline and event is None:
        message = pubsub.get_message(timeout=0.5)
        if message and message["type"] == "message":
            candidate = json.loads(message["data"])
            if original in candidate["demo_data"]["original_text"]:
                event = candidate
    pubsub.close()
    assert event is not None, "no masking event for our id"
    assert event["request_id"] == response.headers["x-kong-request-id"]
    assert event["request_id"] != client_request_id and re.fullmatch(
        "[0-9a-f]{32}", event["request_id"]
    )
    assert event["event_type"] == "masking_applied" and event["success"] is True
    assert event["event_id"].startswith("mask_")
    assert event["patterns_applied"] == {"vpc": 1} and event["total_patterns"] == 1
    assert event["source"] == "kong-aws-masker" and event["version"] == "1.0.0"
    assert isinstance(event["timestamp"], float) and isinstance(event["processing_time_ms"], float)
    demo = event["demo_data"]
    assert original in demo["original_text"] and original not in demo["masked_text"]


def test_an_event_is_published_even_when_nothing_was_masked(chain):
    """Row 20 (P:E2/handler.lua:374-437): every request with a body publishes an event."""
    pubsub = chain.redis.pubsub()
    pubsub.subscribe("aws-masker:events:masking")
    assert pubsub.get_message(timeout=2)["type"] == "subscribe"
    response, _ = chain.send("nothing to mask in here " + uuid.uuid4().hex)
    kong_id = response.headers["x-kong-request-id"]
    deadline = time.monotonic() + 5
    seen = False
    while time.monotonic() < deadline and not seen:
        message = pubsub.get_message(timeout=0.5)
        seen = bool(message and message["type"] == "message")
        seen = seen and json.loads(message["data"])["request_id"] == kong_id
    pubsub.close()
    assert seen


def test_kong_error_log_lines_name_the_clients_request_id(running_sandbox, chain):
    """The plugin logs the client's X-Request-ID (P:E2/handler.lua:274-283), not Kong's own id
    (which only its pub/sub event carries): what lets `inv logs.trace` follow a request."""
    response, request_id = chain.send("on i-0bbbbbbbbbbbbbbb1")
    kong_id = response.headers["x-kong-request-id"]
    lines = running_sandbox.role("kong").unit.log_tail(50)
    tagged = [line for line in lines if request_id in line]
    tags = [line.split("[aws-masker] ", 1)[1].split(" ", 1)[0] for line in tagged]
    assert tags == ["[REQUEST-START]", "[MASKING-EVENT]", "[UNMASK-EVENT]"]
    assert re.match(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[info\] ", tagged[0])  # error-log prefix
    masking = json.loads(tagged[1].split("[MASKING-EVENT] ", 1)[1])
    assert masking["mask_count"] == 1
    assert not any(kong_id in line for line in lines)


def test_response_headers_from_plugins(chain):
    response, _ = chain.send("hello")
    assert response.headers["x-kong-proxy"] == "true"
    assert response.headers["x-masked-response"] == "true"
    assert response.headers["x-correlation-id"]


def test_the_fixed_plugin_fails_secure_and_its_breaker_recovers(sandbox_env, stacks):
    """AWS_MASKER_FAIL_SECURE=true (the fixed plugin): Redis stopped, AWS-bearing bodies get 503
    AWS_MASKER_1001 (P:E2/error_codes.lua:15-20), others pass; the breaker opens after 5
    failures and lets traffic through again once Redis is back."""
    from opskit.stack import load_stack

    from .conftest import REPO

    env = dict(sandbox_env, AWS_MASKER_BREAKER_RESET="3", AWS_MASKER_FAIL_SECURE="true")
    stack = load_stack(REPO / "sandbox" / "stack.yml", environ=env)
    stacks.append(stack)
    assert lifecycle.start(stack, ["nginx", "upstream"]).ok
    chain = Chain(stack)
    try:
        redis_role = stack.role("redis")
        assert redis_role.stop().was_running
        for _ in range(6):  # five failures open the breaker; the sixth is refused by it
            response, _ = chain.send("instance i-0ccccccccccccccc1")
            assert response.status_code == 503
            assert response.json()["error"] == "AWS_MASKER_1001"
        plain, _ = chain.send("no identifiers in here")
        assert chain.reply_text(plain) == "no identifiers in here"

        opened = time.monotonic()
        redis_role.unit.start(redis_role.launch())
        deadline = time.monotonic() + 10
        while not redis_role.probe_ready().ready:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        # Redis is back, but the breaker is still open: still refused, without touching Redis.
        assert time.monotonic() - opened < 2.5
        response, _ = chain.send("instance i-0ccccccccccccccc1")
        assert response.status_code == 503
        time.sleep(max(0.0, 3.2 - (time.monotonic() - opened)))  # reset period: half-open
        response, _ = chain.send("instance i-0ccccccccccccccc1")
        assert chain.reply_text(response) == "instance i-0ccccccccccccccc1"
    finally:
        chain.close()


def test_the_real_plugin_with_redis_down_answers_500_then_unstored_counter_0_masks(
    sandbox_env, stacks
):
    """Row 21 (P:E2/handler.lua:188-213; masker_ngx_re.lua:244-281,505-510): a worker without a
    Redis store raises (HTTP 500); one with a store masks with counter 0, never stores, 200.
    Row 22: Redis errors during masking do not open the breaker."""
    from opskit.stack import load_stack

    from .conftest import REPO

    stack = load_stack(REPO / "sandbox" / "stack.yml", environ=dict(sandbox_env))
    stacks.append(stack)
    assert lifecycle.start(stack, ["nginx", "upstream"]).ok
    chain = Chain(stack)
    redis_role = stack.role("redis")
    try:
        assert redis_role.stop().was_running
        response, _ = chain.send("instance i-0ddddddddddddddd1")  # no store built yet
        assert response.status_code == 500
        assert response.json()["message"] == "An unexpected error occurred"

        redis_role.unit.start(redis_role.launch())
        deadline = time.monotonic() + 10
        while not redis_role.probe_ready().ready:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        warm, _ = chain.send("instance i-0ddddddddddddddd2")  # builds the worker's store
        assert chain.reply_text(warm) == "instance i-0ddddddddddddddd2"

        assert redis_role.stop().was_running
        first, first_id = chain.send("instance i-0eeeeeeeeeeeeeee1")
        _second, second_id = chain.send("instance i-0eeeeeeeeeeeeeee2")
        assert chain.reply_text(first) == "instance i-0eeeeeeeeeeeeeee1"  # unmasked from memory
        assert chain.seen_by_upstream(first_id) == "instance AWS_EC2_000"
        assert chain.seen_by_upstream(second_id) == "instance AWS_EC2_000"  # tokens collide
        for _ in range(6):  # the breaker would open after 5 counted failures: it never does
            assert chain.send("instance i-0eeeeeeeeeeeeeee3")[0].status_code == 200
    finally:
        chain.close()
        if not redis_role.unit.status().running:
            redis_role.unit.start(redis_role.launch())
    check = redis.Redis(
        port=int(stack.config.environ["REDIS_PORT"]),
        password=stack.config.environ["REDIS_PASSWORD"],
    )
    deadline = time.monotonic() + 10
    while not redis_role.probe_ready().ready:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    rev = "aws_masker:rev:" + base64.b64encode(b"i-0eeeeeeeeeeeeeee1").decode()
    assert check.get(rev) is None  # the mapping was never stored
    check.close()
