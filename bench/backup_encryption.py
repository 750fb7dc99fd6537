"""What encryption at rest costs ``inv backup``: the same Redis backed up by the same command,
plain and encrypted to an age recipient, in alternating pairs in the same run (A then B, then B
then A), medians; and the encrypted backup's peak RSS.

Two stack files name one Redis (one state dir): one without ``backups.encrypt_to``, one with.

    .venv/bin/python bench/backup_encryption.py [--keys 500000] [--pairs 5]

Targets (issue #24): encryption adds ≤ 10 % to ``inv backup``; peak RSS ≤ 100 MiB.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.backup import fill, inv, verdict  # noqa: E402
from sandbox.environment import free_port  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=500_000)
    parser.add_argument("--pairs", type=int, default=5)
    args = parser.parse_args()

    from pyrage import x25519

    from opskit.ops import lifecycle
    from opskit.stack import load_stack

    work = Path(tempfile.mkdtemp(prefix="opskit-bench-encryption-"))
    port, password = free_port(), "bench-" + os.urandom(8).hex()
    recipient = x25519.Identity.generate().to_public()
    service = (
        f'services:\n  redis:\n    image: redis:7\n    ports: ["{port}:6379"]\n'
        f'    x-opskit: {{role: redis, password: "{password}", start_timeout: 300s, '
        f'config: {{save: ""}}}}\n'
    )
    state = f'runtime: process, state_dir: "{work}/state"'
    plain, encrypted = work / "plain.yml", work / "encrypted.yml"
    plain.write_text(f'x-opskit: {{{state}, backups: {{dir: "{work}/b"}}}}\n' + service)
    encrypted.write_text(
        f'x-opskit: {{{state}, backups: {{dir: "{work}/b", encrypt_to: ["{recipient}"]}}}}\n'
        + service
    )
    base = {
        "PATH": os.environ["PATH"],
        "HOME": str(work),
        "OPSKIT_BACKUP_KEY": "bench-" + os.urandom(16).hex(),
    }
    envs = {"plain": {**base, "OPSKIT_STACK": str(plain)}}
    envs["encrypted"] = {**base, "OPSKIT_STACK": str(encrypted)}
    stack = load_stack(plain, environ=envs["plain"])
    assert lifecycle.start(stack).ok
    try:
        client = stack.role("redis").client(timeout=60)
        fill(client, args.keys)
        memory = client.info("memory")["used_memory"] / 2**30
        client.close()
        print(f"{args.keys} keys, used_memory {memory:.2f} GiB; {args.pairs} pairs, alternating")
        seconds: dict[str, list[float]] = {"plain": [], "encrypted": []}
        rss: list[float] = []
        for pair in range(args.pairs):
            order = ("plain", "encrypted") if pair % 2 == 0 else ("encrypted", "plain")
            for kind in order:
                took, peak, _ = inv(envs[kind], "backup")
                seconds[kind].append(took)
                if kind == "encrypted":
                    rss.append(peak)
        plain_s, enc_s = (
            statistics.median(seconds["plain"]),
            statistics.median(seconds["encrypted"]),
        )
        ratio = enc_s / plain_s
        spread = {k: f"{min(v):.2f}–{max(v):.2f} s" for k, v in seconds.items()}
        print(f"  inv backup, plain      {plain_s:.2f} s (range {spread['plain']})")
        print(f"  inv backup, encrypted  {enc_s:.2f} s (range {spread['encrypted']})")
        print(
            f"  encryption adds {100 * (ratio - 1):+.1f} %; "
            f"target ≤ +10 %: {verdict(ratio <= 1.10)}"
        )
        peak = max(rss)
        print(
            f"  peak RSS, encrypted backup {peak:.0f} MiB; target ≤ 100 MiB: {verdict(peak <= 100)}"
        )
    finally:
        lifecycle.stop(stack)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
