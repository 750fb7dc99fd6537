"""The multi-node test cluster (scripts/swarm-cluster): finding it, reaching its nodes, and
starting the sandbox stack spread over them."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from .conftest import REPO, make_sandbox_env

CLUSTER = os.environ.get("OPSKIT_CLUSTER", "opskit")
NETWORK = f"{CLUSTER}-cluster"
ENGINE_PORT = 2375


@dataclass(frozen=True)
class Node:
    hostname: str  # also the node container's name on this machine's engine
    address: str

    @property
    def url(self) -> str:
        return f"tcp://{self.address}:{ENGINE_PORT}"

    def client(self):
        import docker

        return docker.DockerClient(base_url=self.url, timeout=30)


@dataclass(frozen=True)
class Cluster:
    nodes: tuple[Node, ...]  # node-1 (the manager) first

    @property
    def manager(self) -> Node:
        return self.nodes[0]

    def node(self, hostname: str) -> Node:
        return next(n for n in self.nodes if n.hostname == hostname)

    def docker(self, *argv: str, node: Node | None = None) -> str:
        """``docker -H <node> ...`` (the manager by default), its output."""
        done = subprocess.run(
            ["docker", "-H", (node or self.manager).url, *argv],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, (argv, done.stderr)
        return done.stdout

    def node_state(self, hostname: str) -> str:
        return self.docker("node", "inspect", "-f", "{{.Status.State}}", hostname).strip()

    def wait_node(self, hostname: str, state: str, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while self.node_state(hostname) != state:
            assert time.monotonic() < deadline, f"{hostname} never became {state}"
            time.sleep(1)


def find_cluster() -> tuple[Cluster | None, str | None]:
    """The cluster scripts/swarm-cluster started, or why there is none (a skip reason)."""
    try:
        import docker

        host = docker.DockerClient(base_url="unix:///var/run/docker.sock", timeout=10)
        containers = host.containers.list(filters={"label": f"io.opskit.cluster={CLUSTER}"})
    except Exception as exc:
        return None, f"no multi-node cluster: this machine's engine: {type(exc).__name__}"
    nodes = sorted(
        (
            Node(
                c.name,
                (c.attrs["NetworkSettings"]["Networks"].get(NETWORK) or {}).get("IPAddress", ""),
            )
            for c in containers
        ),
        key=lambda n: n.hostname,
    )
    if len(nodes) < 3:
        return None, (
            f"no multi-node cluster ({len(nodes)} node containers): scripts/swarm-cluster up 4"
        )
    cluster = Cluster(tuple(nodes))
    try:
        ready = cluster.docker("node", "ls", "--format", "{{.Status}}").split()
    except (AssertionError, OSError, subprocess.TimeoutExpired) as exc:
        return None, f"the cluster's manager does not answer: {exc}"
    if ready.count("Ready") < len(nodes):
        return None, f"only {ready.count('Ready')} of {len(nodes)} cluster nodes are Ready"
    return cluster, None


CLUSTER_FOUND, CLUSTER_PROBLEM = find_cluster()

#: Every multi-node test module's marks: an engine, the cluster (or the reason it is not up),
#: and the time a test that starts the whole sandbox over the nodes may take.
NEEDS_CLUSTER = [
    pytest.mark.docker,
    pytest.mark.skipif(CLUSTER_PROBLEM is not None, reason=str(CLUSTER_PROBLEM)),
    pytest.mark.timeout(600),
]


@contextlib.contextmanager
def docker_host(url: str) -> Iterator[None]:
    """opskit's swarm runtime talks to the engine DOCKER_HOST names (docker.from_env)."""
    before = os.environ.get("DOCKER_HOST")
    os.environ["DOCKER_HOST"] = url
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("DOCKER_HOST", None)
        else:
            os.environ["DOCKER_HOST"] = before


def cluster_env(base: Path, cluster: Cluster, placement: dict[str, str]) -> dict[str, str]:
    """The sandbox's environment for the cluster: free ports, a private state dir, every
    node's engine (``x-opskit.swarm.engines``), and one placement constraint per service."""
    env = make_sandbox_env(base)
    env.update(
        OPSKIT_RUNTIME="swarm",
        COMPOSE_PROJECT_NAME="opmn" + os.urandom(3).hex(),
        DOCKER_HOST=cluster.manager.url,
        OPSKIT_SWARM_ENGINES=f"tcp://{{address}}:{ENGINE_PORT}",
    )
    env.update({f"{service.upper()}_PLACEMENT": rule for service, rule in placement.items()})
    return env


@contextlib.contextmanager
def spread_sandbox(
    base: Path, placement: dict[str, str], **extra: str
) -> Iterator[tuple[object, dict[str, str]]]:
    """(stack, env): the sandbox started over the cluster's nodes as ``placement`` says,
    stopped again and its volumes removed from every node at the end."""
    from opskit.ops import lifecycle
    from opskit.stack import load_stack

    cluster = CLUSTER_FOUND
    env = {**cluster_env(base, cluster, placement), **extra}
    with docker_host(cluster.manager.url):
        stack = load_stack(REPO / "sandbox" / "stack.yml", environ=env)
        try:
            result = lifecycle.start(stack)
            assert result.ok, [(o.service, o.detail, o.log_tail) for o in result.outcomes]
            yield stack, env
        finally:
            lifecycle.stop(stack)
            remove_volumes(cluster, stack.name)


def remove_volumes(cluster: Cluster, project: str) -> None:
    """The volumes a test's stack left on the nodes (opskit never removes data)."""
    import docker

    for node in cluster.nodes:
        with contextlib.suppress(docker.errors.DockerException, OSError):
            client = node.client()
            for volume in client.volumes.list():
                if volume.name.startswith(f"{project}_"):
                    try:
                        volume.remove(force=True)
                    except docker.errors.APIError as exc:
                        print(f"teardown: volume {volume.name} stays: {exc}", file=sys.stderr)


def inv(env: dict[str, str], *argv: str, timeout: float = 180) -> subprocess.CompletedProcess:
    """``inv`` as an operator runs it, against the sandbox stack on the cluster."""
    return subprocess.run(
        [str(Path(sys.executable).parent / "inv"), *argv],
        env={**env, "OPSKIT_STACK": str(REPO / "sandbox" / "stack.yml")},
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )
