"""One result shape: every operation returns something with ``ok``, ``exit_code`` and
``to_dict()``, and every task renders it the same way (:func:`result_json`), so no task builds
JSON by hand and no secret reaches a JSON answer: every string in it passes the stack's
redactor on the way out."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from opskit.vocabulary import ExitCode

if TYPE_CHECKING:
    from opskit.redact import Redactor


class Reportable(Protocol):
    """Anything a task prints as JSON (a result, a backup in a listing)."""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values; enums as their values, times as epoch seconds."""
        ...


@runtime_checkable
class Result(Reportable, Protocol):
    """What an operation hands back to the task that called it."""

    @property
    def ok(self) -> bool: ...

    @property
    def exit_code(self) -> int: ...


class ExitsByOk:
    """For a result whose exit code is all in ``ok``: 0 when it is, 1 (FAILED) when not."""

    ok: bool

    @property
    def exit_code(self) -> int:
        return ExitCode.OK if self.ok else ExitCode.FAILED


def redacted(value: Any, redactor: Redactor | None) -> Any:
    """``value`` with every string in it (keys excepted) passed through ``redactor``."""
    if redactor is None:
        return value
    if isinstance(value, str):
        return redactor(value)
    if isinstance(value, dict):
        return {key: redacted(item, redactor) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [redacted(item, redactor) for item in value]
    return value


def result_json(
    result: Reportable | Sequence[Reportable],
    redactor: Redactor | None = None,
    *,
    indent: int | None = 2,
) -> str:
    """The JSON a task prints for ``--json``: one result, or a list of them."""
    if isinstance(result, Sequence):
        value: Any = [item.to_dict() for item in result]
    else:
        value = result.to_dict()
    return json.dumps(redacted(value, redactor), indent=indent, default=str)
