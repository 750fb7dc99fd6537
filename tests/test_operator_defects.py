"""Defects found by trying opskit as an operator would (issue 8, part 2), on real services.

Each test here failed on the release before the operations engine.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest
import redis

from opskit.lock import stack_lock
from opskit.ops import e2e, lifecycle
from opskit.ops.health import run_health
from opskit.vocabulary import CheckStatus, Phase, StepOutcome

from .conftest import PYTHON, REPO, cli_env, free_port, run_inv
from .helpers import redis_service, stack_text
from .test_engine import sh_service

# -- fixtures ----------------------------------------------------------------------------------


# -- 1. stop waited for init to reap exited leaders, and walked in whole levels -----------------


def test_stop_does_not_wait_for_someone_elses_zombie(write_stack, load, tmp_path):
    """Services started by an earlier `inv start` are not our children: when they exit, their
    parent (init, or here a subreaper that never reaps) owns the zombie. Stop must not wait for
    it to be reaped (it used to: ~1.3-2 s per service under init, 5 s each here)."""
    path = write_stack(stack_text(sh_service("a"), sh_service("b", ["a"])))
    env = {"PATH": os.environ["PATH"], "OPSKIT_STACK": str(path)}
    holder = subprocess.Popen(
        [
            PYTHON,
            "-c",
            "import ctypes, subprocess, sys, time\n"
            "ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER\n"
            "subprocess.run(sys.argv[1:], check=True)\n"
            "time.sleep(120)  # never reaps the services that become its children",
            PYTHON,
            "-m",
            "invoke",
            "--search-root",
            str(REPO),
            "start",
        ],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
    )
    try:
        stack = load(path)
        deadline = time.monotonic() + 30
        while not all(r.status.running for r in lifecycle.status(stack).rows):
            assert time.monotonic() < deadline and holder.poll() is None
            time.sleep(0.05)
        result = lifecycle.stop(stack)
        assert result.ok
        for outcome in result.outcomes:
            assert outcome.state is StepOutcome.STOPPED
            assert outcome.seconds < 2.0, outcome  # was 5 s each: waiting on a zombie
        zombies = [p for p in psutil.Process(holder.pid).children() if p.status() == "zombie"]
        assert zombies, "the test needs the stopped services to linger as zombies"
        assert not any(r.status.running for r in lifecycle.status(stack).rows)
    finally:
        holder.kill()
        holder.wait()


# -- 2. nginx after kill -9 of its master -------------------------------------------------------


def test_start_clears_the_orphaned_nginx_worker_of_a_killed_master(write_stack, load, tmp_path):
    port = free_port()
    (tmp_path / "nginx.conf.template").write_text(
        "worker_processes 1;\nevents {}\n"
        "http { server { listen 127.0.0.1:${PORT}; location /health { return 200 ok; } } }\n"
    )
    text = stack_text(
        f"  web:\n    image: nginx\n    environment: {{PORT: '{port}'}}\n"
        f'    ports: ["127.0.0.1:{port}:{port}"]\n'
        "    stop_grace_period: 5s\n"
        "    x-opskit: {config_template: nginx.conf.template}"
    )
    stack = load(write_stack(text))
    assert lifecycle.start(stack).ok
    master = psutil.Process(lifecycle.status(stack).rows[0].status.pid)
    worker = master.children()[0]
    os.kill(master.pid, signal.SIGKILL)
    master.wait(5)
    assert worker.is_running()  # the orphan still holds the port
    events = []
    result = lifecycle.start(stack, on_event=events.append)
    assert result.ok, result.outcomes
    assert result.outcome("web").state is StepOutcome.STARTED
    cleaning = [e for e in events if e.phase is Phase.CLEANING]
    assert cleaning and f"killed pid {worker.pid} (nginx)" in cleaning[0].detail
    assert not worker.is_running() or worker.status() == psutil.STATUS_ZOMBIE


# -- 3. a stale Redis password made stop lose data ----------------------------------------------


def test_stop_with_a_stale_redis_password_saves_instead_of_killing(write_stack, load):
    port = free_port()
    live = load(write_stack(stack_text(redis_service(port, "old-password"))))
    assert lifecycle.start(live).ok
    client = redis.Redis(port=port, password="old-password")
    client.set("aws_masker:map:AWS_EC2_001", "i-0123456789abcdef0")
    client.close()
    # The operator rotated the password in .env; Redis still runs with the old one.
    rotated = load(write_stack(stack_text(redis_service(port, "new-password")), name="new.yml"))
    result = lifecycle.stop(rotated)
    outcome = result.outcome("redis")
    assert outcome.state is StepOutcome.STOPPED, outcome  # not KILLED after the grace period
    assert "SHUTDOWN refused: authentication failed" in outcome.detail
    assert outcome.seconds < 5  # not the 10 s grace period
    assert lifecycle.start(live).ok
    client = redis.Redis(port=port, password="old-password")
    assert client.get("aws_masker:map:AWS_EC2_001") == b"i-0123456789abcdef0"  # saved on SIGTERM
    client.close()


# -- 4. a Redis outage was under-reported ---------------------------------------------------------


def test_redis_outage_impacts_kong_and_e2e_says_so_plainly(sandbox):
    os.kill(sandbox.role("redis").unit.status().pid, signal.SIGKILL)
    report = run_health(sandbox, ["kong"])
    impact = next(c for c in report.checks if (c.service, c.name) == ("kong", "dependencies"))
    assert impact.status is CheckStatus.WARNING
    assert "redis is CRITICAL" in impact.detail and "masking maps" in impact.detail
    assert report.exit_code == 1

    done = run_inv(cli_env(sandbox), "health", "--service", "kong", "--quiet")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "kong.dependencies WARNING" in done.stdout

    full = run_health(sandbox, e2e=True)
    steps = {c.name: c for c in full.checks if c.service == "e2e"}
    assert all(step.status is CheckStatus.CRITICAL for step in steps.values()), steps
    assert "redis is not reachable" in steps["masked_in_redis"].detail
    assert "no masking event can be observed" in steps["masking_event"].detail
    assert not any("Traceback" in step.detail for step in steps.values())
    assert full.exit_code == 2


# -- 5. health outlived its timeout ----------------------------------------------------------


def test_health_returns_within_its_budget_when_kong_is_frozen(sandbox):
    # The same command on the healthy stack, in the same moment: this machine may be loaded,
    # so the CLI's own cost is measured, not assumed.
    began = time.monotonic()
    assert run_inv(cli_env(sandbox), "health", "--quiet", "--timeout", "1").returncode < 2
    healthy_wall = time.monotonic() - began
    kong = psutil.Process(sandbox.role("kong").unit.status().pid)
    kong.suspend()
    try:
        began = time.monotonic()
        done = run_inv(cli_env(sandbox), "health", "--quiet", "--timeout", "1")
        cli_wall = time.monotonic() - began
        # A frozen target is CRITICAL whatever the budget (it was UNKNOWN with a short one,
        # which many Nagios setups do not page on).
        assert done.returncode == 2, done.stdout + done.stderr
        assert "kong.admin_status CRITICAL: no answer within 1s" in done.stdout
        # Was 8.6 s with a 5 s budget: the I/O timeout, not the budget, ended it. Frozen, it
        # may cost its 1 s budget more than healthy, not the 5 s of an I/O timeout.
        assert cli_wall < healthy_wall + 1 + 1.5, (cli_wall, healthy_wall)
        longer = run_inv(cli_env(sandbox), "health", "--quiet", "--timeout", "3")
        assert longer.returncode == 2, longer.stdout + longer.stderr
        assert "kong.admin_status CRITICAL" in longer.stdout

        import dataclasses

        settings = dataclasses.replace(sandbox.config.health, check_timeout=1, e2e_timeout=2)
        began = time.monotonic()
        report = run_health(sandbox, e2e=True, settings=settings)
        assert time.monotonic() - began < 2 + 1.5
        assert report.exit_code >= 2
    finally:
        kong.resume()


# -- 6. stack files accepted that failed later --------------------------------------------------


@pytest.mark.parametrize(
    ("ports_a", "ports_b", "key", "problem"),
    [
        (
            '["8080:80"]',
            '["8080:81"]',
            "services.b.ports[0]",
            "host port 8080 is already published by services.a.ports[0]",
        ),
        ('["99999:80"]', None, "services.a.ports[0]", "host port 99999 is out of range"),
        ('["0:6379"]', None, "services.a.ports[0]", "host port 0 is out of range"),
    ],
)
def test_bad_ports_are_config_errors_before_anything_starts(
    write_stack, tmp_path, ports_a, ports_b, key, problem
):
    extension = "x-opskit: {process: {command: [sleep, '60']}}"
    services = [f"  a:\n    image: x\n    ports: {ports_a}\n    {extension}"]
    if ports_b:
        services.append(f"  b:\n    image: x\n    ports: {ports_b}\n    {extension}")
    path = write_stack(stack_text(*services))
    done = run_inv({"PATH": os.environ["PATH"]}, "start", "--stack", str(path))
    assert done.returncode == 2
    assert f"{key}: {problem}" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "state").exists()  # nothing written: no lock, no pidfile


@pytest.mark.parametrize(
    ("extension", "key", "problem"),
    [
        ("{role: redis, pasword: x}", "services.a.x-opskit.pasword", "did you mean password?"),
        (
            "{role: nginx, config_template: missing.conf}",
            "services.a.x-opskit.config_template",
            "missing.conf not found",
        ),
        (
            "{process: {command: [sleep, '1'], cwd: no-such-dir}}",
            "services.a.x-opskit.process.cwd",
            "no-such-dir not found",
        ),
        ("{process: {comand: [sleep, '1']}}", "services.a.x-opskit.process.comand", "command?"),
    ],
)
def test_bad_x_opskit_keys_are_config_errors(write_stack, tmp_path, extension, key, problem):
    path = write_stack(stack_text(f"  a:\n    image: x\n    x-opskit: {extension}"))
    done = run_inv({"PATH": os.environ["PATH"]}, "start", "--stack", str(path))
    assert done.returncode == 2, done.stderr
    line = done.stderr.strip()
    assert line.startswith(f"opskit: {path}: {key}: ") and problem in line, line
    assert not (tmp_path / "state").exists()


def test_top_level_typo_names_the_key(write_stack):
    path = write_stack(
        'x-opskit: {runtime: process, state_dir: "{state}", helth: {check_timeout: 2s}}\n'
        "services: {a: {image: x, x-opskit: {process: {command: [sleep, '1']}}}}\n"
    )
    done = run_inv({"PATH": os.environ["PATH"]}, "status", "--stack", str(path))
    assert done.returncode == 2
    assert "x-opskit.helth: unknown key (did you mean health?)" in done.stderr


# -- 7. the command line ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("task", "value", "code"),
    [("start", "abc", 2), ("start", "0", 2), ("restart", "-1", 2), ("health", "abc", 3)],
)
def test_bad_timeouts_get_one_line_and_the_usage_code(write_stack, task, value, code):
    path = write_stack(stack_text(sh_service("a")))
    done = run_inv({"PATH": os.environ["PATH"]}, task, "--stack", str(path), "--timeout", value)
    assert done.returncode == code, done.stderr
    assert done.stderr.strip() == (
        f"opskit: --timeout: expected a number of seconds above zero, got {value!r}"
    )


def test_a_bare_service_flag_is_an_error_not_everything(write_stack, load):
    path = write_stack(stack_text(sh_service("a"), sh_service("b")))
    stack = load(path)
    assert lifecycle.start(stack).ok
    done = run_inv({"PATH": os.environ["PATH"]}, "stop", "--stack", str(path), "--service")
    assert done.returncode == 2
    assert done.stderr.strip() == "opskit: --service needs a service name (e.g. --service kong)"
    assert all(r.status.running for r in lifecycle.status(stack).rows)  # nothing was stopped


def test_a_service_flag_before_an_optional_positional_takes_its_value(write_stack):
    path = write_stack(stack_text(sh_service("a")))
    done = run_inv({"PATH": os.environ["PATH"]}, "restore", "--stack", str(path), "-s", "a")
    # invoke itself read `a` as ambiguous (a flag value or BACKUP_ID?) and stopped at exit 1
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == "opskit: restore needs a backup id (inv backup.list shows them)"


def test_every_task_spells_its_flags_the_same_way():
    listing = subprocess.run(
        [PYTHON, "-m", "invoke", "--search-root", str(REPO), "--list", "--list-format", "json"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    collections = json.loads(listing.stdout)["collections"]
    assert {"start", "stop", "restart", "status", "health", "smoke", "reload"} <= {
        c["name"] for c in collections
    }
    tasks = [f"{c['name']}.{t['name']}" for c in collections for t in c["tasks"]]
    for name in tasks:
        text = subprocess.run(
            [PYTHON, "-m", "invoke", "--search-root", str(REPO), "--help", name],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout
        assert "-f STRING, --stack=STRING" in text, (name, text)
        if "--service" in text:
            assert "-s, --service" in text, (name, text)
        if "--timeout" in text:
            assert "-t STRING, --timeout=STRING" in text, (name, text)


# -- 8. health changed state ----------------------------------------------------------------------


def test_health_observes_without_the_lock_and_the_drill_takes_it(sandbox):
    redis_pid = sandbox.role("redis").unit.status().pid
    with stack_lock(sandbox.state_dir, "another operator's restart"):
        report = run_health(sandbox)  # observing needs no lock
        assert report.exit_code in (0, 1)
        drill = e2e.fail_secure_drill(sandbox, lock_wait=0.2)
        assert drill.status is CheckStatus.UNKNOWN
        assert "drill not run" in drill.detail and "another operator's restart" in drill.detail
    assert sandbox.role("redis").unit.status().pid == redis_pid  # never stopped


def test_the_fail_secure_drill_brings_redis_back_through_ensure_ready(sandbox):
    pid = sandbox.role("redis").unit.status().pid
    drill = e2e.fail_secure_drill(sandbox)
    assert drill.status is not CheckStatus.UNKNOWN, drill  # the drill ran
    status = sandbox.role("redis").unit.status()
    assert status.running and status.pid != pid  # stopped, then started again
    assert sandbox.role("redis").probe_ready().ready


if sys.platform != "linux":  # pragma: no cover - prctl and /proc are Linux's
    pytestmark = pytest.mark.skip("Linux only")
