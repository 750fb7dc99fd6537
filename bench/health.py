"""inv health speed, in one run against the same started sandbox:

- in-process ``run_health`` over every service (no --e2e), concurrent — p50;
- the same checks one after another (``concurrent=False``) — p50, and the speed-up;
- the CLI, ``inv health --quiet`` wall time — p50;
- the baseline an operator would otherwise run from cron: ``bench/health_baseline.sh``, the
  same probes with curl, redis-cli and nginx -t one after another — p50, and the CLI's ratio
  to it (runs alternate, so machine noise hits both).

    .venv/bin/python bench/health.py [--runs 30]

Targets: in-process p50 ≤ 30 ms (issue #4); CLI ≤ 1.5× the shell baseline (issue #22). CPU time
of this process is printed beside wall time: where CPU ≈ wall, the checks are CPU-bound and no
scheduling can overlap them.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import REPO, SANDBOX_STACK, cli_environ, sandbox_environ, verdict
from opskit.ops import lifecycle
from opskit.ops.health import run_health
from opskit.stack import load_stack


def timed(function, runs: int, cpu: list[float] | None = None) -> list[float]:
    samples = []
    for _ in range(runs):
        began, began_cpu = time.perf_counter(), time.process_time()
        function()
        samples.append(time.perf_counter() - began)
        if cpu is not None:
            cpu.append(time.process_time() - began_cpu)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    environ = sandbox_environ()
    stack = load_stack(SANDBOX_STACK, environ=environ)
    try:
        if not lifecycle.start(stack).ok:
            raise SystemExit("the sandbox did not start")
        report = run_health(stack)  # warm up: imports, connections, page cache
        if report.exit_code >= 2:
            raise SystemExit(f"sandbox not healthy: {report.one_line()}")
        checks = len(report.checks)
        concurrent_cpu: list[float] = []
        sequential_cpu: list[float] = []
        concurrent = timed(lambda: run_health(stack), args.runs, concurrent_cpu)
        sequential = timed(lambda: run_health(stack, concurrent=False), args.runs, sequential_cpu)
        # os.environ with the sandbox's ports, password and stack file. opskit's bytecode is
        # cached after the first run: invoke turns writing off, and opskit's tasks.py turns it
        # back on for its own modules (this workplace's PYTHONDONTWRITEBYTECODE is dropped, as
        # an operator's shell does not set it).
        env = cli_environ(environ)
        argv = [sys.executable, "-m", "invoke", "--search-root", str(REPO), "health", "--quiet"]
        shell = [str(REPO / "bench" / "health_baseline.sh")]
        subprocess.run(argv, env=env, stdout=subprocess.DEVNULL)  # warm: writes the bytecode
        cli, baseline = [], []
        for _ in range(max(5, args.runs // 2)):  # alternate: noise hits both
            cli += timed(lambda: subprocess.run(argv, env=env, stdout=subprocess.DEVNULL), 1)
            baseline += timed(lambda: subprocess.run(shell, env=env, check=True), 1)
    finally:
        lifecycle.stop(stack)
        shutil.rmtree(environ["OPSKIT_STATE_DIR"], ignore_errors=True)

    p50 = statistics.median
    ms = lambda seconds: f"{seconds * 1000:7.1f} ms"  # noqa: E731
    speedup = p50(sequential) / p50(concurrent)
    print(f"inv health over the sandbox ({checks} checks, no --e2e), {args.runs} runs")
    print(
        f"  in-process, concurrent:  p50 {ms(p50(concurrent))} (CPU {ms(p50(concurrent_cpu))})"
        "   target <= 30 ms: "
        f"{'OK' if p50(concurrent) <= 0.030 else 'ABOVE TARGET'}"
    )
    print(f"  in-process, sequential:  p50 {ms(p50(sequential))} (CPU {ms(p50(sequential_cpu))})")
    print(
        f"  concurrent speed-up:     {speedup:.1f}x   target >= 2x: "
        f"{'OK' if speedup >= 2 else 'BELOW TARGET'}"
    )
    ratio = p50(cli) / p50(baseline)
    print(f"  shell baseline (curl, redis-cli, nginx -t in turn): p50 {ms(p50(baseline))}")
    print(f"  CLI inv health --quiet:  p50 {ms(p50(cli))}")
    print(
        f"  CLI / shell baseline:    {ratio:.2f}x   target <= 1.5x: {verdict(ratio <= 1.5)} "
        "(bench/cli.py shows how much of it is invoke's own import)"
    )


if __name__ == "__main__":
    main()
