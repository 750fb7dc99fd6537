"""The structure's rules (docs/architecture.md), checked on the source so that they cannot drift.

- Operations ask roles for capabilities, never for their names.
- Roles reach their service only through the Unit contract (``opskit.runtime.base``): no
  runtime implementation, no psutil, no docker, and no question about where the unit runs.
- Runtime code knows units, never roles or operations.
- Statuses, outcomes and states are the enums of opskit.vocabulary, never string literals, and
  no enum lives anywhere else; runtimes and roles are each registered in one place.
- Role packages import no role package but their own, and no module of a role imports a
  module of another role: no circles.
- config does not import the roles; ``inv --list`` imports nothing heavy.
"""

from __future__ import annotations

import ast
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


def _imports(path) -> list[tuple[int, str]]:
    """(line, module) of every import in ``path``, TYPE_CHECKING and function-level ones too."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def test_roles_use_only_the_unit_contract_of_the_runtime():
    offenders = [
        f"{path.relative_to(REPO)}:{line}: imports {module}"
        for path in sources("services")
        for line, module in _imports(path)
        if module.split(".")[0] in ("psutil", "docker")
        or (module.startswith("opskit.runtime") and module != "opskit.runtime.base")
    ]
    assert not offenders, offenders


def test_roles_never_ask_where_their_unit_runs():
    asks = re.compile(r"runs_on_host|config\.runtime\s*[!=]=|isinstance\([^)]*Unit\)")
    offenders = [
        f"{path.relative_to(REPO)}:{number}: {line.strip()}"
        for path in sources("services", "ops")
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if asks.search(line)
    ]
    assert not offenders, offenders


def test_runtime_code_knows_units_never_roles_or_operations():
    offenders = [
        f"{path.relative_to(REPO)}:{line}: imports {module}"
        for path in sources("runtime")
        for line, module in _imports(path)
        if module.startswith(("opskit.services", "opskit.ops", "opskit.stack", "opskit.tasks"))
    ]
    assert not offenders, offenders


def test_every_enum_lives_in_the_vocabulary():
    offenders = [
        f"{path.relative_to(REPO)}:{node.lineno}: class {node.name}"
        for path in sorted(SOURCE.rglob("*.py"))
        if path.name != "vocabulary.py"
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ClassDef)
        and any(
            getattr(base, "id", getattr(base, "attr", "")).endswith(("Enum", "Word"))
            for base in node.bases
        )
    ]
    assert not offenders, offenders


def test_runtimes_and_roles_are_each_registered_once():
    from opskit.runtime import _RUNTIME_MODULES
    from opskit.services import _ROLE_MODULES
    from opskit.vocabulary import RoleKind, RuntimeKind

    assert set(_RUNTIME_MODULES) == set(RuntimeKind)
    assert set(_ROLE_MODULES) == set(RoleKind)
    for module in ("opskit/config.py", "opskit/runtime/__init__.py"):
        text = (REPO / module).read_text()
        assert not re.search(r"runtime\s*==\s*\"(process|docker|swarm)\"", text), module


def test_role_packages_import_no_other_role():
    roles = sorted(p.name for p in (SOURCE / "services").iterdir() if (p / "__init__.py").exists())
    offenders = [
        f"{path.relative_to(REPO)}:{line}: imports {module}"
        for role in roles
        for path in sorted((SOURCE / "services" / role).glob("*.py"))
        for line, module in _imports(path)
        if module.startswith("opskit.services.")
        and module.split(".")[2] in roles
        and module.split(".")[2] != role
    ]
    assert not offenders, offenders


def test_a_role_module_imports_no_module_that_imports_it():
    """No circles inside a role package: its backup, admin or file module is handed the role
    as a Protocol of what it needs and never imports the role module."""
    offenders = []
    for path in sources("services"):
        if path.name == "role.py":
            continue
        role_module = ".".join(path.relative_to(REPO).with_name("role").parts)
        offenders += [
            f"{path.relative_to(REPO)}:{line}: imports {module}"
            for line, module in _imports(path)
            if module == role_module
        ]
    assert not offenders, offenders


def test_runtimes_compose_their_helpers_and_never_subclass_each_other():
    """A runtime's Unit and Runtime derive from the contract directly: what two runtimes share
    (the container helpers) is a module both use, not a base class one inherits from the other."""
    offenders = [
        f"{path.relative_to(REPO)}:{node.lineno}: class {node.name}({bases})"
        for path in sources("runtime")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ClassDef)
        and (bases := ", ".join(getattr(b, "id", "?") for b in node.bases))
        and any(getattr(b, "id", "").endswith(("Unit", "Runtime")) for b in node.bases)
        and bases not in ("Unit", "Runtime")
    ]
    assert not offenders, offenders


def test_tasks_render_results_and_build_no_json_by_hand():
    """Every ``--json`` answer is ``result_json(result)``: one shape (ok, exit_code, to_dict),
    every string redacted. Only ``inv events`` writes JSON lines itself: a stream of events,
    not a result."""
    offenders = [
        f"{path.relative_to(REPO)}:{number}: {line.strip()}"
        for path in sources("tasks")
        if path.name != "events.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"\bjson(lib)?\.dumps\(|^import json", line.strip())
    ]
    assert not offenders, offenders
