"""CPU of ``inv monitor`` at its 1 s refresh, and the cost of ``inv metrics --textfile`` against
``inv health --quiet``, both on the running sandbox (process runtime), in the same run.

- monitor: started in a real terminal (tmux, 80×30) for ``--seconds``; its own user+system CPU
  (psutil, the process and its threads) over that time, as % of one core. Target ≤ 2 %.
- metrics: ``--runs`` alternating runs of each command, wall time medians; ratio target ≤ 1.5×.

    .venv/bin/python bench/monitor.py [--seconds 30] [--runs 7]
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psutil

from bench._common import REPO, SANDBOX_STACK, sandbox_environ
from opskit.ops import lifecycle
from opskit.stack import load_stack


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    env = sandbox_environ()
    stack = load_stack(SANDBOX_STACK, environ=env)
    assert lifecycle.start(stack).ok
    env = {**env, "PATH": os.environ["PATH"]}
    try:
        print(f"monitor: {_monitor_cpu(env, args.seconds):.2f} % of one core at 1 s refresh")
        metrics, health = _textfile_vs_health(env, args.runs)
        print(
            f"metrics --textfile {metrics * 1000:.0f} ms vs health --quiet {health * 1000:.0f} ms"
            f" (medians of {args.runs}): {metrics / health:.2f}×"
        )
    finally:
        lifecycle.stop(stack)


def _inv(*args: str) -> list[str]:
    return [sys.executable, "-m", "invoke", "--search-root", str(REPO), *args]


def _monitor_cpu(env: dict, seconds: float) -> float:
    session = f"opskit-bench-monitor-{os.getpid()}"
    pidfile = Path(tempfile.mkdtemp()) / "pid"
    command = " ".join(
        [
            *(f"{k}={shlex.quote(v)}" for k, v in env.items()),
            "sh -c",
            shlex.quote(
                f"echo $$ > {pidfile}; exec " + " ".join(map(shlex.quote, _inv("monitor")))
            ),
        ]
    )
    subprocess.run(
        ["tmux", "new-session", "-d", "-s", session, "-x", "80", "-y", "30", command],
        check=True,
        env={**os.environ, "TMUX": ""},
    )
    try:
        while not pidfile.exists() or not pidfile.read_text().strip():
            time.sleep(0.05)
        process = psutil.Process(int(pidfile.read_text()))
        time.sleep(3.0)  # imports and the first health pass are start-up, not refresh
        before = process.cpu_times()
        time.sleep(seconds)
        after = process.cpu_times()
        used = (after.user - before.user) + (after.system - before.system)
        return 100.0 * used / seconds
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


def _textfile_vs_health(env: dict, runs: int) -> tuple[float, float]:
    target = Path(tempfile.mkdtemp()) / "opskit.prom"
    metrics, health = [], []
    for _ in range(runs):
        for sink, argv in (
            (metrics, _inv("metrics", "--textfile", str(target))),
            (health, _inv("health", "--quiet")),
        ):
            began = time.perf_counter()
            subprocess.run(argv, env=env, capture_output=True, check=False)
            sink.append(time.perf_counter() - began)
    return statistics.median(metrics), statistics.median(health)


if __name__ == "__main__":
    main()
