"""Losing a node of a real multi-node swarm (scripts/swarm-cluster up 4): the node's engine
container is killed — the node and every task on it are gone at once, as in a crash — and
started again at the end.

- A worker running Kong and the backend: Swarm reschedules them onto the other node their
  placement allows; health names the lost node and the services it took; recover waits for
  Swarm (never a second copy of its own), alerts once, and masking through the front works
  again without an operator.
- Draining a node under wrk: its task moves with no failed request through the front.
- Redis's node, where its volume (its data) is: health is CRITICAL with a sentence naming the
  node; the documented relocation (docs/scaling.md, 'A lost node') — point REDIS_PLACEMENT at
  another node, restore the latest backup — brings masking back with the backed-up keys.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import time

import httpx
import pytest

from opskit.ops import lifecycle
from opskit.ops.backup import backup
from opskit.ops.health import run_health
from opskit.ops.recover import recover
from opskit.ops.restore import restore
from opskit.stack import load_stack
from opskit.vocabulary import CheckStatus, RecoverAction, RestoreState, TaskState

from .cluster import (
    CLUSTER_FOUND,
    NEEDS_CLUSTER,
    REPO,
    docker_host,
    spread_sandbox,
)
from .helpers import Receiver, assert_healthy, free_port
from .stacks import api_spread_over_workers

pytestmark = [
    *NEEDS_CLUSTER,
    pytest.mark.skipif(
        CLUSTER_FOUND is not None and len(CLUSTER_FOUND.nodes) < 4,
        reason="losing a node needs four: scripts/swarm-cluster up 4",
    ),
]

MANAGER, DATA, DOOMED, SPARE = (f"opskit-node-{i}" for i in range(1, 5))
STATELESS = "opskit-test-stateless"
# the node containers run on this machine's own engine, whatever DOCKER_HOST says meanwhile
HOST_DOCKER = ("docker", "-H", "unix:///var/run/docker.sock")


@contextlib.contextmanager
def node_lost(hostname: str):
    """The node's engine container killed (every process in it dies with it), and started
    again afterwards — the node rejoins the swarm from its own state."""
    cluster = CLUSTER_FOUND
    subprocess.run([*HOST_DOCKER, "kill", hostname], check=True, capture_output=True)
    try:
        cluster.wait_node(hostname, "down")
        yield
    finally:
        subprocess.run([*HOST_DOCKER, "start", hostname], check=True, capture_output=True)
        cluster.wait_node(hostname, "ready", timeout=120)


def _label(hostname: str, add: bool) -> None:
    if add:
        CLUSTER_FOUND.docker("node", "update", "--label-add", f"{STATELESS}=true", hostname)
    else:
        with contextlib.suppress(AssertionError):  # not labelled (yet)
            CLUSTER_FOUND.docker("node", "update", "--label-rm", STATELESS, hostname)


def _running_tasks(stack, name: str) -> list[dict]:
    unit = stack.role(name).unit
    return [
        t
        for t in unit.service().tasks()
        if t["DesiredState"] == "running" and t["Status"]["State"] == TaskState.RUNNING
    ]


def test_a_lost_worker_is_named_swarm_moves_its_tasks_and_recover_only_waits(tmp_path):
    placement = {
        "redis": f"node.hostname == {DATA}",
        "kong": f"node.labels.{STATELESS} == true",
        "backend": f"node.labels.{STATELESS} == true",
        "upstream": f"node.hostname == {MANAGER}",
        "nginx": f"node.hostname == {MANAGER}",
        "front": f"node.hostname == {MANAGER}",
    }
    receiver = Receiver()
    _label(DOOMED, True)
    try:
        alerts = {"OPSKIT_ALERT_WEBHOOK": receiver.url()}
        with spread_sandbox(tmp_path, placement, **alerts) as (stack, _env):
            assert stack.role("kong").unit.status().nodes == (DOOMED,)
            assert stack.role("backend").unit.status().nodes == (DOOMED,)
            _label(SPARE, True)  # somewhere for Swarm to move them

            with node_lost(DOOMED):
                report = run_health(stack)
                named = {
                    c.service: c.detail
                    for c in report.checks
                    if c.name == "process" and DOOMED in c.detail
                }
                assert set(named) == {"kong", "backend"}, named
                assert all("is down" in detail for detail in named.values()), named

                result = recover(stack)

                rows = {row.service: row for row in result.rows}
                # Swarm brings them back on the spare node: one task each, none of opskit's
                for name in ("kong", "backend"):
                    tasks = _running_tasks(stack, name)
                    assert [t["NodeID"] for t in tasks] and len(tasks) == 1, (name, tasks)
                    assert stack.role(name).unit.status().nodes == (SPARE,)
                    assert (
                        stack.role(name)
                        .unit.service()
                        .attrs["Spec"]["Mode"]["Replicated"]["Replicas"]
                        == 1
                    )
                # whatever recover did for the front's and nginx's stale addresses of the
                # moved tasks, masking through the front works again without an operator
                report = run_health(stack, e2e=True)
                assert_healthy(report.checks)
                assert result.ok, rows
                # Swarm's own replacements are not opskit's restarts, and not a second copy
                assert "its runtime replaced it" in rows["kong"].detail, rows["kong"]
                assert rows["kong"].action is RecoverAction.NOTHING, rows["kong"]
                answer = httpx.post(
                    stack.role("front").base_url() + "/analyze",
                    json={"text": "check i-0a1b2c3d4e5f67890 please"},
                    timeout=30,
                )
                assert answer.status_code == 200, answer.text
                assert "i-0a1b2c3d4e5f67890" in answer.json()["analysis"]
                # each incident opskit had to act on reaches a person once, with its recovery;
                # Swarm's moves are not incidents of opskit's, and a second pass sends nothing
                titles = receiver.titles()
                failed = [t.replace("FAILED", "") for t in titles if "FAILED" in t]
                recovered = [t.replace("RECOVERED", "") for t in titles if "RECOVERED" in t]
                assert failed and sorted(failed) == sorted(set(failed)) == sorted(recovered)
                assert not any("kong" in t or "backend" in t for t in titles), titles
                assert recover(stack).ok
                assert receiver.titles() == titles
    finally:
        _label(DOOMED, False)
        _label(SPARE, False)
        receiver.server.shutdown()


def test_redis_node_lost_critical_then_relocated_by_restoring_onto_another_node(tmp_path):
    placement = {
        "redis": f"node.hostname == {DOOMED}",
        "kong": f"node.hostname == {DATA}",
        "backend": f"node.hostname == {DATA}",
        "upstream": f"node.hostname == {MANAGER}",
        "nginx": f"node.hostname == {MANAGER}",
        "front": f"node.hostname == {MANAGER}",
    }
    with spread_sandbox(tmp_path, placement) as (stack, env):
        with stack.role("redis").probe(timeout=5.0) as connection:
            for index in range(30):
                connection.call("SET", f"kept:{index}", str(index))
        taken = backup(stack)
        assert taken.ok, taken

        with node_lost(DOOMED):
            deadline = time.monotonic() + 60
            while True:
                checks = {(c.service, c.name): c for c in run_health(stack, ["redis"]).checks}
                process = checks[("redis", "process")]
                if DOOMED in process.detail or time.monotonic() > deadline:
                    break
                time.sleep(1)
            assert process.status is CheckStatus.CRITICAL, process
            assert f"its data (its volumes) is on node {DOOMED}" in process.detail, process
            assert "docs/scaling.md" in process.detail

            # the procedure: the data goes to another node, from the latest backup
            moved = {**env, "REDIS_PLACEMENT": f"node.hostname == {SPARE}"}
            relocated = load_stack(REPO / "sandbox" / "stack.yml", environ=moved)
            refused = restore(relocated, taken.backup_id, ["redis"])
            assert refused.state is RestoreState.REFUSED, refused.detail  # by default: never
            assert "--without-safety-backup" in refused.detail, refused.detail  # says the way
            result = restore(relocated, taken.backup_id, ["redis"], without_safety_backup=True)
            assert result.state is RestoreState.RESTORED, result.detail

            assert relocated.role("redis").unit.status().nodes == (SPARE,)
            with relocated.role("redis").probe(timeout=5.0) as connection:
                assert connection.call("GET", "kept:29") in (b"29", "29")
            assert_healthy(run_health(relocated, e2e=True).checks)


# -- draining a node under load ------------------------------------------------------------------


def _wrk_failures(output: str) -> tuple[int, int, int]:
    """(requests, non-2xx answers, socket errors) from wrk's report."""
    requests = int(re.search(r"(\d+) requests in", output).group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    errors = sum(int(n) for n in sockets.groups()) if sockets else 0
    return requests, int(non_2xx.group(1)) if non_2xx else 0, errors


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")
def test_draining_a_node_moves_its_task_without_a_failed_request(tmp_path, stacks):
    """`docker node update --availability drain`: Swarm stops the node's task (its grace to
    finish what it serves) and starts one elsewhere; the front resolves the service through
    Swarm's DNS and passes a refused connection to the other task (front-swarm.conf)."""
    cluster = CLUSTER_FOUND
    port = free_port()
    path = tmp_path / "stack.yml"
    path.write_text(api_spread_over_workers(tmp_path / "state", port, free_port()))
    env = {
        "PATH": os.environ["PATH"],
        "COMPOSE_PROJECT_NAME": "opsdrain" + os.urandom(3).hex(),
        "OPSKIT_RUNTIME": "swarm",
        "OPSKIT_SWARM_ENGINES": "tcp://{address}:2375",
    }
    with docker_host(cluster.manager.url):
        stack = load_stack(path, environ=env)
        stacks.append(stack)
        started = lifecycle.start(stack)
        assert started.ok, [(o.service, o.detail, o.log_tail) for o in started.outcomes]
        api = stack.role("api").unit
        drained = api.status().nodes[0]
        url = f"http://{cluster.manager.address}:{port}/_standin/requests"
        load = subprocess.Popen(
            ["wrk", "-t2", "-c8", "-d20s", "--timeout", "10s", url],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            time.sleep(4)
            cluster.docker("node", "update", "--availability", "drain", drained)
            deadline = time.monotonic() + 40
            while drained in api.status().nodes or api.settling() is not None:
                assert time.monotonic() < deadline, api.status().detail
                time.sleep(0.5)
            output, _ = load.communicate(timeout=60)
        finally:
            if load.poll() is None:
                load.kill()
            cluster.docker("node", "update", "--availability", "active", drained)
        moved = api.status()
        assert drained not in moved.nodes and len(moved.nodes) == 2, moved
        requests, non_2xx, errors = _wrk_failures(output)
        print(
            f"drain of {drained} under wrk: {requests} requests, {non_2xx} non-2xx, "
            f"{errors} socket errors"
        )
        assert requests > 200, output
        assert (non_2xx, errors) == (0, 0), output
