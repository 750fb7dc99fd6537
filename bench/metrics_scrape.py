"""What a big access log costs a scrape: two sandboxes, one whose nginx has written ``--mb`` of
access log (1 GB by default) and one whose log is empty, scraped in alternating pairs (A then
B, then B then A) once both are caught up; 200 new requests' lines are appended to each log
before every scrape, so both read the same amount of new data. Medians.

A scrape is :func:`opskit.ops.metrics.gather` — what ``inv metrics --serve`` runs per scrape
(one health pass, every role's numbers, the request counts, backups, copies, recovery). The
catch-up of the big log (read in bounded steps, one per scrape) is timed and printed too.

    .venv/bin/python bench/metrics_scrape.py [--mb 1024] [--pairs 15]

Target (issue #25): a scrape with a 1 GB access log ≤ 2× a scrape with an empty one.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import SANDBOX_STACK, ms, sandbox_environ, spread, verdict
from opskit.logs.requests import RequestCounts
from opskit.ops import lifecycle
from opskit.ops.metrics import gather
from opskit.stack import load_stack

LINE = json.dumps(
    {
        "time": "2026-12-06T10:00:00+00:00",
        "request_id": "0123456789abcdef0123456789abcdef",
        "remote_addr": "127.0.0.1",
        "method": "POST",
        "uri": "/v1/messages",
        "status": 200,
        "bytes_sent": 512,
        "request_time": 0.123,
        "upstream_status": "200",
        "upstream_time": "0.120",
    }
)


def append(log: Path, lines: int) -> None:
    with log.open("a") as out:
        out.write((LINE + "\n") * lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=1024)
    parser.add_argument("--pairs", type=int, default=15)
    args = parser.parse_args()

    stacks = {}
    for kind in ("empty", "big"):
        stack = load_stack(SANDBOX_STACK, environ=sandbox_environ())
        assert lifecycle.start(stack).ok, kind
        stacks[kind] = stack
    try:
        logs = {kind: stack.role("nginx").unit.logfile for kind, stack in stacks.items()}
        for stack in stacks.values():
            gather(stack)  # the cursors start at the logs' ends
        lines = args.mb * 2**20 // (len(LINE) + 1)
        began = time.perf_counter()
        chunk = 200_000
        for start in range(0, lines, chunk):
            append(logs["big"], min(chunk, lines - start))
        size = logs["big"].stat().st_size
        wrote = time.perf_counter() - began
        print(f"big: {size / 2**20:.0f} MiB of access log written ({wrote:.1f} s)")

        def counted() -> int:
            counts = RequestCounts(stacks["big"].state_dir)
            with counts.updating():
                return counts.services["nginx"].lines

        scrapes, began, before = 0, time.perf_counter(), counted()
        while True:  # catch up, one bounded step per scrape, until a scrape finds only the
            gather(stacks["big"])  # health pass's own probe through nginx (a line or two)
            scrapes += 1
            now = counted()
            if now - before < 10:
                break
            before = now
        took = time.perf_counter() - began
        print(
            f"catch-up: {scrapes} scrapes, {took:.1f} s ({size / 2**20 / took:.0f} MiB/s); "
            f"{now} requests counted: the {lines} written and {now - lines} probes of the "
            "health passes"
        )

        seconds: dict[str, list[float]] = {"empty": [], "big": []}
        for pair in range(args.pairs):
            order = ("empty", "big") if pair % 2 == 0 else ("big", "empty")
            for kind in order:
                append(logs[kind], 200)
                began = time.perf_counter()
                gather(stacks[kind])
                seconds[kind].append(time.perf_counter() - began)
        for kind, values in seconds.items():
            print(f"  scrape, {kind:<5} access log: {spread(values)}")
        ratio = statistics.median(seconds["big"]) / statistics.median(seconds["empty"])
        print(
            f"  {args.mb} MiB log / empty log = {ratio:.2f}×; target ≤ 2×: {verdict(ratio <= 2)}"
            f" (medians {ms(statistics.median(seconds['big'])).strip()} vs "
            f"{ms(statistics.median(seconds['empty'])).strip()})"
        )
    finally:
        for stack in stacks.values():
            lifecycle.stop(stack)
            shutil.rmtree(stack.state_dir, ignore_errors=True)  # its own mkdtemp folder only


if __name__ == "__main__":
    main()
