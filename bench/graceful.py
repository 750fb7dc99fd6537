"""Failed requests under load: ``inv graceful-restart`` against what an operator would do by hand
for the same reload, in alternating pairs in the same run.

Load: Debian's ``wrk`` POSTs a Claude Messages request carrying an EC2 id to nginx, so every
request crosses nginx → Kong (masking, Redis) → the upstream stand-in and back, with
``--connections`` keep-alive connections for ``--seconds`` per run. In each run the reload
happens once, in the middle of the load:

- **nginx**: ``nginx -s reload`` (the same binary, prefix and configuration opskit uses)
  against ``inv graceful-restart -s nginx`` (``nginx -t``, HUP, new workers verified);
- **kong**: the declarative file sent by ``curl -X POST /config`` against ``inv
  graceful-restart -s kong`` (the same ``POST /config``, then readiness and the hash
  verified). Before each run Kong is made to run other bytes (its own export), so both really
  reload.

The order alternates (by hand first, then opskit first). A failed request is a socket error
(connect/read/write/timeout) or a non-2xx answer, as wrk counts them.

    .venv/bin/python bench/graceful.py [--pairs 10] [--seconds 6] [--connections 4]

Target (issue #22): over ≥ 10 pairs, ``inv graceful-restart`` fails no more requests than the
reload by hand (totals compared).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import SANDBOX_STACK, cli_environ, inv_argv, sandbox_environ, verdict
from opskit.ops import lifecycle
from opskit.stack import load_stack

SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["x-api-key"] = "bench"
wrk.headers["anthropic-version"] = "2023-06-01"
wrk.body = '{"model":"claude-3-5-haiku-latest","max_tokens":16,' ..
  '"messages":[{"role":"user","content":"restart i-0123456789abcdef0 please"}]}'
"""


@dataclass
class Load:
    requests: int
    failed: int
    detail: str


def run_wrk(url: str, seconds: int, connections: int, script: Path) -> Load:
    argv = ["wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds}s", "-s", str(script), url]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    failed = (int(non_2xx.group(1)) if non_2xx else 0) + (
        sum(int(n) for n in errors.groups()) if errors else 0
    )
    detail = ", ".join(filter(None, [non_2xx and non_2xx.group(0), errors and errors.group(0)]))
    return Load(requests, failed, detail)


def under_load(action, url: str, args, script: Path) -> Load:
    """``action`` once, in the middle of a wrk run."""
    problems: list[str] = []

    def worker() -> None:
        time.sleep(args.seconds / 2)
        problem = action()
        if problem:
            problems.append(problem)

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    load = run_wrk(url, args.seconds, args.connections, script)
    thread.join()
    if problems:
        raise SystemExit(f"the reload failed: {problems[0]}")
    return load


def run(argv: list[str], env: dict[str, str] | None = None) -> str | None:
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    return None if done.returncode == 0 else f"{argv[0]}: exit {done.returncode}: {done.stderr}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=10)
    parser.add_argument("--seconds", type=int, default=6)
    parser.add_argument("--connections", type=int, default=4)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")

    environ = sandbox_environ()
    environ["OPSKIT_RUNTIME"] = "process"
    env = cli_environ(environ)
    stack = load_stack(SANDBOX_STACK, environ=environ)
    script = Path(tempfile.mkdtemp(prefix="opskit-wrk-")) / "messages.lua"
    script.write_text(SCRIPT)
    nginx, kong = stack.role("nginx"), stack.role("kong")
    url = nginx.entry_url("/v1/messages")
    assert lifecycle.start(stack).ok
    declarative = Path(script.parent / "kong.yml")
    declarative.write_text(kong.declarative_source())

    def nginx_by_hand() -> str | None:
        return run([nginx.binary, *nginx.nginx_args(), "-s", "reload"])

    def kong_by_hand() -> str | None:
        return run(
            [
                "curl", "-sf", "-o", "/dev/null", "-X", "POST", f"{kong.admin_url}/config",
                "-H", "Content-Type: text/yaml", "--data-binary", f"@{declarative}",
            ]
        )  # fmt: skip

    def ours(service: str):
        return lambda: run(inv_argv("graceful-restart", "-s", service), env)

    def kong_runs_other_bytes() -> None:
        kong.apply_config(kong.export_config())

    contenders = {
        "nginx": (("nginx -s reload", nginx_by_hand), ("inv graceful-restart", ours("nginx"))),
        "kong": (("curl POST /config", kong_by_hand), ("inv graceful-restart", ours("kong"))),
    }
    try:
        for service, pair in contenders.items():
            totals = {label: [0, 0] for label, _ in pair}
            runs: dict[str, list[str]] = {label: [] for label, _ in pair}
            for index in range(args.pairs):
                for label, action in pair if index % 2 == 0 else tuple(reversed(pair)):
                    if service == "kong":
                        kong_runs_other_bytes()
                    load = under_load(action, url, args, script)
                    totals[label][0] += load.requests
                    totals[label][1] += load.failed
                    runs[label].append(str(load.failed))
            print(
                f"{service}: {args.pairs} alternating pairs, wrk -c {args.connections} "
                f"-d {args.seconds}s, one reload in the middle of each run"
            )
            for label, (requests, failed) in totals.items():
                print(
                    f"  {label:22s} {requests:7d} requests, {failed:3d} failed "
                    f"(per run: {' '.join(runs[label])})"
                )
            (hand, (_, hand_failed)), (_, (_, our_failed)) = totals.items()
            print(
                f"  target: no more failed requests than {hand}: "
                f"{verdict(our_failed <= hand_failed)}",
                flush=True,
            )
    finally:
        lifecycle.stop(stack)
        shutil.rmtree(environ["OPSKIT_STATE_DIR"], ignore_errors=True)
        shutil.rmtree(script.parent, ignore_errors=True)  # holds a copy of Kong's config


if __name__ == "__main__":
    main()
