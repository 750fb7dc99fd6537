"""Two fixes to invoke's task parsing that opskit's command line needs — applied only where
opskit parses its own command line, never by importing opskit.

- **Optional positionals** (``backup.validate [ID]``, ``kong.apply [FILE]``): invoke requires
  every positional argument, and one property decides both "eat the next word as this
  argument" and "complain that it is missing", so no default can make it optional. The
  end-of-context check gives the arguments :class:`~opskit.tasks.common.OpskitTask` marked an
  empty value (the task reads it as "not given") before invoke's own check runs.
- **A list flag's word is its value** (``inv restore -s redis``): list flags take an optional
  value (so a bare ``--service`` is an error, not "all"), which woke invoke's ambiguity guard:
  with a positional still unfilled it refused ``redis`` as "ambiguous". A word that names
  another task keeps the guard.

:func:`opskit_parsing` applies both for one parse and puts invoke's methods back after; the
``opskit`` console command wraps its task parsing in it (:mod:`opskit.cli`). ``inv`` is
invoke's own program, so the repository's ``tasks.py`` — an entry point, like a ``main`` —
calls :func:`install` for its process. A library import of :mod:`opskit.tasks` changes
nothing in invoke.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any


def _complete_context(original):
    def complete_context(self) -> None:
        if self.context:
            for argument in self.context.positional_args:
                if getattr(argument, "opskit_optional", False) and argument.value is None:
                    argument.value = ""
        original(self)

    return complete_context


def _check_ambiguity(original):
    def check_ambiguity(self, value: Any) -> bool:
        flag = self.flag
        if (
            flag is not None
            and getattr(flag, "opskit_list", False)
            and flag.raw_value is None
            and value not in self.contexts
        ):
            return False
        return original(self, value)

    return check_ambiguity


@contextlib.contextmanager
def opskit_parsing() -> Iterator[None]:
    """invoke's parser with opskit's two fixes, for the duration of one parse."""
    from invoke.parser.parser import ParseMachine

    complete, ambiguity = ParseMachine.complete_context, ParseMachine.check_ambiguity
    ParseMachine.complete_context = _complete_context(complete)  # type: ignore[method-assign]
    ParseMachine.check_ambiguity = _check_ambiguity(ambiguity)  # type: ignore[method-assign]
    try:
        yield
    finally:
        ParseMachine.complete_context = complete  # type: ignore[method-assign]
        ParseMachine.check_ambiguity = ambiguity  # type: ignore[method-assign]


_installed: contextlib.ExitStack | None = None


def install() -> None:
    """Apply the fixes for the rest of this process (``inv`` through ``tasks.py``); once."""
    global _installed
    if _installed is None:
        _installed = contextlib.ExitStack()
        _installed.enter_context(opskit_parsing())
