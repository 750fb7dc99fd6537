"""Render ``${NAME}`` placeholders from a service's environment (nginx.conf, kong.yml).

Only upper-case-style ``${NAME}`` is replaced, as the official nginx image's envsubst filter
does, so nginx's own ``$variables`` stay intact. A placeholder the environment does not define
is a config error naming the template and the variable — never an empty string.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from opskit.errors import ConfigError

_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def render_template(path: Path, variables: Mapping[str, str], owner: str, source: object) -> str:
    """``owner`` names where the variables come from, e.g. ``services.nginx.environment``."""
    try:
        template = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(source), owner, f"cannot read template {path}: {exc}") from None

    def substitute(match: re.Match) -> str:
        name = match.group(1)
        if name not in variables:
            raise ConfigError(str(path), f"${{{name}}}", f"not set in {owner}")
        return variables[name]

    return _PLACEHOLDER.sub(substitute, template)
