"""Backup, validate and restore on a large Redis against what an operator would do by hand,
in alternating pairs in the same run, every target printed with its verdict.

The bench starts a redis role through opskit (process runtime, a temp stack), fills it with
``--keys`` aws_masker:map: keys of 512 bytes of hex text (≈ 1.3 GB of memory at 2.2 M keys),
sets ``repl-diskless-sync-delay 0`` (so ``redis-cli --rdb`` does not wait 5 s it would not
wait in practice), then runs ``--pairs`` pairs, the order alternating (A first, then B first):

- **backup**: ``inv backup`` against ``redis-cli --rdb dump.rdb && sha256sum && zstd -T0``;
  opskit's peak RSS (``ru_maxrss``) too.
- **validate**: ``inv backup.validate ID`` against ``zstd -d`` + ``redis-check-rdb`` (what an
  operator does with a compressed backup) and against ``redis-check-rdb`` on the raw RDB.
- **restore**: ``inv restore ID --yes`` against an operator's careful restore by hand: a safety
  copy (``redis-cli --rdb``), ``SHUTDOWN NOSAVE``, ``zstd -d`` into the data dir, redis-server
  started by hand with the same configuration, waited for until it answers PING. For both,
  **Redis's downtime** is measured by a PING loop in another process (the longest run of
  failed PINGs), and the total wall time.

Medians of the pairs. Targets (issue #21): backup ≥ 1.0× the baseline's throughput; validate
≤ 1.0× zstd -d + redis-check-rdb and ≤ 1.2× redis-check-rdb; restore downtime ≤ 1.0× by hand;
restore total ≤ 1.0× the careful restore by hand; peak RSS ≤ 100 MiB for backup and restore.

    .venv/bin/python bench/backup.py [--keys 2200000] [--pairs 3]
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

from sandbox.environment import free_port  # noqa: E402

VALUE = 512
BATCH = 20_000
PING_LOOP = """
import socket, sys, time
port, out = int(sys.argv[1]), sys.argv[2]
down_since, longest = None, 0.0
auth = b"*2\\r\\n$4\\r\\nAUTH\\r\\n$%d\\r\\n%s\\r\\n" % (len(sys.argv[3]), sys.argv[3].encode())
while True:
    ok = False
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(auth + b"*1\\r\\n$4\\r\\nPING\\r\\n")
            reply = b""
            while reply.count(b"\\r\\n") < 2:  # AUTH's reply, then PING's
                chunk = s.recv(64)
                if not chunk:
                    break
                reply += chunk
            ok = b"PONG" in reply
    except OSError:
        pass
    now = time.monotonic()
    if ok and down_since is not None:
        longest = max(longest, now - down_since)
        down_since = None
        open(out, "w").write(str(longest))
    elif not ok and down_since is None:
        down_since = now
    time.sleep(0.005)
"""


def timed(argv: list[str], env: dict) -> tuple[float, float, str]:
    """Wall seconds, peak RSS in MiB, and stdout of one command."""
    began = time.perf_counter()
    process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _pid, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - began
    out, err = process.stdout.read().decode(), process.stderr.read().decode()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(argv[:6])} failed: {err[-800:]}")
    return seconds, usage.ru_maxrss / 1024, out


def inv(env: dict, *args: str) -> tuple[float, float, str]:
    return timed([sys.executable, "-m", "invoke", "--search-root", str(REPO), *args], env)


def fill(client, keys: int) -> None:
    pool = os.urandom(1 << 22).hex().encode()  # 8 MiB of hex text to slice values from
    pipe = client.pipeline(transaction=False)
    for i in range(keys):
        offset = (i * 7919) % (len(pool) - VALUE)
        pipe.set(b"aws_masker:map:K%d" % i, pool[offset : offset + VALUE])
        if i % BATCH == BATCH - 1:
            pipe.execute()
    pipe.execute()


class Downtime:
    """The longest stretch of failed PINGs while the block runs, from another process."""

    def __init__(self, port: int, password: str, folder: Path):
        self.out = folder / f"downtime-{time.monotonic_ns()}"
        self.args = [sys.executable, "-c", PING_LOOP, str(port), str(self.out), password]

    def __enter__(self) -> Downtime:
        self.process = subprocess.Popen(self.args)
        time.sleep(0.2)
        return self

    def __exit__(self, *_exc) -> None:
        deadline = time.monotonic() + 5  # the loop's own PONG ends the gap it measures
        while not self.out.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        self.process.kill()
        self.process.wait()

    @property
    def seconds(self) -> float:
        return float(self.out.read_text()) if self.out.exists() else 0.0


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=2_200_000)
    parser.add_argument("--pairs", type=int, default=3)
    args = parser.parse_args()
    for tool in ("redis-cli", "redis-check-rdb", "zstd", "sha256sum", "redis-server"):
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
    env = {
        "PATH": os.environ["PATH"],
        "OPSKIT_STACK": str(stack_file),
        "HOME": str(work),
        "OPSKIT_BACKUP_KEY": "bench-" + os.urandom(16).hex(),
    }
    cli_env = {**env, "REDISCLI_AUTH": password}  # never in argv
    stack = load_stack(stack_file, environ=env)
    role = stack.role("redis")
    assert lifecycle.start(stack).ok
    hand_server = None
    try:
        client = role.client(timeout=60)
        began = time.perf_counter()
        fill(client, args.keys)
        memory = client.info("memory")["used_memory"] / 2**30
        print(
            f"filled {args.keys} keys, used_memory {memory:.2f} GiB in "
            f"{time.perf_counter() - began:.1f}s; {args.pairs} pairs, order alternating"
        )
        client.config_set("repl-diskless-sync-delay", 0)
        hand = work / "hand"
        hand.mkdir()
        rdb = hand / "dump.rdb"
        data_rdb = role.data_dir / "dump.rdb"
        rows: dict[str, list[float]] = {}

        def note(name: str, value: float) -> None:
            rows.setdefault(name, []).append(value)

        def by_hand_backup() -> None:
            seconds, _rss, _ = timed(
                [
                    "sh",
                    "-c",
                    f"redis-cli -p {port} --rdb {rdb} >/dev/null && sha256sum {rdb} "
                    f">/dev/null && zstd -q -T0 -f {rdb} -o {rdb}.zst",
                ],
                cli_env,
            )
            note("backup by hand", seconds)

        backup_ids: list[str] = []

        def our_backup() -> None:
            seconds, rss, out = inv(env, "backup", "--json")
            backup_ids.append(json.loads(out)["id"])
            note("backup opskit", seconds)
            note("backup rss", rss)

        def our_restore() -> None:
            with Downtime(port, password, work) as down:
                seconds, rss, _ = inv(env, "restore", backup_ids[-1], "--yes")
            note("restore opskit", seconds)
            note("restore rss", rss)
            note("downtime opskit", down.seconds)

        def by_hand_restore() -> None:
            nonlocal hand_server
            config = role.render_config()
            with Downtime(port, password, work) as down:
                began = time.perf_counter()
                subprocess.run(  # the safety copy a careful operator takes first
                    ["redis-cli", "-p", str(port), "--rdb", str(hand / "safety.rdb")],
                    env=cli_env,
                    check=True,
                    capture_output=True,
                )
                subprocess.run(
                    ["redis-cli", "-p", str(port), "SHUTDOWN", "NOSAVE"],
                    env=cli_env,
                    capture_output=True,
                )
                role.unit.wait_stopped(60)
                subprocess.run(
                    ["zstd", "-q", "-d", "-f", f"{rdb}.zst", "-o", str(data_rdb)], check=True
                )
                hand_server = subprocess.Popen(
                    ["redis-server", "-"],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.DEVNULL,
                    start_new_session=True,
                )
                hand_server.stdin.write(config.encode())
                hand_server.stdin.close()
                while (
                    subprocess.run(
                        ["redis-cli", "-p", str(port), "PING"],
                        env=cli_env,
                        capture_output=True,
                        text=True,
                    ).stdout.strip()
                    != "PONG"
                ):
                    time.sleep(0.005)
                seconds = time.perf_counter() - began
            note("restore by hand", seconds)
            note("downtime by hand", down.seconds)
            # Back under opskit for the next run (not timed).
            subprocess.run(
                ["redis-cli", "-p", str(port), "SHUTDOWN", "SAVE"],
                env=cli_env,
                capture_output=True,
            )
            hand_server.wait(120)
            hand_server = None
            assert lifecycle.start(stack).ok

        for pair in range(args.pairs):
            first, second = (
                (our_backup, by_hand_backup) if pair % 2 == 0 else (by_hand_backup, our_backup)
            )
            first()
            second()
            validate_runs = [
                ("validate opskit", lambda: inv(env, "backup.validate", backup_ids[-1])[0]),
                (
                    "validate zstd -d + redis-check-rdb",
                    lambda: timed(
                        [
                            "sh",
                            "-c",
                            f"zstd -q -d -f {rdb}.zst -o {rdb}.check && redis-check-rdb "
                            f"{rdb}.check >/dev/null",
                        ],
                        env,
                    )[0],
                ),
                (
                    "validate redis-check-rdb raw",
                    lambda: timed(["redis-check-rdb", str(rdb)], env)[0],
                ),
            ]
            for name, run in validate_runs if pair % 2 == 0 else validate_runs[::-1]:
                note(name, run())
            first, second = (
                (our_restore, by_hand_restore) if pair % 2 == 0 else (by_hand_restore, our_restore)
            )
            first()
            second()
            keys = role.client(timeout=60).dbsize()
            assert keys == args.keys, f"after pair {pair + 1}: {keys} keys, expected {args.keys}"
            print(
                f"pair {pair + 1}: " + ", ".join(f"{k} {v[-1]:.2f}" for k, v in rows.items()),
                flush=True,
            )

        m = {name: statistics.median(values) for name, values in rows.items()}
        size = rdb.stat().st_size / 2**20
        print(f"\nRDB {size / 1024:.2f} GiB; medians of {args.pairs} pairs:")
        ratio = m["backup by hand"] / m["backup opskit"]
        print(
            f"backup    opskit {m['backup opskit']:6.2f}s  by hand {m['backup by hand']:6.2f}s"
            f"  throughput ratio {ratio:.2f}× (target ≥ 1.0: {verdict(ratio >= 1.0)})"
        )
        v = m["validate opskit"]
        r1 = v / m["validate zstd -d + redis-check-rdb"]
        r2 = v / m["validate redis-check-rdb raw"]
        print(
            f"validate  opskit {v:6.2f}s  zstd -d + redis-check-rdb "
            f"{m['validate zstd -d + redis-check-rdb']:6.2f}s → {r1:.2f}× (target ≤ 1.0: "
            f"{verdict(r1 <= 1.0)}); redis-check-rdb raw {m['validate redis-check-rdb raw']:.2f}s"
            f" → {r2:.2f}× (target ≤ 1.2: {verdict(r2 <= 1.2)})"
        )
        d = m["downtime opskit"] / m["downtime by hand"]
        print(
            f"downtime  opskit {m['downtime opskit']:6.2f}s  by hand {m['downtime by hand']:6.2f}s"
            f"  → {d:.2f}× (target ≤ 1.0: {verdict(d <= 1.0)})"
        )
        t = m["restore opskit"] / m["restore by hand"]
        print(
            f"restore   opskit {m['restore opskit']:6.2f}s  careful by hand "
            f"{m['restore by hand']:6.2f}s → {t:.2f}× (target ≤ 1.0: {verdict(t <= 1.0)})"
        )
        peak = max(max(rows["backup rss"]), max(rows["restore rss"]))
        print(
            f"peak RSS  backup {max(rows['backup rss']):.0f} MiB, restore "
            f"{max(rows['restore rss']):.0f} MiB (target ≤ 100: {verdict(peak <= 100)})"
        )
    finally:
        if hand_server is not None:
            hand_server.kill()
        lifecycle.stop(stack)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
