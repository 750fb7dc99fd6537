"""One report schema for every check, rendered as JSON, JUnit XML or one Nagios-style line.

``{timestamp, target, checks: [{name, service, status, detail, duration_ms}], summary,
exit_code}`` — the JSON Schema is ``opskit/schemas/health-report.schema.json``. Statuses and
exit codes follow the Nagios plugin convention, so cron wrappers and monitoring systems can
use opskit as they would ``check_http``: OK 0, WARNING 1, CRITICAL 2, UNKNOWN 3.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from opskit.vocabulary import CheckStatus

# The members under their short names, for callers of the first release.
OK = CheckStatus.OK
WARNING = CheckStatus.WARNING
CRITICAL = CheckStatus.CRITICAL
UNKNOWN = CheckStatus.UNKNOWN


@dataclass
class CheckResult:
    name: str
    service: str
    status: CheckStatus
    detail: str = ""
    duration_ms: float = 0.0

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "service": self.service,
            "status": self.status.value,
            "detail": self.detail,
            "duration_ms": self.duration_ms,
        }


@dataclass
class Report:
    target: str
    checks: list[CheckResult] = field(default_factory=list)
    timestamp: str = field(
        default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    )

    @property
    def status(self) -> CheckStatus:
        if not self.checks:
            return CheckStatus.UNKNOWN
        return max((c.status for c in self.checks), key=lambda status: status.severity)

    @property
    def exit_code(self) -> int:
        return int(self.status.exit_code)

    @property
    def summary(self) -> dict:
        counts = {status.value: 0 for status in CheckStatus}
        for check in self.checks:
            counts[check.status.value] += 1
        return {"status": self.status.value, "total": len(self.checks), **counts}

    def to_dict(self) -> dict:
        return {
            "timestamp": self.timestamp,
            "target": self.target,
            "checks": [check.to_dict() for check in self.checks],
            "summary": self.summary,
            "exit_code": self.exit_code,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_junit(self) -> str:
        """One ``<testcase>`` per check: CRITICAL/WARNING are failures, UNKNOWN an error."""
        from xml.etree import ElementTree

        summary = self.summary
        suite = ElementTree.Element(
            "testsuite",
            name=f"opskit health: {self.target}",
            tests=str(summary["total"]),
            failures=str(summary[CRITICAL.value] + summary[WARNING.value]),
            errors=str(summary[UNKNOWN.value]),
            skipped="0",
            timestamp=self.timestamp,
            time=f"{sum(c.duration_ms for c in self.checks) / 1000:.3f}",
        )
        for check in self.checks:
            case = ElementTree.SubElement(
                suite,
                "testcase",
                classname=f"opskit.{check.service}",
                name=check.name,
                time=f"{check.duration_ms / 1000:.3f}",
            )
            if check.status in (CheckStatus.CRITICAL, CheckStatus.WARNING):
                failure = ElementTree.SubElement(
                    case, "failure", type=check.status.value, message=check.detail
                )
                failure.text = f"{check.status}: {check.detail}"
            elif check.status is CheckStatus.UNKNOWN:
                error = ElementTree.SubElement(
                    case, "error", type=check.status.value, message=check.detail
                )
                error.text = f"UNKNOWN: {check.detail}"
            else:
                ElementTree.SubElement(case, "system-out").text = check.detail
        ElementTree.indent(suite)
        return ElementTree.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"

    def one_line(self) -> str:
        """``HEALTH CRITICAL - 2 of 21 checks failing: kong.ready: …; …`` (for cron and Nagios)."""
        bad = [c for c in self.checks if c.status is not CheckStatus.OK]
        head = f"HEALTH {self.status} - {len(self.checks)} checks"
        if not bad:
            return f"{head}, all OK"
        problems = "; ".join(f"{c.service}.{c.name} {c.status}: {c.detail}" for c in bad)
        return f"{head}, {len(bad)} not OK: {problems}"
