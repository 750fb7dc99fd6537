"""inv monitor: one frame for every service, and the live view under a real tmux: a frame
appears, `q` quits with exit 0."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import time

import pytest

from .conftest import PYTHON, REPO, run_inv


def test_once_renders_every_service_in_80_columns(running_sandbox):
    env = {**running_sandbox.config.environ, "PATH": os.environ["PATH"], "COLUMNS": "80"}
    done = run_inv(env, "monitor", "--once")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    for name in running_sandbox.services:
        row = next(line for line in lines if line.startswith(name + " "))
        assert " running " in row and " OK " in row, row
    assert all(len(line) <= 80 for line in lines)
    assert "latency (" in done.stdout and "masking events:" in done.stdout


@pytest.mark.skipif(not shutil.which("tmux"), reason="tmux is not installed")
def test_live_monitor_under_tmux_shows_a_frame_and_quits_on_q(running_sandbox, tmp_path):
    env = {**running_sandbox.config.environ, "PATH": os.environ["PATH"]}
    session = f"opskit-monitor-{os.getpid()}"
    status_file = tmp_path / "exit"
    command = " ".join(
        [
            *(f"{k}={shlex.quote(v)}" for k, v in env.items()),
            shlex.quote(PYTHON),
            "-m invoke --search-root",
            shlex.quote(str(REPO)),
            "monitor; echo $? >",
            shlex.quote(str(status_file)),
        ]
    )
    subprocess.run(
        ["tmux", "new-session", "-d", "-s", session, "-x", "80", "-y", "30", command],
        check=True,
        env={**os.environ, "TMUX": ""},
    )
    try:
        deadline = time.monotonic() + 20
        screen = ""
        while time.monotonic() < deadline and "front" not in screen:
            screen = subprocess.run(
                ["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True
            ).stdout
            time.sleep(0.2)
        assert "opskit monitor" in screen and "front" in screen, screen
        subprocess.run(["tmux", "send-keys", "-t", session, "q"], check=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not status_file.exists():
            time.sleep(0.1)
        assert status_file.read_text().strip() == "0"
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
