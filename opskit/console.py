"""Rendering for people and machines: live progress, result tables, plain log lines.

On a TTY, progress is a live rich table; otherwise (cron, CI, pipes) every event is one plain
line ``[LEVEL] 2026-11-24T03:00:00Z service: detail`` so logs stay greppable. Every text passes
through the stack's :class:`~opskit.redact.Redactor` before it is written.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import IO, TYPE_CHECKING

from opskit.redact import Redactor
from opskit.vocabulary import CheckStatus, Phase, StepOutcome, UnitState

if TYPE_CHECKING:
    from opskit.ops.engine import Event, OperationResult
    from opskit.ops.lifecycle import StatusResult
    from opskit.report import Report

# Log levels of plain progress lines (a log vocabulary, not check statuses).
_PHASE_LEVEL = {Phase.FAILED: "ERROR", Phase.SKIPPED: "WARN"}
_PHASE_STYLE = {
    Phase.READY: "green",
    Phase.STOPPED: "green",
    Phase.DONE: "green",
    Phase.FAILED: "bold red",
    Phase.SKIPPED: "yellow",
}
_REPORT_STYLE = {
    CheckStatus.OK: "green",
    CheckStatus.WARNING: "yellow",
    CheckStatus.CRITICAL: "bold red",
    CheckStatus.UNKNOWN: "magenta",
}
_STEP_STYLE = {
    StepOutcome.STARTED: "green",
    StepOutcome.ALREADY_RUNNING: "green",
    StepOutcome.STOPPED: "green",
    StepOutcome.DONE: "green",
    StepOutcome.UNCHANGED: "green",
    StepOutcome.NOT_RUNNING: "dim",
    StepOutcome.UNSUPPORTED: "dim",
    StepOutcome.KILLED: "yellow",
    StepOutcome.FAILED: "bold red",
    StepOutcome.SKIPPED: "yellow",
}
_UNIT_STYLE = {
    UnitState.RUNNING: "green",
    UnitState.EXITED: "red",
    UnitState.ABSENT: "dim",
    UnitState.CONVERGING: "yellow",
}


def timestamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def log_line(level: str, message: str, stream: IO[str] | None = None) -> None:
    print(f"[{level}] {timestamp()} {message}", file=stream or sys.stderr, flush=True)


class Progress:
    """Receives lifecycle events: a live table on a TTY, plain lines elsewhere."""

    def __init__(self, redact: Redactor, services: list[str], stream: IO[str] | None = None):
        self.redact = redact
        self.stream = stream or sys.stderr
        self.interactive = self.stream.isatty()
        self.rows: dict[str, tuple[Phase | None, str]] = {name: (None, "") for name in services}
        self._live = None
        self._lock = threading.Lock()  # events arrive from the worker threads of one start

    def __enter__(self) -> Progress:
        if self.interactive:
            from rich.console import Console
            from rich.live import Live

            self._live = Live(self._table(), console=Console(file=self.stream), transient=True)
            self._live.__enter__()
        return self

    def __exit__(self, *exc_info) -> None:
        if self._live is not None:
            self._live.__exit__(*exc_info)

    def __call__(self, event: Event) -> None:
        detail = self.redact(event.detail)
        with self._lock:
            self.rows[event.service] = (event.phase, detail)
            if self._live is not None:
                self._live.update(self._table())
            else:
                level = _PHASE_LEVEL.get(event.phase, "INFO")
                text = f"{event.service}: {event.phase.value}" + (f" — {detail}" if detail else "")
                log_line(level, text, self.stream)

    def _table(self):
        from rich.spinner import Spinner
        from rich.table import Table

        table = Table(show_header=False, box=None, padding=(0, 1))
        for name, (phase, detail) in self.rows.items():
            marker = Spinner("dots") if phase is not None and phase.busy else ""
            style = _PHASE_STYLE.get(phase, "cyan" if phase is not None else "dim")
            label = phase.value if phase is not None else "pending"
            table.add_row(marker, name, f"[{style}]{label}[/]", detail)
        return table


def print_lifecycle(
    result: OperationResult, redact: Redactor, stream: IO[str] | None = None
) -> None:
    """Summary table after start/stop/restart, with the log tail of each failed service."""
    from rich.console import Console
    from rich.table import Table

    console = Console(file=stream or sys.stdout, highlight=False, soft_wrap=True)
    table = Table(
        title=f"{result.action}: {'ok' if result.ok else 'FAILED'} in {result.seconds:.2f}s"
    )
    for column in ("service", "result", "time", "detail"):
        table.add_column(column)
    for outcome in result.outcomes:
        style = _STEP_STYLE.get(outcome.state, "")
        table.add_row(
            outcome.service,
            f"[{style}]{outcome.state.value}[/]",
            f"{outcome.seconds:.2f}s",
            redact(outcome.detail),
        )
    console.print(table)
    for outcome in result.outcomes:
        if outcome.log_tail:
            console.print(f"[bold]last {len(outcome.log_tail)} log lines of {outcome.service}:[/]")
            for line in redact.lines(outcome.log_tail):
                console.print(f"  {line}", markup=False)


def print_report(report: Report, stream: IO[str] | None = None) -> None:
    """The health report as a table; rich adds colour only when the stream is a terminal."""
    from rich.console import Console
    from rich.table import Table

    console = Console(file=stream or sys.stdout, highlight=False, soft_wrap=True)
    summary = report.summary
    style = _REPORT_STYLE[report.status]
    title = (
        f"health of {report.target}: [{style}]{report.status.value}[/] — "
        f"{summary['total']} checks, "
        f"{summary['OK']} OK, {summary['WARNING']} warning, {summary['CRITICAL']} critical, "
        f"{summary['UNKNOWN']} unknown"
    )
    table = Table(title=title)
    for column in ("service", "check", "status", "ms", "detail"):
        table.add_column(column, justify="right" if column == "ms" else "left")
    for check in report.checks:
        table.add_row(
            check.service,
            check.name,
            f"[{_REPORT_STYLE[check.status]}]{check.status.value}[/]",
            f"{check.duration_ms:.0f}",
            check.detail,
        )
    console.print(table)


def print_status(result: StatusResult, stream: IO[str] | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(file=stream or sys.stdout, highlight=False)
    table = Table()
    for column in ("service", "role", "state", "pid", "uptime", "detail"):
        table.add_column(column)
    for row in result.rows:
        status = row.status
        state = status.state.value
        if status.state is UnitState.EXITED:
            state = f"exited({'?' if status.exit_code is None else status.exit_code})"
        uptime = status.uptime(result.checked_at)
        table.add_row(
            row.service,
            str(row.role),
            f"[{_UNIT_STYLE.get(status.state, '')}]{state}[/]",
            str(status.pid or "-") if status.running else "-",
            _duration(uptime) if uptime is not None else "-",
            status.detail,
        )
    console.print(table)


def status_json(result: StatusResult) -> str:
    return json.dumps(
        {
            "checked_at": result.checked_at,
            "ok": result.ok,
            "services": [
                {
                    "service": row.service,
                    "role": str(row.role),
                    "state": row.status.state.value,
                    "pid": row.status.pid if row.status.running else None,
                    "started_at": row.status.started_at,
                    "uptime_s": row.status.uptime(result.checked_at),
                    "exit_code": row.status.exit_code,
                    "detail": row.status.detail,
                    "nodes": list(row.status.nodes),
                }
                for row in result.rows
            ],
        },
        indent=2,
    )


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
