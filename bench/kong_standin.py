"""Throughput and latency through nginx → Kong stand-in → Claude stand-in, masking on vs off.

Later benchmarks (health, e2e) go through this chain; this one tells whether the stand-in is
their bottleneck. Same run, same stack: masking on (the sandbox config), masking off (the same
config with aws-masker disabled, applied with ``POST /config``), and the upstream alone as the
floor. Loopback only; bounded request counts.

    .venv/bin/python bench/kong_standin.py [--requests 400] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import yaml

from bench._common import SANDBOX_STACK, sandbox_environ
from opskit.ops import lifecycle
from opskit.stack import load_stack

TEXT = "Instance i-0123456789abcdef0 in vpc-0abc12345678def90 talks to 10.0.1.50 as {n}"


def load(url: str, requests: int, concurrency: int) -> tuple[float, list[float]]:
    client = httpx.Client(timeout=30, trust_env=False, limits=httpx.Limits(max_connections=64))
    headers = {"x-api-key": "bench"}

    def one(n: int) -> float:
        body = {
            "model": "m",
            "max_tokens": 16,
            "messages": [{"role": "user", "content": TEXT.format(n=n)}],
        }
        began = time.perf_counter()
        response = client.post(url, json=body, headers=headers)
        elapsed = time.perf_counter() - began
        if response.status_code != 200:
            raise SystemExit(f"{url}: HTTP {response.status_code}: {response.text[:200]}")
        return elapsed

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(concurrency * 2)))  # warm connections
        began = time.perf_counter()
        latencies = list(pool.map(one, range(requests)))
        wall = time.perf_counter() - began
    client.close()
    return requests / wall, latencies


def report(label: str, rps: float, latencies: list[float]) -> None:
    quantiles = statistics.quantiles(latencies, n=100)
    print(
        f"  {label:<34} {rps:7.0f} req/s   p50 {quantiles[49] * 1000:6.1f} ms"
        f"   p99 {quantiles[98] * 1000:6.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    environ = sandbox_environ()
    stack = load_stack(SANDBOX_STACK, environ=environ)
    try:
        result = lifecycle.start(stack, ["nginx", "upstream"])
        if not result.ok:
            raise SystemExit(
                f"sandbox did not start: {[(o.service, o.detail) for o in result.outcomes]}"
            )
        nginx = f"http://127.0.0.1:{environ['NGINX_PROXY_PORT']}/v1/messages"
        upstream = f"http://127.0.0.1:{environ['UPSTREAM_PORT']}/v1/messages"
        kong = stack.role("kong")
        masking_on = kong.export_config()
        masking_off = yaml.safe_load(masking_on)  # Kong's export is flat (reference row 10)
        for plugin in masking_off["plugins"]:
            if plugin["name"] == "aws-masker":
                plugin["enabled"] = False

        print(f"{args.requests} requests, concurrency {args.concurrency}, loopback")
        report("upstream stand-in alone", *load(upstream, args.requests, args.concurrency))
        on = load(nginx, args.requests, args.concurrency)
        report("nginx → kong → upstream, masking on", *on)
        if kong.apply_config(yaml.safe_dump(masking_off)).status != 201:
            raise SystemExit("could not disable aws-masker with POST /config")
        off = load(nginx, args.requests, args.concurrency)
        report("nginx → kong → upstream, masking off", *off)
        print(f"  masking on / off throughput ratio:  {on[0] / off[0]:.2f}")
    finally:
        lifecycle.stop(stack)
        shutil.rmtree(environ["OPSKIT_STATE_DIR"], ignore_errors=True)


if __name__ == "__main__":
    main()
