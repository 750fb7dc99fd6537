"""Sandbox cold start in containers: opskit (docker runtime) against docker-compose, same images.

- compose: ``docker-compose up -d``, then wait until every container with a HEALTHCHECK is
  healthy, the others run, and the backend answers ``/health/ready`` (polled every 20 ms);
- opskit: ``lifecycle.start`` with the docker runtime (creates the containers, gates each on
  its HEALTHCHECK and its role's probe) — same end condition.

Runs alternate; containers are removed between runs. Needs dockerd and scripts/build-images.

    .venv/bin/python bench/start_docker.py [--runs 3]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import docker
import httpx

from bench._common import SANDBOX_STACK, sandbox_environ
from opskit.ops import lifecycle
from opskit.stack import load_stack


def compose_run(env: dict[str, str]) -> float:
    engine = docker.from_env()
    project = env["COMPOSE_PROJECT_NAME"]
    compose = ["docker-compose", "-f", str(SANDBOX_STACK)]
    ready_url = f"http://127.0.0.1:{env['BACKEND_PORT']}/health/ready"
    began = time.perf_counter()
    subprocess.run([*compose, "up", "-d"], env=env, check=True, capture_output=True)
    try:
        while True:
            containers = engine.containers.list(
                all=True, filters={"label": f"com.docker.compose.project={project}"}
            )
            states = [c.attrs["State"] for c in containers]
            settled = len(states) == 5 and all(
                s["Running"] and s.get("Health", {}).get("Status", "healthy") == "healthy"
                for s in states
            )
            if settled:
                try:
                    if httpx.get(ready_url, timeout=1, trust_env=False).status_code == 200:
                        return time.perf_counter() - began
                except httpx.HTTPError:
                    pass
            time.sleep(0.02)
    finally:
        subprocess.run([*compose, "down"], env=env, check=True, capture_output=True)


def opskit_run(env: dict[str, str]) -> float:
    stack = load_stack(SANDBOX_STACK, environ=env, runtime="docker")
    began = time.perf_counter()
    result = lifecycle.start(stack)
    elapsed = time.perf_counter() - began
    lifecycle.stop(stack)
    if not result.ok:
        raise SystemExit(f"opskit start failed: {[(o.service, o.detail) for o in result.outcomes]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    compose_times, opskit_times = [], []
    for _ in range(args.runs):
        for runner, sink in ((compose_run, compose_times), (opskit_run, opskit_times)):
            env = sandbox_environ()
            env["COMPOSE_PROJECT_NAME"] = f"bench{uuid.uuid4().hex[:8]}"
            try:
                sink.append(runner(env))
            finally:
                shutil.rmtree(env["OPSKIT_STATE_DIR"], ignore_errors=True)
    c, o = statistics.median(compose_times), statistics.median(opskit_times)
    print(f"sandbox cold start in containers (5 services), {args.runs} runs, median")
    print(f"  docker-compose up -d + wait healthy/ready: {c * 1000:7.0f} ms")
    print(f"  opskit start (docker runtime):             {o * 1000:7.0f} ms")
    print(f"  ratio opskit / compose:                    {o / c:.2f}x")


if __name__ == "__main__":
    main()
