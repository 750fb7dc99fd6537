"""Failed requests and p99 under load: graceful-restart against a plain restart, same run.

Load: Debian's ``wrk`` POSTs a Claude Messages request carrying an EC2 id to nginx, so every
request crosses nginx → Kong (masking, Redis) → the upstream stand-in and back: ``--connections``
connections (default 4, which the Python stand-ins serve at a few hundred requests/s on
loopback) for ``--seconds`` (default 20). For the backend the load enters one hop earlier:
``POST /analyze`` through the ``front`` nginx, so each request crosses front → backend → nginx
→ Kong → upstream. For each of nginx, Kong and the backend, in this order:

- **baseline** — the load alone;
- **graceful** — ``graceful_restart`` of the service three times during the load (for Kong,
  each preceded by a ``POST /config`` of its export, so that both are real reloads: Kong runs
  other bytes than its file, and the graceful restart loads the file again; for the backend,
  a relief instance takes its requests through the front while it restarts);
- **restart** — ``lifecycle.restart`` of the service once during the load (what operators
  would otherwise run: ``inv restart -s nginx``, which also stops what depends on it).

A failed request is a socket error (connect/read/write/timeout) or a non-2xx answer, as wrk
counts them. Target (issue #12): 0 failed requests during graceful-restart.

    .venv/bin/python bench/graceful.py [--seconds 20] [--connections 4]
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

from bench._common import SANDBOX_STACK, sandbox_environ
from opskit.ops import lifecycle
from opskit.ops.graceful import graceful_restart
from opskit.stack import load_stack

SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["x-api-key"] = "bench"
wrk.headers["anthropic-version"] = "2023-06-01"
wrk.body = '{"model":"claude-3-5-haiku-latest","max_tokens":16,' ..
  '"messages":[{"role":"user","content":"restart i-0123456789abcdef0 please"}]}'
"""

BACKEND_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"text":"restart i-0123456789abcdef0 please"}'
"""


@dataclass
class Load:
    requests: int
    failed: int
    p99_ms: float
    detail: str


def run_wrk(url: str, seconds: int, connections: int, script: Path) -> Load:
    done = subprocess.run(
        [
            "wrk",
            "-t",
            "1",
            "-c",
            str(connections),
            "-d",
            f"{seconds}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    out = done.stdout
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    failed = (int(non_2xx.group(1)) if non_2xx else 0) + (
        sum(int(n) for n in errors.groups()) if errors else 0
    )
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    detail = ", ".join(filter(None, [non_2xx and non_2xx.group(0), errors and errors.group(0)]))
    return Load(requests, failed, float(p99.group(1)) * scale, detail)


def during(action, seconds: int, times: int) -> threading.Thread:
    """Run ``action`` ``times`` times, evenly spread inside the load."""

    def worker() -> None:
        for _ in range(times):
            time.sleep(seconds / (times + 1))
            action()

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    return thread


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--connections", type=int, default=4)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")

    env = sandbox_environ()
    env["OPSKIT_RUNTIME"] = "process"
    stack = load_stack(SANDBOX_STACK, environ=env)
    scripts = Path(tempfile.mkdtemp(prefix="opskit-wrk-"))
    (scripts / "messages.lua").write_text(SCRIPT)
    (scripts / "analyze.lua").write_text(BACKEND_SCRIPT)
    targets = {
        "nginx": (stack.role("nginx").entry_url("/v1/messages"), scripts / "messages.lua"),
        "kong": (stack.role("nginx").entry_url("/v1/messages"), scripts / "messages.lua"),
        "backend": (stack.role("front").entry_url("/analyze"), scripts / "analyze.lua"),
    }
    assert lifecycle.start(stack).ok
    outcomes: list[str] = []
    try:
        for service, (url, script) in targets.items():
            print(f"load: wrk -c {args.connections} -d {args.seconds}s POST {url}", flush=True)
            rows = []
            base = run_wrk(url, args.seconds, args.connections, script)
            rows.append(("baseline", base, ""))

            def graceful(name=service) -> None:
                if name == "kong":  # make Kong run other bytes, so the restart really reloads
                    kong = stack.role("kong")
                    kong.apply_config(kong.export_config())
                result = graceful_restart(stack, [name])
                outcomes.append(
                    f"{name}: {result.outcomes[0].state.value}: {result.outcomes[0].detail}"
                )

            thread = during(graceful, args.seconds, 3)
            load = run_wrk(url, args.seconds, args.connections, script)
            thread.join()
            rows.append(("graceful-restart ×3", load, ""))

            def plain(name=service) -> None:
                result = lifecycle.restart(stack, [name])
                assert result.ok, result.outcomes

            thread = during(plain, args.seconds, 1)
            load = run_wrk(url, args.seconds, args.connections, script)
            thread.join()
            rows.append(("inv restart ×1", load, ""))
            for label, load, _ in rows:
                print(
                    f"{service:7} {label:20} {load.requests:7d} requests  {load.failed:5d} failed"
                    f"  p99 {load.p99_ms:8.1f} ms  {load.detail}",
                    flush=True,
                )
    finally:
        lifecycle.stop(stack)
    for line in outcomes:
        print("  " + line)


if __name__ == "__main__":
    main()
