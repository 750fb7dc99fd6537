"""The command's own start: ``inv --list``, ``inv status`` and ``inv health --quiet`` against a
bare interpreter and against invoke's own import (the floor no task can go below), and ``inv
health --quiet`` against a shell script making the same probes with curl, redis-cli and
nginx -t (``bench/health_baseline.sh``). A private sandbox on free ports, started once.

Every round runs each command once, in an order that rotates (so machine noise hits all of
them); medians and ranges over ``--rounds``. Bytecode is cached as on an operator's machine.

    .venv/bin/python bench/cli.py [--rounds 15]

Targets (issue #22): ``inv --list`` and ``inv status`` within 150 ms of a bare interpreter;
``inv health --quiet`` ≤ 1.5× the shell script. Where invoke's import alone breaks a target,
the floor line says so and what is above it is opskit's.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (
    REPO,
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


def wall(argv: list[str], env: dict[str, str]) -> float:
    began = time.perf_counter()
    subprocess.run(argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    environ = sandbox_environ()
    env = cli_environ(environ)
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "python -c 'import invoke' (floor)": [sys.executable, "-c", "import invoke"],
        "inv --list": inv_argv("--list"),
        "inv status": inv_argv("status"),
        "inv health --quiet": inv_argv("health", "--quiet"),
        "shell script, same probes": ["sh", str(REPO / "bench" / "health_baseline.sh")],
    }
    stack = load_stack(SANDBOX_STACK, environ=environ)
    times: dict[str, list[float]] = {name: [] for name in commands}
    try:
        if not lifecycle.start(stack).ok:
            raise SystemExit("the sandbox did not start")
        for argv in commands.values():
            wall(argv, env)  # warm: bytecode, page cache
        names = list(commands)
        for index in range(args.rounds):
            shift = index % len(names)
            for name in names[shift:] + names[:shift]:
                times[name].append(wall(commands[name], env))
    finally:
        lifecycle.stop(stack)
        shutil.rmtree(environ["OPSKIT_STATE_DIR"], ignore_errors=True)

    bare = median(times["python -c pass"])
    floor = median(times["python -c 'import invoke' (floor)"])
    print(f"command start-up, {args.rounds} rounds, rotating order (median, range)")
    for name, values in times.items():
        print(f"  {name:36s} {spread(values)}")
    print(f"  invoke's import alone is {ms(floor - bare).strip()} above a bare interpreter")
    for name in ("inv --list", "inv status"):
        above = median(times[name]) - bare
        print(
            f"  {name}: {ms(above).strip()} above bare, {ms(median(times[name]) - floor).strip()} "
            f"above invoke's import; target ≤ 150 ms above bare: {verdict(above <= 0.150)}"
            + ("" if floor - bare <= 0.150 else " (the floor alone is above it)")
        )
    health, shell = median(times["inv health --quiet"]), median(times["shell script, same probes"])
    print(
        f"  inv health --quiet / shell script: {health / shell:.2f}×; target ≤ 1.5×: "
        f"{verdict(health / shell <= 1.5)}; invoke's import alone is {floor / shell:.2f}× the "
        f"script, opskit's part {ms(health - floor).strip()}"
    )


if __name__ == "__main__":
    main()
