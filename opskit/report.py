"""One report schema for every check, rendered as JSON, JUnit XML or one Nagios-style line.

``{timestamp, target, checks: [{name, service, status, detail, duration_ms}], summary,
exit_code}`` — the JSON Schema is ``opskit/schemas/health-report.schema.json``. Statuses and
exit codes follow the Nagios plugin convention, so cron wrappers and monitoring systems can
use opskit as they would ``check_http``: OK 0, WARNING 1, CRITICAL 2, UNKNOWN 3.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from xml.etree import ElementTree

OK = "OK"
WARNING = "WARNING"
CRITICAL = "CRITICAL"
UNKNOWN = "UNKNOWN"
STATUSES = (OK, WARNING, CRITICAL, UNKNOWN)
EXIT_CODES = {OK: 0, WARNING: 1, CRITICAL: 2, UNKNOWN: 3}
# Which status wins when checks disagree: any CRITICAL makes the report CRITICAL, and so on.
_SEVERITY = {OK: 0, WARNING: 1, UNKNOWN: 2, CRITICAL: 3}


@dataclass
class CheckResult:
    name: str
    service: str
    status: str
    detail: str = ""
    duration_ms: float = 0.0


@dataclass
class Report:
    target: str
    checks: list[CheckResult] = field(default_factory=list)
    timestamp: str = field(
        default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    )

    @property
    def status(self) -> str:
        if not self.checks:
            return UNKNOWN
        return max((c.status for c in self.checks), key=_SEVERITY.__getitem__)

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]

    @property
    def summary(self) -> dict:
        counts = {status: 0 for status in STATUSES}
        for check in self.checks:
            counts[check.status] += 1
        return {"status": self.status, "total": len(self.checks), **counts}

    def to_dict(self) -> dict:
        return {
            "timestamp": self.timestamp,
            "target": self.target,
            "checks": [asdict(check) for check in self.checks],
            "summary": self.summary,
            "exit_code": self.exit_code,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_junit(self) -> str:
        """One ``<testcase>`` per check: CRITICAL/WARNING are failures, UNKNOWN an error."""
        summary = self.summary
        suite = ElementTree.Element(
            "testsuite",
            name=f"opskit health: {self.target}",
            tests=str(summary["total"]),
            failures=str(summary[CRITICAL] + summary[WARNING]),
            errors=str(summary[UNKNOWN]),
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
            if check.status in (CRITICAL, WARNING):
                failure = ElementTree.SubElement(
                    case, "failure", type=check.status, message=check.detail
                )
                failure.text = f"{check.status}: {check.detail}"
            elif check.status == UNKNOWN:
                error = ElementTree.SubElement(case, "error", type=UNKNOWN, message=check.detail)
                error.text = f"UNKNOWN: {check.detail}"
            else:
                ElementTree.SubElement(case, "system-out").text = check.detail
        ElementTree.indent(suite)
        return ElementTree.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"

    def one_line(self) -> str:
        """``HEALTH CRITICAL - 2 of 21 checks failing: kong.ready: …; …`` (for cron and Nagios)."""
        bad = [c for c in self.checks if c.status != OK]
        head = f"HEALTH {self.status} - {len(self.checks)} checks"
        if not bad:
            return f"{head}, all OK"
        problems = "; ".join(f"{c.service}.{c.name} {c.status}: {c.detail}" for c in bad)
        return f"{head}, {len(bad)} not OK: {problems}"
