"""What a copy off the host costs, against what an operator would do by hand: ``restic backup``
of the same backup folder into a repository of the same kind.

One Redis holds ``--mb`` of incompressible values (a stored backup of about that size). Then:

1. **Copy vs restic by hand** — ``inv backup.copy ID`` (opens the repository, lists it, sends
   the folder, records the outcome) against ``restic backup <folder>`` run by hand, each into a
   fresh local repository, in alternating pairs (A then B, then B then A), medians.
2. **Deduplication** — 1 % of the keys get new values, ``inv backup`` takes a second backup,
   and ``inv backup.copy`` sends it to the repository that holds the first: what restic stores
   for the second, against its size. The same question is asked of the other way to store it
   (restic given the decompressed RDB instead of the stored zstd file), so the choice of
   storage is measured rather than assumed.

    .venv/bin/python bench/backup_copy.py [--mb 1024] [--pairs 3]

Target (issue #24): a copy of a 1 GB backup ≤ 1.2× ``restic backup`` of the same files by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.backup import inv, verdict  # noqa: E402
from sandbox.environment import free_port  # noqa: E402

VALUE = 1000  # bytes per key
PASSWORD = "bench-" + "p" * 20


def fill_random(client, keys: int, prefix: bytes = b"aws_masker:map:K") -> None:
    pipe = client.pipeline(transaction=False)
    for i in range(keys):
        pipe.set(prefix + b"%d" % i, os.urandom(VALUE))
        if i % 2000 == 1999:
            pipe.execute()
    pipe.execute()


def restic(repo: Path, *args: str, cwd: Path | None = None) -> str:
    env = {**os.environ, "RESTIC_REPOSITORY": str(repo), "RESTIC_PASSWORD": PASSWORD}
    return subprocess.run(
        ["restic", "-q", *args], env=env, cwd=cwd, capture_output=True, text=True, check=True
    ).stdout


def added(output: str) -> int:
    for line in reversed(output.splitlines()):
        if line.startswith("{") and '"summary"' in line:
            return int(json.loads(line)["data_added"])
    raise AssertionError("no restic summary")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=1024)
    parser.add_argument("--pairs", type=int, default=3)
    args = parser.parse_args()
    if not shutil.which("restic"):
        sys.exit("bench/backup_copy.py needs restic (apt install restic)")

    from opskit.ops import lifecycle
    from opskit.stack import load_stack

    work = Path(tempfile.mkdtemp(prefix="opskit-bench-copy-"))
    port, password = free_port(), "bench-" + os.urandom(8).hex()
    stack_file = work / "stack.yml"
    stack_file.write_text(
        f'x-opskit: {{runtime: process, state_dir: "{work}/state", backups: {{dir: "{work}/b", '
        f'copies: [{{name: bench, repository: "{work}/ours", password_from: BENCH_PW}}]}}}}\n'
        f'services:\n  redis:\n    image: redis:7\n    ports: ["{port}:6379"]\n'
        f'    x-opskit: {{role: redis, password: "{password}", start_timeout: 300s, '
        f'config: {{save: ""}}}}\n'
    )
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(work),
        "OPSKIT_BACKUP_KEY": "bench-" + os.urandom(16).hex(),
        "OPSKIT_STACK": str(stack_file),
        "BENCH_PW": PASSWORD,
    }
    stack = load_stack(stack_file, environ=env)
    assert lifecycle.start(stack).ok
    keys = args.mb * 2**20 // VALUE
    try:
        client = stack.role("redis").client(timeout=120)
        fill_random(client, keys)
        # Redis grows its key table while it is filled and moves keys to the bigger one a
        # millisecond per tick afterwards: until that ends, two RDBs of the same data list the
        # keys in other orders. A stack that has run for a while is past it.
        time.sleep(10)
        _took, _rss, out = inv(env, "backup", "--no-copy")
        backup_id = out.split("backup ", 1)[1].split(":", 1)[0]
        folder = stack.config.backups_dir / backup_id
        size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        print(f"{keys} keys; backup {backup_id}: {size / 2**20:.0f} MiB stored")

        # 1. the copy against restic by hand, each into a fresh local repository
        seconds: dict[str, list[float]] = {"inv backup.copy": [], "restic backup by hand": []}
        for pair in range(args.pairs):
            kinds = list(seconds) if pair % 2 == 0 else list(reversed(seconds))
            for kind in kinds:
                repo = work / "ours" if kind == "inv backup.copy" else work / "by-hand"
                shutil.rmtree(repo, ignore_errors=True)
                shutil.rmtree(stack.state_dir / "restic-cache", ignore_errors=True)
                restic(repo, "init")
                (stack.state_dir / "backup-copies.json").unlink(missing_ok=True)
                began = time.perf_counter()
                if kind == "inv backup.copy":
                    took, _rss, _out = inv(env, "backup.copy", backup_id)
                else:
                    restic(repo, "backup", "--json", backup_id, cwd=folder.parent)
                    took = time.perf_counter() - began
                seconds[kind].append(took)
        ours, theirs = (statistics.median(v) for v in seconds.values())
        for kind, values in seconds.items():
            spread = f"{min(values):.2f}–{max(values):.2f} s"
            print(f"  {kind:<24} {statistics.median(values):6.2f} s (range {spread})")
        ratio = ours / theirs
        print(f"  copy / by hand = {ratio:.2f}×; target ≤ 1.2×: {verdict(ratio <= 1.2)}")

        # 2. deduplication: a backup of the same data, then one after 1 % of the keys changed,
        # each sent to the repository that holds the first
        _took, _rss, out = inv(env, "backup", "--no-copy")
        same = out.split("backup ", 1)[1].split(":", 1)[0]
        _took, _rss, out = inv(env, "backup.copy", same, "--json")
        sent = next(c for c in json.loads(out)["copies"] if c["id"] == same)
        print(
            f"  a second backup of unchanged data: restic stored {sent['added'] / 2**20:.1f} MiB "
            f"of {sent['size'] / 2**20:.0f} MiB ({sent['added'] / sent['size']:.1%})"
        )
        changed = max(1, keys // 100)
        pipe = client.pipeline(transaction=False)
        for i in range(0, keys, keys // changed):
            pipe.set(b"aws_masker:map:K%d" % i, os.urandom(VALUE))
        pipe.execute()
        client.close()
        _took, _rss, out = inv(env, "backup", "--no-copy")
        second = out.split("backup ", 1)[1].split(":", 1)[0]
        _took, _rss, out = inv(env, "backup.copy", second, "--json")
        report = json.loads(out)
        sent = next(c for c in report["copies"] if c["id"] == second)
        share = sent["added"] / sent["size"]
        print(
            f"  second copy after {changed} keys (1 %) changed: restic stored "
            f"{sent['added'] / 2**20:.0f} MiB of {sent['size'] / 2**20:.0f} MiB ({share:.0%})"
        )

        # the other storage, measured: restic given the decompressed RDBs
        raw_repo = work / "raw"
        restic(raw_repo, "init")
        shares = []
        for backup in (backup_id, same, second):
            raw = work / "raw-src"
            shutil.rmtree(raw, ignore_errors=True)
            raw.mkdir()
            stored = next((stack.config.backups_dir / backup / "redis").glob("*.rdb.zst"))
            subprocess.run(
                ["zstd", "-q", "-d", str(stored), "-o", str(raw / "dump.rdb")], check=True
            )
            out = restic(raw_repo, "backup", "--json", "raw-src", cwd=work)
            shares.append(added(out) / (raw / "dump.rdb").stat().st_size)
        print(
            f"  the same with restic given the decompressed RDB: unchanged data stored "
            f"{shares[1]:.1%}, after 1 % changed {shares[2]:.0%} of its size"
        )
        saves = share < 0.9 or shares[2] < 0.9
        print(
            "  dedup after 1 % of the keys changed: "
            + (
                f"saves (zstd as stored {1 - share:.0%}, decompressed {1 - shares[2]:.0%})"
                if saves
                else f"saves nothing with either storage (zstd as stored {1 - share:.0%}, "
                f"decompressed {1 - shares[2]:.0%}): changes spread over the keyspace touch "
                "nearly every restic chunk (about 1 MiB, a thousand keys or more)"
            )
        )
    finally:
        lifecycle.stop(stack)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
