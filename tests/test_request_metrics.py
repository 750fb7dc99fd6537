"""Request metrics from nginx's access log, per-service CPU and memory, and security incidents.

Real nginx (the sandbox's proxy) answers real requests; the counts come from the JSON lines it
wrote, read incrementally: a gather reads what was written since the last one, never the whole
log, follows the log's rotations without losing or counting a line twice, and carries its
counts across runs (a cron ``--textfile`` and a ``--serve`` exporter share them).
"""

from __future__ import annotations

import sys

import httpx

from opskit.logs.requests import BUCKETS, RequestCounts, route_of
from opskit.ops.metrics import gather
from opskit.runtime.process import copytruncate_log, rotate_log

from .helpers import stack_text


def _idle_unit(write_stack, load):
    """A started process unit that writes nothing itself: the test writes its log."""
    from opskit.ops import lifecycle

    command = f'["{sys.executable}", "-c", "import time; time.sleep(600)"]'
    stack = load(
        write_stack(
            stack_text(
                "  app:\n    image: x\n"
                f"    x-opskit: {{role: http, process: {{command: {command}}}}}"
            )
        )
    )
    assert lifecycle.start(stack).ok
    return stack.role("app").unit


def _proxy(stack) -> str:
    return f"http://127.0.0.1:{stack.config.environ['NGINX_PROXY_PORT']}"


def _samples(stack, name: str) -> dict:
    return {tuple(sorted(dict(v.labels).items())): v for v in gather(stack) if v.name == name}


def test_requests_through_nginx_become_a_histogram_by_route_and_status_class(sandbox):
    before = _samples(sandbox, "http_request_duration_seconds")  # the cursor starts at the end
    assert not any(dict(k).get("service") == "nginx" for k in before)
    base = _proxy(sandbox)
    body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    with httpx.Client(timeout=10) as client:
        for _ in range(5):
            ok = client.post(f"{base}/v1/messages", json=body, headers={"x-api-key": "k"})
            assert ok.status_code == 200, ok.text
        for _ in range(3):  # the API's own 401 for a missing key, through nginx and Kong
            assert client.post(f"{base}/v1/messages", json=body).status_code == 401
        assert client.get(f"{base}/no/such/thing?x=1").status_code == 404

    histograms = _samples(sandbox, "http_request_duration_seconds")
    key = (("code", "2xx"), ("route", "/v1/messages"), ("service", "nginx"))
    ok = histograms[key]
    assert ok.buckets[-1] == (float("inf"), 5.0)
    assert [le for le, _ in ok.buckets[:-1]] == list(BUCKETS)
    assert all(a[1] <= b[1] for a, b in zip(ok.buckets, ok.buckets[1:], strict=False))
    assert 0 < ok.value < 50  # seconds, summed
    denied = histograms[(("code", "4xx"), ("route", "/v1/messages"), ("service", "nginx"))]
    assert denied.buckets[-1][1] == 3.0
    assert histograms[(("code", "4xx"), ("route", "/no/such"), ("service", "nginx"))]
    failures = _samples(sandbox, "http_auth_failures_total")
    assert failures[(("service", "nginx"),)].value == 3.0

    # read again with nothing new: nothing counted twice; a new run continues from the file
    again = _samples(sandbox, "http_request_duration_seconds")
    assert again[key].buckets[-1] == (float("inf"), 5.0)
    with httpx.Client(timeout=10) as client:
        client.post(f"{base}/v1/messages", json=body, headers={"x-api-key": "k"})
    fresh = RequestCounts(sandbox.state_dir)
    with fresh.updating():
        fresh.read("nginx", sandbox.role("nginx"))
    assert fresh.services["nginx"].counts["/v1/messages 2xx"].count == 6


def test_service_cpu_and_memory_are_exported_per_service(sandbox):
    memory = _samples(sandbox, "service_memory_bytes")
    cpu = _samples(sandbox, "service_cpu_seconds_total")
    for name in sandbox.config.services:
        assert memory[(("service", name),)].value > 1 << 20, name
        assert cpu[(("service", name),)].value >= 0, name  # an idle nginx: under one tick
    assert cpu[(("service", "kong"),)].value > 0.1  # a Python service's start alone is more


def test_security_incident_counters_exist_at_zero(sandbox):
    incidents = _samples(sandbox, "security_incidents_total")
    assert {dict(k)["kind"]: v.value for k, v in incidents.items()} == {
        "unmasked": 0.0,
        "leak": 0.0,
        "fail-open": 0.0,
    }


def test_routes_are_two_segments_and_bounded():
    assert route_of("/v1/messages") == "/v1/messages"
    assert route_of("/v1/messages/count_tokens") == "/v1/messages"
    assert route_of("") == "/"
    from opskit.logs.requests import MAX_ROUTES, ServiceRequests
    from opskit.services.capabilities import RequestRecord

    service = ServiceRequests()
    for n in range(MAX_ROUTES + 5):
        service.add(RequestRecord(f"/r{n}", 200, 0.01))
    routes = {key.rpartition(" ")[0] for key in service.counts}
    assert len(routes) == MAX_ROUTES + 1 and "other" in routes


def test_the_output_cursor_follows_both_rotations_without_loss_or_double(write_stack, load):
    """The process runtime's log: renamed at a restart, copied and truncated while it runs."""
    unit = _idle_unit(write_stack, load)
    log = unit.logfile
    with log.open("a") as out:
        out.write("old line, before the reader\n")
    lines, cursor = unit.read_output(None)
    assert lines == []  # a first read starts at the end

    def write(*texts: str) -> None:
        with log.open("a") as out:
            out.writelines(f"{t}\n" for t in texts)

    seen: list[str] = []
    write("a1", "a2")
    got, cursor = unit.read_output(cursor)
    seen += got
    write("b1", "b2")
    copytruncate_log(log, 0, 3)  # while it runs: .1 is a copy, the file truncated
    write("c1")
    got, cursor = unit.read_output(cursor)
    seen += got
    write("d1", "d2 partial")
    with log.open("a") as out:
        out.write("unfinished")  # a line being written is not taken yet
    got, cursor = unit.read_output(cursor)
    seen += got
    with log.open("a") as out:
        out.write(" now done\n")
    rotate_log(log, 0, 3)  # at a restart: renamed to .1
    log.write_text("e1\n")
    got, cursor = unit.read_output(cursor)
    seen += got
    assert seen == ["a1", "a2", "b1", "b2", "c1", "d1", "d2 partial", "unfinished now done", "e1"]


def test_a_big_log_is_not_read_by_the_first_gather(write_stack, load):
    unit = _idle_unit(write_stack, load)
    with unit.logfile.open("a") as out:
        out.write(("x" * 99 + "\n") * 200_000)  # 20 MB of history
    lines, cursor = unit.read_output(None)
    assert lines == [] and cursor.offset == unit.logfile.stat().st_size
    with unit.logfile.open("a") as out:
        out.write(("y" * 99 + "\n") * 300_000)  # 30 MB since: read in bounded steps
    first, cursor = unit.read_output(cursor, limit=8 << 20)
    assert 0 < len(first) <= (8 << 20) // 100
    total = len(first)
    while True:
        more, cursor = unit.read_output(cursor, limit=8 << 20)
        if not more:
            break
        total += len(more)
    assert total == 300_000


def test_redis_counts_refused_auth_attempts(sandbox):
    import socket

    def refused() -> float:
        return _samples(sandbox, "redis_auth_failures_total")[(("service", "redis"),)].value

    before = refused()
    port = int(sandbox.config.environ["REDIS_PORT"])
    for _ in range(3):  # one AUTH each (redis-py would retry it: eleven refusals a client)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            conn.sendall(b"AUTH not-the-password\r\n")
            assert conn.recv(200).startswith(b"-WRONGPASS")
    assert refused() == before + 3


def test_a_rotated_backlog_bigger_than_one_read_is_read_over_several(write_stack, load):
    """A log copied and truncated while 30 MB were unread: every line still comes back, in
    bounded steps, and then the new file's lines — none lost, none twice."""
    unit = _idle_unit(write_stack, load)
    _lines, cursor = unit.read_output(None)
    with unit.logfile.open("a") as out:
        out.writelines(f"old {n:07d} {'x' * 90}\n" for n in range(300_000))
    copytruncate_log(unit.logfile, 0, 3)
    with unit.logfile.open("a") as out:
        out.writelines(f"new {n}\n" for n in range(5))
    seen: list[str] = []
    for _ in range(20):
        lines, cursor = unit.read_output(cursor, limit=8 << 20)
        seen += lines
        if not lines:
            break
    assert len(seen) == 300_005
    assert seen[0].startswith("old 0000000") and seen[299_999].startswith("old 0299999")
    assert seen[-5:] == [f"new {n}" for n in range(5)]
