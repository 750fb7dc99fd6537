"""The swarm runtime on a real multi-node swarm (scripts/swarm-cluster: Docker Engines in
containers, node-1 the manager). opskit runs on this machine, which is none of the nodes, so
every task is "on another node": everything below reaches tasks through the manager and
each node's own engine (x-opskit.swarm.engines), and published ports on the node that runs
the task.

The sandbox is spread so that each role runs on a node other than the manager at least once:
Redis and nginx on node-2, Kong, the upstream and the backend on node-3, the front on node-1.
"""

from __future__ import annotations

import json
import tarfile

import pytest
import zstandard

from opskit.ops import lifecycle
from opskit.ops.backup import backup, validate
from opskit.ops.graceful import graceful_restart
from opskit.ops.health import run_health
from opskit.ops.recover import recover
from opskit.ops.restore import restore
from opskit.stack import load_stack
from opskit.vocabulary import RecoverAction, RestoreState, StepOutcome, UnitState

from .cluster import (
    CLUSTER_FOUND,
    NEEDS_CLUSTER,
    REPO,
    docker_host,
    inv,
    spread_sandbox,
)
from .helpers import assert_healthy

pytestmark = NEEDS_CLUSTER

NODE = {1: "opskit-node-1", 2: "opskit-node-2", 3: "opskit-node-3"}
WHERE = {
    "redis": NODE[2],
    "nginx": NODE[2],
    "kong": NODE[3],
    "upstream": NODE[3],
    "backend": NODE[3],
    "front": NODE[1],
}


@pytest.fixture(scope="module")
def spread(tmp_path_factory):
    """(stack, env) of the sandbox started over three nodes."""
    placement = {service: f"node.hostname == {node}" for service, node in WHERE.items()}
    with spread_sandbox(tmp_path_factory.mktemp("cluster"), placement) as started:
        yield started


def test_every_service_runs_where_placed_and_health_with_e2e_passes(spread):
    stack, _env = spread
    rows = lifecycle.status(stack).rows
    for row in rows:
        assert row.status.state is UnitState.RUNNING, row.status
        assert row.status.nodes == (WHERE[row.service],), row.status
    checks = run_health(stack, e2e=True).checks
    assert_healthy(checks)
    by_name = {(c.service, c.name): c for c in checks}
    # published ports are reached on the node running the task, not on loopback
    node_2 = CLUSTER_FOUND.node(NODE[2]).address
    assert f"http://{node_2}:" in by_name[("nginx", "health")].detail
    # a role's own URL (x-opskit.url: http://127.0.0.1:PORT/health) follows its task too
    node_3 = CLUSTER_FOUND.node(NODE[3]).address
    assert f"http://{node_3}:" in by_name[("upstream", "http")].detail
    assert ("e2e", "round_trip") in by_name


def test_backup_validate_restore_through_another_nodes_engine(spread):
    stack, _env = spread
    redis = stack.role("redis")
    with redis.probe(timeout=5.0) as connection:
        for index in range(40):
            connection.call("SET", f"cluster:{index}", str(index))
    taken = backup(stack)
    assert taken.ok, taken
    checked = validate(stack, taken.backup_id, deep=True)
    assert checked.ok, checked
    with redis.probe(timeout=5.0) as connection:
        connection.call("FLUSHALL")

    result = restore(stack, taken.backup_id, ["redis"])

    assert result.state is RestoreState.RESTORED, result.detail
    with redis.probe(timeout=5.0) as connection:
        assert connection.call("DBSIZE") >= 40
        assert connection.call("GET", "cluster:7") in (b"7", "7")
    # the staging container was made on node-2, where Redis's volume is, and is gone again
    node_2 = CLUSTER_FOUND.node(NODE[2]).client()
    assert not node_2.containers.list(all=True, filters={"name": f"{stack.name}_redis-staging"})
    assert stack.role("redis").unit.status().nodes == (NODE[2],)


def test_logs_bundle_and_metrics_come_from_every_node(spread):
    _stack, env = spread
    logs = inv(env, "logs", "-s", "kong", "--since", "30m")
    assert logs.returncode == 0, logs.stderr
    assert "kong |" in logs.stdout

    collected = inv(env, "logs.collect")
    assert collected.returncode == 0, collected.stderr
    bundle = collected.stdout.split(":")[0].strip()
    with (
        open(bundle, "rb") as raw,
        zstandard.ZstdDecompressor().stream_reader(raw) as plain,
        tarfile.open(fileobj=plain, mode="r|") as archive,
    ):
        names = [member.name for member in archive]
    for service in WHERE:
        assert any(service in name for name in names), (service, names)

    metrics = inv(env, "metrics")
    assert metrics.returncode == 0, metrics.stderr
    for service in WHERE:  # resource use read from each task's own node
        assert f'opskit_service_memory_bytes{{service="{service}"}}' in metrics.stdout
        assert f'opskit_service_cpu_seconds_total{{service="{service}"}}' in metrics.stdout
    assert 'opskit_service_up{service="kong"} 1.0' in metrics.stdout


def test_graceful_restarts_of_all_three_kinds(spread):
    stack, _env = spread
    result = graceful_restart(stack, ["nginx", "kong", "backend"])
    nginx, kong, backend = (result.outcome(name) for name in ("nginx", "kong", "backend"))
    assert nginx.state is StepOutcome.DONE, nginx.detail
    assert "kept, new workers" in nginx.detail  # the task's process list, on node-2
    assert kong.state is StepOutcome.DONE, kong.detail
    assert backend.state is StepOutcome.DONE, backend.detail
    # pinned to one node with a host-mode port: the front's relief takes its requests
    assert "relief instance instead of a rolling update" in backend.detail
    assert "on the 1 node(s) that can run one" in backend.detail
    assert_healthy(run_health(stack).checks)


def test_kong_tasks_and_recover_find_nothing_to_do(spread):
    stack, env = spread
    diff = inv(env, "kong.diff")
    assert diff.returncode == 0, diff.stdout + diff.stderr
    applied = inv(env, "kong.apply")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    result = recover(stack)
    assert result.ok
    assert {row.action for row in result.rows} == {RecoverAction.NOTHING}, result.rows
    status = json.loads(inv(env, "status", "--json").stdout)
    placed = {item["service"]: item.get("nodes") for item in status["services"]}
    assert placed == {service: [node] for service, node in WHERE.items()}, placed


def test_a_node_whose_engine_opskit_was_not_given_is_named(spread):
    """Without x-opskit.swarm.engines opskit reaches no other node: one line naming the node
    and the setting, never a guess at an address."""
    _stack, env = spread
    without = {**env, "OPSKIT_SWARM_ENGINES": ""}
    with docker_host(CLUSTER_FOUND.manager.url):
        blind = load_stack(REPO / "sandbox" / "stack.yml", environ=without)
        done = blind.role("kong").unit.exec(["true"])
    assert done.exit_code is None
    assert NODE[3] in done.output and "x-opskit.swarm.engines" in done.output, done.output
