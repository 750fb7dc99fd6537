"""opskit's kong role against the Kong stand-in: readiness, config apply/export, signals.

Kong facts encoded here (shared/reference/anchors.md §3): a DB-less Kong with no config is
live but not ready (kong/status/ready.lua); ``POST /config?check_hash=1`` answers 304 when
unchanged (kong/api/routes/config.lua); ``kong quit`` sends SIGQUIT so in-flight requests finish
(kong/cmd/quit.lua); ``kong reload`` = HUP re-reads the declarative file (kong/cmd/reload.lua).
"""

from __future__ import annotations

import signal
import threading
import time

import httpx
import yaml

from opskit.ops import lifecycle

from .conftest import PYTHON, REPO, free_port

EMPTY_KONG = """
x-opskit: {{runtime: process, state_dir: "{{state}}"}}
services:
  kong:
    image: kong:3.8
    environment:
      KONG_DATABASE: "off"
      KONG_PROXY_LISTEN: 127.0.0.1:{proxy}
      KONG_ADMIN_LISTEN: 127.0.0.1:{admin}
      KONG_STATUS_LISTEN: 127.0.0.1:{status}
    x-opskit:
      role: kong
      admin_url: http://127.0.0.1:{admin}
      status_url: http://127.0.0.1:{status}
      start_timeout: 1500ms
      process: {{command: ["{python}", "-m", "sandbox.kong"], cwd: "{repo}"}}
"""

MINIMAL_CONFIG = {
    "_format_version": "3.0",
    "services": [
        {
            "name": "echo",
            "url": "http://127.0.0.1:9",
            "routes": [{"name": "r", "paths": ["/x"]}],
        }
    ],
}


def empty_kong(write_stack, load):
    text = EMPTY_KONG.format(
        proxy=free_port(), admin=free_port(), status=free_port(), python=PYTHON, repo=REPO
    )
    return load(write_stack(text.replace("{python}", PYTHON)))


def test_kong_without_config_is_live_but_never_ready(write_stack, load):
    stack = empty_kong(write_stack, load)
    result = lifecycle.start(stack)
    outcome = result.outcome("kong")
    assert outcome.state == lifecycle.FAILED
    assert "HTTP 503 (not ready)" in outcome.detail


def test_apply_config_makes_kong_ready_and_check_hash_skips_reloads(write_stack, load):
    stack = empty_kong(write_stack, load)
    kong = stack.role("kong")
    kong.unit.start(kong.launch())
    deadline = time.monotonic() + 10
    while not kong.probe_live().ready:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert not kong.probe_ready().ready
    assert kong.configuration_hash() == "0" * 32

    text = yaml.safe_dump(MINIMAL_CONFIG)
    applied = kong.apply_config(text)
    assert (applied.status, applied.changed) == (201, True)
    assert applied.configuration_hash and applied.configuration_hash != "0" * 32
    assert kong.probe_ready().ready

    again = kong.apply_config(text)
    assert (again.status, again.changed, again.detail) == (304, False, "unchanged")
    assert again.configuration_hash == applied.configuration_hash

    bad = kong.apply_config("_format_version: '3.0'\nservices: [{name: x, url: nope}]\n")
    assert bad.status == 400 and not bad.changed
    assert "declarative config is invalid" in bad.detail
    assert kong.configuration_hash() == applied.configuration_hash

    exported = yaml.safe_load(kong.export_config())
    assert exported["services"][0]["name"] == "echo"
    assert kong.stop().detail == "stopped by SIGQUIT"


def slow_request(url: str, results: list) -> threading.Thread:
    def run():
        try:
            response = httpx.post(
                url,
                headers={"x-api-key": "k", "x-standin-delay-ms": "1500"},
                json={
                    "model": "m",
                    "max_tokens": 1,
                    "messages": [{"role": "user", "content": "hi"}],
                },
                timeout=10,
                trust_env=False,
            )
            results.append(response.status_code)
        except httpx.HTTPError as exc:
            results.append(type(exc).__name__)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_sigquit_drains_in_flight_requests(sandbox_stack):
    assert lifecycle.start(sandbox_stack, ["kong", "upstream"]).ok
    kong = sandbox_stack.role("kong")
    proxy = f"http://127.0.0.1:{sandbox_stack.config.environ['KONG_PROXY_PORT']}/v1/messages"
    results: list = []
    thread = slow_request(proxy, results)
    time.sleep(0.4)  # the request is now waiting on the upstream
    began = time.monotonic()
    stopped = kong.stop()
    thread.join(10)
    assert results == [200], "the in-flight request must complete during a graceful stop"
    assert stopped.detail == "stopped by SIGQUIT" and not stopped.killed
    assert 0.5 < time.monotonic() - began < 5


def test_sigterm_stops_fast_without_waiting_for_requests(sandbox_stack):
    assert lifecycle.start(sandbox_stack, ["kong", "upstream"]).ok
    kong = sandbox_stack.role("kong")
    proxy = f"http://127.0.0.1:{sandbox_stack.config.environ['KONG_PROXY_PORT']}/v1/messages"
    results: list = []
    thread = slow_request(proxy, results)
    time.sleep(0.4)
    began = time.monotonic()
    assert kong.unit.send_signal(signal.SIGTERM)
    assert kong.unit.wait_stopped(5)
    assert time.monotonic() - began < 1.0
    thread.join(10)
    assert results and results[0] != 200


def test_sighup_rereads_the_declarative_file_and_keeps_it_when_invalid(sandbox_stack):
    assert lifecycle.start(sandbox_stack, ["kong"]).ok
    kong = sandbox_stack.role("kong")
    path = str(kong.rendered_config) if kong.unit.follows_launch else "/tmp/kong.yml"

    def write(text: str) -> None:  # where Kong reads it: on the host or in the container
        code = "import sys; open(sys.argv[1], 'w').write(sys.argv[2])"
        assert kong.unit.exec(["python3", "-c", code, path, text]).exit_code == 0

    before = kong.configuration_hash()
    document = yaml.safe_load(kong.unit.exec(["cat", path]).output)
    document["services"][0]["routes"][0]["paths"] = ["/v1", "/v9"]
    write(yaml.safe_dump(document))
    assert kong.reload_from_file()
    deadline = time.monotonic() + 5
    while kong.configuration_hash() == before:
        assert time.monotonic() < deadline, "SIGHUP did not reload the declarative file"
        time.sleep(0.05)
    reloaded = kong.configuration_hash()

    write("services: [{name: broken}]\n")
    assert kong.reload_from_file()
    deadline = time.monotonic() + 5
    while "reload failed" not in "\n".join(kong.unit.log_tail(5)):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert kong.configuration_hash() == reloaded
    assert kong.unit.status().running and kong.probe_ready().ready


def test_a_kong_without_a_status_listener_fails_preflight_clearly(write_stack, load):
    """Row 13 (K:kong/templates/kong_defaults.lua:31): without KONG_STATUS_LISTEN Kong serves
    readiness on 127.0.0.1:8007, which is not where status_url points."""
    from opskit.errors import PreflightError

    text = EMPTY_KONG.replace("      KONG_STATUS_LISTEN: 127.0.0.1:{status}\n", "")
    text = text.format(
        proxy=free_port(), admin=free_port(), status=free_port(), python=PYTHON, repo=REPO
    )
    stack = load(write_stack(text.replace("{python}", PYTHON)))
    try:
        lifecycle.start(stack)
        raise AssertionError("preflight passed")
    except PreflightError as error:
        assert "kong: no status listener: KONG_STATUS_LISTEN is not set" in str(error)
        assert "127.0.0.1:8007" in str(error)
    assert not stack.role("kong").unit.status().running


def test_a_hup_reload_is_verified_not_assumed(write_stack, load, tmp_path):
    """Row 15 (K:kong/init.lua:633-651): a file Kong rejects on HUP keeps the old config
    serving; opskit's reload must say so instead of reporting success."""
    declarative = tmp_path / "kong.yml"
    declarative.write_text(yaml.safe_dump(MINIMAL_CONFIG))
    text = EMPTY_KONG.replace(
        '      KONG_DATABASE: "off"\n',
        f'      KONG_DATABASE: "off"\n      KONG_DECLARATIVE_CONFIG: "{declarative}"\n',
    )
    text = text.format(
        proxy=free_port(), admin=free_port(), status=free_port(), python=PYTHON, repo=REPO
    )
    stack = load(write_stack(text.replace("{python}", PYTHON)))
    assert lifecycle.start(stack).ok
    kong = stack.role("kong")
    loaded = kong.configuration_hash()

    unchanged = kong.reload()
    assert unchanged.ok and not unchanged.changed

    declarative.write_text("_format_version: '3.0'\nservices: [{name: x, url: nope}]\n")
    broken = kong.reload()
    assert not broken.ok
    assert "Kong kept its previous configuration" in broken.detail
    assert kong.configuration_hash() == loaded and kong.probe_ready().ready

    changed = dict(MINIMAL_CONFIG, services=[dict(MINIMAL_CONFIG["services"][0], name="echo2")])
    declarative.write_text(yaml.safe_dump(changed))
    good = kong.reload()
    assert good.ok and good.changed and "reloaded" in good.detail
    assert kong.configuration_hash() != loaded
