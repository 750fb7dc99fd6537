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


def spread(values: list[float]) -> str:
    """Median and range, for a line an outside reviewer can judge the noise from."""
    low, mid, high = (ms(v).strip() for v in (min(values), median(values), max(values)))
    return f"{mid} (min {low}, max {high})"


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT MET"


def cli_environ(environ: dict[str, str]) -> dict[str, str]:
    """The environment of an ``inv`` run as an operator's shell has it: bytecode cached (this
    workplace sets PYTHONDONTWRITEBYTECODE; an operator's machine does not)."""
    env = dict(environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def inv_argv(*args: str) -> list[str]:
    """``inv ARGS`` from the checkout, as an operator types it (the same interpreter)."""
    import sys

    return [sys.executable, "-m", "invoke", "--search-root", str(REPO), *args]
