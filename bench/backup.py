"""Backup, validate and restore speed on a Redis holding more than 1 GB, against the tools an
operator would otherwise use, in the same run.

The bench starts a redis role through opskit (process runtime, a temp stack), fills it with
``--keys`` aws_masker:map: keys of 512 bytes of hex text (≈ 1.3 GB of memory at the default),
then measures, as an operator would type them:

- **backup**: ``inv backup`` against ``redis-cli --rdb dump.rdb && sha256sum dump.rdb && zstd
  dump.rdb`` (the remote copy over the replication protocol, a checksum, compression).
  opskit's peak RSS (``ru_maxrss`` of its process) is reported too: it streams, so it stays
  far below the dump's size.
- **validate**: ``inv backup.validate ID`` (SHA-256 of every file, zstd, RDB CRC-64, key counts)
  against ``redis-check-rdb dump.rdb``.
- **restore**: ``inv restore ID --yes`` (validate, safety backup, stop, place, start, verify)
  against by hand: ``redis-cli SHUTDOWN NOSAVE``, ``zstd -d`` into the data dir, ``inv start``.

    .venv/bin/python bench/backup.py [--keys 2200000]

Targets (issue #10): backup throughput ≥ 1.0× the baseline; validate ≥ 1.0× redis-check-rdb;
restore overhead ≤ 1 s over by hand; peak memory ≤ 100 MiB.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sandbox.environment import free_port  # noqa: E402

VALUE = 512
BATCH = 20_000


def timed_inv(env: dict, *args: str) -> tuple[float, float, str]:
    """``inv ARGS`` in a child; wall seconds, its peak RSS in MiB, and its output."""
    argv = [sys.executable, "-m", "invoke", "--search-root", str(REPO), *args]
    began = time.perf_counter()
    process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _pid, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - began
    out, err = process.stdout.read().decode(), process.stderr.read().decode()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"inv {' '.join(args)} failed: {err[-800:]}")
    return seconds, usage.ru_maxrss / 1024, out


def fill(client, keys: int) -> None:
    pool = os.urandom(1 << 22).hex().encode()  # 8 MiB of hex text to slice values from
    pipe = client.pipeline(transaction=False)
    for i in range(keys):
        offset = (i * 7919) % (len(pool) - VALUE)
        pipe.set(b"aws_masker:map:K%d" % i, pool[offset : offset + VALUE])
        if i % BATCH == BATCH - 1:
            pipe.execute()
    pipe.execute()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=2_200_000)
    args = parser.parse_args()
    for tool in ("redis-cli", "redis-check-rdb", "zstd", "sha256sum"):
        if not shutil.which(tool):
            raise SystemExit(f"bench needs {tool} on PATH (apt-get install redis-tools zstd)")

    from opskit.ops import lifecycle
    from opskit.stack import load_stack

    work = Path(tempfile.mkdtemp(prefix="opskit-bench-backup-"))
    port, password = free_port(), "bench-" + os.urandom(8).hex()
    stack_file = work / "stack.yml"
    stack_file.write_text(
        f'x-opskit: {{runtime: process, state_dir: "{work}/state", backups: {{dir: "{work}/b"}}}}\n'
        f'services:\n  redis:\n    image: redis:7\n    ports: ["{port}:6379"]\n'
        f"    stop_grace_period: 60s\n"
        f'    x-opskit: {{role: redis, password: "{password}", start_timeout: 300s, '
        f'config: {{save: ""}}}}\n'
    )
    env = {"PATH": os.environ["PATH"], "OPSKIT_STACK": str(stack_file), "HOME": str(work)}
    stack = load_stack(stack_file, environ=env)
    assert lifecycle.start(stack).ok
    try:
        client = stack.role("redis").client(timeout=60)
        began = time.perf_counter()
        fill(client, args.keys)
        memory = client.info("memory")["used_memory"]
        print(
            f"filled {args.keys} keys, used_memory {memory / 2**30:.2f} GiB "
            f"in {time.perf_counter() - began:.1f}s"
        )

        # -- backup ----------------------------------------------------------------------------
        hand_dir = work / "hand"
        hand_dir.mkdir()
        cli_env = {**env, "REDISCLI_AUTH": password}  # never in argv
        rdb = hand_dir / "dump.rdb"
        began = time.perf_counter()
        subprocess.run(
            ["redis-cli", "-p", str(port), "--rdb", str(rdb)],
            env=cli_env,
            check=True,
            capture_output=True,
        )
        subprocess.run(["sha256sum", str(rdb)], check=True, capture_output=True)
        subprocess.run(["zstd", "-q", "-f", str(rdb), "-o", f"{rdb}.zst"], check=True)
        hand_backup = time.perf_counter() - began
        rdb_size = rdb.stat().st_size

        ours_backup, backup_rss, out = timed_inv(env, "backup", "--json")
        backup_id = json.loads(out)["id"]
        print(f"RDB {rdb_size / 2**30:.2f} GiB")
        print(
            f"backup:   opskit {ours_backup:6.2f}s ({rdb_size / ours_backup / 2**20:5.0f} MiB/s)"
            f"  redis-cli --rdb + sha256sum + zstd {hand_backup:6.2f}s"
            f"  → throughput ratio {hand_backup / ours_backup:.2f}×  (target ≥ 1.0)"
        )
        print(f"          opskit peak RSS {backup_rss:.0f} MiB  (target ≤ 100)")

        # -- validate --------------------------------------------------------------------------
        ours_validate, validate_rss, _ = timed_inv(env, "backup.validate", backup_id)
        began = time.perf_counter()
        subprocess.run(["redis-check-rdb", str(rdb)], check=True, capture_output=True)
        hand_validate = time.perf_counter() - began
        print(
            f"validate: opskit {ours_validate:6.2f}s  redis-check-rdb {hand_validate:6.2f}s"
            f"  → ratio {hand_validate / ours_validate:.2f}×  (target ≥ 1.0); "
            f"peak RSS {validate_rss:.0f} MiB"
        )

        # -- restore ---------------------------------------------------------------------------
        data_rdb = stack.role("redis").data_dir / "dump.rdb"
        began = time.perf_counter()
        subprocess.run(
            ["redis-cli", "-p", str(port), "SHUTDOWN", "NOSAVE"], env=cli_env, capture_output=True
        )
        stack.role("redis").unit.wait_stopped(60)
        subprocess.run(["zstd", "-q", "-d", "-f", f"{rdb}.zst", "-o", str(data_rdb)], check=True)
        assert lifecycle.start(stack).ok
        hand_restore = time.perf_counter() - began

        ours_restore, restore_rss, out = timed_inv(env, "restore", backup_id, "--yes")
        print(
            f"restore:  opskit {ours_restore:6.2f}s  SHUTDOWN + zstd -d + start by hand "
            f"{hand_restore:6.2f}s  → overhead {ours_restore - hand_restore:+.2f}s "
            f"(target ≤ +1 s); peak RSS {restore_rss:.0f} MiB"
        )
        print(
            "          (opskit's restore also validates the backup and takes a safety backup "
            "of the data it replaces)"
        )
        keys = stack.role("redis").client(timeout=60).dbsize()
        assert keys == args.keys, f"restored {keys} keys, expected {args.keys}"
    finally:
        lifecycle.stop(stack)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
