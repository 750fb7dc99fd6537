"""The structure's rules, checked on the source so that they cannot drift.

- Operations ask roles for capabilities, never for their names.
- Statuses, outcomes and states are the enums of opskit.vocabulary, never string literals.
- config does not import the roles; ``inv --list`` imports nothing heavy.
"""

from __future__ import annotations

import re
import subprocess

from .conftest import PYTHON, REPO

SOURCE = REPO / "opskit"
ROLE_NAME_TEST = re.compile(
    r"\.role\b\s*[!=]=|RoleKind\.|role\.name\s*[!=]=|\"(redis|kong|nginx)\""
)
# A task namespace named after the software it drives (`inv kong.apply`) names no role test.
CLI_NAMESPACE = re.compile(r"Collection\(\"(redis|kong|nginx)\"\)  # the CLI namespace")
STATUS_LITERAL = re.compile(
    r"\"(OK|WARNING|CRITICAL|UNKNOWN|started|stopped|killed|skipped|failed|exited|absent|"
    r"already running)\""
)


def sources(*folders: str) -> list:
    return [path for folder in folders for path in sorted((SOURCE / folder).rglob("*.py"))]


def test_operations_never_ask_a_role_for_its_name():
    offenders = [
        f"{path.relative_to(REPO)}:{number}: {line.strip()}"
        for path in sources("ops", "tasks")
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if ROLE_NAME_TEST.search(line) and not CLI_NAMESPACE.search(line)
    ]
    assert not offenders, offenders


def test_no_status_string_literals_outside_the_vocabulary():
    files = [*sources("ops", "services", "runtime", "tasks")]
    files += [SOURCE / "console.py", SOURCE / "report.py"]
    offenders = [
        f"{path.relative_to(REPO)}:{number}: {line.strip()}"
        for path in files
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if STATUS_LITERAL.search(line)
    ]
    assert not offenders, offenders


def test_config_does_not_import_the_roles_and_listing_stays_light():
    code = (
        "import sys, opskit.config, opskit.tasks\n"
        "heavy = [m for m in sys.modules if m.startswith(('opskit.services', 'opskit.ops',"
        " 'httpx', 'redis', 'docker', 'rich', 'psutil'))]\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
