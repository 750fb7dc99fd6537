"""Kong's declarative config: validate, diff, apply, history and rollback, against the sandbox's
Kong stand-in (which hashes raw bytes, exports flat and answers 429 as the real Kong does).

What an operator relies on: a key the aws-masker plugin does not have is refused by name, with
the fields it does have; the diff shows the one change, not ids and defaults; every apply is
verified by Kong's configuration_hash; a rollback sends byte-identical text; a 429 is waited
out; a config Kong rejects changes nothing.
"""

from __future__ import annotations

import contextlib
import re
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from opskit.declarative.document import diff, md5_of, parse, validate, with_plugin_settings
from opskit.declarative.history import ConfigHistory
from opskit.ops import declarative, lifecycle
from opskit.stack import load_stack

from .conftest import REPO, inv_process, run_inv

pytestmark = pytest.mark.timeout(120)


def _source(stack) -> str:
    return stack.role("kong").declarative_source()


# -- validation, offline ---------------------------------------------------------------------------


def test_an_unknown_plugin_key_is_refused_by_name_with_the_schemas_fields():
    text = """
_format_version: "3.0"
services:
  - name: claude
    url: http://upstream:8787
    routes:
      - name: r
        paths: [/v1]
        plugins:
          - name: aws-masker
            config: {enable_event_monitoring: true, mapping_ttl: "a day"}
"""
    findings = validate(parse(text, "kong.yml"))
    assert not findings.ok
    unknown, wrong_type = findings.problems
    where = "services[0].routes[0].plugins[0] (aws-masker).config"
    assert unknown.startswith(f"{where}.enable_event_monitoring: unknown field")
    assert "aws-masker has: mask_ec2_instances, mask_s3_buckets" in unknown
    assert "mapping_ttl" in unknown and "redis_cluster_endpoint" in unknown
    assert wrong_type.endswith("mapping_ttl: expected number, got 'a day'")


def test_structural_problems_are_named_by_path():
    text = """
_format_version: 3.0
servics: []
routes:
  - {name: lost, paths: [/x], service: nowhere}
  - {name: empty}
"""
    problems = validate(parse(text, "kong.yml")).problems
    assert any(p.startswith('_format_version: expected a string like "3.0"') for p in problems)
    assert "servics: unknown entity collection (did you mean services?)" in problems
    assert "routes[0].service: no service 'nowhere' in this file" in problems
    assert any(p.startswith("routes[1] (empty): needs at least one of paths") for p in problems)


def test_a_plain_text_secret_is_a_warning_not_a_problem():
    text = """
_format_version: "3.0"
plugins:
  - name: aws-masker
    config: {anthropic_api_key: sk-ant-secret-value}
"""
    findings = validate(parse(text, "kong.yml"))
    assert findings.ok
    assert "anthropic_api_key: a secret in plain text" in findings.warnings[0]
    assert "sk-ant-secret-value" not in findings.warnings[0]


def test_the_diff_ignores_ids_defaults_order_and_nesting():
    nested = parse(
        """
_format_version: "3.0"
services:
  - name: s
    url: http://up:8787
    routes:
      - name: r
        paths: [/v1]
        plugins: [{name: aws-masker, config: {mapping_ttl: 86400}}]
""",
        "file",
    )
    exported = parse(
        """
_format_version: "3.0"
_transform: false
services:
  - {id: 11111111-1111-1111-1111-111111111111, name: s, protocol: http, host: up, port: 8787,
     path: null, retries: 5, connect_timeout: 60000, read_timeout: 60000, write_timeout: 60000,
     enabled: true, created_at: 1700000000, updated_at: 1700000000, tags: null}
routes:
  - {id: 22222222-2222-2222-2222-222222222222, name: r, paths: [/v1],
     service: 11111111-1111-1111-1111-111111111111, strip_path: true, preserve_host: false,
     regex_priority: 0, protocols: [http, https], https_redirect_status_code: 426,
     created_at: 1700000000}
plugins:
  - {id: 33333333-3333-3333-3333-333333333333, name: aws-masker, enabled: true,
     route: 22222222-2222-2222-2222-222222222222, service: null,
     protocols: [grpc, grpcs, http, https],
     config: {mapping_ttl: 86400, use_redis: true, max_entries: 10000, redis_password: null}}
""",
        "export",
    )
    assert diff(exported.data, nested.data, "running", "file") == []
    changed = parse(with_plugin_settings(nested, "aws-masker", {"mapping_ttl": 3600}), "edit")
    lines = diff(exported.data, changed.data, "running", "edit")
    assert [line for line in lines if line[:1] in "+-" and line[:3] not in ("---", "+++")] == [
        "-    mapping_ttl: 86400",
        "+    mapping_ttl: 3600",
    ]


# -- against the Kong stand-in ---------------------------------------------------------------------


def test_the_running_export_and_the_file_it_came_from_have_no_difference(kong_stack):
    doc, lines = declarative.compare(kong_stack)
    assert lines == [], lines
    assert validate(doc).ok


def test_apply_is_verified_kept_and_a_rollback_is_byte_identical(kong_stack, sandbox_env, tmp_path):
    kong = kong_stack.role("kong")
    original = _source(kong_stack)
    edited = original.replace("mapping_ttl: 86400", "mapping_ttl: 3600")
    assert edited != original
    path = tmp_path / "kong.yml"
    path.write_text(edited)

    result = declarative.apply(kong_stack, path)
    assert result.ok and result.changed, result.detail
    assert kong.configuration_hash() == md5_of(edited)
    assert result.persisted.ok and not result.file_differs  # Kong's file holds it now

    history = ConfigHistory(kong_stack.state_dir)
    first, second = history.entries()
    assert history.text(first) == original  # the bytes that ran before, kept before the change
    assert history.text(second) == edited

    back = declarative.rollback(kong_stack)
    assert back.ok, back.detail
    assert kong.configuration_hash() == md5_of(original) == first.md5
    assert history.text(history.entries()[-1]).encode() == original.encode()

    # --to a given entry, through the CLI: forward again to #2.
    done = run_inv(sandbox_env, "kong.rollback", "--to", "2")
    assert done.returncode == 0, done.stdout + done.stderr
    assert kong.configuration_hash() == md5_of(edited)
    listing = run_inv(sandbox_env, "kong.history")
    assert "* #2" in listing.stdout and "rollback to #2" in listing.stdout


def test_a_config_kong_rejects_changes_nothing(kong_stack, tmp_path):
    kong = kong_stack.role("kong")
    before = kong.configuration_hash()
    path = tmp_path / "kong.yml"
    path.write_text(_source(kong_stack).replace("name: correlation-id", "name: no-such-plugin"))
    result = declarative.apply(kong_stack, path)
    assert not result.ok
    assert "HTTP 400" in result.detail and before[:12] in result.detail
    assert kong.configuration_hash() == before
    assert [e.source for e in ConfigHistory(kong_stack.state_dir).entries()] == [
        "running before opskit's first apply (the declarative file)"
    ]


def test_an_invalid_file_never_reaches_kong_and_the_cli_names_the_key(
    kong_stack, sandbox_env, tmp_path
):
    kong = kong_stack.role("kong")
    before = kong.configuration_hash()
    path = tmp_path / "kong.yml"
    path.write_text(_source(kong_stack).replace("mapping_ttl:", "event_sampling_rate:"))
    done = run_inv(sandbox_env, "kong.apply", str(path))
    assert done.returncode == 1
    assert "config.event_sampling_rate: unknown field" in done.stdout
    assert "nothing applied" in done.stderr
    assert kong.configuration_hash() == before
    assert not (kong_stack.state_dir / "kong-config").exists()


def test_a_429_during_apply_is_retried_after_retry_after(sandbox_env, stacks, tmp_path):
    env = dict(sandbox_env, KONG_STANDIN_RELOAD_DELAY="1.5")
    stack = load_stack(REPO / "sandbox" / "stack.yml", environ=env)
    stacks.append(stack)
    assert lifecycle.start(stack, ["kong"]).ok
    kong = stack.role("kong")
    original = _source(stack)
    slow = threading.Thread(target=kong.apply_config, args=(original + "\n# slow\n",))
    slow.start()
    try:
        time.sleep(0.4)  # the slow reload holds Kong's lock for ~1.1 s more
        with httpx.Client(base_url=kong.admin_url, timeout=5, trust_env=False) as client:
            busy = client.post("/config", content=original, headers={"Content-Type": "text/yaml"})
        assert busy.status_code == 429
        path = tmp_path / "kong.yml"
        path.write_text(original.replace("mapping_ttl: 86400", "mapping_ttl: 7200"))
        began = time.monotonic()
        result = declarative.apply(stack, path)
        waited = time.monotonic() - began
    finally:
        slow.join()
    assert result.ok, result.detail
    assert waited >= 1.0  # it waited as Retry-After said, then got in
    assert kong.configuration_hash() == md5_of(path.read_text())


# -- rollout -------------------------------------------------------------------------------------


class _Traffic:
    """Requests through nginx to the masked route, from a thread, until stopped."""

    def __init__(self, stack):
        self.url = stack.role("nginx").entry_url("/v1/messages")
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        body = {
            "model": "claude-3-5-haiku-latest",
            "max_tokens": 16,
            "messages": [{"role": "user", "content": "check i-0123456789abcdef0"}],
        }
        with httpx.Client(timeout=5, trust_env=False) as client:
            while not self.stop.is_set():
                with contextlib.suppress(httpx.HTTPError):
                    client.post(self.url, json=body, headers={"x-api-key": "test"})
                time.sleep(0.01)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *_exc):
        self.stop.set()
        self.thread.join(10)


@pytest.fixture
def chain_stack(sandbox_env, stacks):
    stack = load_stack(REPO / "sandbox" / "stack.yml", environ=sandbox_env)
    stacks.append(stack)
    assert lifecycle.start(stack).ok
    return stack


def test_a_rollout_passes_its_stages_and_keeps_each_config(chain_stack):
    from opskit.ops.rollout import Guards, rollout

    kong = chain_stack.role("kong")
    with _Traffic(chain_stack):
        result = rollout(
            chain_stack,
            "aws-masker",
            [{"mapping_ttl": 3600}, {"mapping_ttl": 7200, "log_masked_requests": True}],
            Guards(soak=2.0),
        )
    assert result.ok, [(s.number, s.verdict) for s in result.stages]
    assert [s.verdict for s in result.stages] == ["passed", "passed"]
    assert all(s.requests >= 20 and s.events > 0 for s in result.stages)
    exported = parse(kong.export_config(), "export").data
    masker = next(p for p in exported["plugins"] if p["name"] == "aws-masker")
    assert masker["config"]["mapping_ttl"] == 7200 and masker["config"]["log_masked_requests"]


def test_a_rollout_whose_guard_trips_restores_the_previous_configuration_hash(chain_stack):
    from opskit.ops.rollout import Guards, rollout

    kong = chain_stack.role("kong")
    before = kong.configuration_hash()

    upstream = chain_stack.role("upstream")
    with _Traffic(chain_stack):
        killer = threading.Timer(1.5, upstream.stop)  # the stage breaks something: 502s
        killer.start()
        began = time.monotonic()
        try:
            result = rollout(chain_stack, "aws-masker", [{"mapping_ttl": 60}], Guards(soak=40.0))
        finally:
            killer.join()
        took = time.monotonic() - began
    stage = result.stages[0]
    assert not result.ok
    assert stage.verdict.startswith("tripped: ") and "answered 5xx" in stage.verdict, stage
    assert result.restored is not None
    assert kong.configuration_hash() == before  # the exact previous config runs again
    # Judged while it soaks, not at the end of the soak: the guard trips on the damage.
    assert took < 20, f"rolled back {took:.1f}s into a 40 s soak"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["INT", "TERM"])
def test_an_interrupted_rollout_leaves_the_last_good_config_and_says_so(
    chain_stack, sandbox_env, signum
):
    kong = chain_stack.role("kong")
    before = kong.configuration_hash()
    rollout_cli = inv_process(
        sandbox_env, "kong.rollout", "--set", "mapping_ttl=120", "--soak", "60"
    )
    try:
        deadline = time.monotonic() + 30
        while kong.configuration_hash() == before:  # stage 1 is applied and soaking
            assert time.monotonic() < deadline and rollout_cli.poll() is None
            time.sleep(0.05)
        rollout_cli.send_signal(signum)
        output, _ = rollout_cli.communicate(timeout=30)
    finally:
        if rollout_cli.poll() is None:
            rollout_cli.kill()
    assert rollout_cli.returncode == 130, output
    assert re.search(r"the last good config #\d+ \([0-9a-f]{12}\) is applied again", output)
    assert kong.configuration_hash() == before

    # kill -9 cannot clean up: the next rollout puts the last good config back first, and says so.
    killed = inv_process(
        sandbox_env, "kong.rollout", "--set", "mapping_ttl=240", "--soak", "60", output=False
    )
    deadline = time.monotonic() + 30
    while kong.configuration_hash() == before:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    killed.kill()
    killed.wait()
    assert kong.configuration_hash() != before  # the stage's config was left running
    done = run_inv(sandbox_env, "kong.rollout", "--set", "mapping_ttl=86400", "--soak", "1")
    assert done.stdout.startswith("note: a rollout started at"), done.stdout + done.stderr
    assert "was interrupted: its last good config #" in done.stdout
    assert f"({before[:12]}) was applied again" in done.stdout


def test_a_gateway_that_does_not_answer_is_one_line_not_a_traceback(kong_stack, sandbox_env):
    assert lifecycle.stop(kong_stack, ["kong"]).ok
    for args in (("kong.apply",), ("kong.diff",), ("kong.rollback",)):
        done = run_inv(sandbox_env, *args)
        assert done.returncode == 1, (args, done.stdout, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "Admin API does not answer" in lines[0], (args, lines)
        assert "inv status -s kong" in lines[0]


FAKE_KONG_CLI = """#!/bin/sh
# The kong CLI's two answers to `kong config parse` (kong/cmd/config.lua): "parse successful",
# or "Error: Failed parsing:" and Kong's schema message, exit 1. No real Kong binary is here.
case "$1 $2" in
  "version "*) echo "3.9.1"; exit 0 ;;
  "config parse")
    stat -c %a "$3" >> "$(dirname "$0")/modes"
    echo "$3" >> "$(dirname "$0")/files"
    if grep -q "BROKEN" "$3"; then
      echo "Error: Failed parsing:"
      echo "in 'services':"
      echo "  - in entry 1 of 'services':"
      echo "    in 'url': missing host in url"
      exit 1
    fi
    echo "parse successful"; exit 0 ;;
esac
exit 2
"""


def test_kong_config_parse_judges_the_file_where_a_kong_cli_exists(sandbox_env, tmp_path):
    cli = tmp_path / "cli"
    cli.mkdir()
    (cli / "kong").write_text(FAKE_KONG_CLI)
    (cli / "kong").chmod(0o755)
    env = dict(sandbox_env, PATH=f"{cli}:{sandbox_env['PATH']}")
    good = run_inv(env, "kong.validate")
    assert good.returncode == 0, good.stdout + good.stderr
    assert "kong config parse: parse successful" in good.stdout

    broken = tmp_path / "kong.yml"
    stack = load_stack(REPO / "sandbox" / "stack.yml", environ=sandbox_env)
    broken.write_text(_source(stack) + "\n# BROKEN\n")
    refused = run_inv(env, "kong.validate", str(broken))
    assert refused.returncode == 1
    assert "kong config parse: Failed parsing: | in 'services':" in refused.stdout
    assert "missing host in url" in refused.stdout
    # The copy Kong parsed was private and is gone.
    assert set((cli / "modes").read_text().split()) == {"600"}
    assert all(not Path(p).exists() for p in (cli / "files").read_text().split())

    without = run_inv(sandbox_env, "kong.validate")
    assert without.returncode == 0
    assert "no kong CLI in the gateway's unit" in without.stdout
