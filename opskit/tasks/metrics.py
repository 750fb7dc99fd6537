"""Task metrics: the stack's state as Prometheus metrics.

``inv metrics`` prints the exposition once; ``--textfile PATH`` writes it atomically for
node_exporter's textfile collector (cron: every minute); ``--serve PORT`` serves ``/metrics``
on 127.0.0.1 (``--bind`` to change), with a masking-events subscription counting as it goes.

Exit codes: 0 written or served until SIGTERM/Ctrl-C · 1 could not write or bind · 2 usage.
"""

from __future__ import annotations

import sys
import threading

from invoke import task

from opskit.errors import OpskitError, UsageError
from opskit.tasks import common


@task(
    klass=common.OpskitTask,
    help={
        "stack": common.COMMON_HELP["stack"],
        "runtime": common.COMMON_HELP["runtime"],
        "textfile": "write to this .prom file atomically (node_exporter textfile collector)",
        "serve": "serve /metrics on this port until SIGTERM",
        "bind": "address to serve on (default 127.0.0.1: loopback only)",
        "cache_ttl": "seconds scrapes share one health pass (default: x-opskit.metrics.cache_ttl)",
    },
)
@common.handles_errors
def metrics(
    c, textfile=None, serve=None, bind="127.0.0.1", cache_ttl=None, stack=None, runtime=None
):
    """Prometheus metrics: services, health checks, Redis, nginx, Kong, backups, recovery."""
    from opskit.exposition import registry_for
    from opskit.ops import metrics as ops_metrics

    if textfile and serve:
        raise UsageError("--textfile and --serve: choose one")
    loaded = common.load(c, stack, runtime)
    if serve is None:
        registry = registry_for(lambda: ops_metrics.gather(loaded))
        if textfile:
            _write_textfile(textfile, registry)
        else:
            from prometheus_client import generate_latest

            sys.stdout.write(generate_latest(registry).decode())
        return
    port = _port(serve)
    ttl = loaded.config.metrics.cache_ttl
    if cache_ttl is not None:
        ttl = common.seconds_option("cache-ttl", cache_ttl) or ttl
    _serve(loaded, bind, port, ttl)


def _write_textfile(path: str, registry) -> None:
    from prometheus_client import write_to_textfile

    if not path.endswith(".prom"):
        raise UsageError(f"--textfile: node_exporter reads only *.prom files, got {path!r}")
    try:
        write_to_textfile(path, registry)
    except OSError as exc:
        raise OpskitError(f"--textfile {path}: {exc.strerror or exc}") from None


def _serve(loaded, bind: str, port: int, ttl: float) -> None:
    from prometheus_client import start_http_server

    from opskit.exposition import registry_for
    from opskit.ops import events as ops_events
    from opskit.ops import metrics as ops_metrics

    counts = ops_metrics.EventCounts()
    cached = ops_metrics.CachedGather(loaded, ttl, counts)
    stop = threading.Event()
    try:
        server, _thread = start_http_server(port, addr=bind, registry=registry_for(cached))
    except OSError as exc:
        raise OpskitError(f"cannot serve metrics on {bind}:{port}: {exc.strerror or exc}") from None

    def subscribed() -> None:
        counts.subscribed = True

    def lost(_reason: str) -> None:
        counts.subscribed = False

    def count_events() -> None:
        try:
            for message in ops_events.subscribe(
                loaded, stop=stop, on_subscribed=subscribed, on_reconnect=lost
            ):
                counts.add(message.events)
        except OpskitError as exc:
            counts.subscribed = False
            print(f"opskit: masking events not counted: {exc}", file=sys.stderr, flush=True)

    threading.Thread(target=count_events, daemon=True).start()
    print(f"serving http://{bind}:{port}/metrics (cache {ttl:g}s)", flush=True)
    try:
        with common.finishing_on_signals() as signalled:
            signalled.wait()
    finally:
        stop.set()
        server.shutdown()


def _port(value: object) -> int:
    try:
        port = int(value)
    except (TypeError, ValueError):
        port = -1
    if not 0 < port < 65536:
        raise UsageError(f"--serve: expected a TCP port (1-65535), got {value!r}")
    return port


COLLECTIONS = [common.collection("metrics", metrics)]
