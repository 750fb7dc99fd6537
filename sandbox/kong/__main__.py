"""``python -m sandbox.kong``: run the Kong stand-in's three listeners in one process.

Reads the variables real Kong reads: KONG_PROXY_LISTEN, KONG_ADMIN_LISTEN, KONG_STATUS_LISTEN
(``host:port``), KONG_DECLARATIVE_CONFIG, KONG_DATABASE (must be ``off``), and the plugin's
REDIS_HOST / REDIS_PORT / REDIS_PASSWORD / REDIS_DB.

Signals as Kong's nginx: SIGQUIT stops accepting and drains in-flight requests, SIGTERM and
SIGINT stop fast, SIGHUP re-reads the declarative file (a bad file keeps the old config).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys

import uvicorn

from sandbox.kong import declarative
from sandbox.kong.app import Gateway, admin_app, proxy_app, status_app
from sandbox.kong.masker import Masker


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self):  # signals are ours, handled below for all three listeners
        yield


def _listen(name: str, default: str) -> tuple[str, int]:
    value = os.environ.get(name, default).split()[0]
    host, _, port = value.rpartition(":")
    return host or "127.0.0.1", int(port)


async def main() -> None:
    if os.environ.get("KONG_DATABASE", "off") != "off":
        sys.exit("kong stand-in: only KONG_DATABASE=off (DB-less) is supported")
    masker = Masker(
        os.environ.get("REDIS_HOST", "127.0.0.1"),
        int(os.environ.get("REDIS_PORT", "6379")),
        os.environ.get("REDIS_PASSWORD"),
        int(os.environ.get("REDIS_DB", "0")),
    )
    gateway = Gateway(os.environ.get("KONG_DECLARATIVE_CONFIG") or None, masker)
    prefix = os.environ.get("KONG_PREFIX")
    if prefix:  # where the kong CLI looks for the running gateway, as real Kong's nginx.pid
        pids = os.path.join(prefix, "pids")
        os.makedirs(pids, exist_ok=True)
        with open(os.path.join(pids, "nginx.pid"), "w") as handle:
            handle.write(f"{os.getpid()}\n")
    servers = []
    for app, variable, default in (
        (proxy_app(gateway), "KONG_PROXY_LISTEN", "127.0.0.1:8000"),
        (admin_app(gateway), "KONG_ADMIN_LISTEN", "127.0.0.1:8001"),
        (status_app(gateway), "KONG_STATUS_LISTEN", "127.0.0.1:8007"),  # row 13
    ):
        host, port = _listen(variable, default)
        config = uvicorn.Config(
            app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=30
        )
        servers.append(_Server(config))

    loop = asyncio.get_running_loop()

    def quit_gracefully() -> None:
        print("[notice] SIGQUIT: draining in-flight requests", file=sys.stderr, flush=True)
        for server in servers:
            server.should_exit = True

    def stop_fast() -> None:
        for server in servers:
            server.should_exit = server.force_exit = True

    def reload() -> None:
        try:
            gateway.reload()
            print(f"[notice] SIGHUP: reloaded, hash {gateway.config.hash}", file=sys.stderr)
        except (OSError, declarative.InvalidConfig) as exc:
            print(f"[error] SIGHUP: reload failed, keeping old config: {exc}", file=sys.stderr)

    loop.add_signal_handler(signal.SIGQUIT, quit_gracefully)
    loop.add_signal_handler(signal.SIGTERM, stop_fast)
    loop.add_signal_handler(signal.SIGINT, stop_fast)
    loop.add_signal_handler(signal.SIGHUP, reload)
    try:
        await asyncio.gather(*(server.serve() for server in servers))
    finally:
        await gateway.client.aclose()
        await masker.close()


if __name__ == "__main__":
    asyncio.run(main())
