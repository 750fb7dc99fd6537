"""A restore killed half-way is found and finished (issue 21, part 2), on the real sandbox.

A driver process runs the restore and kills itself (SIGKILL, a real ``kill -9``) at a chosen
step, told by the restore's own progress events: after Redis was stopped and its RDB placed,
or once Redis runs the new data but Kong and nginx do not yet. Then the next commands must say
so, recover must not "repair" it, and ``--resume`` / ``--abort`` must each end verified.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from opskit.ops import backup as backups

from .conftest import PYTHON, REPO, cli_env, run_inv

pytestmark = pytest.mark.timeout(240)

DRIVER = """
import json, os, signal, sys
from opskit.ops.restore import restore
from opskit.stack import load_stack
from opskit.tasks.common import finishing_on_signals
from opskit.vocabulary import Phase

backup_id, service, phase, how = sys.argv[1:5]
stack = load_stack(os.environ["OPSKIT_STACK"])

def on_event(event):
    if event.service == service and event.phase is Phase(phase):
        os.kill(os.getpid(), getattr(signal, how))

with finishing_on_signals() as stop:
    result = restore(stack, backup_id, on_event=on_event, stop=stop)
print(json.dumps({"state": result.state, "detail": result.detail}))
sys.exit(result.exit_code)
"""


def _marker(stack):
    with stack.role("redis").probe(timeout=5.0) as redis:
        value = redis.call("GET", "opskit:test:marker")
    return value.decode() if isinstance(value, bytes) else value


def _set_marker(stack, value: str) -> None:
    with stack.role("redis").probe(timeout=5.0) as redis:
        redis.call("SET", "opskit:test:marker", value)


def _kong_hash(stack):
    return stack.role("kong").configuration_hash()


def _killed_restore(stack, service: str, phase: str) -> str:
    """A backup holding marker=backup; marker=after since; a restore of it killed at
    (service, phase). Returns the backup id."""
    _set_marker(stack, "backup")
    made = backups.backup(stack, ["redis", "kong", "nginx"])
    _set_marker(stack, "after")
    driver = subprocess.run(
        [PYTHON, "-c", DRIVER, made.backup_id, service, phase, "SIGKILL"],
        env=cli_env(stack),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert driver.returncode == -9, driver.stdout + driver.stderr
    return made.backup_id


def _says_interrupted(stack, backup_id: str) -> None:
    env = cli_env(stack)
    status = run_inv(env, "status")
    assert status.returncode == 1 and f"a restore of backup {backup_id}" in status.stderr
    assert "inv restore --resume" in status.stderr and "inv restore --abort" in status.stderr
    health = run_inv(env, "health", "--quiet")
    assert health.returncode == 2 and "restore.interrupted CRITICAL" in health.stdout, health
    again = run_inv(env, "restore", backup_id, "--yes")
    assert again.returncode == 1 and "was interrupted at" in again.stderr, again.stderr


@pytest.mark.parametrize(
    ("service", "phase", "redis_up"),
    [("redis", "starting", False), ("redis", "ready", True)],
    ids=["redis-stopped", "redis-restored-kong-not"],
)
def test_a_killed_restore_is_reported_and_resumed(sandbox, service, phase, redis_up):
    backup_id = _killed_restore(sandbox, service, phase)
    assert sandbox.role("redis").unit.status().running is redis_up
    _says_interrupted(sandbox, backup_id)
    recovered = run_inv(cli_env(sandbox), "recover")
    assert recovered.returncode == 1 and "recover restarts nothing" in recovered.stdout
    assert sandbox.role("redis").unit.status().running is redis_up  # not "repaired"

    done = run_inv(cli_env(sandbox), "restore", "--resume", "--yes", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["state"] == "restored"
    assert _marker(sandbox) == "backup"
    assert run_inv(cli_env(sandbox), "status").returncode == 0


def test_a_killed_restore_is_aborted_back_to_its_safety_backup(sandbox):
    kong_before = _kong_hash(sandbox)
    backup_id = _killed_restore(sandbox, "redis", "ready")
    assert _marker(sandbox) == "backup"  # half-restored: Redis has the new data
    _says_interrupted(sandbox, backup_id)
    done = run_inv(cli_env(sandbox), "restore", "--abort", "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "aborted: safety backup" in done.stdout
    assert _marker(sandbox) == "after"  # what it held before the restore began
    assert _kong_hash(sandbox) == kong_before
    assert run_inv(cli_env(sandbox), "status").returncode == 0
    nothing = run_inv(cli_env(sandbox), "restore", "--abort", "--yes")
    assert nothing.returncode == 2 and "no interrupted restore" in nothing.stderr


def test_sigterm_mid_restore_rolls_back_and_exits_130(sandbox):
    _set_marker(sandbox, "backup")
    made = backups.backup(sandbox, ["redis", "kong", "nginx"])
    _set_marker(sandbox, "after")
    driver = subprocess.run(
        [PYTHON, "-c", DRIVER, made.backup_id, "redis", "starting", "SIGTERM"],
        env=cli_env(sandbox),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert driver.returncode == 130, driver.stdout + driver.stderr
    outcome = json.loads(driver.stdout)
    assert outcome["state"] == "rolled back" and "interrupted" in outcome["detail"], outcome
    assert _marker(sandbox) == "after"
    assert run_inv(cli_env(sandbox), "status").returncode == 0  # no journal left behind
