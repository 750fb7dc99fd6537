"""Tasks logs (tail), logs.collect and logs.trace.

Exit codes: 0 ok · 1 logs.trace found the id in no log · 2 bad usage or stack file ·
130 interrupted (``logs --follow`` ends with Ctrl-C: exit 0).
"""

from __future__ import annotations

import re
import sys
import time

from invoke import Exit, task

from opskit.errors import UsageError
from opskit.results import result_json
from opskit.tasks import common

_HELP = {
    **common.COMMON_HELP,
    "since": "only lines written in this period (10m, 1h, 2d)",
    "mask_aws": "also mask AWS resource ids (i-…, arn:aws:…, buckets, private IPs)",
    "json": "print JSON",
}


def _since(value: object) -> float | None:
    seconds = common.seconds_option("since", value)
    return time.time() - seconds if seconds is not None else None


def _clock(when: float | None) -> str:
    if when is None:
        return " " * 8
    return time.strftime("%H:%M:%S", time.localtime(when))


def _say_zone() -> None:
    """Lines are printed in opskit's local time, each read in its writer's zone: say which,
    on stderr, so a pipe gets only log lines."""
    from opskit.logs.timestamps import zone_label

    print(f"times in {zone_label(None)} (this host's local time)", file=sys.stderr, flush=True)


def _print_entry(entry, width: int) -> None:
    label = f"{entry.service}/{entry.source}" if entry.source != "output" else entry.service
    print(f"{_clock(entry.time)} {label:<{width}} | {entry.text}", flush=True)


@task(
    klass=common.OpskitTask,
    iterable=["service"],
    help=common.help_for(
        _HELP,
        "service",
        "since",
        "mask_aws",
        "stack",
        "runtime",
        follow="keep printing new lines until Ctrl-C",
        grep="only lines matching this regular expression",
        lines="how many lines (default 50)",
    ),
)
@common.handles_errors
def tail(
    c,
    service=None,
    follow=False,
    grep=None,
    lines=50,
    since=None,
    mask_aws=False,
    stack=None,
    runtime=None,
):
    """Every service's logs merged by time, each line prefixed with its service."""
    from opskit.ops import logs

    pattern = _pattern(grep)
    count = common.count_option("lines", lines)
    loaded = common.load(c, stack, runtime)
    names = common.services_option(service)
    width = max((len(n) for n in loaded.resolve(names)), default=8)
    _say_zone()
    for entry in logs.tail(
        loaded, names, lines=count, grep=pattern, since=_since(since), mask_aws=mask_aws
    ):
        _print_entry(entry, width)
    if follow:  # until SIGINT or SIGTERM, handled here: a shell that started it in the
        # background (SIGINT ignored, inherited) cannot make Ctrl-C's signal a no-op
        with common.finishing_on_signals() as stop:
            for entry in logs.follow(loaded, names, grep=pattern, mask_aws=mask_aws, stop=stop):
                _print_entry(entry, width)


@task(
    klass=common.OpskitTask,
    iterable=["service"],
    help=common.help_for(
        _HELP,
        "service",
        "since",
        "mask_aws",
        "json",
        "stack",
        "runtime",
        out="folder for the bundle (default: <state_dir>/log-bundles, 0700)",
        keep="bundles to keep in that folder (default 10); older ones are removed",
    ),
)
@common.handles_errors
def collect(
    c,
    service=None,
    since=None,
    out=None,
    keep=10,
    mask_aws=False,
    json=False,
    stack=None,
    runtime=None,
):
    """One redacted .tar.zst of every service's logs, with a manifest."""
    from pathlib import Path

    from opskit.ops import logs

    kept = common.count_option("keep", keep)
    loaded = common.load(c, stack, runtime)
    result = logs.collect(
        loaded,
        common.services_option(service),
        since=_since(since),
        out_dir=Path(out) if out else None,
        mask_aws=mask_aws,
        keep=kept,
    )
    if json:
        print(result_json(result))
        return
    redacted = sum(result.redactions.values())
    print(f"{result.path}: {result.files} logs, {result.lines} lines, {redacted} redactions")
    for problem in result.problems:
        print(f"  not collected: {problem}")
    for path in result.removed:
        print(f"  removed old bundle {path.name}")


@task(
    klass=common.OpskitTask,
    help=common.help_for(
        _HELP,
        "since",
        "mask_aws",
        "json",
        "stack",
        "runtime",
        request_id="the X-Request-ID (the front nginx's $req_id) to look for",
    ),
)
@common.handles_errors
def trace(c, request_id, since="24h", mask_aws=False, json=False, stack=None, runtime=None):
    """One request's lines in nginx, Kong and the backend, in time order."""
    from opskit.ops import logs

    if not request_id:
        raise UsageError("logs.trace needs a request id (the X-Request-ID of the request)")
    loaded = common.load(c, stack, runtime)
    result = logs.trace(loaded, request_id, since=_since(since), mask_aws=mask_aws)
    found = result.services_found()
    if json:
        print(result_json(result, indent=None))
    else:
        width = max((len(n) for n in result.searched), default=8)
        _say_zone()
        for entry in result.entries:
            _print_entry(entry, width)
        missing = [s for s in result.searched if s not in found]
        if missing:
            print(f"no line carries {request_id} in: {', '.join(missing)}", file=sys.stderr)
    if result.exit_code:
        raise Exit(code=result.exit_code)


def _pattern(grep: str | None) -> re.Pattern[str] | None:
    if not grep:
        return None
    try:
        return re.compile(grep)
    except re.error as exc:
        raise UsageError(f"--grep: not a regular expression ({exc}): {grep!r}") from None


COLLECTIONS = [common.collection("logs", tail, collect, trace)]
