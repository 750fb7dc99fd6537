"""``python -m sandbox.render TEMPLATE OUTPUT [-- COMMAND...]``: render ``${NAME}`` from the
environment into OUTPUT, then exec COMMAND (so it becomes the container's PID 1).

What opskit's process runtime does on the host for nginx.conf and kong.yml, done inside a
container so that ``docker compose up`` and opskit's docker runtime start the sandbox the same
way. As the official nginx image's envsubst filter, only ``${UPPER_CASE}`` names are replaced;
an undefined one stops the container with a clear message instead of rendering an empty string.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def render(template: str, environ: dict[str, str]) -> str:
    def substitute(match: re.Match) -> str:
        name = match.group(1)
        if name not in environ:
            raise SystemExit(f"render: ${{{name}}} is not set in the environment")
        return environ[name]

    return _PLACEHOLDER.sub(substitute, template)


def main(argv: list[str]) -> None:
    command: list[str] = []
    if "--" in argv:
        split = argv.index("--")
        argv, command = argv[:split], argv[split + 1 :]
    if len(argv) != 2:
        raise SystemExit(__doc__.splitlines()[0])
    source, target = Path(argv[0]), Path(argv[1])
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render(source.read_text(encoding="utf-8"), dict(os.environ)))
    if command:
        os.execvp(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
