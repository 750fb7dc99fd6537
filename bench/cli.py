"""CLI start-up cost: ``inv --list`` wall time against ``python -c pass``, same interpreter.

    .venv/bin/python bench/cli.py [--runs 15]

Target (issue #2): ``inv --list`` at most 250 ms above the bare interpreter (median).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def wall(argv: list[str]) -> float:
    began = time.perf_counter()
    subprocess.run(argv, cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    bare = [sys.executable, "-c", "pass"]
    listing = [sys.executable, "-m", "invoke", "--list"]
    wall(bare), wall(listing)  # warm bytecode caches
    base, inv = [], []
    for _ in range(args.runs):
        base.append(wall(bare))
        inv.append(wall(listing))
    base.sort(), inv.sort()
    b, i = base[len(base) // 2], inv[len(inv) // 2]
    print(f"CLI start-up, {args.runs} runs each, median")
    print(f"  python -c pass:   {b * 1000:7.1f} ms")
    print(f"  inv --list:       {i * 1000:7.1f} ms")
    print(f"  above baseline:   {(i - b) * 1000:7.1f} ms  ({i / b:.1f}x)")
    print(f"  target <= 250 ms above: {'OK' if i - b <= 0.250 else 'ABOVE TARGET'}")


if __name__ == "__main__":
    main()
