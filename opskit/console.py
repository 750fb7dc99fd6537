"""Rendering for people and machines: live progress, result tables, plain log lines.

On a TTY, progress is a live rich table; otherwise (cron, CI, pipes) every event is one plain
line ``[LEVEL] 2026-11-24T03:00:00Z service: detail`` so logs stay greppable. Result tables
follow the same rule (:class:`Grid`): a rich table on a terminal, and elsewhere one record per
line, columns aligned, never wrapped or cut — rich wraps to 80 columns when it sees no
terminal, which split health details and cut the backup id an operator must type next. Every
text passes through the stack's :class:`~opskit.redact.Redactor` before it is written.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, field
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
    Phase.NOT_APPLICABLE: "dim",
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


@dataclass(frozen=True)
class Styled:
    """Text shown in a rich style (``"green"``) on a terminal and as itself elsewhere."""

    text: str
    style: str


Cell = str | Styled  # a str is literal text: a "[WARN]" in a detail is never markup


@dataclass
class Grid:
    """A result table, written by :func:`print_grid` for a person or for a pipe. Cells are
    literal text or :class:`Styled` text; the title may be a tuple of them."""

    columns: tuple[str, ...]
    title: Cell | tuple[Cell, ...] | None = None
    right_aligned: frozenset[str] = frozenset()
    rows: list[tuple[Cell, ...]] = field(default_factory=list)

    def add_row(self, *cells: Cell) -> None:
        self.rows.append(cells)


def print_grid(grid: Grid, stream: IO[str] | None = None) -> None:
    """A rich table on a terminal; elsewhere a title line, a header line and one line per
    row, columns padded to their widest cell, the last never padded, nothing wrapped or cut
    (a newline inside a cell becomes `` / ``). rich is imported only for a terminal: a
    command run from cron or a pipe does not pay for it."""
    stream = stream or sys.stdout
    if stream.isatty():
        _print_rich_grid(grid, stream)
        return

    def plain(cell: Cell) -> str:
        text = cell.text if isinstance(cell, Styled) else cell
        return " / ".join(text.splitlines())

    rows = [tuple(grid.columns), *(tuple(plain(c) for c in row) for row in grid.rows)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(grid.columns))]
    if grid.title:
        title = grid.title if isinstance(grid.title, tuple) else (grid.title,)
        print("".join(plain(piece) for piece in title), file=stream)
    for row in rows:
        cells = [
            cell.rjust(width) if column in grid.right_aligned else cell.ljust(width)
            for cell, width, column in zip(row, widths, grid.columns, strict=True)
        ]
        cells[-1] = row[-1]
        print("  ".join(cells).rstrip(), file=stream)
    stream.flush()


def _print_rich_grid(grid: Grid, stream: IO[str]) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    def text(cell: Cell) -> Text:
        return Text(cell.text, style=cell.style) if isinstance(cell, Styled) else Text(cell)

    title = None
    if grid.title:
        pieces = grid.title if isinstance(grid.title, tuple) else (grid.title,)
        title = Text.assemble(*(text(piece) for piece in pieces))
    table = Table(title=title)
    for column in grid.columns:
        table.add_column(column, justify="right" if column in grid.right_aligned else "left")
    for row in grid.rows:
        table.add_row(*(text(cell) for cell in row))
    Console(file=stream, highlight=False, soft_wrap=True).print(table)


class Progress:
    """Receives lifecycle events: a live table on a TTY, plain lines elsewhere."""

    def __init__(self, redact: Redactor, services: list[str], stream: IO[str] | None = None):
        self.redact = redact
        self.stream = stream or sys.stderr
        self.interactive = self.stream.isatty()
        self.rows: dict[str, tuple[Phase | None, str]] = {name: (None, "") for name in services}
        self.not_applicable: dict[str, list[str]] = {}  # detail → services, said once at the end
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
        elif self.not_applicable:
            said = "; ".join(
                f"{', '.join(services)}: {detail}"
                for detail, services in self.not_applicable.items()
            )
            log_line("INFO", f"not applicable: {said}", self.stream)

    def __call__(self, event: Event) -> None:
        detail = self.redact(event.detail)
        with self._lock:
            self.rows[event.service] = (event.phase, detail)
            if self._live is not None:
                self._live.update(self._table())
            elif event.phase is Phase.NOT_APPLICABLE:
                self.not_applicable.setdefault(detail, []).append(event.service)
            else:
                level = _PHASE_LEVEL.get(event.phase, "INFO")
                text = f"{event.service}: {event.phase.value}" + (f" — {detail}" if detail else "")
                log_line(level, text, self.stream)

    def _table(self):
        from rich.spinner import Spinner
        from rich.table import Table
        from rich.text import Text

        table = Table(show_header=False, box=None, padding=(0, 1))
        for name, (phase, detail) in self.rows.items():
            marker = Spinner("dots") if phase is not None and phase.busy else ""
            style = _PHASE_STYLE.get(phase, "cyan" if phase is not None else "dim")
            label = phase.value if phase is not None else "pending"
            table.add_row(marker, name, Text(label, style=style), Text(detail))
        return table


def print_lifecycle(
    result: OperationResult, redact: Redactor, stream: IO[str] | None = None
) -> None:
    """Summary table after start/stop/restart, with the log tail of each failed service."""
    stream = stream or sys.stdout
    grid = Grid(
        ("service", "result", "time", "detail"),
        title=f"{result.action}: {'ok' if result.ok else 'FAILED'} in {result.seconds:.2f}s",
    )
    for outcome in result.outcomes:
        style = _STEP_STYLE.get(outcome.state, "")
        grid.add_row(
            outcome.service,
            Styled(outcome.state.value, style),
            f"{outcome.seconds:.2f}s",
            redact(outcome.detail),
        )
    print_grid(grid, stream)
    for outcome in result.outcomes:
        if outcome.log_tail:
            print(f"last {len(outcome.log_tail)} log lines of {outcome.service}:", file=stream)
            for line in redact.lines(outcome.log_tail):
                print(f"  {line}", file=stream)
    stream.flush()


def print_report(report: Report, stream: IO[str] | None = None) -> None:
    """The health report as a table; colour only when the stream is a terminal."""
    summary = report.summary
    style = _REPORT_STYLE[report.status]
    title = (
        f"health of {report.target}: ",
        Styled(report.status.value, style),
        f" — {summary['total']} checks, "
        f"{summary['OK']} OK, {summary['WARNING']} warning, {summary['CRITICAL']} critical, "
        f"{summary['UNKNOWN']} unknown",
    )
    grid = Grid(("service", "check", "status", "ms", "detail"), title, frozenset({"ms"}))
    for check in report.checks:
        grid.add_row(
            check.service,
            check.name,
            Styled(check.status.value, _REPORT_STYLE[check.status]),
            f"{check.duration_ms:.0f}",
            check.detail,
        )
    print_grid(grid, stream)


def print_status(result: StatusResult, stream: IO[str] | None = None) -> None:
    grid = Grid(("service", "role", "state", "pid", "uptime", "detail"))
    for row in result.rows:
        status = row.status
        state = status.state.value
        if status.state is UnitState.EXITED:
            state = f"exited({'?' if status.exit_code is None else status.exit_code})"
        uptime = status.uptime(result.checked_at)
        grid.add_row(
            row.service,
            str(row.role),
            Styled(state, _UNIT_STYLE.get(status.state, "")),
            str(status.pid or "-") if status.running else "-",
            _duration(uptime) if uptime is not None else "-",
            status.detail,
        )
    print_grid(grid, stream)


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
