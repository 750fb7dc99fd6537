"""The swarm runtime on a real single-node swarm (CI runs `docker swarm init`).

What an operator relies on: the sandbox stack starts, answers health and stops on Swarm;
replicas are shown per node; a task Swarm replaces is left to Swarm (recover never restarts it
a second time); Redis is backed up and restored through the node running its task; a stack
`docker stack deploy` made is adopted and never removed; a stateless service with two replicas
rolls to new tasks under load without a failed request.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time

import docker
import httpx
import pytest

from opskit.errors import RuntimeUnavailableError
from opskit.ops import lifecycle
from opskit.ops.backup import backup
from opskit.ops.graceful import graceful_restart
from opskit.ops.health import run_health
from opskit.ops.recover import recover
from opskit.ops.restore import restore
from opskit.stack import load_stack
from opskit.vocabulary import RecoverAction, RestoreState, StepOutcome, UnitState

from .conftest import REPO, SWARM_PROBLEM, make_sandbox_env
from .helpers import assert_healthy, free_port
from .stacks import API_AND_FRONT

pytestmark = [
    pytest.mark.docker,
    pytest.mark.skipif(SWARM_PROBLEM is not None, reason=str(SWARM_PROBLEM)),
    pytest.mark.timeout(300),
]


def _client() -> docker.DockerClient:
    return docker.from_env(timeout=30)


def _node_name() -> str:
    client = _client()
    return client.nodes.get(client.info()["Swarm"]["NodeID"]).attrs["Description"]["Hostname"]


def _remove_volumes(project: str) -> None:
    for volume in _client().volumes.list(filters={"name": project}):
        if volume.name.startswith(f"{project}_"):
            volume.remove(force=True)


@pytest.fixture(scope="module")
def swarm_sandbox(tmp_path_factory):
    env = make_sandbox_env(tmp_path_factory.mktemp("swarm"))
    env["OPSKIT_RUNTIME"] = "swarm"
    env["COMPOSE_PROJECT_NAME"] = "opsw" + os.urandom(3).hex()
    stack = load_stack(REPO / "sandbox" / "stack.yml", environ=env)
    try:
        result = lifecycle.start(stack)
        assert result.ok, [(o.service, o.detail, o.log_tail) for o in result.outcomes]
        yield stack
    finally:
        lifecycle.stop(stack)
        _remove_volumes(stack.name)


def test_status_shows_tasks_per_node_and_health_passes(swarm_sandbox):
    stack = swarm_sandbox
    node = _node_name()
    rows = lifecycle.status(stack).rows
    assert [row.status.state for row in rows] == [UnitState.RUNNING] * len(rows)
    for row in rows:
        assert row.status.nodes == (node,), row.status
        assert f"1/1 tasks running on {node} ×1" in row.status.detail
    assert_healthy(run_health(stack).checks)
    assert stack.role("redis").unit.settling() is None


def test_redis_is_backed_up_and_restored_through_its_task(swarm_sandbox):
    stack = swarm_sandbox
    redis = stack.role("redis")
    with redis.probe(timeout=5.0) as connection:
        for index in range(50):
            connection.call("SET", f"swarm:{index}", str(index))
    taken = backup(stack, ["redis"])
    assert taken.ok, taken
    with redis.probe(timeout=5.0) as connection:
        connection.call("FLUSHALL")
        assert connection.call("DBSIZE") == 0

    result = restore(stack, taken.backup_id, ["redis"])

    assert result.state is RestoreState.RESTORED, result.detail
    with redis.probe(timeout=5.0) as connection:
        assert connection.call("DBSIZE") == 50
        assert connection.call("GET", "swarm:7") in (b"7", "7")
    assert stack.role("redis").unit.status().running
    staging = _client().containers.list(all=True, filters={"name": f"{stack.name}_redis-staging"})
    assert not staging  # the restore's staging container is gone again


def test_a_killed_task_is_left_to_swarm_and_recover_does_not_restart_it(swarm_sandbox):
    stack = swarm_sandbox
    unit = stack.role("upstream").unit
    service_id = unit.service().id
    before = {c.id for c in unit.local_containers()}
    assert before, "the upstream task runs on this node"
    for container in unit.local_containers():
        container.kill()
    # Swarm learns of the death a moment later; then its restart delay (5 s) holds the
    # replacement back, and that is what a recover pass finds.
    deadline = time.monotonic() + 10
    while unit.status().state is UnitState.RUNNING:
        assert time.monotonic() < deadline, "Swarm never noticed the killed task"
        time.sleep(0.05)

    result = recover(stack)

    row = next(r for r in result.rows if r.service == "upstream")
    assert row.action is RecoverAction.NOTHING, row
    assert "its runtime replaced it" in row.detail, row.detail
    assert result.ok
    assert unit.service().id == service_id  # the same service: opskit did not recreate it
    after = {c.id for c in unit.local_containers()}
    assert after and not after & before  # Swarm's replacement runs
    tasks = unit.service().tasks()
    assert len(tasks) == 2, [t["Status"] for t in tasks]  # the killed one and one replacement
    record = json.loads((stack.state_dir / "recover.json").read_text())["services"]["upstream"]
    assert record["attempts"] == []  # no restart was charged: there was none


# -- adoption of a `docker stack deploy` stack -----------------------------------------------

STACK_DEPLOY = """
x-opskit:
  state_dir: {state}
  swarm: {{publish: host, endpoint_mode: dnsrr}}
services:
  upstream:
    image: opskit-sandbox:latest
    command: ["python3", "-m", "sandbox.upstream"]
    working_dir: /app
    environment: {{HOST: 0.0.0.0, PORT: "8787"}}
    ports: [{{target: 8787, published: {port}, mode: host}}]
    deploy: {{endpoint_mode: dnsrr}}
    x-opskit:
      role: http
      url: http://127.0.0.1:{port}/health
"""


def test_graceful_restart_of_nginx_is_verified_on_swarm(swarm_sandbox):
    """The master is not visible from the host under Swarm: the task's own process list
    (docker top) shows the same master with new workers."""
    result = graceful_restart(swarm_sandbox, ["nginx"])
    outcome = result.outcome("nginx")
    assert outcome.state is StepOutcome.DONE, outcome.detail
    assert "kept, new workers" in outcome.detail


def test_graceful_restart_of_the_backend_on_swarm_works_and_leaves_no_update_behind(
    swarm_sandbox,
):
    """One replica publishing a host-mode port on one node: a start-first roll can never
    place its new task (it hung 120 s and stayed stuck). The front's relief instance takes
    its requests instead, and the service has no update left running."""
    stack = swarm_sandbox
    began = time.monotonic()
    result = graceful_restart(stack, ["backend"])
    took = time.monotonic() - began
    outcome = result.outcome("backend")
    assert outcome.state is StepOutcome.DONE, outcome.detail
    assert "relief instance instead of a rolling update" in outcome.detail
    assert "host mode" in outcome.detail
    assert took < 90, took
    update = (stack.role("backend").unit.service().attrs.get("UpdateStatus") or {}).get("State")
    assert update != "updating", update
    assert_healthy(run_health(stack, ["backend", "front"]).checks)


def test_a_docker_stack_deploy_stack_is_adopted_and_never_removed(tmp_path):
    name = "opsad" + os.urandom(3).hex()
    port = free_port()
    path = tmp_path / "stack.yml"
    path.write_text(STACK_DEPLOY.format(state=tmp_path / "state", port=port))
    deployed = subprocess.run(
        ["docker", "stack", "deploy", "-c", str(path), name],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert deployed.returncode == 0, deployed.stderr
    env = {"PATH": os.environ["PATH"], "COMPOSE_PROJECT_NAME": name, "OPSKIT_RUNTIME": "swarm"}
    stack = load_stack(path, environ=env)
    try:
        started = lifecycle.start(stack)  # waits for Swarm's task: adopted, not created
        assert started.ok, [(o.service, o.detail) for o in started.outcomes]
        status = stack.role("upstream").unit.status()
        assert status.running and "(adopted)" in status.detail, status
        assert_healthy(run_health(stack).checks)

        stopped = lifecycle.stop(stack)

        assert stopped.ok
        services = _client().services.list(filters={"name": f"{name}_upstream"})
        assert len(services) == 1  # still there, scaled to 0
        assert services[0].attrs["Spec"]["Mode"]["Replicated"]["Replicas"] == 0
        assert lifecycle.start(stack).ok  # scaled back up
        assert stack.role("upstream").unit.status().running
    finally:
        subprocess.run(["docker", "stack", "rm", name], capture_output=True, timeout=60)


# -- a rolling graceful restart under load -------------------------------------------------------


def test_a_stateless_service_rolls_to_new_tasks_under_load_without_a_failed_request(
    tmp_path, stacks
):
    port = free_port()
    path = tmp_path / "stack.yml"
    path.write_text(API_AND_FRONT.format(state=tmp_path / "state", port=port))
    env = {
        "PATH": os.environ["PATH"],
        "COMPOSE_PROJECT_NAME": "opsroll" + os.urandom(3).hex(),
        "OPSKIT_RUNTIME": "swarm",
    }
    stack = load_stack(path, environ=env)
    stacks.append(stack)
    started = lifecycle.start(stack)
    assert started.ok, [(o.service, o.detail, o.log_tail) for o in started.outcomes]
    unit = stack.role("api").unit
    assert "2/2 tasks running" in unit.status().detail
    before = {t["ID"] for t in unit.tasks() if t["Status"]["State"] == "running"}

    done = threading.Event()
    answers: list[int | str] = []

    def load() -> None:
        with httpx.Client(timeout=10.0) as client:
            while not done.is_set():
                try:
                    answers.append(
                        client.get(f"http://127.0.0.1:{port}/_standin/requests").status_code
                    )
                except httpx.HTTPError as exc:
                    answers.append(type(exc).__name__)

    worker = threading.Thread(target=load, daemon=True)
    worker.start()
    try:
        time.sleep(1.0)
        result = graceful_restart(stack, ["api"])
        time.sleep(1.0)
    finally:
        done.set()
        worker.join(15)

    outcome = result.outcome("api")
    assert outcome.state is StepOutcome.DONE, outcome.detail
    assert "start-first" in outcome.detail
    after = {t["ID"] for t in unit.tasks() if t["Status"]["State"] == "running"}
    assert len(after) == 2 and not after & before  # every task replaced
    failed = [a for a in answers if a != 200]
    assert len(answers) > 50, len(answers)
    assert not failed, f"{len(failed)} of {len(answers)} failed: {failed[:5]}"


def test_an_engine_outside_a_swarm_is_one_line_before_anything_runs(write_stack, mocker):
    """Leaving the swarm would change the machine for everyone; the engine's answer is
    replaced instead (the one fault injected here)."""
    path = write_stack(STACK_DEPLOY.format(state="{state}", port=free_port()))
    real_info = docker.DockerClient.info

    def outside(self):
        info = real_info(self)
        info["Swarm"] = {"LocalNodeState": "inactive", "ControlAvailable": False}
        return info

    mocker.patch.object(docker.DockerClient, "info", outside)
    env = {"PATH": os.environ["PATH"], "OPSKIT_RUNTIME": "swarm"}
    stack = load_stack(path, environ=env)
    with pytest.raises(RuntimeUnavailableError) as caught:
        lifecycle.status(stack)
    assert "not part of a swarm" in str(caught.value) and "docker swarm init" in str(caught.value)
    assert "\n" not in str(caught.value)
