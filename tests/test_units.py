"""What every unit offers the next operations, on both runtimes: logs (and following them),
copying a file out of and into the unit, and exec bounded by its timeout."""

from __future__ import annotations

import contextlib
import queue
import stat
import threading
import time

import pytest

from opskit.ops import lifecycle


@pytest.fixture
def redis_unit(sandbox_stack):
    assert lifecycle.start(sandbox_stack, ["redis"]).ok
    role = sandbox_stack.role("redis")
    return role, role.unit


def data_file(role) -> str:
    client = role.client()
    try:
        directory = client.config_get("dir")["dir"]
    finally:
        client.close()
    return f"{directory}/dump.rdb"


def test_logs_hold_the_services_output(redis_unit):
    _role, unit = redis_unit
    deadline = time.monotonic() + 10
    while not any("Ready to accept connections" in line.text for line in unit.logs()):
        assert time.monotonic() < deadline, [line.text for line in unit.logs()][-5:]
        time.sleep(0.05)
    assert all(line.service == "redis" for line in unit.logs())


def test_logs_follow_yields_new_lines(redis_unit):
    role, unit = redis_unit
    lines: queue.Queue = queue.Queue()

    def follow() -> None:
        for line in unit.logs(since=time.time(), follow=True):
            lines.put(line.text)

    threading.Thread(target=follow, daemon=True).start()
    time.sleep(0.5)  # the follower is at the end of the log
    client = role.client()
    try:
        client.save()  # redis logs "DB saved on disk"
    finally:
        client.close()
    deadline = time.monotonic() + 10
    seen = []
    while not any("DB saved on disk" in text for text in seen):
        assert time.monotonic() < deadline, seen
        with contextlib.suppress(queue.Empty):
            seen.append(lines.get(timeout=0.5))


def test_copy_out_and_back_in(redis_unit, tmp_path):
    role, unit = redis_unit
    client = role.client()
    try:
        client.set("opskit:copy-test", "1")
        client.save()
    finally:
        client.close()
    out = tmp_path / "copies" / "dump.rdb"
    unit.copy_out(data_file(role), out)
    assert out.read_bytes().startswith(b"REDIS")
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert stat.S_IMODE(out.parent.stat().st_mode) == 0o700

    marker = tmp_path / "marker.txt"
    marker.write_text("copied in by opskit\n")
    inside = "/tmp/opskit-copy-in-test.txt" if not unit.follows_launch else str(tmp_path / "in.txt")
    unit.copy_in(marker, inside)
    back = tmp_path / "back.txt"
    unit.copy_out(inside, back)
    assert back.read_text() == "copied in by opskit\n"


def test_exec_returns_at_its_timeout_even_when_the_command_does_not(redis_unit):
    _role, unit = redis_unit
    began = time.monotonic()
    # A grandchild holding the output pipe used to keep the process runtime waiting.
    result = unit.exec(["sh", "-c", "sleep 30 & sleep 30"], timeout=0.5)
    assert result.exit_code is None and result.output == "timed out after 0.5s"
    assert time.monotonic() - began < 5
    assert unit.exec(["sh", "-c", "echo ok"], timeout=5).output.strip() == "ok"
