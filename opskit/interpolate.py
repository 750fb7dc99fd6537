"""Compose-style variable interpolation.

Implements the Compose Specification's rules (compose-spec, "Interpolation"), so one stack file
means the same thing to opskit and to ``docker compose``:

=====================  ======================================================
``$$``                 a literal ``$``
``$VAR``, ``${VAR}``   the value, or an empty string when unset
``${VAR:-default}``    default when VAR is unset **or empty**
``${VAR-default}``     default only when VAR is unset
``${VAR:?message}``    error when VAR is unset or empty
``${VAR?message}``     error only when VAR is unset
``${VAR:+other}``      other when VAR is set and not empty, else empty
``${VAR+other}``       other when VAR is set, else empty
=====================  ======================================================

Defaults and alternatives may themselves contain ``${...}`` (``${A:-${B:-x}}``), as in Compose.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class InterpolationError(ValueError):
    """A required variable is unset, or the ``${...}`` syntax is malformed."""

    def __init__(self, message: str, variable: str | None = None):
        super().__init__(message)
        self.variable = variable


def interpolate(text: str, environ: Mapping[str, str]) -> str:
    """Return ``text`` with every variable reference replaced from ``environ``."""
    value, end = _parse(text, 0, environ, stop_at_brace=False)
    assert end == len(text)
    return value


#: More values than any real Compose file has. YAML aliases let a few hundred bytes stand for
#: billions of values (the "billion laughs"); expanding them would hang opskit, so the walk
#: stops here with an error instead.
MAX_VALUES = 200_000


def interpolate_tree(node: Any, environ: Mapping[str, str], path: str = "") -> Any:
    """Interpolate every string value of a YAML tree (keys are left alone, as in Compose).

    Errors are re-raised with the key path of the value, so the caller can name it. A tree
    with more than :data:`MAX_VALUES` values (an alias bomb) is an InterpolationError.
    """
    budget = [MAX_VALUES]
    return _walk(node, environ, path, budget)


def _walk(node: Any, environ: Mapping[str, str], path: str, budget: list[int]) -> Any:
    budget[0] -= 1
    if budget[0] < 0:
        error = InterpolationError(
            f"the file expands to more than {MAX_VALUES} values (YAML aliases?); refusing it"
        )
        raise _PathedInterpolationError(path.split(".")[0].split("[")[0], error)  # top-level key
    if isinstance(node, str):
        try:
            return interpolate(node, environ)
        except InterpolationError as exc:
            raise _PathedInterpolationError(path, exc) from None
    if isinstance(node, Mapping):
        return {
            key: _walk(value, environ, _join(path, str(key)), budget) for key, value in node.items()
        }
    if isinstance(node, list):
        return [
            _walk(value, environ, f"{path}[{index}]", budget) for index, value in enumerate(node)
        ]
    return node


class _PathedInterpolationError(InterpolationError):
    def __init__(self, path: str, cause: InterpolationError):
        super().__init__(str(cause), cause.variable)
        self.path = path


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _parse(text: str, pos: int, environ: Mapping[str, str], stop_at_brace: bool) -> tuple[str, int]:
    """Parse from ``pos`` until the end (or an unmatched ``}`` when nested)."""
    out: list[str] = []
    length = len(text)
    while pos < length:
        char = text[pos]
        if char == "}" and stop_at_brace:
            return "".join(out), pos
        if char != "$":
            out.append(char)
            pos += 1
            continue
        nxt = text[pos + 1] if pos + 1 < length else ""
        if nxt == "$":
            out.append("$")
            pos += 2
        elif nxt == "{":
            value, pos = _parse_braced(text, pos + 2, environ)
            out.append(value)
        else:
            match = _NAME.match(text, pos + 1)
            if match:
                out.append(environ.get(match.group(0), ""))
                pos = match.end()
            else:  # a lone "$" is kept, as Compose does
                out.append("$")
                pos += 1
    if stop_at_brace:
        raise InterpolationError(f"unterminated '${{' in {text!r}")
    return "".join(out), pos


def _parse_braced(text: str, pos: int, environ: Mapping[str, str]) -> tuple[str, int]:
    """Parse ``NAME[op word]}`` just after ``${``; return the value and the position after ``}``."""
    match = _NAME.match(text, pos)
    if not match:
        raise InterpolationError(f"invalid variable name after '${{' in {text!r}")
    name = match.group(0)
    pos = match.end()
    if pos >= len(text):
        raise InterpolationError(f"unterminated '${{{name}' in {text!r}")
    if text[pos] == "}":
        return environ.get(name, ""), pos + 1

    operator = text[pos : pos + 2] if text[pos] == ":" else text[pos]
    if operator not in (":-", "-", ":?", "?", ":+", "+"):
        raise InterpolationError(f"invalid operator {text[pos : pos + 2]!r} in '${{{name}...}}'")
    word, end = _parse(text, pos + len(operator), environ, stop_at_brace=True)
    pos = end + 1  # past "}"

    is_set = name in environ
    is_nonempty = bool(environ.get(name))
    if operator == ":-":
        return (environ[name] if is_nonempty else word), pos
    if operator == "-":
        return (environ[name] if is_set else word), pos
    if operator == ":+":
        return (word if is_nonempty else ""), pos
    if operator == "+":
        return (word if is_set else ""), pos
    # ":?" and "?": required
    if (operator == ":?" and not is_nonempty) or (operator == "?" and not is_set):
        detail = word or ("is not set" if not is_set else "is empty")
        raise InterpolationError(f"required variable {name}: {detail}", variable=name)
    return environ[name], pos
