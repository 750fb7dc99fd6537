"""Sandbox cold start: opskit's start-to-healthy against the services' own readiness.

Baseline, measured in the same run: the same commands started by hand — plain Popen, no
lifecycle code, only the same readiness probes polled every 5 ms — with dependencies respected
by hand (backend after nginx is ready). That is the fastest any orchestrator could be;
opskit's *overhead* is its total minus that baseline. Runs alternate (hand, opskit, hand,
…) so machine noise hits both.

    .venv/bin/python bench/start.py [--runs 5]

Target (issue #2): overhead ≤ 100 ms, median of 5 runs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent))

from bench._common import SANDBOX_STACK, median, ms, sandbox_environ
from opskit.ops import lifecycle
from opskit.stack import load_stack

POLL = 0.005


def by_hand(stack) -> float:
    """Start every service with the exact launch opskit would use; poll readiness every 5 ms."""
    roles = {name: stack.role(name) for name in stack.services}
    for role in roles.values():
        role.prepare()
    runtime = stack.runtime
    runtime.ensure_dirs()
    children: dict[str, subprocess.Popen] = {}
    ready_at: dict[str, float] = {}

    def spawn(name: str) -> None:
        role = roles[name]
        launch = role.launch()
        log = open(stack.state_dir / f"hand-{name}.log", "ab")  # noqa: SIM115
        children[name] = subprocess.Popen(
            launch.argv,
            cwd=role.spec.process.cwd or stack.config.project_dir,
            env=runtime.environment(role.spec, launch),
            stdin=subprocess.PIPE if launch.stdin is not None else subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        if launch.stdin is not None:
            children[name].stdin.write(launch.stdin)
            children[name].stdin.close()

    begin = time.monotonic()
    for name in stack.services:
        if not stack.dependencies(name):
            spawn(name)
    while len(ready_at) < len(roles):
        for name in list(children):
            if name in ready_at:
                continue
            if children[name].poll() is not None:
                raise SystemExit(f"{name} exited during the baseline run")
            if roles[name].probe_ready().ready:
                ready_at[name] = time.monotonic()
                for dependent in stack.dependents(name):
                    deps = stack.dependencies(dependent)
                    if dependent not in children and all(d in ready_at for d in deps):
                        spawn(dependent)
        time.sleep(POLL)
    total = max(ready_at.values()) - begin
    for child in children.values():
        os.killpg(child.pid, 15)
    for child in children.values():
        child.wait(timeout=15)
    return total


def with_opskit(stack) -> float:
    began = time.monotonic()
    result = lifecycle.start(stack)
    total = time.monotonic() - began
    if not result.ok:
        raise SystemExit(f"opskit start failed: {[(o.service, o.detail) for o in result.outcomes]}")
    lifecycle.stop(stack)
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    environ = sandbox_environ()
    stack = load_stack(SANDBOX_STACK, environ=environ)
    try:
        run(stack, args.runs)
    finally:
        lifecycle.stop(stack)
        shutil.rmtree(environ["OPSKIT_STATE_DIR"], ignore_errors=True)


def run(stack, runs: int) -> None:
    with_opskit(stack)  # warm the page cache and bytecode for both contenders
    hand, ours = [], []
    for _ in range(runs):
        hand.append(by_hand(stack))
        ours.append(with_opskit(stack))
    overheads = [o - h for o, h in zip(ours, hand, strict=True)]

    print(f"sandbox cold start, {runs} runs (process runtime, {len(stack.services)} services)")
    print(f"  by hand, 5 ms polling (critical path): median {ms(median(hand))}")
    print(f"  opskit lifecycle.start:                 median {ms(median(ours))}")
    print(f"  opskit overhead (paired):               median {ms(median(overheads))}")
    print(f"  ratio opskit / by hand:                 {median(ours) / median(hand):.2f}x")
    verdict = "OK" if median(overheads) <= 0.100 else "ABOVE TARGET"
    print(f"  target overhead <= 100 ms: {verdict}")


if __name__ == "__main__":
    main()
