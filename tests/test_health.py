"""inv health: checks that cannot lie, driven into real bad states on the real sandbox."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from pathlib import Path
from xml.etree import ElementTree

import httpx
import jsonschema
import pytest
import yaml

from opskit.incidents import incident_counts
from opskit.ops import e2e, lifecycle
from opskit.ops.health import HealthSettings, run_health
from opskit.report import CRITICAL, OK, UNKNOWN, WARNING

from .conftest import REPO, run_inv
from .helpers import assert_healthy, script_service, stack_text

SCHEMA = json.loads((REPO / "opskit" / "schemas" / "health-report.schema.json").read_text())


def by_key(report) -> dict[tuple[str, str], object]:
    return {(c.service, c.name): c for c in report.checks}


def cli_env(stack) -> dict[str, str]:
    env = dict(stack.config.environ)
    env["OPSKIT_STACK"] = str(REPO / "sandbox" / "stack.yml")
    env["OPSKIT_RUNTIME"] = stack.config.runtime
    return env


@pytest.fixture
def started(sandbox_stack):
    result = lifecycle.start(sandbox_stack)
    assert result.ok, [(o.service, o.detail) for o in result.outcomes]
    return sandbox_stack


# -- the healthy stack ----------------------------------------------------------------------------


def test_healthy_sandbox_exits_0_and_the_json_validates(running_sandbox, tmp_path):
    junit = tmp_path / "junit.xml"
    done = run_inv(cli_env(running_sandbox), "health", "--json", "--junit", str(junit))
    report = json.loads(done.stdout)
    jsonschema.validate(report, SCHEMA)
    assert done.returncode == report["exit_code"] == assert_healthy(report["checks"])
    names = {(c["service"], c["name"]) for c in report["checks"]}
    for expected in [
        ("redis", "ping"),
        ("redis", "write_probe"),
        ("kong", "ready"),
        ("kong", "masker_attached"),
        ("nginx", "config"),
        ("nginx", "reaches_kong"),
        ("backend", "ready"),
        ("host", "disk_state"),
    ]:
        assert expected in names
    suite = ElementTree.parse(junit).getroot()
    assert suite.tag == "testsuite"
    assert len(suite.findall("testcase")) == len(report["checks"]) == int(suite.get("tests"))
    failures = [c for c in report["checks"] if c["status"] in ("WARNING", "CRITICAL")]
    assert suite.get("failures") == str(len(failures))


def test_quiet_prints_one_line(running_sandbox):
    done = run_inv(cli_env(running_sandbox), "health", "--quiet")
    line = done.stdout.strip()
    assert done.stdout.count("\n") == 1
    if done.returncode == 0:
        assert line.startswith("HEALTH OK - ") and line.endswith("all OK")
    else:  # only the host (the test machine's load, memory, disk) may warn, or worse
        assert done.returncode in (1, 2) and line.startswith(("HEALTH WARNING - ", "HEALTH CRIT"))
        problems = line.split(" not OK: ", 1)[1].split("; ")
        assert all(problem.startswith("host.") for problem in problems), problems


def test_service_filter_checks_kong_alone(running_sandbox):
    report = run_health(running_sandbox, ["kong"])
    assert {c.service for c in report.checks} == {"kong"}
    assert {c.name for c in report.checks} == {
        "process",
        "admin_status",
        "ready",
        "masker_attached",
        "config_drift",
        "certificates",
    }


def test_unknown_service_exits_3_with_a_suggestion(running_sandbox):
    done = run_inv(cli_env(running_sandbox), "health", "--service", "kongg")
    assert done.returncode == 3
    assert "unknown service 'kongg' (did you mean kong?)" in done.stderr


def test_a_bad_stack_file_is_unknown_3(tmp_path):
    bad = tmp_path / "stack.yml"
    bad.write_text("services: {app: {image: x, depends_on: [ghost]}}\n")
    done = run_inv(dict(os.environ, OPSKIT_STACK=str(bad)), "health")
    assert done.returncode == 3 and "unknown service" in done.stderr


def test_concurrent_and_sequential_runs_report_the_same_checks(running_sandbox):
    together = by_key(run_health(running_sandbox))
    apart = by_key(run_health(running_sandbox, concurrent=False))
    assert set(together) == set(apart)
    assert_healthy(together.values())


# -- bad states ---------------------------------------------------------------------------------


@pytest.mark.parametrize("victim", ["redis", "upstream", "kong", "nginx", "backend"])
def test_a_killed_service_is_critical_and_the_exit_code_2(started, victim):
    status = started.role(victim).unit.status()
    os.kill(status.pid, signal.SIGKILL)  # the host pid, of a process or a container's PID 1
    assert started.role(victim).unit.wait_stopped(5)
    report = run_health(started)
    checks = by_key(report)
    assert checks[(victim, "process")].status == CRITICAL
    assert "not running" in checks[(victim, "process")].detail
    assert report.exit_code == 2
    others = {c.service for c in report.checks if c.status == CRITICAL}
    assert victim in others


def test_killed_service_through_the_cli(started):
    os.kill(started.role("backend").unit.status().pid, signal.SIGKILL)
    started.role("backend").unit.wait_stopped(5)
    done = run_inv(cli_env(started), "health", "--quiet")
    assert done.returncode == 2
    assert "backend.process CRITICAL: not running" in done.stdout


def test_wrong_redis_password_is_critical_with_the_reason(started):
    from opskit.stack import load_stack

    wrong = load_stack(
        REPO / "sandbox" / "stack.yml",
        environ={**started.config.environ, "REDIS_PASSWORD": "not-the-password"},
    )
    report = run_health(wrong, ["redis"])
    checks = by_key(report)
    ping = checks[("redis", "ping")]
    assert ping.status == CRITICAL
    assert ping.detail.startswith("authentication failed: invalid username-password pair")
    assert checks[("redis", "memory")].status == UNKNOWN
    assert report.exit_code == 2


def test_kong_with_an_empty_config_is_not_ready(started):
    kong = started.role("kong")
    assert kong.apply_config("_format_version: '3.0'\n").status == 201
    checks = by_key(run_health(started, ["kong"]))
    assert checks[("kong", "ready")].status == CRITICAL
    assert "not ready: HTTP 503" in checks[("kong", "ready")].detail
    assert checks[("kong", "admin_status")].status == WARNING
    assert checks[("kong", "masker_attached")].status == CRITICAL


def test_invalid_nginx_config_is_critical(started):
    nginx = started.role("nginx")
    conf = str(nginx.conf_path) if nginx.unit.follows_launch else "/etc/nginx/nginx.conf"
    broken = nginx.unit.exec(["sed", "-i", "s/worker_connections 1024;/worker_connections;/", conf])
    assert broken.exit_code == 0, broken.output
    check = by_key(run_health(started, ["nginx"]))[("nginx", "config")]
    assert check.status == CRITICAL
    assert "nginx -t failed: [emerg]" in check.detail and "worker_connections" in check.detail


def test_redis_near_maxmemory_is_a_warning(running_sandbox):
    client = running_sandbox.role("redis").client()
    try:
        used = int(client.info("memory")["used_memory"])
        client.config_set("maxmemory", int(used / 0.93))  # 93% used: over the 90% threshold
        report = run_health(running_sandbox, ["redis"])
        memory = by_key(report)[("redis", "memory")]
        assert memory.status == WARNING and "of maxmemory" in memory.detail
        assert report.exit_code == 1
    finally:
        client.config_set("maxmemory", 0)
        client.close()


def test_a_target_that_accepts_and_never_answers_cannot_hang_the_run(write_stack, load):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept_forever():
        silent.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(silent.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/"
        service = script_service("mute", "import time\ntime.sleep(600)", url=url)
        stack = load(write_stack(stack_text(service)))
        unit = stack.role("mute").unit
        unit.start(stack.role("mute").launch())
        settings = HealthSettings(check_timeout=1.0)
        began = time.monotonic()
        report = run_health(stack, ["mute"], settings=settings)
        elapsed = time.monotonic() - began
        check = by_key(report)[("mute", "http")]
        assert check.status == CRITICAL and "no answer within 1s" in check.detail
        assert 1.0 <= elapsed < 1.8
        assert report.exit_code == 2  # a target that does not answer is CRITICAL, not UNKNOWN
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        silent.close()


# -- end to end -----------------------------------------------------------------------------------


def masker_disabled(config_yaml: str) -> str:
    """Kong's export is flat (kong-real-behaviour.md row 10): plugins are a top-level list."""
    document = yaml.safe_load(config_yaml)
    for plugin in document["plugins"]:
        if plugin["name"] == "aws-masker":
            plugin["enabled"] = False
    return yaml.safe_dump(document)


def test_e2e_proves_masking_on_the_healthy_stack(running_sandbox):
    report = run_health(running_sandbox, ["kong"], e2e=True)
    checks = by_key(report)
    for step in ("round_trip", "masked_in_redis", "masking_event"):
        assert checks[("e2e", step)].status == OK, checks[("e2e", step)].detail
    assert "masked as AWS_EC2_" in checks[("e2e", "masked_in_redis")].detail


def test_e2e_fails_when_masking_is_switched_off_where_an_echo_check_passes(started):
    kong = started.role("kong")
    assert kong.apply_config(masker_disabled(kong.export_config())).status == 201
    report = run_health(started, ["kong"], e2e=True)
    checks = by_key(report)
    assert checks[("e2e", "round_trip")].status == OK  # the echo alone would say all is well
    assert checks[("e2e", "masked_in_redis")].status == CRITICAL
    assert "was NOT masked" in checks[("e2e", "masked_in_redis")].detail
    assert checks[("kong", "masker_attached")].status == CRITICAL
    assert report.exit_code == 2
    assert incident_counts(started.state_dir) == {"unmasked": 1}  # a security incident, counted


def test_e2e_against_a_paid_upstream_needs_allow_cost(started):
    kong = started.role("kong")
    document = yaml.safe_load(kong.export_config())  # flat export: no url (row 10)
    document["services"][0].update(protocol="https", host="api.anthropic.com", port=443)
    assert kong.apply_config(yaml.safe_dump(document)).status == 201
    seen_before = httpx.get(
        f"http://127.0.0.1:{started.config.environ['UPSTREAM_PORT']}/_standin/requests"
    ).json()["requests"]
    check = by_key(run_health(started, ["kong"], e2e=True))[("e2e", "masking")]
    assert check.status == UNKNOWN
    assert "api.anthropic.com" in check.detail and "--allow-cost" in check.detail
    assert len(seen_before) == 0


def test_the_drill_reports_the_real_plugins_verdict_and_redis_is_back(started):
    """The real plugin (the sandbox's default): with Redis down it masks with counter-0 ids it
    never stores and answers 200 (kong-real-behaviour.md row 21): a WARNING, in one sentence."""
    checks = by_key(run_health(started, ["kong"], e2e=True, fail_secure=True))
    drill = checks[("e2e", "fail_secure")]
    assert drill.status == WARNING, drill
    assert "masked the id but never recorded the mapping in Redis" in drill.detail
    assert "counter-0 tokens (AWS_EC2_000) collide" in drill.detail
    assert started.role("redis").probe_ready().ready
    assert incident_counts(started.state_dir) == {"fail-open": 1}


def test_the_drill_is_ok_against_the_fixed_plugin(sandbox_env, stacks):
    from opskit.stack import load_stack

    env = dict(sandbox_env, AWS_MASKER_FAIL_SECURE="true")
    stack = load_stack(REPO / "sandbox" / "stack.yml", environ=env)
    stacks.append(stack)
    assert lifecycle.start(stack).ok
    drill = by_key(run_health(stack, ["kong"], e2e=True, fail_secure=True))[("e2e", "fail_secure")]
    assert drill.status == OK and "503 AWS_MASKER_1001" in drill.detail, drill
    assert stack.role("redis").probe_ready().ready
    assert incident_counts(stack.state_dir) == {}  # refusing is what a gateway should do


def test_the_drill_calls_a_500_critical(sandbox_env, stacks):
    """A worker that never reached Redis has no store: the real plugin answers 500 (row 21)."""
    from opskit.stack import load_stack

    stack = load_stack(REPO / "sandbox" / "stack.yml", environ=dict(sandbox_env))
    stacks.append(stack)
    assert lifecycle.start(stack).ok
    drill = e2e.fail_secure_drill(stack)  # the first AWS-bearing request Kong sees
    assert drill.status == CRITICAL and "HTTP 500 instead of refusing" in drill.detail, drill
    assert stack.role("redis").probe_ready().ready


def test_fail_secure_never_leaves_redis_down_even_on_ctrl_c(started, mocker):
    redis_role = started.role("redis")
    mocker.patch.object(e2e, "_send", side_effect=KeyboardInterrupt)  # Ctrl-C mid-probe
    with pytest.raises(KeyboardInterrupt):
        e2e.fail_secure_drill(started)
    assert redis_role.unit.status().running
    assert redis_role.probe_ready().ready


# -- smoke ----------------------------------------------------------------------------------------


def test_smoke_starts_checks_and_stops_what_it_started(sandbox_stack, tmp_path):
    env = cli_env(sandbox_stack)
    done = run_inv(env, "smoke", "--report-dir", str(tmp_path / "reports"))
    report = json.loads((tmp_path / "reports" / "health.json").read_text())
    jsonschema.validate(report, SCHEMA)
    assert done.returncode == assert_healthy(report["checks"]), done.stdout + done.stderr
    assert {c["service"] for c in report["checks"]} >= {"e2e", "kong", "redis"}
    suite = ElementTree.parse(tmp_path / "reports" / "health.junit.xml").getroot()
    assert len(suite.findall("testcase")) == len(report["checks"])
    assert not any(r.status.running for r in lifecycle.status(sandbox_stack).rows)


def test_smoke_leaves_a_running_stack_running(started, tmp_path):
    before = {r.service: r.status.pid for r in lifecycle.status(started).rows}
    done = run_inv(cli_env(started), "smoke", "--report-dir", str(tmp_path / "r"))
    report = json.loads((tmp_path / "r" / "health.json").read_text())
    assert done.returncode == assert_healthy(report["checks"]), done.stdout + done.stderr
    assert "started nothing" in done.stdout
    assert {r.service: r.status.pid for r in lifecycle.status(started).rows} == before


def test_reports_are_private_files(sandbox_stack, tmp_path):
    lifecycle.start(sandbox_stack)
    path = Path(tmp_path / "junit" / "out.xml")
    done = run_inv(cli_env(sandbox_stack), "health", "--junit", str(path), "--quiet")
    # Not 0 only when the test machine itself is loaded (host.load, host.memory, host.disk).
    problems = done.stdout.partition("not OK: ")[2]
    assert done.returncode == 0 or all(
        item.strip().startswith("host.") for item in problems.split(";") if item.strip()
    ), done.stdout
    assert path.stat().st_mode & 0o777 == 0o600
    assert sandbox_stack.config.environ["REDIS_PASSWORD"] not in path.read_text()
