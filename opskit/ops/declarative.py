"""Kong's declarative config as an operation: validate, diff, apply, history, rollback.

The gateway is found by capability (:class:`~opskit.services.capabilities.ConfigExporting`),
never by name. Every apply goes the one way a DB-less Kong allows — the whole config through
``POST /config`` (429 retried after ``Retry-After``) — and is verified: Kong's
``configuration_hash`` afterwards must be the md5 of the bytes sent. Every applied config is
kept in :class:`~opskit.declarative.history.ConfigHistory`, so a rollback sends byte-identical
text and is verified the same way.

A config POSTed this way lives in Kong's memory only (row 15): a restart or HUP loads the
declarative *file* again. So after a verified apply the same bytes are made the file's
(:class:`~opskit.services.capabilities.DeclarativePersisting`; the file's previous bytes are
kept in the history first), and a restart by anyone runs what was applied.
``memory_only=True`` skips that on purpose; :attr:`ApplyResult.persisted` says what happened
and :attr:`ApplyResult.file_differs` whether the file and what runs still part.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opskit.declarative.document import (
    Declarative,
    DeclarativeError,
    Findings,
    diff,
    md5_of,
    parse,
    validate,
)
from opskit.declarative.history import ConfigHistory, HistoryEntry
from opskit.errors import OpskitError, UsageError
from opskit.ops.engine import capable, mutation
from opskit.redact import Redactor
from opskit.results import ExitsByOk
from opskit.services.capabilities import (
    ConfigExporting,
    DeclarativeParsing,
    DeclarativePersisting,
    Verdict,
)
from opskit.stack import Stack
from opskit.vocabulary import ExitCode


@dataclass
class ApplyResult(ExitsByOk):
    ok: bool
    detail: str
    entry: HistoryEntry | None = None
    changed: bool = False
    file_differs: bool = False
    findings: Findings = field(default_factory=lambda: Findings([], []))
    persisted: Verdict | None = None  # None: not asked (memory only, or the apply failed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "detail": self.detail,
            "changed": self.changed,
            "number": self.entry.number if self.entry else None,
            "md5": self.entry.md5 if self.entry else None,
            "file_differs": self.file_differs,
            "persisted": self.persisted.to_dict() if self.persisted else None,
            "problems": self.findings.problems,
            "warnings": self.findings.warnings,
        }


@contextlib.contextmanager
def gateway_errors(stack: Stack) -> Iterator[None]:
    """A gateway that does not answer (stopped, wrong admin_url) is one line, not a traceback."""
    import httpx

    from opskit.services.probes import ProbeError

    try:
        yield
    except (ProbeError, httpx.HTTPError) as exc:
        name = capable(stack, ConfigExporting)[0]
        raise OpskitError(
            f"{name}: its Admin API does not answer ({type(exc).__name__}: {exc}); "
            f"is it running? (inv status -s {name})"
        ) from None


def gateway(stack: Stack) -> tuple[str, ConfigExporting]:
    """The service whose role applies declarative config (Kong)."""
    names = capable(stack, ConfigExporting)
    if not names:
        raise UsageError("this stack has no service whose role takes a declarative config (kong)")
    return names[0], stack.role(names[0])  # type: ignore[return-value]


def load_source(stack: Stack, file: str | Path | None) -> Declarative:
    """``file``, or the declarative file the gateway loads at start and on HUP."""
    if file is not None:
        path = Path(file)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(
                f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}"
            ) from None
        return parse(text, str(path))
    name, role = gateway(stack)
    return parse(role.declarative_source(), f"{name}'s declarative file")


@dataclass
class ConfigCheck(ExitsByOk):
    """``kong.validate``'s answer: the config checked and what was found."""

    doc: Declarative
    findings: Findings

    @property
    def ok(self) -> bool:
        return self.findings.ok

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.doc.source,
            "md5": self.doc.md5,
            "ok": self.ok,
            "problems": self.findings.problems,
            "warnings": self.findings.warnings,
            "parsed_by": self.findings.parsed_by,
        }


@dataclass
class History:
    """``kong.history``'s answer: the applied configs, oldest first, and what runs now."""

    entries: list[HistoryEntry]
    running: str | None

    ok = True
    exit_code = ExitCode.OK

    def to_dict(self) -> dict[str, Any]:
        return {"running": self.running, "entries": [vars(e) for e in self.entries]}


def check(stack: Stack, file: str | Path | None = None) -> tuple[Declarative, Findings]:
    """opskit's schema checks, then — where the gateway's unit has it — Kong's own parser
    (``kong config parse``), whose refusal is one more problem, redacted."""
    doc = load_source(stack, file)
    findings = validate(doc)
    _, role = gateway(stack)
    if not isinstance(role, DeclarativeParsing):
        return doc, findings
    verdict = role.parse_declarative(doc.text)
    if verdict is None:
        findings.parsed_by = (
            "kong config parse: no kong CLI in the gateway's unit (schema checks only)"
        )
    elif verdict.ok:
        findings.parsed_by = f"kong config parse: {verdict.detail}"
    else:
        detail = Redactor(stack.secrets())(verdict.detail)
        findings.problems.append(f"kong config parse: {detail}")
        findings.parsed_by = "kong config parse: refused it"
    return doc, findings


def compare(stack: Stack, file: str | Path | None = None) -> tuple[Declarative, list[str]]:
    """The normalised diff from what Kong runs (``GET /config``) to ``file``."""
    doc = load_source(stack, file)
    name, role = gateway(stack)
    with gateway_errors(stack):
        running = parse(role.export_config(), f"{name} (running)")
    return doc, diff(running.data, doc.data, f"{name} (running)", doc.source)


def apply(
    stack: Stack,
    file: str | Path | None = None,
    *,
    source: str | None = None,
    memory_only: bool = False,
) -> ApplyResult:
    """Validate, apply, verify, record, make it the file's — under the stack lock."""
    doc = load_source(stack, file)
    findings = validate(doc)
    if not findings.ok:
        return ApplyResult(False, f"{doc.source} is invalid; nothing applied", findings=findings)
    with mutation(stack, "kong.apply"), gateway_errors(stack):
        return apply_text(stack, doc.text, source or doc.source, findings, persist=not memory_only)


def rollback(stack: Stack, to: int | None = None, *, memory_only: bool = False) -> ApplyResult:
    """Apply an earlier config byte for byte: entry ``to``, else the one before what runs."""
    with mutation(stack, "kong.rollback"), gateway_errors(stack):
        history = ConfigHistory(stack.state_dir)
        _, role = gateway(stack)
        target = (
            history.entry(to) if to is not None else _previous(history, role.configuration_hash())
        )
        text = history.text(target)
        source = f"rollback to #{target.number}"
        return apply_text(stack, text, source, Findings([], []), persist=not memory_only)


def history(stack: Stack) -> tuple[list[HistoryEntry], str | None]:
    """The applied configs, oldest first, and the hash Kong reports running now."""
    _, role = gateway(stack)
    running = None
    with contextlib.suppress(OpskitError), gateway_errors(stack):  # Kong down: still worth showing
        running = role.configuration_hash()
    return ConfigHistory(stack.state_dir).entries(), running


def _previous(history: ConfigHistory, running: str | None) -> HistoryEntry:
    entries = history.entries()
    current = history.latest_with(running)
    earlier = [e for e in entries if current is None or e.number < current.number]
    earlier = [e for e in earlier if e.md5 != running]
    if not earlier:
        raise DeclarativeError("no earlier config in the history to roll back to")
    return earlier[-1]


def apply_text(
    stack: Stack,
    text: str,
    source: str,
    findings: Findings | None = None,
    *,
    persist: bool = False,
) -> ApplyResult:
    """POST ``text`` (the caller validated it and holds the stack lock): record what ran before
    when its bytes are known, verify the hash, record ``text``; with ``persist``, make it the
    bytes of the file the gateway loads at start (:func:`make_permanent`)."""
    findings = findings or Findings([], [])
    name, role = gateway(stack)
    history = ConfigHistory(stack.state_dir)
    before = role.configuration_hash()
    _remember_running(stack, history, before)
    expected = md5_of(text)
    applied = role.apply_config(text)
    if applied.status not in (201, 304):
        keeps = str(before)[:12]
        detail = f"POST /config: HTTP {applied.status}: {applied.detail}; {name} keeps {keeps}"
        return ApplyResult(False, detail, findings=findings)
    if applied.configuration_hash != expected:
        detail = (
            f"after POST /config {name} reports configuration_hash "
            f"{str(applied.configuration_hash)[:12]}, expected {expected[:12]} "
            "(the md5 of the bytes sent)"
        )
        return ApplyResult(False, detail, findings=findings)
    entry = history.latest_with(expected) if not applied.changed else None
    if entry is None:
        entry = history.record(text, source)
    persisted = make_permanent(stack, text, entry) if persist else None
    file_differs = _file_hash(role) != expected
    verb = "applied" if applied.changed else "unchanged (Kong already ran these bytes)"
    detail = f"{verb}: configuration_hash {expected[:12]} (config #{entry.number}, {source})"
    return ApplyResult(True, detail, entry, applied.changed, file_differs, findings, persisted)


def make_permanent(stack: Stack, text: str, entry: HistoryEntry) -> Verdict:
    """Make the gateway's declarative file hold ``text`` (config #``entry``), keeping the
    file's previous bytes in the history first; say where, or why it cannot."""
    name, role = gateway(stack)
    if not isinstance(role, DeclarativePersisting):
        return Verdict(False, f"{name} cannot keep a config in the file it loads", False)
    history = ConfigHistory(stack.state_dir)
    try:
        before = role.declarative_source()
    except (OpskitError, OSError, UnicodeDecodeError):
        before = None
    if before is not None and md5_of(before) == entry.md5:
        return Verdict(True, "the file Kong loads at start already holds it", changed=False)
    if before is not None and history.latest_with(md5_of(before)) is None:
        history.record(before, f"the declarative file before config #{entry.number} replaced it")
    return role.persist_declarative(text)


def _remember_running(stack: Stack, history: ConfigHistory, running: str | None) -> None:
    """Before the first change, keep the bytes Kong runs when they are known: the declarative
    file it loaded (same md5). An export is never recorded as if it were those bytes."""
    if running is None or history.latest_with(running) is not None:
        return
    _, role = gateway(stack)
    try:
        text = role.declarative_source()
    except OpskitError:
        return
    if md5_of(text) == running:
        history.record(text, "running before opskit's first apply (the declarative file)")


def _file_hash(role: ConfigExporting) -> str | None:
    try:
        return md5_of(role.declarative_source())
    except OpskitError:
        return None
