"""Helpers shared by the benchmarks: a private sandbox environment, medians."""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

from sandbox.environment import isolated_environ

REPO = Path(__file__).resolve().parent.parent
SANDBOX_STACK = REPO / "sandbox" / "stack.yml"


def sandbox_environ() -> dict[str, str]:
    """The sandbox on free ports with a throw-away state dir, so a running sandbox is untouched."""
    return isolated_environ(tempfile.mkdtemp(prefix="opskit-bench-"))


def median(values: list[float]) -> float:
    return statistics.median(values)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:7.1f} ms"
