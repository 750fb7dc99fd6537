"""Stop speed: opskit's stop against signalling the same processes by hand, in the same run.

1. The five-service sandbox (process runtime). Baseline: the services' own pids, each sent
   the graceful signal its role uses (SIGTERM for redis — it saves on SIGTERM as on
   SHUTDOWN SAVE —, SIGQUIT for nginx and kong, SIGTERM for the rest), dependents first, each
   service as soon as its own dependents have exited, exits seen by polling every 5 ms. That is
   the fastest any orchestrator could stop them; opskit's *overhead* is its time minus that.
   Runs alternate (hand, opskit, …); median of ``--runs``.
2. A generated 50-service, 10-deep random DAG of shell loops, each taking a random 0–200 ms to
   exit after SIGTERM. Its *reverse critical path* is the longest chain of those delays that
   must run one after another (a service stops after everything that depends on it); opskit
   must stop the whole DAG within that + 0.5 s.

    .venv/bin/python bench/stop.py [--runs 5]

Targets (issue #8): sandbox overhead ≤ 100 ms (median of 5); DAG ≤ critical path + 0.5 s.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import SANDBOX_STACK, median, ms, sandbox_environ
from opskit.ops import lifecycle
from opskit.stack import load_stack

POLL = 0.005
HAND_SIGNAL = {"redis": signal.SIGTERM, "nginx": signal.SIGQUIT, "kong": signal.SIGQUIT}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie has exited; its reaping is not the stop's business
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def by_hand(stack) -> float:
    """Signal every service dependents-first, each once its dependents have exited."""
    pids = {row.service: row.status.pid for row in lifecycle.status(stack).rows}
    signalled: set[str] = set()
    gone: set[str] = set()
    begin = time.monotonic()
    while len(gone) < len(pids):
        for name, pid in pids.items():
            if name not in signalled and all(d in gone for d in stack.dependents(name)):
                os.kill(pid, HAND_SIGNAL.get(stack.services[name].role.value, signal.SIGTERM))
                signalled.add(name)
        for name in signalled - gone:
            if not alive(pids[name]):
                gone.add(name)
        time.sleep(POLL)
    return time.monotonic() - begin


def timed_stop(stack) -> float:
    began = time.monotonic()
    result = lifecycle.stop(stack)
    elapsed = time.monotonic() - began
    if not result.ok or any(o.state.value == "killed" for o in result.outcomes):
        raise SystemExit(f"opskit stop failed: {[(o.service, o.detail) for o in result.outcomes]}")
    return elapsed


def start(stack) -> None:
    result = lifecycle.start(stack)
    if not result.ok:
        raise SystemExit(f"start failed: {[(o.service, o.detail) for o in result.outcomes]}")


def sandbox(runs: int) -> None:
    environ = sandbox_environ()
    stack = load_stack(SANDBOX_STACK, environ=environ)
    try:
        start(stack)
        timed_stop(stack)  # warm up
        hand, ours = [], []
        for _ in range(runs):
            start(stack)
            hand.append(by_hand(stack))
            lifecycle.stop(stack)  # forget the pidfiles of what the hand run stopped
            start(stack)
            ours.append(timed_stop(stack))
    finally:
        lifecycle.stop(stack)
        shutil.rmtree(environ["OPSKIT_STATE_DIR"], ignore_errors=True)
    overheads = [o - h for o, h in zip(ours, hand, strict=True)]
    print(f"sandbox stop, {runs} runs (process runtime, {len(stack.services)} services)")
    print(f"  by hand (signals, 5 ms polling):  median {ms(median(hand))}")
    print(f"  opskit lifecycle.stop:            median {ms(median(ours))}")
    print(f"  opskit overhead (paired):         median {ms(median(overheads))}")
    verdict = "OK" if median(overheads) <= 0.100 else "ABOVE TARGET"
    print(f"  target overhead <= 100 ms: {verdict}")


def generated_dag(directory: Path, seed: int = 8) -> tuple[Path, float]:
    """50 services in 10 levels; each depends on 1-3 services of lower levels."""
    rng = random.Random(seed)
    levels = [[f"s{level}x{i}" for i in range(5)] for level in range(10)]
    delays: dict[str, float] = {}
    depends: dict[str, list[str]] = {}
    lines = [f'x-opskit: {{runtime: process, state_dir: "{directory / "state"}"}}', "services:"]
    for level, names in enumerate(levels):
        lower = [name for earlier in levels[:level] for name in earlier]
        for name in names:
            delays[name] = round(rng.uniform(0.0, 0.2), 3)
            depends[name] = rng.sample(lower, k=min(len(lower), rng.randint(1, 3))) if lower else []
            script = (
                f"trap 'sleep {delays[name]}; exit 0' TERM; while :; do sleep 30 & wait $!; done"
            )
            extension = {"role": "http", "process": {"command": ["sh", "-c", script]}}
            lines += [f"  {name}:", "    image: bench/sh", "    stop_grace_period: 10s"]
            if depends[name]:
                lines.append(f"    depends_on: {json.dumps(depends[name])}")
            lines.append(f"    x-opskit: {json.dumps(extension)}")
    path = directory / "dag.yml"
    path.write_text("\n".join(lines) + "\n")
    dependents = {name: [d for d in depends if name in depends[d]] for name in depends}
    finish: dict[str, float] = {}

    def finish_time(name: str) -> float:  # stops after all its dependents have stopped
        if name not in finish:
            finish[name] = delays[name] + max(
                (finish_time(d) for d in dependents[name]), default=0.0
            )
        return finish[name]

    return path, max(finish_time(name) for name in depends)


def dag(runs: int) -> None:
    directory = Path(tempfile.mkdtemp(prefix="opskit-bench-dag-"))
    path, critical = generated_dag(directory)
    stack = load_stack(path, environ={"PATH": os.environ["PATH"]})
    times = []
    try:
        for _ in range(runs):
            start(stack)
            times.append(timed_stop(stack))
    finally:
        lifecycle.stop(stack)
        shutil.rmtree(directory, ignore_errors=True)
    print(f"generated DAG stop, {runs} runs ({len(stack.services)} services, 10 levels)")
    print(f"  reverse critical path (sum of exit delays): {ms(critical)}")
    print(f"  opskit lifecycle.stop:                       median {ms(median(times))}")
    limit = critical + 0.5
    verdict = "OK" if median(times) <= limit else "ABOVE TARGET"
    print(f"  target <= critical path + 500 ms ({ms(limit)}): {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    sandbox(args.runs)
    dag(args.runs)


if __name__ == "__main__":
    main()
