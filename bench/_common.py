"""Helpers shared by the benchmarks: free ports, a private sandbox environment, medians."""

from __future__ import annotations

import os
import socket
import statistics
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SANDBOX_STACK = REPO / "sandbox" / "stack.yml"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def sandbox_environ() -> dict[str, str]:
    """The sandbox on free ports with a throw-away state dir, so a running sandbox is untouched."""
    env = dict(os.environ)
    env.update(
        {
            "OPSKIT_STATE_DIR": tempfile.mkdtemp(prefix="opskit-bench-"),
            "REDIS_PASSWORD": "bench-" + os.urandom(8).hex(),
            "REDIS_PORT": str(free_port()),
            "UPSTREAM_PORT": str(free_port()),
            "NGINX_PROXY_PORT": str(free_port()),
            "KONG_PROXY_PORT": str(free_port()),
            "KONG_ADMIN_PORT": str(free_port()),
            "KONG_STATUS_PORT": str(free_port()),
            "BACKEND_PORT": str(free_port()),
        }
    )
    env.pop("OPSKIT_RUNTIME", None)
    return env


def median(values: list[float]) -> float:
    return statistics.median(values)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:7.1f} ms"
