"""Secret redaction: nothing opskit prints, logs or writes may contain a secret value.

Secrets are found by name (``*PASSWORD*``, ``*SECRET*``, ``*TOKEN*``, ``*API_KEY*``,
``*WEBHOOK*``, ``*_KEY``) in the stack's variables and service environments, plus role options
named ``password`` and every notifier URL (:meth:`opskit.config.StackConfig.secret_values`
gathers them; this module owns the naming rule and the masking). Every text that leaves
opskit — log tails, error lines, reports — goes through :class:`Redactor` first.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|API_KEY|WEBHOOK|_KEY$|^KEY$", re.I)
MASK = "***"
# Shorter values are too likely to be ordinary words or numbers ("0", "yes") to replace blindly.
MIN_SECRET_LENGTH = 4


def is_secret_name(name: str) -> bool:
    return bool(SECRET_NAME.search(name))


class Redactor:
    """Replaces known secret values with ``***``; longest first, so prefixes never leak."""

    def __init__(self, secrets: Iterable[str] = ()):
        unique = sorted({s for s in secrets if len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, unique))) if unique else None

    def __call__(self, text: str) -> str:
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(MASK, text)

    def lines(self, lines: Iterable[str]) -> list[str]:
        return [self(line) for line in lines]
