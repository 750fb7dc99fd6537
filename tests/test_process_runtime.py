"""The process runtime: pidfiles that cannot be fooled, stop escalation, logs, secrets."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import psutil
import pytest

from opskit.files import atomic_write_json
from opskit.ops import lifecycle
from opskit.runtime.process import copytruncate_log, rotate_log

from .conftest import PYTHON, free_port
from .helpers import redis_service, script_service, stack_text, wait_for_log_line

# Ready (its HTTP port answers) only once SIGTERM is ignored, so the test cannot race it.
STUBBORN = (
    "import signal, sys, http.server\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "port = int(sys.argv[1])\n"
    "http.server.HTTPServer(('127.0.0.1', port), http.server.SimpleHTTPRequestHandler)"
    ".serve_forever()"
)


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_stop_escalates_to_sigkill_after_the_grace_period(write_stack, load):
    port = free_port()
    stubborn = script_service(
        "stubborn",
        STUBBORN,
        url=f"http://127.0.0.1:{port}/",
        args=(str(port),),
        stop_grace_period="1s",
    )
    stack = load(write_stack(stack_text(stubborn)))
    assert lifecycle.start(stack).ok
    pid = lifecycle.status(stack).rows[0].status.pid
    began = time.monotonic()
    result = lifecycle.stop(stack)
    elapsed = time.monotonic() - began
    outcome = result.outcome("stubborn")
    assert outcome.state == lifecycle.KILLED
    assert "killed after 1s grace (SIGTERM)" in outcome.detail
    assert 1.0 <= elapsed < 5
    assert gone(pid)


def test_graceful_stop_does_not_wait_for_the_grace_period(write_stack, load):
    polite = script_service("polite", "import time\ntime.sleep(600)", stop_grace_period="30s")
    stack = load(write_stack(stack_text(polite)))
    assert lifecycle.start(stack).ok
    result = lifecycle.stop(stack)
    assert result.outcome("polite").state == lifecycle.STOPPED
    assert result.outcome("polite").seconds < 3


def test_a_stop_sleeps_until_the_exit_instead_of_polling(write_stack, load, mocker):
    """200 services stopping at once were CPU-bound on threads asking every 5-25 ms. The wait
    is a pidfd now, woken by the exit; and once the group is empty, no walk over every
    process on the host looks for leftovers."""
    from opskit.runtime import process as process_module
    from opskit.runtime.process import ProcessUnit

    slow = script_service(
        "slow",
        "import signal, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *_: (time.sleep(0.6), sys.exit(0)))\n"
        "print('ready', flush=True)\n"
        "time.sleep(600)",
        stop_grace_period="10s",
    )
    stack = load(write_stack(stack_text(slow)))
    assert lifecycle.start(stack).ok
    wait_for_log_line(stack.role("slow").unit, "ready")
    looks = mocker.spy(ProcessUnit, "status")
    walks = mocker.spy(process_module, "_group_members")
    result = lifecycle.stop(stack)
    assert result.outcome("slow").state == lifecycle.STOPPED
    assert result.outcome("slow").seconds >= 0.6
    assert looks.call_count <= 4, looks.call_count  # polling: one every 5-25 ms, ≈ 30 here
    assert walks.call_count == 0


def test_stop_kills_the_whole_process_group(write_stack, load):
    parent = script_service(
        "parent",
        "import subprocess, sys, time\n"
        f"child = subprocess.Popen([{PYTHON!r}, '-c', 'import time; time.sleep(600)'])\n"
        "print('child', child.pid, flush=True)\n"
        "time.sleep(600)",
        stop_grace_period="1s",
    )
    stack = load(write_stack(stack_text(parent)))
    assert lifecycle.start(stack).ok
    child_pid = int(wait_for_log_line(stack.role("parent").unit, "child ")[6:])
    assert psutil.pid_exists(child_pid)
    lifecycle.stop(stack)
    assert gone(child_pid)


def test_a_reused_pid_is_never_mistaken_for_ours(write_stack, load):
    """A pidfile naming a live process with another create-time must not be signalled."""
    service = script_service("app", "import time\ntime.sleep(600)")
    stack = load(write_stack(stack_text(service)))
    stranger = subprocess.Popen([PYTHON, "-c", "import time; time.sleep(600)"])
    try:
        unit = stack.role("app").unit
        stack.runtime.ensure_dirs()
        created = psutil.Process(stranger.pid).create_time()
        atomic_write_json(
            unit.pidfile,
            {"service": "app", "pid": stranger.pid, "create_time": created - 100.0},
        )
        status = unit.status()
        assert status.state != "running"
        assert not unit.pidfile.exists()  # stale pidfile cleaned
        assert not unit.send_signal(signal.SIGTERM)
        lifecycle.stop(stack)
        unit.kill()
        assert stranger.poll() is None, "opskit signalled a process it did not start"
    finally:
        stranger.kill()
        stranger.wait()


def test_stale_and_torn_pidfiles_are_cleaned(write_stack, load):
    stack = load(write_stack(stack_text(script_service("app", "pass"))))
    unit = stack.role("app").unit
    stack.runtime.ensure_dirs()
    unit.pidfile.write_text("{torn")
    assert unit.status().state == "absent"
    assert not unit.pidfile.exists()
    dead = subprocess.Popen([PYTHON, "-c", "pass"])
    dead.wait()
    atomic_write_json(unit.pidfile, {"pid": dead.pid, "create_time": 1.0})
    assert unit.status().state == "exited"
    assert not unit.pidfile.exists()


def test_a_reader_never_deletes_the_pidfile_a_concurrent_start_just_wrote(
    write_stack, load, mocker
):
    """``inv status`` (or health, or the watcher) finds a dead process's pidfile and cleans it
    up; a start in another process writes the new pidfile in between. The reader deleted the
    new one and the new process ran untracked: the next start failed on the port it held. The
    cleanup now happens under the unit's file lock and only if the pidfile still names the
    dead process. The concurrent start is injected at the moment the reader has judged the old
    process dead (a real race, too narrow to hit on demand)."""
    from opskit.runtime.process import ProcessUnit

    stack = load(write_stack(stack_text(script_service("app", "import time\ntime.sleep(600)"))))
    unit = stack.role("app").unit
    stack.runtime.ensure_dirs()
    dead = subprocess.Popen([PYTHON, "-c", "pass"])
    dead.wait()
    atomic_write_json(unit.pidfile, {"pid": dead.pid, "create_time": 1.0})
    fresh = subprocess.Popen([PYTHON, "-c", "import time; time.sleep(600)"])
    try:
        new_record = {"pid": fresh.pid, "create_time": psutil.Process(fresh.pid).create_time()}
        alive = ProcessUnit._alive

        def judged_dead_then_restarted(self, pid, create_time):
            answer = alive(self, pid, create_time)
            if pid == dead.pid:  # the other process's start lands right now
                atomic_write_json(self.pidfile, new_record)
            return answer

        mocker.patch.object(ProcessUnit, "_alive", judged_dead_then_restarted)
        status = unit.status()
        assert unit.pidfile.exists(), "the reader deleted the pidfile of the new process"
        assert status.running and status.pid == fresh.pid
    finally:
        fresh.kill()
        fresh.wait()


def test_status_reports_running_pid_and_uptime(write_stack, load):
    stack = load(write_stack(stack_text(script_service("app", "import time\ntime.sleep(600)"))))
    assert lifecycle.status(stack).rows[0].status.state == "absent"
    assert lifecycle.start(stack).ok
    result = lifecycle.status(stack)
    status = result.rows[0].status
    assert status.running and psutil.pid_exists(status.pid)
    assert 0 <= status.uptime(time.time()) < 30
    record = json.loads(stack.role("app").unit.pidfile.read_text())
    assert record["pid"] == status.pid
    assert record["create_time"] == pytest.approx(psutil.Process(status.pid).create_time())


def test_state_files_are_private(write_stack, load):
    stack = load(write_stack(stack_text(script_service("app", "import time\ntime.sleep(600)"))))
    assert lifecycle.start(stack).ok
    unit = stack.role("app").unit
    for directory in (stack.state_dir, unit.pidfile.parent, unit.logfile.parent):
        assert directory.stat().st_mode & 0o777 == 0o700
    for file in (unit.pidfile, unit.logfile):
        assert file.stat().st_mode & 0o777 == 0o600


def test_service_environment_does_not_inherit_opskits_secrets(write_stack, load):
    code = "import os, time\nprint('ENV', sorted(os.environ), flush=True)\ntime.sleep(600)"
    service = script_service("app", code, environment={"GIVEN": "1"})
    stack = load(write_stack(stack_text(service)), {"SHELL_SECRET_TOKEN": "do-not-pass"})
    assert lifecycle.start(stack).ok
    line = wait_for_log_line(stack.role("app").unit, "ENV")
    assert "'GIVEN'" in line and "SHELL_SECRET_TOKEN" not in line


def test_redis_password_never_reaches_argv_or_disk(write_stack, load):
    password = "argv-secret-" + os.urandom(4).hex()
    stack = load(write_stack(stack_text(redis_service(free_port(), password))))
    assert lifecycle.start(stack).ok
    for process in psutil.process_iter(["cmdline"]):
        assert password not in " ".join(process.info["cmdline"] or [])
    for path in stack.state_dir.rglob("*"):
        if path.is_file() and path.suffix != ".rdb":
            assert password.encode() not in path.read_bytes(), path
    client = stack.role("redis").client()
    assert client.config_get("requirepass")["requirepass"] == password
    client.close()


def test_rotation_by_rename_and_by_copytruncate(tmp_path):
    log = tmp_path / "svc.log"
    log.write_bytes(b"x" * 100)
    rotate_log(log, max_bytes=50, keep=2)
    assert not log.exists() and (tmp_path / "svc.log.1").stat().st_size == 100
    with open(log, "ab") as writer:  # a running service keeps its O_APPEND descriptor
        writer.write(b"y" * 80)
        writer.flush()
        assert copytruncate_log(log, max_bytes=50, keep=2)
        writer.write(b"z")
        writer.flush()
    assert (tmp_path / "svc.log.1").read_bytes() == b"y" * 80
    assert (tmp_path / "svc.log.2").stat().st_size == 100
    assert log.read_bytes() == b"z"
    assert not copytruncate_log(log, max_bytes=50, keep=2)


def test_proc_reads_agree_with_psutil_and_see_zombies_and_reused_pids():
    """status() and stats() read /proc themselves (psutil's import is 15 ms of every command):
    the create time must be psutil's to the digit, or every pidfile written before would read
    as a reused pid."""
    from opskit.runtime import host

    child = subprocess.Popen(["sleep", "30"])
    try:
        stat = host.proc_stat(child.pid)
        assert stat is not None and stat.ppid == os.getpid() and stat.state in ("S", "R")
        assert abs(stat.create_time - psutil.Process(child.pid).create_time()) < 1e-6
        assert host.is_alive(child.pid, stat.create_time, 0.05)
        assert not host.is_alive(child.pid, stat.create_time - 1.0, 0.05)  # another process
        stats = host.process_tree_stats(child.pid)
        assert stats is not None
        assert abs(stats.rss_bytes - psutil.Process(child.pid).memory_info().rss) < 1 << 20
        child.kill()
        deadline = time.monotonic() + 5
        while host.proc_stat(child.pid).state != "Z":  # dead, not reaped yet
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert not host.is_alive(child.pid, stat.create_time, 0.05)
    finally:
        child.kill()
        child.wait()
    assert host.proc_stat(child.pid) is None
    assert host.process_tree_stats(child.pid) is None
