"""Is a TCP port free, and if not, who holds it?"""

from __future__ import annotations

import errno
import socket


def port_is_free(port: int, host: str = "") -> bool:
    """True when a listener could bind ``host:port`` now (SO_REUSEADDR, as servers do)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def port_holder(port: int) -> str | None:
    """``"pid 123 (redis-server)"`` for the process listening on ``port``, when psutil can tell.

    Reading other users' sockets needs privileges; without them this returns None and the
    caller says only that the port is taken.
    """
    import psutil

    try:
        connections = psutil.net_connections(kind="tcp")
    except (psutil.AccessDenied, PermissionError):
        return None
    for conn in connections:
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
            if conn.pid is None:
                return None
            try:
                name = psutil.Process(conn.pid).name()
            except psutil.Error:
                name = "?"
            return f"pid {conn.pid} ({name})"
    return None


def describe_taken_port(port: int, service: str) -> str:
    holder = port_holder(port)
    who = f"held by {holder}" if holder else "held by another process"
    return f"{service}: port {port} is already in use, {who}"


def free_loopback_port() -> int:
    """A port the kernel says is free on 127.0.0.1 now, for a throwaway server started at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
