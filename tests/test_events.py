"""inv events against a real redis-server: exact counts, batches, a Redis restart survived,
the original text never printed in production."""

from __future__ import annotations

import json
import os
import time

import redis

from opskit.ops import lifecycle

from .conftest import free_port, inv_process, run_inv
from .helpers import redis_service, stack_text

CHANNEL = "aws-masker:events:masking"
EC2 = "i-0123456789abcdef0"


def _event(n: int, ok: bool = True) -> dict:
    original = f"please look at {EC2} number {n}"
    return {
        "event_id": f"mask_{n}",
        "event_type": "masking_applied",
        "timestamp": time.time() * 1000,
        "request_id": f"{n:032x}",
        "success": ok,
        "patterns_applied": {"ec2_instance": 1, "private_ip": n % 2},
        "total_patterns": 1,
        "processing_time_ms": float(n % 10),
        "request_size_bytes": len(original),
        # a masked text in which one id escaped masking: it must not be printed either
        "demo_data": {
            "original_text": original,
            "masked_text": f"please look at AWS_EC2_{n:03d} and {EC2}",
            "is_demo_mode": True,
            "truncated": False,
        },
        "source": "kong-aws-masker",
        "version": "1.0.0",
    }


def _wait_subscribed(client: redis.Redis, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if dict(client.pubsub_numsub(CHANNEL)).get(CHANNEL.encode(), 0) >= 1:
            return
        time.sleep(0.05)
    raise AssertionError("the subscriber never subscribed")


def test_events_counts_exactly_across_a_redis_restart(write_stack, load, tmp_path):
    port, password = free_port(), "events-pw-" + os.urandom(4).hex()
    path = write_stack(stack_text(redis_service(port, password)))
    stack = load(path)
    assert lifecycle.start(stack).ok
    env = {"PATH": os.environ["PATH"], "OPSKIT_STACK": str(path)}
    watcher = inv_process(env, "events", "--json", "--count", "30", "--rate", "1000")
    try:
        client = redis.Redis(port=port, password=password)
        _wait_subscribed(client)
        for n in range(10):  # single events
            client.publish(CHANNEL, json.dumps(_event(n)))
        client.publish(CHANNEL, json.dumps([_event(n) for n in range(10, 15)]))  # a batch
        client.publish(CHANNEL, "not json")
        client.close()

        assert lifecycle.restart(stack, ["redis"]).ok
        client = redis.Redis(port=port, password=password)
        _wait_subscribed(client)  # the watcher came back by itself
        client.publish(
            CHANNEL, json.dumps({"events": [_event(n, ok=n != 15) for n in range(15, 25)]})
        )
        for n in range(25, 30):
            client.publish(CHANNEL, json.dumps(_event(n)))
        client.close()
        output, _ = watcher.communicate(timeout=20)
    finally:
        if watcher.poll() is None:
            watcher.kill()
        lifecycle.stop(stack)
    assert watcher.returncode == 0, output
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    summary = lines[-1]["summary"]
    printed = lines[:-1]
    assert summary["events"] == 30 and len(printed) == 30
    assert summary["messages"] == 17 and summary["batched_messages"] == 2  # + 1 malformed
    assert summary["malformed"] == 1 and summary["failed"] == 1
    assert summary["reconnects"] >= 1
    assert summary["patterns"] == {"ec2_instance": 30, "private_ip": 15}
    assert summary["processing_ms"]["p50"] == 5.0
    assert EC2 not in output and password not in output
    assert printed[0]["demo_data"]["original_text"] == "<redacted: 43 characters>"
    assert printed[0]["demo_data"]["masked_text"] == "please look at AWS_EC2_000 and [aws:id]"


def test_rate_limit_counts_what_it_does_not_print(write_stack, load):
    port, password = free_port(), "events-pw-" + os.urandom(4).hex()
    path = write_stack(stack_text(redis_service(port, password)))
    stack = load(path)
    assert lifecycle.start(stack).ok
    env = {"PATH": os.environ["PATH"], "OPSKIT_STACK": str(path)}
    watcher = inv_process(env, "events", "--count", "200", "--rate", "5")
    try:
        client = redis.Redis(port=port, password=password)
        _wait_subscribed(client)
        client.publish(CHANNEL, json.dumps([_event(n) for n in range(200)]))
        output, _ = watcher.communicate(timeout=20)
    finally:
        if watcher.poll() is None:
            watcher.kill()
        lifecycle.stop(stack)
    assert watcher.returncode == 0, output
    event_lines = [line for line in output.splitlines() if " ok " in line]
    assert len(event_lines) == 5
    assert "195 events counted but not printed (--rate)" in output
    assert "200 events in 1 messages (1 batched)" in output


def test_show_original_is_refused_in_production(write_stack):
    path = write_stack(stack_text(redis_service(free_port(), "pw-abcdef")))
    env = {"PATH": os.environ["PATH"], "OPSKIT_STACK": str(path)}
    done = run_inv(env, "events", "--show-original", "--count", "1")
    assert done.returncode == 2
    assert "--show-original is refused for a production stack" in done.stderr
