"""inv logs / logs.collect / logs.trace against the real sandbox chain (front nginx → backend →
nginx → Kong stand-in), on both runtimes, with secrets planted in every hop's log."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import tarfile
import time
from pathlib import Path

import httpx
import pytest
import zstandard

from opskit.logs.bundle import prune_bundles, read_manifest
from opskit.ops import lifecycle, logs
from opskit.redact import Redactor

from .conftest import REPO, inv_process, run_inv

AKIA = "AKIAIOSFODNN7EXAMPLE"
# Anthropic-shaped, built here so that no key-like literal sits in the repository.
SK_ANT = "-".join(["sk", "ant", "api03", "planted" * 3])
EC2 = "i-0fedcba9876543210"
# The id puts the Anthropic-shaped key last but one: its pattern (base64url and '-') takes
# everything after it, which is the safe way to be wrong.


def _members(bundle: Path) -> dict[str, str]:
    with (
        bundle.open("rb") as raw,
        zstandard.ZstdDecompressor().stream_reader(raw) as stream,
        tarfile.open(fileobj=stream, mode="r|") as tar,
    ):
        found = {}
        for member in tar:
            assert member.mode == 0o600 and member.uid == 0 and not member.uname
            data = tar.extractfile(member)
            found[member.name] = data.read().decode() if data else ""
        return found


def _plant(stack) -> tuple[str, list[str]]:
    """One request through the whole chain whose id and URL carry every kind of secret: each
    hop logs the id (front, backend, nginx, Kong), the nginx hops log the URL too."""
    password = stack.config.environ["REDIS_PASSWORD"]
    request_id = f"rid{os.urandom(4).hex()}-{password}-{AKIA}-{EC2}-{SK_ANT}"
    host, port = stack.role("front").unit.address(int(stack.config.environ["FRONT_PORT"]))
    query = "password=hunter2planted&url=https://ops:urlpassPLANTED@example.com/x&api_key=keyPLANT"
    response = httpx.post(
        f"http://{host}:{port}/analyze?{query}",
        json={"text": f"check {EC2}"},
        headers={"x-request-id": request_id, "authorization": "Bearer bearerPLANTED"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    secrets = [password, SK_ANT, AKIA, "hunter2planted", "urlpassPLANTED", "keyPLANT"]
    return request_id, secrets


def test_collect_leaves_no_planted_secret_in_any_source(sandbox_stack, tmp_path):
    stack = sandbox_stack
    assert lifecycle.start(stack).ok
    _request_id, secrets = _plant(stack)
    time.sleep(0.3)  # nginx writes its access line after the answer
    result = logs.collect(stack, out_dir=tmp_path / "bundles", since=time.time() - 3600)
    members = _members(result.path)
    everything = "\n".join(members.values())
    for secret in secrets:
        assert secret not in everything, f"{secret[:6]}… leaked"
    # every hop's line is there, redacted, not dropped: the id's random head survives
    for service in ("front", "backend", "nginx", "kong"):
        text = members[f"{service}/output.log"]
        assert "-***-***-" in text and "-sk-ant-***" in text, f"{service}: no redacted request line"
    assert EC2 in everything  # not masked unless asked
    manifest = read_manifest(result.path)
    assert {f["service"] for f in manifest["files"]} == set(stack.services)
    assert manifest["redactions"]["secret_value"] >= 4
    assert manifest["redactions"]["anthropic_key"] >= 4
    assert oct(result.path.stat().st_mode & 0o777) == "0o600"
    assert oct(result.path.parent.stat().st_mode & 0o777) == "0o700"

    masked = logs.collect(stack, out_dir=tmp_path / "bundles", mask_aws=True)
    assert EC2 not in "\n".join(_members(masked.path).values())
    assert read_manifest(masked.path)["redactions"]["aws_resource_id"] >= 4


def test_trace_follows_one_request_through_every_hop(running_sandbox):
    stack = running_sandbox
    request_id, secrets = _plant(stack)
    time.sleep(0.3)
    env = {**stack.config.environ, "PATH": os.environ["PATH"]}
    head = request_id.split("-", 1)[0]
    done = run_inv(env, "logs.trace", head, "--json")
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert {"front", "backend", "nginx", "kong"} <= set(answer["found_in"])
    kong_tags = [
        re.search(r"\[(REQUEST-START|MASKING-EVENT|UNMASK-EVENT)\]", line["text"]).group(1)
        for line in answer["lines"]
        if line["service"] == "kong"
    ]
    assert kong_tags == ["REQUEST-START", "MASKING-EVENT", "UNMASK-EVENT"]
    times = [line["time"] for line in answer["lines"]]
    assert times == sorted(times)
    assert not any(secret in done.stdout for secret in secrets)

    missing = run_inv(env, "logs.trace", "no-such-request-id-0000")
    assert missing.returncode == 1
    assert "no line carries no-such-request-id-0000 in" in missing.stderr


def test_tail_merges_services_by_time_and_greps(running_sandbox):
    stack = running_sandbox
    request_id, secrets = _plant(stack)
    time.sleep(0.3)
    head = request_id.split("-", 1)[0]
    entries = logs.tail(stack, lines=200, grep=re.compile(head))
    assert {"front", "backend", "nginx", "kong"} <= {e.service for e in entries}
    timed = [e.time for e in entries if e.time is not None]
    assert timed == sorted(timed)
    assert not any(secret in e.text for e in entries for secret in secrets)

    env = {**stack.config.environ, "PATH": os.environ["PATH"]}
    done = run_inv(env, "logs", "-s", "front", "-n", "3", "--grep", head)
    assert done.returncode == 0, done.stderr
    printed = done.stdout.strip().splitlines()
    assert len(printed) == 1 and " front " in printed[0] and "| {" in printed[0]


def test_follow_prints_new_lines_of_every_service_until_interrupted(running_sandbox):
    stack = running_sandbox
    # faulthandler: if it does not end after SIGINT, SIGABRT prints where each thread is
    env = {**stack.config.environ, "PATH": os.environ["PATH"], "PYTHONFAULTHANDLER": "1"}
    watcher = inv_process(env, "logs", "--follow", "-n", "1", "--grep", "rid")
    try:
        time.sleep(1.5)  # the followers open their files at the end
        request_id, secrets = _plant(stack)
        head = request_id.split("-", 1)[0]
        seen: set[str] = set()
        deadline = time.monotonic() + 10
        assert watcher.stdout is not None
        os.set_blocking(watcher.stdout.fileno(), False)
        buffer = ""
        while time.monotonic() < deadline and not {"front", "backend", "nginx", "kong"} <= seen:
            try:  # a text stream's read() on an empty non-blocking pipe raises TypeError
                chunk = os.read(watcher.stdout.fileno(), 1 << 16).decode(errors="replace")
            except BlockingIOError:
                chunk = ""
            buffer += chunk
            for line in buffer.splitlines():
                if head in line:
                    seen.add(line.split()[1].split("/")[0])
                    assert not any(secret in line for secret in secrets)
            time.sleep(0.1)
        assert {"front", "backend", "nginx", "kong"} <= seen, buffer[-2000:]
    finally:
        watcher.send_signal(2)
        try:
            code = watcher.wait(10)
        except subprocess.TimeoutExpired:
            watcher.send_signal(signal.SIGABRT)
            watcher.wait(10)
            os.set_blocking(watcher.stdout.fileno(), True)
            stuck = watcher.stdout.read()[-6000:]
            raise AssertionError(f"inv logs --follow did not end after SIGINT:\n{stuck}") from None
        assert code == 0


def test_retention_removes_only_old_bundles(tmp_path):
    folder = tmp_path / "bundles"
    folder.mkdir()
    names = [f"opskit-logs-2026010{i}T000000Z.tar.zst" for i in range(1, 5)]
    for name in names:
        (folder / name).write_bytes(b"x")
    (folder / "opskit-logs-notes.txt").write_text("mine")
    (folder / "other.tar.zst").write_bytes(b"y")
    removed = prune_bundles(folder, keep=2)
    assert [p.name for p in removed] == names[:2]
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [*names[2:], "opskit-logs-notes.txt", "other.tar.zst"]
    )


def test_redactor_masks_secrets_by_shape_and_counts_kinds():
    redact = Redactor(["known-value-123"], patterns=True)
    lines = {
        "auth Authorization: Bearer abc.def.ghi": "auth Authorization: Bearer ***",
        '{"x-api-key":"k123456"}': '{"x-api-key":"***"}',
        "dsn redis://:s3cr3tpw@redis:6379/0": "dsn redis://:***@redis:6379/0",
        f"key {AKIA} used": "key *** used",
        f"claude {SK_ANT}": "claude sk-ant-***",
        "requirepass hunter2": "requirepass ***",
        "aws_secret_access_key = " + "A" * 40: "aws_secret_access_key = ***",
        "value known-value-123 here": "value *** here",
    }
    for line, expected in lines.items():
        assert redact(line) == expected
    assert redact.counts["authorization"] == 1 and redact.counts["secret_value"] == 1
    aws = Redactor(mask_aws=True)
    text = aws(f"{EC2} arn:aws:iam::123456789012:role/ops s3://my-bucket-x 10.0.1.50 127.0.0.1")
    assert text == "[aws:id] [aws:arn] [aws:s3] [aws:ip] 127.0.0.1"


def test_bad_flags_are_one_line_and_exit_2(running_sandbox):
    env = {**running_sandbox.config.environ, "PATH": os.environ["PATH"]}
    for args, needle in (
        (("logs", "--grep", "("), "--grep: not a regular expression"),
        (("logs.collect", "--since", "soon"), "--since: expected a number of seconds"),
        (("logs", "-n", "0"), "--lines: expected a whole number above zero"),
        (("logs.trace", "abc"), "too short"),
    ):
        done = run_inv(env, *args)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert needle in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_nginx_file_logs_are_sources(write_stack, load, tmp_path):
    """An nginx that logs to files (access_log logs/access.log) has them collected too."""
    from .conftest import free_port

    port = free_port()
    template = tmp_path / "nginx.conf.template"
    template.write_text(
        "worker_processes 1; pid nginx.pid; error_log logs/error.log info;\n"
        "events {}\nhttp {\n"
        "  client_body_temp_path tmp/client_body; proxy_temp_path tmp/proxy;\n"
        "  fastcgi_temp_path tmp/fastcgi; uwsgi_temp_path tmp/uwsgi; scgi_temp_path tmp/scgi;\n"
        "  access_log logs/access.log;\n"
        "  server { listen 127.0.0.1:${PORT}; location / { return 200 'ok'; } }\n}\n"
    )
    path = write_stack(
        f"""
        x-opskit: {{runtime: process, state_dir: "{{state}}"}}
        services:
          web:
            image: nginx
            environment: {{PORT: "{port}"}}
            ports: ["{port}:{port}"]
            x-opskit: {{role: nginx, config_template: {template}, health_path: /}}
        """
    )
    stack = load(path)
    assert lifecycle.start(stack).ok
    try:
        httpx.get(f"http://127.0.0.1:{port}/?password=filePLANTED", timeout=5)
        names = {s.name for s in stack.role("web").log_sources()}
        assert {"output", "access_log:access.log", "error_log:error.log"} <= names
        time.sleep(0.2)
        result = logs.collect(stack, out_dir=tmp_path / "out")
        members = _members(result.path)
        assert "password=***" in members["web/access_log_access.log.log"]
        assert "filePLANTED" not in "\n".join(members.values())
    finally:
        lifecycle.stop(stack)


@pytest.mark.parametrize("flag", ["--json"])
def test_collect_task_reports_json(running_sandbox, tmp_path, flag):
    env = {**running_sandbox.config.environ, "PATH": os.environ["PATH"]}
    done = run_inv(env, "logs.collect", "--out", str(tmp_path / "b"), "--keep", "1", flag)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert Path(summary["path"]).exists() and summary["files"] >= 6
    assert str(REPO) not in summary["path"]
    subprocess.run(["tar", "--zstd", "-tf", summary["path"]], check=True, capture_output=True)


def test_naive_times_are_read_in_the_zone_of_the_service_that_wrote_them(write_stack, load):
    """Two services fourteen and ten hours either side of UTC print their local time without
    a zone; opskit (in its own zone) must place both lines at the moment they were written and
    in the order they were written — not hours apart."""
    from .helpers import script_service, stack_text

    code = (
        "import sys, time\n"
        "print(time.strftime('%Y-%m-%d %H:%M:%S'), sys.argv[1], 'up', flush=True)\n"
        "time.sleep(600)\n"
    )
    east = script_service("east", code, args=("east",), environment={"TZ": "Pacific/Kiritimati"})
    west = script_service("west", code, args=("west",), environment={"TZ": "America/Adak"})
    stack = load(write_stack(stack_text(east, west)))
    assert lifecycle.start(stack, ["east"]).ok
    time.sleep(1.2)  # the stamps have whole seconds: west's is later
    assert lifecycle.start(stack, ["west"]).ok
    time.sleep(0.3)
    lines = [e for e in logs.tail(stack, lines=10) if " up" in e.text]
    assert [e.service for e in lines] == ["east", "west"], [(e.service, e.time) for e in lines]
    now = time.time()
    for entry in lines:
        assert abs(entry.time - now) < 60, f"{entry.service} placed {entry.time - now:+.0f}s off"
    assert stack.role("east").unit.time_zone() == "Pacific/Kiritimati"
