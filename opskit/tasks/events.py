"""Task events: watch the aws-masker plugin's masking events as they happen.

Exit codes: 0 ok (ended by --count, --seconds, Ctrl-C or SIGTERM) · 1 the masking store cannot
be subscribed to (authentication failed, no redis role) · 2 bad usage, or --show-original on a
production stack.
"""

from __future__ import annotations

import json as jsonlib
import sys
import threading
import time

from invoke import task

from opskit.tasks import common


@task(
    klass=common.OpskitTask,
    help={
        "stack": common.COMMON_HELP["stack"],
        "runtime": common.COMMON_HELP["runtime"],
        "channel": "pub/sub channel (default: the redis role's events_channel, "
        "aws-masker:events:masking)",
        "json": "one JSON object per event (redacted) and a JSON summary at the end",
        "show_original": "show demo_data.original_text (secrets still masked); refused in "
        "production",
        "rate": "print at most this many events a second (default 20); the rest are counted",
        "count": "stop after this many events",
        "seconds": "stop after this long (10s, 5m)",
    },
)
@common.handles_errors
def events(
    c,
    channel=None,
    json=False,
    show_original=False,
    rate=20,
    count=None,
    seconds=None,
    stack=None,
    runtime=None,
):
    """Masking events live: redacted, rate-limited, with counts and percentiles at the end."""
    from opskit.events.model import redact_event
    from opskit.events.stats import EventStats, LinePacer
    from opskit.ops import events as ops_events
    from opskit.ops.logs import redactor_for

    per_second = common.count_option("rate", rate)
    limit = common.count_option("count", count) if count is not None else None
    duration = common.seconds_option("seconds", seconds)
    loaded = common.load(c, stack, runtime)
    ops_events.check_show_original(loaded, show_original)
    masked = redactor_for(loaded, mask_aws=True)
    original = redactor_for(loaded) if show_original else None
    stats, pacer = EventStats(), LinePacer(per_second)
    began_wall = time.time()

    def reconnecting(reason: str) -> None:
        stats.reconnects += 1
        print(f"opskit: masking store unreachable ({masked(reason)}); retrying", file=sys.stderr)

    with common.finishing_on_signals() as stop:
        timer = threading.Timer(duration, stop.set) if duration else None
        if timer:
            timer.start()
        try:
            subscription = ops_events.subscribe(
                loaded, channel, stop=stop, on_reconnect=reconnecting
            )
            for message in subscription:
                if message.error:
                    stats.malformed += 1
                    continue
                stats.add_message(message.events)
                for event in message.events:
                    if pacer.allow():
                        held = pacer.take_suppressed()
                        if held and not json:
                            print(f"… {held} more events not printed (--rate {per_second})")
                        _print_event(redact_event(event, masked, original), json)
                if limit is not None and stats.events >= limit:
                    break
        finally:
            stop.set()
            if timer:
                timer.cancel()
    requests = ops_events.masked_requests_since(loaded, began_wall)
    summary = {**stats.summary(requests), "not_printed": pacer.suppressed_total}
    if json:
        print(jsonlib.dumps({"summary": summary}), flush=True)
    else:
        _print_summary(summary)


def _print_event(event: dict, as_json: bool) -> None:
    if as_json:
        print(jsonlib.dumps(event, separators=(",", ":")), flush=True)
        return
    stamp = event.get("timestamp")
    clock = (
        time.strftime("%H:%M:%S", time.localtime(stamp / 1000))
        if isinstance(stamp, int | float)
        else "--:--:--"
    )
    patterns = ",".join(f"{k}×{v}" for k, v in (event.get("patterns_applied") or {}).items())
    masked = ((event.get("demo_data") or {}).get("masked_text") or "")[:60].replace("\n", " ")
    ok = "ok" if event.get("success", True) else "FAILED"
    ms = event.get("processing_time_ms", "?")
    print(
        f"{clock} {ok:<6} {str(event.get('request_id', '?'))[:32]:<32} {ms}ms "
        f"{patterns or '-'} {masked!r}",
        flush=True,
    )


def _print_summary(summary: dict) -> None:
    percentiles = summary["processing_ms"]
    timing = " ".join(
        f"{k}={v:.1f}ms" if v is not None else f"{k}=-" for k, v in percentiles.items()
    )
    print(
        f"{summary['events']} events in {summary['messages']} messages "
        f"({summary['batched_messages']} batched), {summary['failed']} failed, "
        f"{summary['malformed']} malformed, {summary['reconnects']} reconnects, "
        f"{summary['events_per_second']}/s; processing {timing}"
    )
    if summary["patterns"]:
        print("patterns: " + ", ".join(f"{k} {v}" for k, v in summary["patterns"].items()))
    if summary["sampling_rate_estimate"] is not None:
        print(
            f"sampling: {summary['events']} events for {summary['requests_to_masked_path']} "
            f"requests to the masked path ≈ {summary['sampling_rate_estimate']:.2f}"
        )
    if summary["not_printed"]:
        print(f"{summary['not_printed']} events counted but not printed (--rate)")


COLLECTIONS = [common.collection("events", events)]
