"""Recovery on real services: the sandbox stack on both runtimes, synthetic services for the
cases a real stack cannot stage cheaply (a command that always fails, a frozen target).

What an operator relies on at 3 a.m.: a killed service is back after one pass and a person
heard "failed" then "recovered", once each; the dependency comes back before its dependents
are touched; a hopeless service is restarted exactly the budget, then recovery gives up and
says so once; twenty cron runs at once restart nothing twice; a frozen target does not freeze
the pass; a service an operator stopped stays stopped.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import threading
import time
from pathlib import Path

import pytest

from opskit.ops import lifecycle
from opskit.ops.health import run_health
from opskit.ops.recover import recover, watch
from opskit.recovery.liveness import ExitWatch
from opskit.recovery.state import RecoveryState
from opskit.stack import load_stack
from opskit.vocabulary import CheckStatus, Phase, RecoverAction, ServiceVerdict

from .conftest import PYTHON, REPO, RUNTIME_PARAMS, inv_process, run_inv
from .helpers import Receiver, http_service, script_service, stack_text

pytestmark = pytest.mark.timeout(240)

RUNTIMES = RUNTIME_PARAMS


@pytest.fixture
def receiver():
    hook = Receiver()
    yield hook
    hook.close()


def _sandbox(runtime: str, env: dict, stacks: list, **extra: str):
    env = {**env, **extra, "OPSKIT_RUNTIME": runtime}
    if runtime == "docker":
        env["COMPOSE_PROJECT_NAME"] = "optest" + os.urandom(4).hex()
    stack = load_stack(REPO / "sandbox" / "stack.yml", environ=env)
    stacks.append(stack)
    return stack


def kill9(stack, name: str) -> int:
    """``kill -9`` the service's main process as the host sees it; wait until it is gone (or
    already replaced: a watcher restarts a dead process within milliseconds)."""
    status = stack.role(name).unit.status()
    assert status.running and status.pid, status
    os.kill(status.pid, signal.SIGKILL)
    deadline = time.monotonic() + 15
    while (now := stack.role(name).unit.status()).running and now.pid == status.pid:
        assert time.monotonic() < deadline, f"{name} still running after kill -9"
        time.sleep(0.02)
    return status.pid


def _starts(stack, name: str) -> int:
    """How many times the process runtime started ``name`` (its own counter)."""
    path = stack.state_dir / "run" / f"{name}.starts"
    return json.loads(path.read_text())["starts"] if path.exists() else 0


def _row(result, name):
    return next(row for row in result.rows if row.service == name)


# -- the sandbox, both runtimes ---------------------------------------------------------------


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_kill_9_kong_one_pass_brings_it_back_and_a_person_hears_failed_then_recovered(
    runtime, sandbox_env, stacks, receiver
):
    stack = _sandbox(runtime, sandbox_env, stacks, OPSKIT_ALERT_WEBHOOK=receiver.url())
    assert lifecycle.start(stack).ok
    assert recover(stack).ok  # all healthy: nothing to do, nothing sent
    assert receiver.bodies == []

    kill9(stack, "kong")
    result = recover(stack)

    assert result.ok, [(r.service, r.action, r.detail) for r in result.rows]
    assert _row(result, "kong").verdict is ServiceVerdict.DOWN
    assert _row(result, "kong").action is RecoverAction.RESTARTED
    report = run_health(stack, e2e=True)
    bad = [
        (c.service, c.name, c.detail)
        for c in report.checks
        if c.status is CheckStatus.CRITICAL and c.service != "host"  # the test machine's load
    ]
    assert not bad
    titles = receiver.titles()
    assert len(titles) == 2, titles
    assert "kong: FAILED" in titles[0] and "kong: RECOVERED" in titles[1]
    kinds = [body["type"] for _, body in receiver.bodies]
    assert kinds == ["failure", "success"]

    # The next pass finds nothing to do and sends nothing more.
    assert recover(stack).ok
    assert len(receiver.bodies) == 2


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_redis_killed_comes_back_before_kong_is_touched(runtime, sandbox_env, stacks):
    stack = _sandbox(runtime, sandbox_env, stacks)
    assert lifecycle.start(stack).ok
    kong_pid = stack.role("kong").unit.status().pid

    kill9(stack, "redis")
    events = []
    result = recover(stack, on_event=events.append)

    assert result.ok, [(r.service, r.action, r.detail) for r in result.rows]
    assert _row(result, "redis").action is RecoverAction.RESTARTED
    # Kong was only impacted (its own endpoints answer): never stopped, never started.
    assert _row(result, "kong").action in (RecoverAction.NOTHING, RecoverAction.HEALTHY_AGAIN)
    assert stack.role("kong").unit.status().pid == kong_pid
    assert [e.service for e in events if e.phase is Phase.STARTING] == ["redis"]
    assert not [e for e in events if e.service == "kong" and e.phase is Phase.STOPPING]


def test_redis_and_kong_both_killed_restart_in_dependency_order(sandbox_env, stacks):
    stack = _sandbox("process", sandbox_env, stacks)
    assert lifecycle.start(stack).ok
    kill9(stack, "kong")
    kill9(stack, "redis")
    events = []
    result = recover(stack, on_event=events.append)

    assert result.ok
    ready = [e.service for e in events if e.phase is Phase.READY]
    started = [e.service for e in events if e.phase is Phase.STARTING]
    assert started == ["redis", "kong"]
    assert ready.index("redis") < started.index("kong") + 1  # redis ready before kong starts
    first_kong = next(i for i, e in enumerate(events) if e.service == "kong")
    redis_ready = next(
        i for i, e in enumerate(events) if e.service == "redis" and e.phase is Phase.READY
    )
    assert redis_ready < first_kong


def test_twenty_concurrent_recover_runs_restart_each_failed_service_exactly_once(
    sandbox_env, stacks
):
    stack = _sandbox("process", sandbox_env, stacks)
    assert lifecycle.start(stack).ok
    before = {name: _starts(stack, name) for name in ("kong", "backend")}
    kill9(stack, "kong")
    kill9(stack, "backend")

    env = {**sandbox_env, "OPSKIT_RUNTIME": "process"}
    runs = [inv_process(env, "recover") for _ in range(20)]
    outputs = [run.communicate(timeout=180)[0] for run in runs]

    assert [run.returncode for run in runs] == [0] * 20, outputs
    after = {name: _starts(stack, name) for name in ("kong", "backend")}
    assert after == {name: count + 1 for name, count in before.items()}
    restarted = [line for out in outputs for line in out.splitlines() if "— restarted" in line]
    assert len(restarted) == 2, restarted
    assert any("acted on nothing" in out for out in outputs)  # the overlap was said
    report = run_health(stack)
    assert report.status is not CheckStatus.CRITICAL


# -- budgets, give-up, frozen targets, intent: synthetic services -------------------------------


def _always_failing_stack(write_stack, load, tmp_path: Path, **alerts: str):
    log = tmp_path / "alerts.jsonl"
    notifier = [
        PYTHON,
        "-c",
        f"import sys; open({str(log)!r}, 'a').write(sys.stdin.read() + '\\n')",
    ]
    body = stack_text(
        script_service(
            "flaky",
            "import sys; print('cannot open /etc/flaky.conf'); sys.exit(3)",
            url="http://127.0.0.1:9/",
            x={"role": "http", "start_timeout": "5s"},
        )
    ).replace(
        "x-opskit: {",
        "x-opskit: {recover: {failures: 2, recheck: 0.1s, max_restarts: 3, window: 15m}, "
        f"alerts: {json.dumps({'notify': [{'command': notifier}]})}, ",
        1,
    )
    stack = load(write_stack(body))
    return stack, log


def _alert_kinds(log: Path) -> list[str]:
    if not log.exists():
        return []
    return [json.loads(line)["kind"] for line in log.read_text().splitlines() if line.strip()]


def test_a_service_that_always_fails_gets_exactly_the_budget_then_one_gave_up_alert(
    write_stack, load, tmp_path
):
    stack, log = _always_failing_stack(write_stack, load, tmp_path)
    actions = []
    for _ in range(5):
        result = recover(stack)
        assert not result.ok and result.exit_code == 1
        actions.append(_row(result, "flaky").action)

    assert actions == [
        RecoverAction.RESTART_FAILED,
        RecoverAction.RESTART_FAILED,
        RecoverAction.GAVE_UP,
        RecoverAction.GAVE_UP,
        RecoverAction.GAVE_UP,
    ]
    assert _starts(stack, "flaky") == 3
    assert _alert_kinds(log) == ["failed", "gave up"]
    gave_up = _row(result, "flaky").detail
    assert "inv recover --reset flaky" in gave_up

    # The operator resets it: one more attempt (the budget is fresh), no new "failed" alert
    # inside the cooldown.
    after_reset = run_inv(
        {"PATH": os.environ["PATH"]}, "recover", "-f", str(stack.config.source), "--reset", "flaky"
    )
    assert after_reset.returncode == 1, after_reset.stdout + after_reset.stderr
    assert "restart failed" in after_reset.stdout
    assert "cannot open /etc/flaky.conf" in after_reset.stdout  # why, from its own log
    assert _starts(stack, "flaky") == 4
    assert _alert_kinds(log) == ["failed", "gave up"]


def test_a_frozen_target_does_not_freeze_the_pass(write_stack, load, tmp_path):
    web, _ = http_service("web")
    body = stack_text(web).replace(
        "x-opskit: {",
        "x-opskit: {health: {check_timeout: 1s}, recover: {failures: 2, recheck: 0.2s}, ",
        1,
    )
    body = body.replace("stop_grace_period: 5s", "stop_grace_period: 1s")
    stack = load(write_stack(body))
    assert lifecycle.start(stack).ok
    pid = stack.role("web").unit.status().pid
    os.kill(pid, signal.SIGSTOP)  # accepts connections (the kernel's backlog), answers nothing
    try:
        began = time.monotonic()
        result = recover(stack)
        took = time.monotonic() - began
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
    row = _row(result, "web")
    assert row.verdict is ServiceVerdict.FAILING, row
    assert "abandoned" in row.detail or "timed out" in row.detail.lower(), row.detail
    assert row.action is RecoverAction.RESTARTED, row
    assert stack.role("web").unit.status().pid != pid
    # Two 1 s observations, a 1 s grace before SIGKILL, a start: bounded, whatever the target.
    assert took < 20, took


def test_a_service_stopped_by_an_operator_stays_stopped(write_stack, load):
    web, _ = http_service("web")
    api, _ = http_service("api", depends_on=["web"])
    stack = load(write_stack(stack_text(web, api)))
    assert lifecycle.start(stack).ok
    assert lifecycle.stop(stack, ["api"]).ok

    result = recover(stack)
    assert result.ok and result.exit_code == 0
    row = _row(result, "api")
    assert row.action is RecoverAction.LEFT_ALONE and "inv stop" in row.detail
    assert not stack.role("api").unit.status().running
    # `inv start` puts it back under recovery.
    assert lifecycle.start(stack, ["api"]).ok
    kill9(stack, "api")
    assert _row(recover(stack), "api").action is RecoverAction.RESTARTED


def test_dry_run_changes_nothing(write_stack, load):
    web, _ = http_service("web")
    stack = load(write_stack(stack_text(web)))
    assert lifecycle.start(stack).ok
    kill9(stack, "web")
    result = recover(stack, dry_run=True)
    assert _row(result, "web").action is RecoverAction.WOULD_RESTART
    assert result.exit_code == 1
    assert not stack.role("web").unit.status().running
    assert RecoveryState(stack.state_dir).record("web").attempts == []


def test_cron_run_while_another_operation_holds_the_lock_acts_on_nothing(write_stack, load):
    web, _ = http_service("web")
    path = write_stack(stack_text(web))
    stack = load(path)
    assert lifecycle.start(stack).ok
    kill9(stack, "web")
    from opskit.ops.engine import mutation

    with mutation(stack, "restart"):
        busy = run_inv({"PATH": os.environ["PATH"]}, "recover", "-f", str(path))
    assert busy.returncode == 0, busy.stderr
    assert "acted on nothing" in busy.stdout and "restart" in busy.stdout
    assert not stack.role("web").unit.status().running
    done = run_inv({"PATH": os.environ["PATH"]}, "recover", "-f", str(path))
    assert done.returncode == 0 and "— restarted" in done.stdout, done.stdout + done.stderr


def test_watch_sees_a_dead_process_at_once_and_sigterm_finishes_the_pass(write_stack, load):
    web, _ = http_service("web")
    path = write_stack(stack_text(web))
    stack = load(path)
    assert lifecycle.start(stack).ok
    watcher = inv_process(
        {"PATH": os.environ["PATH"]}, "recover", "-f", str(path), "--watch", "--interval", "60"
    )
    try:
        deadline = time.monotonic() + 30
        while not (stack.state_dir / "recover.json").exists():  # its first pass has run
            assert time.monotonic() < deadline and watcher.poll() is None
            time.sleep(0.05)
        old = kill9(stack, "web")
        killed_at = time.monotonic()
        while True:
            status = stack.role("web").unit.status()
            if status.running and status.pid != old:
                break
            # The interval is 60 s: only the liveness check can bring it back this soon.
            assert time.monotonic() - killed_at < 20, "not recovered by the liveness check"
            time.sleep(0.02)
        watcher.send_signal(signal.SIGTERM)
        output, _ = watcher.communicate(timeout=30)
    finally:
        if watcher.poll() is None:
            watcher.kill()
    assert watcher.returncode == 0, output
    assert "web: down — restarted" in output
    assert "SIGTERM: finishing the pass" in output and "stopped" in output


def test_a_unit_that_dies_between_the_pass_and_the_arming_is_not_left_for_the_interval(
    write_stack, load
):
    """The window the pidfds cannot see: the pass ended with web running, web died before
    the watcher armed. The next pass must come at once, not 60 s later."""
    web, _ = http_service("web")
    path = write_stack(stack_text(web))
    stack = load(path)
    assert lifecycle.start(stack).ok
    stop = threading.Event()
    passes: list = []

    def on_pass(result) -> None:
        passes.append((time.monotonic(), result))
        if len(passes) == 1:
            kill9(stack, "web")  # after the pass, before exits.arm()
        else:
            stop.set()

    with ExitWatch() as exits:
        runner = threading.Thread(
            target=watch,
            args=(lambda: load(path),),
            kwargs={"stop": stop, "exits": exits, "on_pass": on_pass, "interval": 60},
            daemon=True,
        )
        runner.start()
        runner.join(timeout=30)
        stop.set()
        exits.wake()
        runner.join(timeout=30)
    assert len(passes) == 2, "the second pass waited for the interval"
    assert _row(passes[1][1], "web").action is RecoverAction.RESTARTED
    assert stack.role("web").unit.status().running


def test_bad_recover_and_alert_settings_are_one_line_naming_the_key(write_stack):
    web, _ = http_service("web")
    for setting, expected in (
        ("recover: {max_restarts: 0}", "x-opskit.recover.max_restarts: expected a number"),
        ("recover: {windw: 5m}", "x-opskit.recover.windw: unknown key (did you mean window?)"),
        ("alerts: {notify: [{pager: x}]}", "x-opskit.alerts.notify[0]: unknown notifier 'pager'"),
        ("alerts: {notify: [{alertmanager: 'am:9093'}]}", "x-opskit.alerts.notify[0].alertmanager"),
    ):
        path = write_stack(stack_text(web).replace("x-opskit: {", f"x-opskit: {{{setting}, ", 1))
        done = run_inv({"PATH": os.environ["PATH"]}, "recover", "-f", str(path))
        assert done.returncode == 2, (setting, done.stdout, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and expected in lines[0], (setting, lines)


def test_the_watcher_reads_a_rotated_password_instead_of_restarting_redis_with_the_old_one(
    write_stack, tmp_path
):
    import redis as redis_client

    from sandbox.environment import free_port

    from .helpers import redis_service

    port = free_port()
    body = stack_text(redis_service(port, "${REDIS_PASSWORD}")).replace(
        "x-opskit: {", "x-opskit: {recover: {interval: 1s, recheck: 0.2s}, ", 1
    )
    path = write_stack(body, env_file="REDIS_PASSWORD=old-password-1\n")
    env = {"PATH": os.environ["PATH"]}
    assert run_inv(env, "start", "-f", str(path)).returncode == 0
    watcher = inv_process(env, "recover", "-f", str(path), "--watch")
    try:
        time.sleep(2)
        (tmp_path / ".env").write_text("REDIS_PASSWORD=new-password-2\n")
        rotated = run_inv(env, "restart", "-f", str(path), "-s", "redis")
        assert rotated.returncode == 0, rotated.stdout + rotated.stderr
        time.sleep(4)  # several passes of the watcher
        client = redis_client.Redis(port=port, password="new-password-2", socket_timeout=2)
        assert client.ping()
    finally:
        watcher.send_signal(signal.SIGTERM)
        output, _ = watcher.communicate(timeout=30)
        run_inv(env, "stop", "-f", str(path))
    # Whatever the watcher saw in between (a password mismatch is not its to fix), it never
    # restarted Redis itself: the operator's restart is what applied the new password.
    assert "— restarted" not in output, output
    assert "new-password-2" not in output and "old-password-1" not in output


def test_a_password_mismatch_is_alerted_never_fixed_by_a_restart(write_stack, load, tmp_path):
    from sandbox.environment import free_port

    from .helpers import redis_service

    port = free_port()
    body = stack_text(redis_service(port, "${REDIS_PASSWORD}")).replace(
        "x-opskit: {", "x-opskit: {recover: {recheck: 0.1s}, ", 1
    )
    path = write_stack(body, env_file="REDIS_PASSWORD=the-running-one\n")
    running = load(path)
    assert lifecycle.start(running).ok
    pid = running.role("redis").unit.status().pid
    (tmp_path / ".env").write_text("REDIS_PASSWORD=someone-edited-this\n")
    stale = load(path)

    result = recover(stale)

    row = _row(result, "redis")
    assert row.verdict is ServiceVerdict.FAILING and row.action is RecoverAction.ALERT_ONLY, row
    assert "not restarted" in row.detail and "authentication failed" in row.detail
    assert "someone-edited-this" not in row.detail and "the-running-one" not in row.detail
    assert result.exit_code == 1
    assert running.role("redis").unit.status().pid == pid


def test_a_dependent_is_not_touched_while_its_dependency_still_fails(write_stack, load):
    web, web_port = http_service("web")
    api, _ = http_service("api", depends_on=["web"])
    stack = load(write_stack(stack_text(web, api)))
    assert lifecycle.start(stack).ok
    kill9(stack, "api")
    kill9(stack, "web")
    squatter = socket.socket()  # web's port is taken: its restart must fail
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    squatter.bind(("127.0.0.1", web_port))
    squatter.listen()
    try:
        result = recover(stack)
    finally:
        squatter.close()
    assert _row(result, "web").action is RecoverAction.RESTART_FAILED
    api_row = _row(result, "api")
    assert api_row.action is RecoverAction.WAITING and "web still failing" in api_row.detail
    assert not stack.role("api").unit.status().running
    assert _starts(stack, "api") == 1  # never started by recovery


FLAPPING = """
import http.server, sys
port = int(sys.argv[1])
answered = []
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        answered.append(1)
        # the 2nd answer (recovery's first observation, after start's readiness probe) fails
        self.send_response(500 if len(answered) == 2 else 200)
        self.end_headers()
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", port), Handler).serve_forever()
"""


def test_one_failed_observation_is_not_a_failure(write_stack, load, tmp_path):
    from sandbox.environment import free_port

    port = free_port()
    log = tmp_path / "alerts.jsonl"
    notifier = [PYTHON, "-c", f"import sys; open({str(log)!r}, 'a').write(sys.stdin.read())"]
    service = script_service(
        "blip",
        FLAPPING,
        url=f"http://127.0.0.1:{port}/",
        args=(str(port),),
        ports=[f"{port}:{port}"],
    )
    body = stack_text(service).replace(
        "x-opskit: {",
        "x-opskit: {recover: {failures: 2, recheck: 0.1s}, "
        f"alerts: {json.dumps({'notify': [{'command': notifier}]})}, ",
        1,
    )
    stack = load(write_stack(body))
    assert lifecycle.start(stack).ok
    result = recover(stack)
    row = _row(result, "blip")
    assert row.action is RecoverAction.NOTHING, row
    assert result.ok
    assert _starts(stack, "blip") == 1
    assert not log.exists()  # nobody was woken for a blip


def test_a_service_that_keeps_dying_after_good_restarts_gives_up_at_the_budget(write_stack, load):
    web, _ = http_service("web")
    body = stack_text(web).replace(
        "x-opskit: {", "x-opskit: {recover: {failures: 1, max_restarts: 2, window: 10m}, ", 1
    )
    stack = load(write_stack(body))
    assert lifecycle.start(stack).ok
    actions = []
    for _ in range(3):
        kill9(stack, "web")
        actions.append(_row(recover(stack), "web").action)
    assert actions == [RecoverAction.RESTARTED, RecoverAction.RESTARTED, RecoverAction.GAVE_UP]
    assert _starts(stack, "web") == 3  # the first start and two restarts: none after the budget
    # Healthy again (someone started it): re-armed with a fresh budget.
    assert lifecycle.start(stack).ok
    assert _row(recover(stack), "web").action is RecoverAction.NOTHING
    kill9(stack, "web")
    assert _row(recover(stack), "web").action is RecoverAction.RESTARTED


@pytest.mark.parametrize("engine_may_restart", [False, True])
def test_a_dead_process_opskit_started_is_restarted_without_a_second_look(
    write_stack, load, mocker, engine_may_restart
):
    """Nothing but opskit brings back a process it started: its "not running" cannot be wrong a
    moment later, so recovery restarts it at once (its own cold start + the pass). Where an
    engine may restart the unit by itself (a restart policy, Swarm), the confirming looks
    stay."""
    from opskit.ops import recover as recover_module
    from opskit.runtime.process import ProcessUnit

    web, _ = http_service("web")
    stack = load(
        write_stack(
            stack_text(web).replace("x-opskit: {", "x-opskit: {recover: {failures: 3}, ", 1)
        )
    )
    assert lifecycle.start(stack).ok
    mocker.patch.object(ProcessUnit, "may_come_back", return_value=engine_may_restart)
    looks = mocker.spy(recover_module, "_observe_one")
    kill9(stack, "web")
    result = recover(stack)
    row = _row(result, "web")
    assert row.action is RecoverAction.RESTARTED, row.detail
    # the pass's own look, then (failures - 1) confirming ones where the engine may restart it
    assert looks.call_count == (3 if engine_may_restart else 1)
    assert stack.role("web").unit.status().running
