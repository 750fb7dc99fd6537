"""Start gating: timeouts with log tails, fail-fast on exit, port conflicts, rollback."""

from __future__ import annotations

import socket
import time

import psutil
import pytest

from opskit.errors import PreflightError
from opskit.ops import lifecycle

from .conftest import free_port
from .helpers import http_service, redis_service, script_service, stack_text


def test_never_ready_times_out_with_the_log_tail_and_is_stopped(write_stack, load):
    dead_port = free_port()
    never = script_service(
        "never",
        "import time\nfor i in range(30): print(f'line {i}')\ntime.sleep(600)",
        url=f"http://127.0.0.1:{dead_port}/",
        x={"start_timeout": "1s"},
    )
    stack = load(write_stack(stack_text(never)))
    began = time.monotonic()
    result = lifecycle.start(stack)
    elapsed = time.monotonic() - began
    outcome = result.outcome("never")
    assert not result.ok and result.exit_code == 1
    assert outcome.state == lifecycle.FAILED
    assert "not ready before the start timeout" in outcome.detail
    assert "ConnectError" in outcome.detail
    assert 1.0 <= elapsed < 10
    assert outcome.log_tail[-1] == "line 29" and len(outcome.log_tail) == 20
    assert lifecycle.status(stack).rows[0].status.state != "running"


def test_a_process_that_exits_fails_fast_with_its_exit_code(write_stack, load):
    crash = script_service(
        "crash",
        "import sys\nprint('fatal: cannot parse /etc/app.conf')\nsys.exit(3)",
        url=f"http://127.0.0.1:{free_port()}/",
        x={"start_timeout": "60s"},
    )
    stack = load(write_stack(stack_text(crash)))
    result = lifecycle.start(stack)
    outcome = result.outcome("crash")
    assert outcome.state == lifecycle.FAILED
    assert outcome.detail == "exited during start (code 3)"
    assert outcome.seconds < 10  # not the 60 s timeout
    assert "fatal: cannot parse /etc/app.conf" in outcome.log_tail
    status = lifecycle.status(stack).rows[0].status
    assert (status.state, status.exit_code) == ("exited", 3)


def test_dependents_of_a_failed_service_are_skipped_and_healthy_ones_kept(write_stack, load):
    ok_service, _ = http_service("ok")
    crash = script_service("crash", "raise SystemExit(1)", url="http://127.0.0.1:1/")
    app, _ = http_service("app", ["crash"])
    stack = load(write_stack(stack_text(ok_service, crash, app)))
    result = lifecycle.start(stack)
    assert result.outcome("crash").state == lifecycle.FAILED
    assert result.outcome("app").state == lifecycle.SKIPPED
    assert "dependency failed (crash)" in result.outcome("app").detail
    running = {r.service for r in lifecycle.status(stack).rows if r.status.running}
    assert running == {"ok"}


def test_rollback_stops_what_this_start_started(write_stack, load):
    ok_service, _ = http_service("ok")
    crash = script_service("crash", "raise SystemExit(1)", url="http://127.0.0.1:1/")
    stack = load(write_stack(stack_text(ok_service, crash)))
    result = lifecycle.start(stack, rollback=True)
    assert not result.ok
    assert "rolled back" in result.outcome("ok").detail
    assert not any(r.status.running for r in lifecycle.status(stack).rows)


def test_port_taken_names_the_holder_and_starts_nothing(write_stack, load):
    web, port = http_service("web")
    other, _ = http_service("other")
    stack = load(write_stack(stack_text(other, web)))
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        with pytest.raises(PreflightError) as info:
            lifecycle.start(stack)
    me = psutil.Process()
    assert f"web: port {port} is already in use, held by pid {me.pid} ({me.name()})" in str(
        info.value
    )
    assert not any(r.status.running for r in lifecycle.status(stack).rows)


def test_missing_binary_is_a_preflight_problem(write_stack, load):
    app = '  app:\n    image: x\n    x-opskit: {process: {command: ["no-such-binary-xyz"]}}'
    path = write_stack(stack_text(app))
    with pytest.raises(PreflightError, match="app: command 'no-such-binary-xyz' not found on PATH"):
        lifecycle.start(load(path))


def test_fatal_probe_fails_at_once(write_stack, load):
    """A wrong Redis password cannot fix itself: the gate fails without waiting the timeout."""
    port = free_port()
    right = stack_text(redis_service(port, "right-password", start_timeout="30s"))
    wrong_text = stack_text(redis_service(port, "wrong-password", start_timeout="30s"))
    assert lifecycle.start(load(write_stack(right))).ok
    wrong = load(write_stack(wrong_text, name="wrong.yml"))
    began = time.monotonic()
    ready = wrong.role("redis").probe_ready()
    assert not ready.ready and ready.fatal
    assert "WRONGPASS" in ready.detail or "invalid" in ready.detail
    assert time.monotonic() - began < 5
    result = lifecycle.start(wrong)  # already running, but opskit cannot authenticate
    assert result.outcome("redis").state == lifecycle.FAILED
    assert "authentication failed" in result.outcome("redis").detail
    assert result.outcome("redis").seconds < 5


def test_log_tail_of_a_failed_service_is_redacted(write_stack, load):
    secret = "tok-" + "s3cr3t-value-42"
    leaky = script_service(
        "leaky",
        "import os, sys\nprint('token is', os.environ['API_TOKEN'])\nsys.exit(2)",
        url="http://127.0.0.1:1/",
        environment={"API_TOKEN": secret},
    )
    stack = load(write_stack(stack_text(leaky)))
    outcome = lifecycle.start(stack).outcome("leaky")
    assert outcome.state == lifecycle.FAILED
    assert "token is ***" in outcome.log_tail
    assert not any(secret in line for line in outcome.log_tail)


def test_invalid_nginx_config_fails_preflight_with_nginxs_message(write_stack, load, tmp_path):
    (tmp_path / "nginx.conf.template").write_text(
        "events {}\nhttp { server { listen ${PORT}; location / { retrun 200; } } }\n"
    )
    port = free_port()
    text = stack_text(
        f"  web:\n    image: nginx\n    environment: {{PORT: '{port}'}}\n"
        f'    ports: ["{port}:{port}"]\n'
        "    x-opskit: {config_template: nginx.conf.template}"
    )
    stack = load(write_stack(text))
    with pytest.raises(PreflightError) as info:
        lifecycle.start(stack)
    assert 'web: nginx -t failed: [emerg] unknown directive "retrun" in ' in str(info.value)
    assert not lifecycle.status(stack).rows[0].status.running
