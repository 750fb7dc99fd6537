"""Stop (and start) speed against what an operator would do by hand, in the same run.

1. **The sandbox, as an operator types it**: ``inv stop`` (the CLI, command start-up
   included) against *signal everything and wait*: every service's own pid sent the graceful
   signal its role uses (SIGTERM for redis, SIGQUIT for nginx and kong, SIGTERM for the rest)
   at once, then waited for (pidfds) until all have exited. That ignores dependency order, so
   it is faster than any correct stop can be. The dependency-ordered stop by hand is printed
   beside it. Pairs alternate (baseline first, then opskit first); medians and ranges.
2. **Scale**: generated stacks of ``--sizes`` services (default 50, 200, 500) in 10 levels,
   each depending on 1-3 services of lower levels, each a shell loop that takes a random
   0-200 ms to exit after SIGTERM (and reaps its own ``sleep`` first, as a real service leaves
   no process behind: this host's PID 1 reaps no orphans, so stragglers would pile up as
   zombies and lengthen every later walk of /proc; the straggler path has its own tests).
   Stop's floor is the *reverse critical path*: the longest chain of exit delays that must
   run one after another. Start's floor is the same stack started by hand (Popen in
   dependency order, each level once the level below runs). ``lifecycle.start``/``stop``
   in-process (the CLI's start-up is section 1's business), and the CLI ``inv stop`` once at
   the middle size. The cost per service above the floor is printed as a curve.

    .venv/bin/python bench/stop.py [--pairs 5] [--sizes 50,200,500]

Targets (issue #22): ``inv stop`` of the sandbox ≤ 1.3× signal-everything-and-wait; at 200
services start and stop each ≤ floor + 0.5 s; the cost per added service flat from 50 to 500
(the per-service cost at the largest size ≤ 1.5× that at the smallest, or within 1 ms).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (
    SANDBOX_STACK,
    cli_environ,
    inv_argv,
    median,
    ms,
    sandbox_environ,
    spread,
    verdict,
)
from opskit.ops import lifecycle
from opskit.stack import load_stack

HAND_SIGNAL = {"redis": signal.SIGTERM, "nginx": signal.SIGQUIT, "kong": signal.SIGQUIT}


def wait_all_exit(pids: list[int], timeout: float = 30.0) -> None:
    """Sleep until every pid has exited (pidfds: woken by each exit, no polling)."""
    fds = []
    for pid in pids:
        try:
            fds.append(os.pidfd_open(pid))
        except ProcessLookupError:
            continue
    poller = select.poll()
    for fd in fds:
        poller.register(fd, select.POLLIN)
    left, deadline = set(fds), time.monotonic() + timeout
    try:
        while left:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise SystemExit("by hand: processes still running after 30 s")
            for fd, _ in poller.poll(remaining * 1000):
                poller.unregister(fd)
                left.discard(fd)
    finally:
        for fd in fds:
            os.close(fd)


def signal_of(stack, name: str) -> signal.Signals:
    return HAND_SIGNAL.get(stack.services[name].role.value, signal.SIGTERM)


def signal_all_and_wait(stack) -> float:
    pids = {row.service: row.status.pid for row in lifecycle.status(stack).rows}
    began = time.monotonic()
    for name, pid in pids.items():
        os.kill(pid, signal_of(stack, name))
    wait_all_exit(list(pids.values()))
    return time.monotonic() - began


def ordered_by_hand(stack) -> float:
    """Dependents first, each service signalled once its dependents have exited."""
    pids = {row.service: row.status.pid for row in lifecycle.status(stack).rows}
    began = time.monotonic()
    done: set[str] = set()
    while len(done) < len(pids):
        batch = [n for n in pids if n not in done and set(stack.dependents(n)) <= done]
        for name in batch:
            os.kill(pids[name], signal_of(stack, name))
        wait_all_exit([pids[name] for name in batch])
        done.update(batch)
    return time.monotonic() - began


def cli_stop(env: dict[str, str]) -> float:
    began = time.monotonic()
    run = subprocess.run(inv_argv("stop"), env=env, capture_output=True, text=True)
    elapsed = time.monotonic() - began
    if run.returncode != 0:
        raise SystemExit(f"inv stop failed ({run.returncode}): {run.stdout}{run.stderr}")
    return elapsed


def start(stack) -> float:
    began = time.monotonic()
    result = lifecycle.start(stack)
    elapsed = time.monotonic() - began
    if not result.ok:
        raise SystemExit(f"start failed: {[(o.service, o.detail) for o in result.outcomes]}")
    return elapsed


def stop(stack) -> float:
    began = time.monotonic()
    result = lifecycle.stop(stack)
    elapsed = time.monotonic() - began
    if not result.ok or any(o.state.value == "killed" for o in result.outcomes):
        raise SystemExit(f"opskit stop failed: {[(o.service, o.detail) for o in result.outcomes]}")
    return elapsed


def sandbox(pairs: int) -> None:
    environ = sandbox_environ()
    env = cli_environ(environ)
    stack = load_stack(SANDBOX_STACK, environ=environ)
    everything, ordered, ours = [], [], []
    try:
        start(stack)
        cli_stop(env)  # warm: bytecode, page cache

        def baseline() -> None:
            start(stack)
            everything.append(signal_all_and_wait(stack))
            lifecycle.stop(stack)  # forget the pidfiles of what the hand run stopped
            start(stack)
            ordered.append(ordered_by_hand(stack))
            lifecycle.stop(stack)

        def opskit() -> None:
            start(stack)
            ours.append(cli_stop(env))

        for index in range(pairs):
            for run in (baseline, opskit) if index % 2 == 0 else (opskit, baseline):
                run()
    finally:
        lifecycle.stop(stack)
        shutil.rmtree(environ["OPSKIT_STATE_DIR"], ignore_errors=True)
    ratio = median(ours) / median(everything)
    print(f"sandbox stop, {pairs} alternating pairs ({len(stack.services)} services, process)")
    print(f"  signal everything, wait (pidfds):   {spread(everything)}")
    print(f"  by hand in dependency order:        {spread(ordered)}")
    print(f"  inv stop (CLI, start-up included):  {spread(ours)}")
    print(f"  inv stop / signal everything: {ratio:.2f}×  target ≤ 1.3×: {verdict(ratio <= 1.3)}")


def generated_dag(directory: Path, size: int, seed: int = 8) -> tuple[Path, float, list]:
    """``size`` services in 10 levels; each depends on 1-3 services of lower levels."""
    rng = random.Random(seed)
    per_level = max(1, size // 10)
    levels = [[f"s{level}x{i}" for i in range(per_level)] for level in range(10)]
    delays: dict[str, float] = {}
    depends: dict[str, list[str]] = {}
    lines = [f'x-opskit: {{runtime: process, state_dir: "{directory / "state"}"}}', "services:"]
    for level, names in enumerate(levels):
        lower = [name for earlier in levels[:level] for name in earlier]
        for name in names:
            delays[name] = round(rng.uniform(0.0, 0.2), 3)
            depends[name] = rng.sample(lower, k=min(len(lower), rng.randint(1, 3))) if lower else []
            script = (
                f"trap 'kill $! 2>/dev/null; wait $!; sleep {delays[name]}; exit 0' TERM; "
                "while :; do sleep 30 & wait $!; done"
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

    return path, max(finish_time(name) for name in depends), levels


def start_by_hand(levels: list[list[str]], stack) -> tuple[float, list[int]]:
    """Each level's processes spawned once the level below runs: the floor of any start."""
    pids = []
    began = time.monotonic()
    for names in levels:
        for name in names:
            argv = stack.services[name].process.command
            child = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, start_new_session=True
            )
            pids.append(child.pid)
    return time.monotonic() - began, pids


def scale(sizes: list[int], runs: int) -> None:
    print(f"\ngenerated stacks, 10 levels, {runs} runs each (in-process; process runtime)")
    print(
        "  services  stop floor  opskit stop  above     start by hand  opskit start  above"
        "     per service (stop, start)"
    )
    curve = []
    middle = sizes[len(sizes) // 2]
    cli = None
    for size in sizes:
        directory = Path(tempfile.mkdtemp(prefix="opskit-bench-dag-"))
        path, critical, levels = generated_dag(directory, size)
        stack = load_stack(path, environ={"PATH": os.environ["PATH"]})
        stops, starts, hands = [], [], []
        try:
            for _ in range(runs):
                hand, pids = start_by_hand(levels, stack)
                hands.append(hand)
                for pid in pids:
                    os.kill(pid, signal.SIGKILL)
                for pid in pids:
                    os.waitpid(pid, 0)
                starts.append(start(stack))
                stops.append(stop(stack))
            if size == middle:
                start(stack)
                env = cli_environ({"PATH": os.environ["PATH"]})
                began = time.monotonic()
                run = subprocess.run(
                    inv_argv("stop", "-f", str(path)), env=env, capture_output=True
                )
                cli = (size, critical, time.monotonic() - began, run.returncode)
        finally:
            lifecycle.stop(stack)
            shutil.rmtree(directory, ignore_errors=True)
        count = len(stack.services)
        above_stop = median(stops) - critical
        above_start = median(starts) - median(hands)
        curve.append((count, above_stop / count, above_start / count, above_stop, above_start))
        print(
            f"  {count:8d}  {ms(critical)}  {ms(median(stops))}  {ms(above_stop)}"
            f"  {ms(median(hands))}     {ms(median(starts))}  {ms(above_start)}"
            f"  {above_stop / count * 1000:5.2f} ms, {above_start / count * 1000:5.2f} ms"
        )
    for count, _, _, above_stop, above_start in curve:
        if count == middle:
            print(
                f"  at {count}: stop ≤ floor + 0.5 s: {verdict(above_stop <= 0.5)}; "
                f"start ≤ by hand + 0.5 s: {verdict(above_start <= 0.5)}"
            )
    (_, first_stop, first_start, _, _), (last_count, last_stop, last_start, _, _) = (
        curve[0],
        curve[-1],
    )
    for what, first, last in (("stop", first_stop, last_stop), ("start", first_start, last_start)):
        flat = last <= max(first * 1.5, first + 0.001)
        print(
            f"  {what}: cost per service {first * 1000:.2f} ms at {curve[0][0]} → "
            f"{last * 1000:.2f} ms at {last_count}; flat: {verdict(flat)}"
        )
    if cli is not None:
        size, critical, seconds, code = cli
        print(
            f"  CLI inv stop at {size}: {ms(seconds)} (exit {code}), floor {ms(critical)}, "
            f"above {ms(seconds - critical)}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--runs", type=int, default=3, help="runs per size in the scale part")
    parser.add_argument("--sizes", default="50,200,500")
    args = parser.parse_args()
    sandbox(args.pairs)
    scale([int(size) for size in args.sizes.split(",")], args.runs)


if __name__ == "__main__":
    main()
