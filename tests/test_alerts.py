"""Alerts through real transports: a real Prometheus Alertmanager (Debian's
``prometheus-alertmanager``, started here on a free port) routing to a webhook receiver; apprise's
JSON webhook; a command notifier. And the promises around them: a failing notifier never stops
recovery and its alert is delivered on a later pass; a flapping service is one alert within the
cooldown; no secret reaches a notifier's argv, environment or any output.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from opskit.ops import lifecycle
from opskit.ops.recover import recover
from opskit.vocabulary import RecoverAction

from .conftest import PYTHON, run_inv
from .helpers import Receiver, free_port, http_service, stack_text
from .test_recover import _row, kill9

pytestmark = pytest.mark.timeout(180)
ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")


@pytest.fixture
def receiver():
    hook = Receiver()
    yield hook
    hook.close()


def _with_alerts(body: str, alerts: dict, recover_settings: str = "failures: 1") -> str:
    return body.replace(
        "x-opskit: {",
        f"x-opskit: {{recover: {{{recover_settings}}}, alerts: {json.dumps(alerts)}, ",
        1,
    )


@pytest.fixture
def alertmanager(tmp_path: Path, receiver: Receiver):
    """A real Alertmanager whose only receiver is ``receiver`` at /am (resolved alerts too)."""
    if ALERTMANAGER is None:
        pytest.skip(
            "prometheus-alertmanager is not installed (apt install prometheus-alertmanager)"
        )
    config = tmp_path / "alertmanager.yml"
    config.write_text(
        "route:\n"
        "  receiver: hook\n"
        "  group_by: [alertname, stack, service]\n"
        "  group_wait: 0s\n"
        "  group_interval: 1s\n"
        "  repeat_interval: 1h\n"
        "receivers:\n"
        "  - name: hook\n"
        "    webhook_configs:\n"
        f"      - url: {receiver.url('/am')}\n"
        "        send_resolved: true\n"
    )
    port = free_port()
    process = subprocess.Popen(
        [
            ALERTMANAGER,
            f"--config.file={config}",
            f"--storage.path={tmp_path / 'am-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert process.poll() is None, "alertmanager exited during start"
            assert time.monotonic() < deadline, "alertmanager not ready within 30s"
            time.sleep(0.1)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _am_states(receiver: Receiver) -> list[tuple[str, str]]:
    """(status, service) of each alert Alertmanager delivered to the webhook receiver."""
    return [
        (alert["status"], alert["labels"]["service"])
        for path, body in receiver.bodies
        if path == "/am"
        for alert in body["alerts"]
    ]


def test_alertmanager_receives_the_firing_alert_and_its_resolution(
    write_stack, load, alertmanager, receiver
):
    web, port = http_service("web")
    stack = load(
        write_stack(_with_alerts(stack_text(web), {"notify": [{"alertmanager": alertmanager}]}))
    )
    assert lifecycle.start(stack).ok
    kill9(stack, "web")
    # Something else takes the port: the restart fails and the incident stays open (firing).
    squatter = socket.socket()
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    squatter.bind(("127.0.0.1", port))
    squatter.listen()
    try:
        result = recover(stack)
        assert _row(result, "web").action is RecoverAction.RESTART_FAILED
        assert all(d.ok for d in result.deliveries), result.deliveries
        assert receiver.wait_for(lambda _: ("firing", "web") in _am_states(receiver))
    finally:
        squatter.close()

    result = recover(stack)
    assert _row(result, "web").action is RecoverAction.RESTARTED
    assert receiver.wait_for(lambda _: ("resolved", "web") in _am_states(receiver))
    states = _am_states(receiver)
    assert states.index(("firing", "web")) < states.index(("resolved", "web"))
    alert = next(
        a
        for _, body in receiver.bodies
        if _ == "/am"
        for a in body["alerts"]
        if a["status"] == "firing"
    )
    assert alert["labels"]["alertname"] == "OpskitServiceFailing"
    assert alert["labels"]["stack"] == stack.name
    assert "web is down" in alert["annotations"]["summary"]


def test_a_failing_notifier_never_stops_recovery_and_its_alert_comes_later(
    write_stack, load, receiver
):
    web, _ = http_service("web")
    alerts = {"webhook": receiver.url(), "notify": [{"command": ["false"]}]}
    stack = load(write_stack(_with_alerts(stack_text(web), alerts)))
    assert lifecycle.start(stack).ok
    receiver.fail_next = 2  # the webhook answers 500 to both alerts of the first pass
    kill9(stack, "web")

    result = recover(stack)
    assert _row(result, "web").action is RecoverAction.RESTARTED  # recovery went on
    failed = [d for d in result.deliveries if not d.ok]
    assert {d.notifier for d in failed} == {"apprise json://127.0.0.1", "command false"}
    assert receiver.titles() == []

    # The next pass delivers what the webhook is owed (the command still fails: still owed).
    result = recover(stack)
    assert [t.split(": ", 1)[1] for t in receiver.titles()] == ["FAILED", "RECOVERED"]
    assert [d.ok for d in result.deliveries if d.notifier.startswith("apprise")] == [True, True]


def test_a_flapping_service_is_one_alert_within_the_cooldown(write_stack, load, receiver):
    web, _ = http_service("web")
    stack = load(write_stack(_with_alerts(stack_text(web), {"webhook": receiver.url()})))
    assert lifecycle.start(stack).ok
    for _ in range(3):
        kill9(stack, "web")
        assert _row(recover(stack), "web").action is RecoverAction.RESTARTED
    titles = [t.split(": ", 1)[1] for t in receiver.titles()]
    assert titles == ["FAILED", "RECOVERED"]  # the 2nd and 3rd failures fell in the cooldown


def test_no_secret_reaches_a_notifier_or_any_output(write_stack, load, tmp_path, receiver):
    secret = "hunter2-" + os.urandom(6).hex()
    token = "T0KEN" + os.urandom(6).hex()
    seen = tmp_path / "seen.json"
    script = (
        "import json, os, sys; "
        f"open({str(seen)!r}, 'a').write(json.dumps({{'stdin': sys.stdin.read(), "
        "'env': dict(os.environ), 'argv': sys.argv}) + '\\n')"
    )
    web, _ = http_service("web")
    alerts = {
        # A webhook whose path carries a token, on a port where nothing listens.
        "webhook": f"http://127.0.0.1:{free_port()}/hooks/{token}",
        "notify": [{"command": [PYTHON, "-c", script]}],
    }
    path = write_stack(_with_alerts(stack_text(web), alerts), env_file=f"REDIS_PASSWORD={secret}\n")
    stack = load(path)
    assert lifecycle.start(stack).ok
    kill9(stack, "web")
    env = {"PATH": os.environ["PATH"], "REDIS_PASSWORD": secret}
    done = run_inv(env, "recover", "-f", str(path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "NOT sent" in done.stdout  # the dead webhook is reported …
    for text in (done.stdout, done.stderr, seen.read_text()):
        assert secret not in text and token not in text  # … without its token
    delivered = [json.loads(line) for line in seen.read_text().splitlines()]
    assert [json.loads(d["stdin"])["kind"] for d in delivered] == ["failed", "recovered"]
    assert all("REDIS_PASSWORD" not in d["env"] for d in delivered)
    tested = run_inv(env, "alerts.test", "-f", str(path))
    assert tested.returncode == 1  # the webhook failed, the command took it
    assert token not in tested.stdout + tested.stderr
    assert "command python" in tested.stdout and ": sent" in tested.stdout


def test_alerts_test_with_no_notifier_is_a_usage_error(write_stack):
    web, _ = http_service("web")
    done = run_inv(
        {"PATH": os.environ["PATH"]}, "alerts.test", "-f", str(write_stack(stack_text(web)))
    )
    assert done.returncode == 2
    assert "no notifier configured" in done.stderr


def test_a_notifier_that_hangs_is_abandoned_and_recovery_goes_on(write_stack, load):
    web, _ = http_service("web")
    # The grandchild keeps the pipes open after the command itself is killed at its timeout:
    # a plain subprocess.run(…, timeout=…) would wait for it for a minute.
    alerts = {"notify": [{"command": ["sh", "-c", "sleep 60 & sleep 60"]}], "timeout": "1s"}
    stack = load(write_stack(_with_alerts(stack_text(web), alerts)))
    assert lifecycle.start(stack).ok
    kill9(stack, "web")
    began = time.monotonic()
    result = recover(stack)
    took = time.monotonic() - began
    assert _row(result, "web").action is RecoverAction.RESTARTED
    failed = [d for d in result.deliveries if not d.ok]
    assert failed and all("abandoned" in d.detail or "no exit" in d.detail for d in failed)
    assert took < 15, took  # two alerts, each abandoned after 1 s + grace — not 60 s
