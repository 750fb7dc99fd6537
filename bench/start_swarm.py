"""opskit's start-to-ready of the sandbox on Swarm against ``docker stack deploy``, same run.

Baseline: the sandbox stack file as ``docker stack deploy`` takes it (the same services,
images, commands, healthchecks and host-mode ports; ``depends_on`` as a list, which is all
Swarm's loader accepts), deployed and then polled until every service's tasks run — Swarm holds
a task in ``starting`` until its HEALTHCHECK passes, so "running" is "running and healthy" —
and removed again. opskit: ``lifecycle.start`` (dependency order, every role's own readiness
probe) and ``lifecycle.stop``. Runs alternate; each prints its seconds; medians and the ratio
come last. Target (issue #14): ratio ≤ 1.0×.

The floor: opskit keeps the dependency chain (redis → kong → nginx → backend → front), and
Swarm reports a task with a HEALTHCHECK as running — and puts it in its DNS, which the next hop
resolves at start — only once its first check passed, which Docker 20.10 runs one ``interval``
after the container started (``start_interval``, which would probe sooner, needs Engine 25).
So each hop costs at least its first interval; ``docker stack deploy`` pays them all at once.
The bench prints each hop of opskit's start and that sum.

Needs an engine in a swarm (``docker swarm init``) and the sandbox image
(``scripts/build-images``); with DOCKER_HOST at a cluster's manager (scripts/swarm-cluster)
it measures the cluster.

    .venv/bin/python bench/start_swarm.py [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import docker
import yaml

from opskit.config import _variables
from opskit.interpolate import interpolate_tree
from opskit.ops import lifecycle
from opskit.stack import load_stack
from opskit.vocabulary import Phase
from sandbox.environment import isolated_environ

REPO = Path(__file__).resolve().parent.parent
STACK = REPO / "sandbox" / "stack.yml"


def stack_deploy_file(environ: dict[str, str], target: Path) -> None:
    """The sandbox stack, interpolated, in the dialect ``docker stack deploy`` accepts."""
    document = yaml.safe_load(STACK.read_text())  # docker interpolates the rest itself
    variables = _variables(STACK.parent, environ, str(STACK))
    document.pop("x-opskit", None)
    for service in document["services"].values():
        service.pop("x-opskit", None)
        if isinstance(service.get("depends_on"), dict):
            service["depends_on"] = list(service["depends_on"])
        ports = []
        for entry in service.get("ports", []):
            published, _, inside = str(interpolate_tree(entry, variables)).rpartition(":")
            ports.append({"target": int(inside), "published": int(published), "mode": "host"})
        service["ports"] = ports
        service["deploy"] = {"endpoint_mode": "dnsrr"}
    target.write_text(yaml.safe_dump(document))


def all_running(client: docker.DockerClient, name: str, count: int) -> bool:
    services = client.services.list(filters={"label": f"com.docker.stack.namespace={name}"})
    if len(services) < count:
        return False
    for service in services:
        running = [
            t
            for t in service.tasks(filters={"desired-state": "running"})
            if t["Status"]["State"] == "running"
        ]
        if len(running) < service.attrs["Spec"]["Mode"]["Replicated"]["Replicas"]:
            return False
    return True


def gone(client: docker.DockerClient, name: str) -> bool:
    label = f"com.docker.stack.namespace={name}"
    return not client.services.list(filters={"label": label}) and not client.containers.list(
        all=True,
        filters={"label": label},
        sparse=True,  # no inspect: they are going
    )


def baseline_run(environ: dict[str, str], work: Path) -> float:
    client = docker.from_env(timeout=60)
    name = "benchsd" + os.urandom(3).hex()
    path = work / f"{name}.yml"
    stack_deploy_file(environ, path)
    count = len(yaml.safe_load(path.read_text())["services"])
    began = time.perf_counter()
    subprocess.run(
        ["docker", "stack", "deploy", "-c", str(path), name],
        check=True,
        capture_output=True,
        env={**os.environ, **_variables(STACK.parent, environ, str(STACK))},
    )
    while not all_running(client, name, count):
        time.sleep(0.1)
    seconds = time.perf_counter() - began
    subprocess.run(["docker", "stack", "rm", name], check=True, capture_output=True)
    while not gone(client, name):
        time.sleep(0.5)
    for volume in client.volumes.list(filters={"name": name}):
        volume.remove(force=True)
    return seconds


def opskit_run(environ: dict[str, str], hops: dict[str, list[float]]) -> float:
    env = {
        **environ,
        "OPSKIT_RUNTIME": "swarm",
        "COMPOSE_PROJECT_NAME": "benchop" + os.urandom(3).hex(),
    }
    stack = load_stack(STACK, environ=env)
    started: dict[str, float] = {}

    def note(event) -> None:
        if event.phase is Phase.STARTING:
            started[event.service] = time.perf_counter()
        elif event.phase is Phase.READY and event.service in started:
            hops.setdefault(event.service, []).append(time.perf_counter() - started[event.service])

    began = time.perf_counter()
    result = lifecycle.start(stack, on_event=note)
    seconds = time.perf_counter() - began
    lifecycle.stop(stack)
    client = docker.from_env(timeout=60)
    for volume in client.volumes.list(filters={"name": stack.name}):
        volume.remove(force=True)
    if not result.ok:
        raise SystemExit(f"opskit start failed: {[(o.service, o.detail) for o in result.outcomes]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temp:
        work = Path(temp)
        environ = isolated_environ(work / "state")
        baseline, ours = [], []
        hops: dict[str, list[float]] = {}
        for run in range(args.runs):
            baseline.append(baseline_run(environ, work))
            ours.append(opskit_run(environ, hops))
            print(f"run {run + 1}: stack deploy {baseline[-1]:.2f}s, opskit {ours[-1]:.2f}s")
        chain = load_stack(STACK, environ={**environ, "OPSKIT_RUNTIME": "swarm"})
    base, mine = statistics.median(baseline), statistics.median(ours)
    print(f"median: docker stack deploy + wait {base:.2f}s, opskit start {mine:.2f}s")
    ratio = mine / base
    print(f"ratio opskit / stack deploy: {ratio:.2f}x (target <= 1.0x)")
    # the longest chain: every hop waits for the one before
    path = chain.start_order(chain.with_dependencies(["front"]))
    intervals = {
        name: chain.services[name].healthcheck.interval
        if chain.services[name].healthcheck and chain.services[name].healthcheck.test
        else 0.0
        for name in path
    }
    for name in path:
        print(
            f"  hop {name:8} start to ready {statistics.median(hops[name]):5.2f}s "
            f"(its first HEALTHCHECK comes {intervals[name]:g}s after its container starts)"
        )
    floor = sum(intervals.values())
    measured = sum(statistics.median(hops[name]) for name in path)
    print(
        f"the chain measured: {measured:.2f}s of opskit's {mine:.2f}s; its first HEALTHCHECKs "
        f"alone are {floor:g}s = {floor / base:.2f}x of stack deploy's {base:.2f}s, before any "
        "container has started or any task been scheduled"
    )
    verdict = "met" if ratio <= 1.0 else "NOT met: the order costs at least the floor above"
    print(f"verdict: {verdict}")


if __name__ == "__main__":
    main()
