"""Smoke test for CI: start what is not running, check everything end to end, put it back.

``smoke`` leaves the stack as it found it: services it had to start are stopped again, services
that were already running are left alone. Its verdict is the health report's. The whole run is
one mutation: no cron run can act on the stack between smoke's start and its stop.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from opskit.ops import lifecycle
from opskit.ops.engine import EventSink, OperationResult, mutation
from opskit.ops.health import run_health
from opskit.report import Report
from opskit.stack import Stack
from opskit.vocabulary import StepOutcome


@dataclass
class SmokeResult:
    report: Report
    started: list[str] = field(default_factory=list)
    start_result: OperationResult | None = None
    stop_result: OperationResult | None = None

    @property
    def exit_code(self) -> int:
        return self.report.exit_code


def smoke(
    stack: Stack,
    *,
    fail_secure: bool = False,
    allow_cost: bool = False,
    on_event: EventSink | None = None,
) -> SmokeResult:
    result = SmokeResult(report=Report(target=stack.name))
    with mutation(stack, "smoke"):
        if not lifecycle.status(stack).ok:
            result.start_result = lifecycle.start(stack, on_event=on_event)
            result.started = [
                o.service for o in result.start_result.outcomes if o.state is StepOutcome.STARTED
            ]
        try:
            result.report = run_health(
                stack, e2e=True, fail_secure=fail_secure, allow_cost=allow_cost
            )
        finally:
            if result.started:
                result.stop_result = lifecycle.stop(
                    stack, result.started, with_dependents=False, on_event=on_event
                )
    return result
