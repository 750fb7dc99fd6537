"""An isolated environment for the sandbox stack: free ports, a fresh password, its own state.

Tests and benchmarks run the sandbox beside any sandbox a developer already has running, so
every port comes from the kernel and the state directory is theirs alone.
"""

from __future__ import annotations

import os
import random
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
    "FRONT_PORT",
)


_ISSUED: set[int] = set()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now, outside the ephemeral range.

    ``bind(0)`` would hand out an ephemeral port — the range the kernel also draws from for
    outgoing connections, so a probe's client socket could take it before the service binds.
    Ports below that range are only ever taken on purpose.
    """
    low, _high = _ephemeral_range()
    for _ in range(200):
        port = random.randint(max(1024, low - 12000), low - 1)
        if port in _ISSUED:  # handed out already: its service may not have bound it yet
            continue
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            _ISSUED.add(port)
            return port
    raise RuntimeError("no free TCP port below the ephemeral range")


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def isolated_environ(state_dir: Path | str) -> dict[str, str]:
    """``os.environ`` plus free ports, a random Redis password and ``state_dir`` for the stack."""
    env = dict(os.environ)
    ports: set[int] = set()
    while len(ports) < len(PORT_VARIABLES):  # distinct: two services cannot share a host port
        ports.add(free_port())
    env.update({name: str(port) for name, port in zip(PORT_VARIABLES, sorted(ports), strict=True)})
    env.update(
        {
            "OPSKIT_STATE_DIR": str(state_dir),
            "OPSKIT_BACKUPS_DIR": str(Path(state_dir).parent / "backups"),
            "REDIS_PASSWORD": "sandbox-" + os.urandom(8).hex(),
            "OPSKIT_BACKUP_KEY": "sandbox-seal-" + os.urandom(16).hex(),
            "OPSKIT_STACK": str(STACK_FILE),
        }
    )
    env.pop("OPSKIT_RUNTIME", None)
    return env
