"""reload: load new configuration into every service whose role can, without a restart.

The first operation written only against a capability (``Reloadable``): nginx validates with
``nginx -t`` and HUPs, Kong applies its declarative file with ``POST /config?check_hash=1``;
the engine reports every other service ``unsupported``. A reload that fails validation leaves
the running configuration alone and fails that service only.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from opskit.ops.engine import EventSink, OperationResult, StepResult, for_each_capable, mutation
from opskit.services.capabilities import Reloadable
from opskit.stack import Stack
from opskit.vocabulary import StepOutcome


def reload(
    stack: Stack, services: Iterable[str] | None = None, *, on_event: EventSink | None = None
) -> OperationResult:
    begin = time.monotonic()

    def step(name: str, role: Reloadable) -> StepResult:
        if not stack.role(name).unit.status().running:
            return StepResult(name, StepOutcome.FAILED, "not running: nothing to reload")
        verdict = role.reload()
        if not verdict.ok:
            return StepResult(name, StepOutcome.FAILED, verdict.detail)
        state = StepOutcome.DONE if verdict.changed else StepOutcome.UNCHANGED
        return StepResult(name, state, verdict.detail)

    with mutation(stack, "reload"):
        outcomes = for_each_capable(
            stack, services, Reloadable, step, emit=on_event or (lambda _event: None)
        )
    return OperationResult("reload", outcomes, time.monotonic() - begin)
