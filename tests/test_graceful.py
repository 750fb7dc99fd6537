"""graceful-restart on real nginx, the Kong stand-in and redis-server.

What an operator relies on: a config nginx -t rejects never reaches a HUP; a HUP that nginx
could not apply (it kept its old workers) is a failure, not "reloaded"; Kong ends up running the
file's exact bytes and ready; Redis is refused unless downtime is allowed.
"""

from __future__ import annotations

import os
import socket

import psutil
import pytest

from opskit.ops import lifecycle
from opskit.ops.graceful import graceful_restart
from opskit.stack import load_stack
from opskit.vocabulary import StepOutcome

from .conftest import REPO, run_inv
from .helpers import free_port, redis_service, stack_text

pytestmark = pytest.mark.timeout(120)

TEMPLATE = """worker_processes 1;
pid nginx.pid;
events {}
http {
    server { listen 127.0.0.1:${PORT}; location /health { return 200 ok; } }
    ${EXTRA}
}
"""


def _nginx_stack(write_stack, tmp_path, extra: str = ""):
    port = free_port()
    (tmp_path / "nginx.conf.template").write_text(TEMPLATE)
    text = stack_text(
        f"  web:\n    image: nginx\n"
        f"    environment: {{PORT: '{port}', EXTRA: '{extra}'}}\n"
        f'    ports: ["127.0.0.1:{port}:{port}"]\n'
        "    stop_grace_period: 5s\n"
        "    x-opskit: {config_template: nginx.conf.template}"
    )
    return write_stack(text)


def _pids(stack) -> tuple[int, set[int]]:
    master = stack.role("web").unit.status().pid
    return master, {child.pid for child in psutil.Process(master).children()}


def test_a_config_nginx_t_rejects_never_reaches_a_hup(write_stack, load, tmp_path):
    stack = load(_nginx_stack(write_stack, tmp_path))
    assert lifecycle.start(stack).ok
    before = _pids(stack)
    template = tmp_path / "nginx.conf.template"
    template.write_text(template.read_text().replace("events {}", "events { bogus_directive on; }"))

    result = graceful_restart(stack, ["web"])

    outcome = result.outcome("web")
    assert outcome.state is StepOutcome.FAILED
    assert "nginx -t failed" in outcome.detail and "bogus_directive" in outcome.detail
    assert "no HUP sent" in outcome.detail
    assert _pids(stack) == before  # same master, same workers: nothing was signalled


def test_a_hup_nginx_could_not_apply_is_a_failure(write_stack, load, tmp_path, monkeypatch):
    """nginx -t accepts a new listen on a port someone else holds (it binds nothing); the
    master then fails to bind at HUP and keeps its old workers."""
    from opskit.services.nginx import role as nginx

    # nginx retries a failed bind five times, 500 ms apart, before it gives up and keeps its
    # old workers; the wait must outlast that, and the port stays taken until the end, or the
    # last retry succeeds and the reload is applied after all.
    monkeypatch.setattr(nginx, "RELOAD_WAIT", 4.0)  # the verdict is the same after 10 s
    path = _nginx_stack(write_stack, tmp_path)
    stack = load(path)
    assert lifecycle.start(stack).ok
    before = _pids(stack)
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    taken = squatter.getsockname()[1]
    try:
        text = path.read_text().replace(
            "EXTRA: ''", f"EXTRA: 'server {{ listen 127.0.0.1:{taken}; }}'"
        )
        path.write_text(text)
        changed = load(path)
        result = graceful_restart(changed, ["web"])
        outcome = result.outcome("web")
        assert outcome.state is StepOutcome.FAILED, outcome.detail
        assert "workers did not change" in outcome.detail
        assert "kept its old configuration" in outcome.detail
        assert _pids(stack) == before
    finally:
        squatter.close()


def test_nginx_reload_gives_new_workers_under_the_same_master(write_stack, load, tmp_path):
    stack = load(_nginx_stack(write_stack, tmp_path))
    assert lifecycle.start(stack).ok
    master, workers = _pids(stack)
    result = graceful_restart(stack, ["web"])
    assert result.ok, result.outcomes
    new_master, new_workers = _pids(stack)
    assert new_master == master
    assert new_workers - workers  # new workers exist (old ones drain and go)


def test_kong_ends_up_ready_and_running_the_files_bytes(sandbox_env, stacks):
    from opskit.declarative.document import md5_of

    stack = load_stack(REPO / "sandbox" / "stack.yml", environ=sandbox_env)
    stacks.append(stack)
    assert lifecycle.start(stack, ["kong"]).ok
    kong = stack.role("kong")
    kong.apply_config(kong.export_config())  # Kong now runs something else than its file
    assert kong.configuration_hash() != md5_of(kong.declarative_source())

    result = graceful_restart(stack, ["kong"])

    assert result.ok, result.outcomes
    assert kong.configuration_hash() == md5_of(kong.declarative_source())
    assert kong.probe_ready().ready
    assert "running the file" in result.outcome("kong").detail


def test_redis_is_refused_unless_downtime_is_allowed(write_stack, load):
    port = free_port()
    path = write_stack(stack_text(redis_service(port, "pw-graceful")))
    stack = load(path)
    assert lifecycle.start(stack).ok
    pid = stack.role("redis").unit.status().pid

    refused = run_inv(
        {"PATH": os.environ["PATH"]}, "graceful-restart", "-f", str(path), "-s", "redis"
    )
    assert refused.returncode == 1
    assert "cannot restart without downtime" in refused.stdout
    assert "--allow-downtime" in refused.stdout
    assert stack.role("redis").unit.status().pid == pid

    result = graceful_restart(stack, ["redis"], allow_downtime=True)
    assert result.ok, result.outcomes
    assert stack.role("redis").unit.status().pid != pid
    assert "SHUTDOWN SAVE" in result.outcome("redis").detail


def test_nginx_and_kong_restart_gracefully_on_both_runtimes(sandbox_stack):
    from opskit.declarative.document import md5_of

    assert lifecycle.start(sandbox_stack, ["nginx"]).ok
    nginx_pid = sandbox_stack.role("nginx").unit.status().pid
    result = graceful_restart(sandbox_stack, ["kong", "nginx"])
    assert result.ok, [(o.service, o.detail) for o in result.outcomes]
    assert "new workers" in result.outcome("nginx").detail
    assert sandbox_stack.role("nginx").unit.status().pid == nginx_pid  # never restarted
    kong = sandbox_stack.role("kong")
    assert kong.configuration_hash() == md5_of(kong.declarative_source())
