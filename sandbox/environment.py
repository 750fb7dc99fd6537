"""An isolated environment for the sandbox stack: free ports, a fresh password, its own state.

Tests and benchmarks run the sandbox beside any sandbox a developer already has running, so
every port comes from the kernel and the state directory is theirs alone.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

STACK_FILE = Path(__file__).resolve().parent / "stack.yml"
PORT_VARIABLES = (
    "REDIS_PORT",
    "UPSTREAM_PORT",
    "NGINX_PROXY_PORT",
    "KONG_PROXY_PORT",
    "KONG_ADMIN_PORT",
    "KONG_STATUS_PORT",
    "BACKEND_PORT",
)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def isolated_environ(state_dir: Path | str) -> dict[str, str]:
    """``os.environ`` plus free ports, a random Redis password and ``state_dir`` for the stack."""
    env = dict(os.environ)
    env.update({name: str(free_port()) for name in PORT_VARIABLES})
    env.update(
        {
            "OPSKIT_STATE_DIR": str(state_dir),
            "REDIS_PASSWORD": "sandbox-" + os.urandom(8).hex(),
            "OPSKIT_STACK": str(STACK_FILE),
        }
    )
    env.pop("OPSKIT_RUNTIME", None)
    return env
