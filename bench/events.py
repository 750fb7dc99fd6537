"""How many masking events ``inv events`` sustains, against the publisher's own rate in the
same run, and its CPU per 1,000 events. Both rates run from the publisher's first PUBLISH
(its interpreter's start is on neither side); ``--rounds`` alternating rounds, medians.

A real redis-server on a free port. The publisher (redis-py, pipelined PUBLISH, in its own
process) sends ``--events`` events as fast as it can: first with nobody counting (its own
rate, the bound), then with ``inv events --json --count N`` subscribed, whose user+system CPU
and wall time from subscription to the summary are measured. Twice: single events (one event
per message) and batched (``--batch`` events per message, the planned batched publisher).
Targets (issue #13): ≥ 50k events/s batched, ≥ 10k single, or the publisher's rate if lower.

    .venv/bin/python bench/events.py [--events 50000] [--batch 100]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sandbox.environment import free_port

CHANNEL = "aws-masker:events:masking"
EVENT = {
    "event_id": "mask_1",
    "event_type": "masking_applied",
    "timestamp": 1795500000000.0,
    "request_id": "0" * 32,
    "success": True,
    "patterns_applied": {"ec2_instance": 1},
    "total_patterns": 1,
    "processing_time_ms": 1.5,
    "request_size_bytes": 120,
    "demo_data": {
        "original_text": "look at i-0123456789abcdef0 " * 4,
        "masked_text": "look at AWS_EC2_001 " * 4,
        "is_demo_mode": True,
        "truncated": False,
    },
    "source": "kong-aws-masker",
    "version": "1.0.0",
}

PUBLISHER = r"""
import json, sys, time, redis
port, password, total, batch = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
event = json.loads(sys.argv[5])
message = json.dumps([event] * batch if batch > 1 else event)
client = redis.Redis(port=port, password=password)
client.ping()  # connected before the clock starts, on both sides of the comparison
started_at, began = time.time(), time.perf_counter()
pipe = client.pipeline(transaction=False)
for n in range(total // batch):
    pipe.publish("aws-masker:events:masking", message)
    if n % 500 == 499:
        pipe.execute()
pipe.execute()
print(started_at, time.perf_counter() - began)
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="opskit-bench-events-"))
    port, password = free_port(), "bench-" + os.urandom(6).hex()
    server = subprocess.Popen(
        ["redis-server", "-"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL
    )
    assert server.stdin
    server.stdin.write(
        f'port {port}\nbind 127.0.0.1\nrequirepass "{password}"\nsave ""\n'
        f"dir {work}\nclient-output-buffer-limit pubsub 0 0 0\n".encode()
    )
    server.stdin.close()
    time.sleep(0.3)
    stack = work / "stack.yml"
    stack.write_text(
        f'x-opskit: {{runtime: process, state_dir: "{work}/state"}}\nservices:\n'
        f'  redis:\n    image: redis\n    ports: ["{port}:6379"]\n'
        f'    x-opskit: {{password: "{password}"}}\n'
    )
    env = {"PATH": os.environ["PATH"], "OPSKIT_STACK": str(stack)}
    try:
        for label, batch in (("single", 1), ("batched", args.batch)):
            total = (args.events // batch) * batch
            rates, results = [], []
            for _ in range(args.rounds):  # alternating, medians: noise hits both
                rates.append(total / _publish(port, password, total, batch)[1])
                results.append(_subscribed_run(env, port, password, total, batch))
            rate_alone = statistics.median(rates)
            result = {key: statistics.median(r[key] for r in results) for key in results[0]}
            print(
                f"{label:>8}: publisher alone {rate_alone:9.0f} events/s; "
                f"inv events counted {result['events']} of {total} at "
                f"{result['rate']:9.0f} events/s ({result['rate'] / rate_alone:.2f}× the "
                f"publisher's rate), CPU {result['cpu_per_1k'] * 1000:.1f} ms per 1k events"
            )
    finally:
        server.terminate()
        server.wait(10)


def _publish(port: int, password: str, total: int, batch: int) -> tuple[float, float]:
    """The publisher's own first-publish wall time and its seconds publishing: its
    interpreter's start is on neither side of the comparison."""
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            PUBLISHER,
            str(port),
            password,
            str(total),
            str(batch),
            json.dumps(EVENT),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    started_at, seconds = done.stdout.split()
    return float(started_at), float(seconds)


def _subscribed_run(env: dict, port: int, password: str, total: int, batch: int) -> dict:
    import redis

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    watcher = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "invoke",
            "--search-root",
            str(Path(__file__).parent.parent),
            "events",
            "--json",
            "--rate",
            "1",
            "--count",
            str(total),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    client = redis.Redis(port=port, password=password)
    while dict(client.pubsub_numsub(CHANNEL)).get(CHANNEL.encode(), 0) < 1:
        time.sleep(0.01)
    began, _ = _publish(port, password, total, batch)
    output, _ = watcher.communicate(timeout=600)
    elapsed = time.time() - began  # from the first PUBLISH to the summary
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    summary = json.loads(output.strip().splitlines()[-1])["summary"]
    # children CPU includes the publisher's run: subtract a publisher-only run measured alike
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    publisher_cpu = _publisher_cpu(port, password, total, batch)
    return {
        "events": summary["events"],
        "rate": summary["events"] / elapsed,
        "cpu_per_1k": max(0.0, cpu - publisher_cpu) / summary["events"] * 1000,
    }


def _publisher_cpu(port: int, password: str, total: int, batch: int) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    _publish(port, password, total, batch)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


if __name__ == "__main__":
    main()
