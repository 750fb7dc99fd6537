"""Typed reading of an ``x-opskit`` mapping, with the key path of every bad value.

Each reader serves one block (``x-opskit``, ``services.kong.x-opskit``, …). Accessors convert
and check one key each and remember it as known; :meth:`OptionReader.finish` then rejects any
key nobody asked for, with a did-you-mean — a typo in an ``x-opskit`` key is an error at load
time, never a silently ignored setting. Roles declare their settings as frozen dataclasses
built from such a reader (``Role.parse_options``), so a role reads ``self.options.admin_url``
and not ``spec.options.get("admin_url")`` with its default repeated at every use.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar

from opskit.durations import parse_duration
from opskit.errors import ConfigError

E = TypeVar("E", bound=Enum)
_MISSING = object()


class OptionReader:
    """Reads ``raw`` (the mapping at ``prefix`` in ``source``); every error names its key."""

    def __init__(
        self,
        source: str | Path,
        prefix: str,
        raw: Mapping[str, Any] | None,
        project_dir: Path,
        *,
        ignored: Iterable[str] = (),
    ):
        self.source = str(source)
        self.prefix = prefix
        self.raw = dict(raw or {})
        self.project_dir = project_dir
        self._known: set[str] = set(ignored)

    def key(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name

    def fail(self, name: str, problem: str) -> ConfigError:
        return ConfigError(self.source, self.key(name), problem)

    def _get(self, name: str, default: Any) -> Any:
        self._known.add(name)
        value = self.raw.get(name, _MISSING)
        return default if value is _MISSING or value is None else value

    def has(self, name: str) -> bool:
        return self.raw.get(name) is not None

    # -- accessors -----------------------------------------------------------------------------

    def string(self, name: str, default: str | None = None) -> str | None:
        value = self._get(name, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise self.fail(name, f"expected a string, got {_kind(value)}")
        return str(value)

    def required_string(self, name: str, expected: str = "a string") -> str:
        value = self.string(name)
        if not value:
            raise self.fail(name, f"expected {expected}")
        return value

    def url(self, name: str, *, required: bool = False) -> str | None:
        value = self._get(name, None)
        if value is None and not required:
            return None
        if not isinstance(value, str) or not value.startswith(("http://", "https://")):
            raise self.fail(name, f"expected an http(s) URL, got {value!r}")
        return value

    def url_path(self, name: str, default: str) -> str:
        value = self.string(name, default) or default
        if not value.startswith("/"):
            raise self.fail(name, f"expected a URL path starting with '/', got {value!r}")
        return value

    def duration(self, name: str, default: float | None = None) -> float | None:
        value = self._get(name, default)
        if value is None:
            return None
        try:
            return parse_duration(value)
        except ValueError as exc:
            raise self.fail(name, str(exc)) from None

    def positive_duration(self, name: str, default: float) -> float:
        value = self.duration(name, default)
        assert value is not None
        if value <= 0:
            raise self.fail(name, f"expected a duration above zero, got {self.raw.get(name)!r}")
        return value

    def number(self, name: str, default: float, *, low: float = 0, high: float | None = None):
        value = self._get(name, default)
        if isinstance(value, bool):
            raise self.fail(name, f"expected a number, got {_kind(value)}")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise self.fail(name, f"expected a number, got {value!r}") from None
        if number < low or (high is not None and number > high):
            bounds = f"between {low:g} and {high:g}" if high is not None else f">= {low:g}"
            raise self.fail(name, f"expected a number {bounds}, got {value!r}")
        return number

    def boolean(self, name: str, default: bool) -> bool:
        value = self._get(name, default)
        if not isinstance(value, bool):
            raise self.fail(name, f"expected true or false, got {value!r}")
        return value

    def choice(self, name: str, enum: type[E], default: E) -> E:
        value = self._get(name, default)
        try:
            return enum(value)
        except ValueError:
            allowed = ", ".join(str(member.value) for member in enum)
            raise self.fail(name, f"expected one of {allowed}, got {value!r}") from None

    def mapping(self, name: str) -> dict[str, Any]:
        value = self._get(name, {})
        if not isinstance(value, dict):
            raise self.fail(name, f"expected a mapping, got {_kind(value)}")
        return value

    def items(self, name: str) -> list[Any]:
        """A list (a single value is a list of one; nothing is an empty list)."""
        value = self._get(name, [])
        return list(value) if isinstance(value, list) else [value]

    def section(self, name: str) -> OptionReader:
        """A reader for the nested mapping at ``name`` (finish it too)."""
        return OptionReader(self.source, self.key(name), self.mapping(name), self.project_dir)

    def existing_path(self, name: str, *, what: str = "file") -> Path | None:
        """A path relative to the stack file that must exist now (a template, a cwd)."""
        value = self.string(name)
        if value is None:
            return None
        path = Path(value).expanduser()
        path = path if path.is_absolute() else self.project_dir / path
        exists = path.is_dir() if what == "directory" else path.is_file()
        if not exists:
            raise self.fail(name, f"{what} {path} not found")
        return path

    def status_codes(self, name: str) -> tuple[int, ...]:
        value = self._get(name, ())
        values = value if isinstance(value, list) else ([value] if value != () else [])
        try:
            codes = tuple(int(item) for item in values if not isinstance(item, bool))
        except (TypeError, ValueError):
            codes = ()
        if len(codes) != len(values) or any(not 100 <= code <= 599 for code in codes):
            raise self.fail(name, "expected an HTTP status code or a list of them")
        return codes

    # -- the end -------------------------------------------------------------------------------

    def finish(self) -> None:
        """Reject keys nobody asked for: one line, with the closest known key."""
        for name in self.raw:
            if name in self._known:
                continue
            close = difflib.get_close_matches(str(name), sorted(self._known), n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]}?)" if close else ""
            known = ", ".join(sorted(self._known))
            raise self.fail(str(name), f"unknown key{hint}; known: {known}")


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )
