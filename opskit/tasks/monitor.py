"""Task monitor: a live view of the stack in the terminal (fine over SSH, 80 columns).

Exit codes: 0 quit with ``q`` or Ctrl-C, or one frame printed with ``--once`` · 2 usage.
"""

from __future__ import annotations

import contextlib
import os
import select
import sys
import time

from invoke import task

from opskit.tasks import common


@task(
    klass=common.OpskitTask,
    help={
        "stack": common.COMMON_HELP["stack"],
        "runtime": common.COMMON_HELP["runtime"],
        "once": "print one frame and exit (two samples a second apart, for the rates)",
        "interval": "seconds between frames (1-2; default 1)",
    },
)
@common.handles_errors
def monitor(c, once=False, interval="1", stack=None, runtime=None):
    """Live services, health, latency, Redis, nginx and masking events; q quits."""
    from rich.console import Console
    from rich.live import Live

    from opskit.errors import UsageError
    from opskit.ops.monitor import Monitor

    seconds = common.seconds_option("interval", interval) or 1.0
    if not 0.5 <= seconds <= 10:
        raise UsageError(f"--interval: expected 0.5 to 10 seconds, got {interval!r}")
    loaded = common.load(c, stack, runtime)
    console = Console(width=min(Console().width, 120))
    sampler = Monitor(loaded, background=not once)
    try:
        if once:
            sampler.frame()  # the first sample only primes the rates
            began = time.monotonic()
            sampler.refresh_health()
            time.sleep(max(0.0, 1.0 - (time.monotonic() - began)))
            console.print(render(sampler.frame(), loaded.name))
            return
        with _keys() as pressed, Live(console=console, auto_refresh=False, screen=False) as live:
            while True:
                live.update(render(sampler.frame(), loaded.name), refresh=True)
                if pressed(seconds) == "q":
                    return
    except KeyboardInterrupt:
        return
    finally:
        sampler.close()


@contextlib.contextmanager
def _keys():
    """``pressed(timeout)``: the key typed within ``timeout`` seconds, or None; the terminal
    is in cbreak mode meanwhile (no Enter needed) and restored after."""
    if not sys.stdin.isatty():

        def wait_only(timeout: float) -> str | None:
            time.sleep(timeout)
            return None

        yield wait_only
        return
    import termios
    import tty

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    tty.setcbreak(fd)
    try:

        def pressed(timeout: float) -> str | None:
            ready, _, _ = select.select([fd], [], [], timeout)
            return os.read(fd, 1).decode(errors="ignore").lower() if ready else None

        yield pressed
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def render(frame, stack_name: str):
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    from opskit.ops.monitor import describe_event

    table = Table(expand=False, pad_edge=False, box=None, header_style="bold")
    for column in ("service", "state", "health", "cpu", "mem", "rate"):
        table.add_column(column, no_wrap=True)
    for row in frame.services:
        rates = " ".join(f"{v:.1f} {k}" for k, v in row.rates.items())
        if row.memory_bytes is not None:
            rates += f" {_bytes(row.memory_bytes)} used"
        table.add_row(
            row.name,
            Text(row.state, style="green" if row.state == "running" else "red"),
            Text(row.health, style=_HEALTH_STYLE.get(row.health, "")),
            f"{row.cpu_percent:.1f}%" if row.cpu_percent is not None else "-",
            _bytes(row.rss_bytes) if row.rss_bytes is not None else "-",
            rates.strip() or "-",
        )
    latency = " ".join(
        f"{k} {v * 1000:.0f}ms" if v is not None else f"{k} -" for k, v in frame.latency.items()
    )
    clock = time.strftime("%H:%M:%S", time.localtime(frame.at))
    lines = [
        Text(f"opskit monitor · {stack_name} · {clock} · q quits", style="bold"),
        table,
        Text(f"latency ({frame.requests_in_window} requests, 60s): {latency}"),
        Text(
            f"masking events: {frame.events_per_second:.1f}/s"
            + ("" if frame.events_subscribed else " (not subscribed)")
        ),
        *(Text("  " + describe_event(event)) for event in frame.latest_events),
    ]
    return Group(*lines)


def _health_styles() -> dict[str, str]:
    from opskit.vocabulary import CheckStatus

    colours = {
        CheckStatus.OK: "green",
        CheckStatus.WARNING: "yellow",
        CheckStatus.CRITICAL: "red",
        CheckStatus.UNKNOWN: "magenta",
    }
    return {status.value: colour for status, colour in colours.items()}


_HEALTH_STYLE = _health_styles()


def _bytes(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024:
            return f"{count:.0f}{unit}"
        count /= 1024
    return f"{count:.0f}TiB"


COLLECTIONS = [common.collection("monitor", monitor)]
