"""Logs: collect every service's logs into one redacted bundle, tail them merged by time, and
trace one request through nginx, Kong and the backend.

Sources come from the roles (:class:`~opskit.services.capabilities.LogSources`: the unit's
output, nginx's ``access_log``/``error_log`` files, Kong's ``KONG_*_LOG`` files) and are read
through the unit, so a container's files are read with the engine's archive API and a
process's with its rotations. Every line that leaves goes through one :class:`Redactor` that
knows the stack's secret values and the shapes of secrets it was never told about; with
``mask_aws`` it masks AWS resource ids as well.

**Request ids.** The front nginx keeps a client's ``X-Request-ID`` or makes one (``$req_id``:
the header, else nginx's ``$request_id``), logs it in its JSON access log and sends it on; the
backend passes it to nginx, nginx to Kong, and the aws-masker plugin logs it in its
``[REQUEST-START]`` / ``[MASKING-EVENT]`` lines and forwards it upstream. So ``trace`` finds
one id in every hop that logs it. Where it cannot: the plugin's pub/sub masking event carries
Kong's own ``ngx.var.request_id`` (returned to the client as ``X-Kong-Request-Id``), not the
client's id; a backend that does not log the header (the stock uvicorn or express access log)
has no line to find; and the Claude API's own logs are not ours.
"""

from __future__ import annotations

import queue
import re
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opskit.errors import OpskitError, UsageError
from opskit.logs.bundle import BundleManifest, BundleWriter, prune_bundles
from opskit.logs.timestamps import stamp_stream, zone_from_tz
from opskit.redact import Redactor
from opskit.results import ExitsByOk
from opskit.services.capabilities import LogSource, LogSources
from opskit.stack import Stack
from opskit.vocabulary import ExitCode

DEFAULT_BUNDLES = "log-bundles"  # under the state dir
DEFAULT_KEEP = 10


@dataclass(frozen=True)
class LogEntry:
    """One redacted line of one source, placed in time (None: before any timed line)."""

    service: str
    source: str
    time: float | None
    text: str


@dataclass
class CollectResult:
    path: Path
    files: int
    lines: int
    redactions: dict[str, int]
    problems: list[str]
    removed: list[Path] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return True  # a source it could not read is a problem listed, not a failed bundle

    exit_code = ExitCode.OK

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "files": self.files,
            "lines": self.lines,
            "redactions": self.redactions,
            "problems": self.problems,
            "removed": [str(p) for p in self.removed],
        }


@dataclass
class TraceResult(ExitsByOk):
    request_id: str
    entries: list[LogEntry]
    searched: list[str]  # services searched, in start order

    def services_found(self) -> list[str]:
        return [s for s in self.searched if any(e.service == s for e in self.entries)]

    @property
    def ok(self) -> bool:
        return bool(self.entries)

    def to_dict(self) -> dict[str, Any]:
        lines = [
            {"service": e.service, "source": e.source, "time": e.time, "text": e.text}
            for e in self.entries
        ]
        return {"request_id": self.request_id, "found_in": self.services_found(), "lines": lines}


def redactor_for(stack: Stack, mask_aws: bool = False) -> Redactor:
    return Redactor(stack.secrets(), patterns=True, mask_aws=mask_aws)


def sources_of(stack: Stack, services: Iterable[str] | None) -> list[tuple[str, LogSource]]:
    """Every (service, source) of the selected services, in start order."""
    found = []
    for name in stack.start_order(stack.resolve(services)):
        role = stack.role(name)
        if isinstance(role, LogSources):
            found.extend((name, source) for source in role.log_sources())
    return found


def read_source(
    stack: Stack, service: str, source: LogSource, since: float | None = None
) -> Iterator[tuple[float | None, str]]:
    """The lines of one source with their times, oldest first; lines timed before ``since``
    are left out (untimed lines at the start of a file written since then stay). A time the
    line gives without a zone is read in the zone of the unit that wrote it."""
    zone = zone_from_tz(stack.role(service).unit.time_zone())
    for when, text in stamp_stream(_raw_lines(stack, service, source, since), zone):
        if since is not None and when is not None and when < since:
            continue
        yield when, text


def _raw_lines(
    stack: Stack, service: str, source: LogSource, since: float | None
) -> Iterator[tuple[float | None, str]]:
    unit = stack.role(service).unit
    if source.path is None:
        for line in unit.logs(since=since):
            yield line.timestamp, line.text
        return
    for text in unit.file_lines(source.path, since):
        yield None, text


# -- collect ---------------------------------------------------------------------------------------


def collect(
    stack: Stack,
    services: Iterable[str] | None = None,
    *,
    since: float | None = None,
    out_dir: Path | None = None,
    mask_aws: bool = False,
    keep: int = DEFAULT_KEEP,
) -> CollectResult:
    """One bundle of every selected service's logs since ``since``; older bundles beyond
    ``keep`` in the same folder are removed. Reads only: no stack lock is needed."""
    out_dir = out_dir or stack.state_dir / DEFAULT_BUNDLES
    redactor = redactor_for(stack, mask_aws)
    manifest = BundleManifest(stack.name, time.time(), since, mask_aws)
    try:
        with BundleWriter(out_dir, manifest, redactor) as writer:
            for service, source in sources_of(stack, services):
                try:
                    writer.add(service, source.name, read_source(stack, service, source, since))
                except OSError as exc:  # a file vanished mid-read
                    manifest.problems.append(redactor(f"{service} {source.name}: {exc}"))
            path = writer.finish()
    except OSError as exc:  # the bundle's folder cannot be made or written (full, read-only)
        raise OpskitError(f"log bundle in {out_dir}: {exc.strerror or exc}") from None
    removed = prune_bundles(out_dir, keep)
    return CollectResult(
        path,
        len(manifest.files),
        sum(f.lines for f in manifest.files),
        manifest.redactions,
        manifest.problems,
        removed,
    )


# -- tail and trace --------------------------------------------------------------------------------


def tail(
    stack: Stack,
    services: Iterable[str] | None = None,
    *,
    lines: int = 50,
    grep: re.Pattern[str] | None = None,
    since: float | None = None,
    mask_aws: bool = False,
) -> list[LogEntry]:
    """The last ``lines`` lines of all selected sources together, merged by time."""
    redact = redactor_for(stack, mask_aws)
    merged: list[tuple[float, int, LogEntry]] = []
    sequence = 0
    for service, source in sources_of(stack, services):
        recent: deque[tuple[float | None, str]] = deque(maxlen=lines)
        for when, text in read_source(stack, service, source, since):
            if grep is None or grep.search(text):
                recent.append((when, text))
        for when, text in recent:
            sequence += 1
            entry = LogEntry(service, source.name, when, redact(text))
            merged.append((when if when is not None else float("-inf"), sequence, entry))
    merged.sort(key=lambda item: (item[0], item[1]))
    return [entry for _when, _seq, entry in merged[-lines:]]


def follow(
    stack: Stack,
    services: Iterable[str] | None = None,
    *,
    grep: re.Pattern[str] | None = None,
    mask_aws: bool = False,
    stop: threading.Event | None = None,
) -> Iterator[LogEntry]:
    """New lines of every selected source as they are written (``tail -f`` over the stack),
    timed on arrival. Runs until ``stop`` is set or the caller stops iterating."""
    redact = redactor_for(stack, mask_aws)
    arrived: queue.Queue[LogEntry] = queue.Queue(maxsize=10_000)
    stop = stop or threading.Event()

    def pump(service: str, source: LogSource) -> None:
        for text in follow_source(stack, service, source):
            if stop.is_set():
                return
            if grep is None or grep.search(text):
                arrived.put(LogEntry(service, source.name, time.time(), redact(text)))

    for service, source in sources_of(stack, services):
        threading.Thread(target=pump, args=(service, source), daemon=True).start()
    try:
        while not stop.is_set():
            try:
                yield arrived.get(timeout=0.2)
            except queue.Empty:
                continue
    finally:
        stop.set()


def follow_source(stack: Stack, service: str, source: LogSource) -> Iterator[str]:
    unit = stack.role(service).unit
    if source.path is None:
        for line in unit.logs(since=time.time(), follow=True):
            yield line.text
    else:
        yield from unit.follow_file(source.path)


def trace(
    stack: Stack, request_id: str, *, since: float | None = None, mask_aws: bool = False
) -> TraceResult:
    """Every line, in every service's logs, that carries ``request_id``, merged by time."""
    if len(request_id) < 8:
        raise UsageError(f"request id {request_id!r} is too short to search for (8+ characters)")
    redact = redactor_for(stack, mask_aws)
    entries: list[tuple[float, int, LogEntry]] = []
    sequence = 0
    searched = []
    for service, source in sources_of(stack, None):
        if service not in searched:
            searched.append(service)
        for when, text in read_source(stack, service, source, since):
            if request_id in text:
                sequence += 1
                entry = LogEntry(service, source.name, when, redact(text))
                entries.append((when if when is not None else float("-inf"), sequence, entry))
    entries.sort(key=lambda item: (item[0], item[1]))
    return TraceResult(request_id, [e for _w, _s, e in entries], searched)
