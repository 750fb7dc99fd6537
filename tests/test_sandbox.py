"""The sandbox stack through the CLI, as an operator runs it: start, status, stop — by pid."""

from __future__ import annotations

import json
import os
import subprocess
import time

import httpx
import psutil
import pytest
import redis

from .conftest import PYTHON, REPO, run_inv

pytestmark = pytest.mark.slow


@pytest.fixture
def sandbox(sandbox_env):
    yield sandbox_env
    run_inv(sandbox_env, "stop")


def group_pids(pids: list[int]) -> set[int]:
    """Every live process in the process groups (sessions) of ``pids``: workers included."""
    groups = set(pids)
    found = set()
    for process in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(process.pid) in groups and process.status() != psutil.STATUS_ZOMBIE:
                found.add(process.pid)
        except (ProcessLookupError, psutil.Error):
            continue
    return found


def test_readme_first_command_starts_a_healthy_sandbox_and_stop_leaves_nothing(sandbox):
    env = sandbox
    started = subprocess.run(
        ["./dev", "up"], env=env, capture_output=True, text=True, timeout=600, cwd=REPO
    )
    assert started.returncode == 0, started.stdout + started.stderr
    assert env["REDIS_PASSWORD"] not in started.stdout + started.stderr
    assert "running" in started.stdout  # ./dev up ends with inv status

    status = run_inv(env, "status", "--json")
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    services = {row["service"]: row for row in report["services"]}
    assert set(services) == {"redis", "upstream", "kong", "nginx", "backend", "front"}
    assert all(row["state"] == "running" for row in services.values())
    pids = [row["pid"] for row in services.values()]
    assert all(psutil.pid_exists(pid) for pid in pids)

    # Each service really serves, checked here without opskit.
    client = redis.Redis(port=int(env["REDIS_PORT"]), password=env["REDIS_PASSWORD"])
    assert client.ping()
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=int(env["REDIS_PORT"]), password="wrong").ping()
    client.close()
    http = httpx.Client(timeout=5, trust_env=False)
    assert http.get(f"http://127.0.0.1:{env['UPSTREAM_PORT']}/health").status_code == 200
    assert http.get(f"http://127.0.0.1:{env['NGINX_PROXY_PORT']}/health").status_code == 200
    assert http.get(f"http://127.0.0.1:{env['BACKEND_PORT']}/health/ready").status_code == 200
    # The whole chain: backend -> nginx -> kong (masks) -> upstream (echoes) -> unmasked reply.
    text = "instance i-0123456789abcdef0 in 10.0.1.50"
    analyze = http.post(f"http://127.0.0.1:{env['BACKEND_PORT']}/analyze", json={"text": text})
    assert analyze.status_code == 200 and analyze.json()["analysis"] == text
    seen = http.get(f"http://127.0.0.1:{env['UPSTREAM_PORT']}/_standin/requests").json()
    assert seen["requests"][-1]["text"] == "instance AWS_EC2_001 in AWS_PRIVATE_IP_001"
    http.close()

    everything = group_pids(pids)
    assert len(everything) > len(pids)  # nginx workers at least

    again = run_inv(env, "start")
    assert again.returncode == 0 and "already running" in again.stdout

    stopped = run_inv(env, "stop")
    assert stopped.returncode == 0, stopped.stderr
    deadline = time.monotonic() + 5
    while group_pids(pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert group_pids(pids) == set(), "processes left behind after inv stop"

    after = run_inv(env, "status", "--json")
    assert after.returncode == 1
    assert {row["state"] for row in json.loads(after.stdout)["services"]} == {"absent"}


def test_unknown_service_exits_2_with_a_suggestion(sandbox):
    done = run_inv(sandbox, "start", "--service", "kongg")
    assert done.returncode == 2
    assert "unknown service 'kongg'" in done.stderr


def test_missing_password_exits_2_and_names_the_variable(sandbox, tmp_path):
    env = dict(sandbox)
    env.pop("REDIS_PASSWORD")
    copy = tmp_path / "stack.yml"  # away from any sandbox/.env a developer may have
    copy.write_text((REPO / "sandbox" / "stack.yml").read_text())
    env["OPSKIT_STACK"] = str(copy)
    done = run_inv(env, "status")
    assert done.returncode == 2
    assert "services.redis.environment.REDIS_PASSWORD" in done.stderr
    assert "required variable REDIS_PASSWORD: set REDIS_PASSWORD in sandbox/.env" in done.stderr


def test_list_shows_the_lifecycle_tasks():
    done = subprocess.run(
        [PYTHON, "-m", "invoke", "--search-root", str(REPO), "--list"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0
    for name in ("start", "stop", "restart", "status"):
        # each operation is a sub-collection; its default task answers the bare verb
        assert f"({name})" in done.stdout
