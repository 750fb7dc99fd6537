"""Rough edges an operator hit (issue 20), each tried the way they hit it, on real services.

Each test here failed on the release before it.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import time
from pathlib import Path

from opskit.ops import lifecycle

from .conftest import PYTHON, REPO, cli_env, inv_process, run_inv

# -- 4. output that cron, CI and pipes can use ---------------------------------------------------


def test_piped_output_is_one_record_per_line_never_wrapped(sandbox):
    """Not on a terminal, rich wrapped tables at 80 columns: health details spanned lines and
    backup.list cut the id an operator must type next."""
    env = cli_env(sandbox)
    health = json.loads(run_inv(env, "health", "--json").stdout)
    table = run_inv(env, "health").stdout.splitlines()
    assert len(table) == 2 + len(health["checks"]), table  # title, header, one line a check
    for check, row in zip(health["checks"], table[2:], strict=True):
        assert row.split()[:3] == [check["service"], check["name"], check["status"]], row

    tag = "nightly-before-the-kong-3.9-upgrade-test"  # 40 characters, the most a tag takes
    backup = run_inv(env, "backup", "--tag", tag, "--json")
    assert backup.returncode == 0, backup.stdout + backup.stderr
    backup_id = json.loads(backup.stdout)["id"]
    listing = run_inv(env, "backup.list").stdout.splitlines()
    assert any(line.startswith(backup_id + " ") for line in listing), listing
    assert all("─" not in line and "│" not in line for line in listing)  # no box drawing

    status = run_inv(env, "status").stdout.splitlines()
    assert len(status) == 1 + len(sandbox.services), status


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_grid_cells_are_literal_text_and_styles_show_only_on_a_terminal():
    """A detail such as "[WARN] disk [/] 91%" is text, never markup (rich swallowed the
    bracketed words); styled cells are coloured on a terminal and plain in a pipe, where rich
    is not imported at all."""
    import sys

    from opskit.console import Grid, Styled, print_grid

    detail = "[WARN] disk [/] at [bold]91%"
    grid = Grid(("check", "status", "detail"), title=("health: ", Styled("CRITICAL", "red")))
    grid.add_row("disk", Styled("CRITICAL", "red"), detail)
    piped = io.StringIO()
    print_grid(grid, piped)
    lines = piped.getvalue().splitlines()
    assert lines[0] == "health: CRITICAL"
    assert lines[2].split(None, 2) == ["disk", "CRITICAL", detail]

    terminal = _Terminal()
    print_grid(grid, terminal)
    shown = terminal.getvalue()
    assert detail in shown and "health: \x1b[31mCRITICAL\x1b[0m" in shown  # red on a terminal

    script = (
        "import io, sys; from opskit.console import Grid, Styled, print_grid; "
        "g = Grid(('a', 'b')); g.add_row('x', Styled('y', 'red')); print_grid(g, io.StringIO()); "
        "print(any(m == 'rich' or m.startswith('rich.') for m in sys.modules))"
    )
    found = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO)
    assert found.stdout.strip() == "False", found.stdout + found.stderr


# -- 7. the lock says who holds it, at once ------------------------------------------------------


def test_a_run_that_waits_for_the_lock_says_at_once_for_whom(write_stack, tmp_path):
    from .helpers import stack_text
    from .test_engine import sh_service

    path = write_stack(stack_text(sh_service("a")))
    env = {"PATH": os.environ["PATH"], "OPSKIT_STACK": str(path)}
    holder = subprocess.Popen(
        [
            PYTHON,
            "-c",
            "import sys, time\n"
            "from pathlib import Path\n"
            "from opskit.lock import stack_lock\n"
            "with stack_lock(Path(sys.argv[1]), 'a nightly backup'):\n"
            "    print('held', flush=True)\n"
            "    time.sleep(3)\n",
            str(tmp_path / "state"),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        waiting = inv_process(env, "stop")
        began = time.monotonic()
        first = waiting.stdout.readline()
        said_after = time.monotonic() - began
        assert holder.poll() is None, "the holder let go before the waiter spoke"
        assert "waiting up to 10s for the stack lock" in first, first
        assert f"pid {holder.pid}, a nightly backup, since " in first, first
        assert said_after < 2.5, f"said only after {said_after:.1f}s"
        rest, _ = waiting.communicate(timeout=30)
        assert waiting.returncode == 0, first + rest
    finally:
        holder.kill()
        holder.wait()


def test_every_lock_busy_message_names_the_holder_under_contention(tmp_path):
    """Eight processes take and give back the lock as fast as they can; every refusal names
    a holder (3 of 19 did not: the record was truncated, then written)."""
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from opskit.errors import LockBusyError\n"
        "from opskit.lock import stack_lock\n"
        "busy = named = 0\n"
        "for _ in range(200):\n"
        "    try:\n"
        "        with stack_lock(Path(sys.argv[1]), 'contender', wait=0):\n"
        "            pass\n"
        "    except LockBusyError as exc:\n"
        "        busy += 1\n"
        "        named += '(pid ' in str(exc)\n"
        "print(busy, named)\n"
    )
    runs = [
        subprocess.Popen(
            [PYTHON, "-c", code, str(tmp_path / "state")], stdout=subprocess.PIPE, text=True
        )
        for _ in range(8)
    ]
    counts = [tuple(map(int, run.communicate(timeout=60)[0].split())) for run in runs]
    busy = sum(b for b, _ in counts)
    named = sum(n for _, n in counts)
    assert busy > 0, "no contention happened: the test proved nothing"
    assert named == busy, f"{busy - named} of {busy} refusals did not name the holder"


# -- 8. usable from anywhere ----------------------------------------------------------------------

OPSKIT = Path(PYTHON).parent / "opskit"


def _opskit(args: list[str], cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(OPSKIT), *args],
        cwd=cwd,
        env=env or {"PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_opskit_command_works_from_any_directory_as_inv_does(write_stack, load, tmp_path):
    from .helpers import stack_text
    from .test_engine import sh_service

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    path = write_stack(stack_text(sh_service("a"), sh_service("b", ["a"])))
    stack = load(path)
    assert OPSKIT.exists(), "pip install did not install the opskit console script"

    started = _opskit(["start", "-f", str(path)], elsewhere)
    assert started.returncode == 0, started.stdout + started.stderr
    assert all(r.status.running for r in lifecycle.status(stack).rows)
    status = _opskit(["status", "-s", "b", "-f", str(path)], elsewhere)
    assert status.returncode == 0 and status.stdout.splitlines()[1].startswith("b "), status
    via_env = _opskit(
        ["status", "--json"], elsewhere, {"PATH": os.environ["PATH"], "OPSKIT_STACK": str(path)}
    )
    assert {s["service"] for s in json.loads(via_env.stdout)["services"]} == {"a", "b"}

    # The same parsing as inv: an optional positional, a list flag's word, a bare --service.
    env = {"PATH": os.environ["PATH"]}
    for args in (
        ["restore", "--stack", str(path), "-s", "a"],
        ["stop", "--stack", str(path), "--service"],
        ["backup.validate", "--stack", str(path)],
    ):
        ours, theirs = _opskit(args, elsewhere, env), run_inv(env, *args)
        assert (ours.returncode, ours.stderr) == (theirs.returncode, theirs.stderr), args
    assert _opskit(["stop", "-f", str(path)], elsewhere).returncode == 0
    assert not any(r.status.running for r in lifecycle.status(stack).rows)

    listed = _opskit(["--list"], elsewhere)
    assert listed.returncode == 0 and "graceful-restart" in listed.stdout, listed.stderr


def test_importing_opskit_tasks_leaves_invokes_parser_alone():
    code = (
        "from invoke.parser.parser import ParseMachine as M\n"
        "before = (M.complete_context, M.check_ambiguity)\n"
        "import opskit.tasks, opskit.cli\n"
        "assert (M.complete_context, M.check_ambiguity) == before, 'patched at import'\n"
        "from opskit.tasks.parsing import opskit_parsing\n"
        "with opskit_parsing():\n"
        "    assert M.complete_context is not before[0]\n"
        "assert (M.complete_context, M.check_ambiguity) == before, 'not put back'\n"
    )
    done = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr


# -- 10. small things that made it look unfinished ------------------------------------------------


def test_backup_progress_reads_well_and_paths_are_resolved(sandbox):
    env = cli_env(sandbox)
    done = run_inv(env, "backup")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "redis: running — backing up" in done.stderr, done.stderr
    assert "be backed up" not in done.stderr.replace("cannot be backed up", "")
    assert "[WARN]" not in done.stderr, done.stderr
    info = [line for line in done.stderr.splitlines() if "not applicable" in line]
    assert len(info) == 1 and info[0].startswith("[INFO]"), done.stderr  # said once
    assert "backend" in info[0] and "cannot be backed up" in info[0]
    assert "/../" not in done.stdout, done.stdout  # sandbox/../backups printed resolved


def test_recover_says_what_it_cleaned_as_start_does(sandbox):
    """kill -9 of nginx's master leaves its worker holding the port: recover kills it, and
    says so ("cleaning — killed pid …") as inv start does."""
    import psutil

    master = psutil.Process(sandbox.role("nginx").unit.status().pid)
    workers = master.children()
    assert workers
    master.kill()
    master.wait(10)
    done = run_inv(cli_env(sandbox), "recover")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"nginx: cleaning — killed pid {workers[0].pid}" in done.stderr, done.stderr


def test_ctrl_c_during_a_backup_keeps_nothing_and_exits_130(sandbox):
    """SIGINT while the RDB streams: the backup ends at the next chunk, nothing is kept, and
    the process exits 130 by itself (not killed by the signal: returncode -2)."""
    import signal

    import redis as redis_py

    host, port = sandbox.role("redis").unit.address(6379)
    client = redis_py.Redis(host, port, password=sandbox.config.environ["REDIS_PASSWORD"])
    with client.pipeline(transaction=False) as pipe:
        for index in range(60_000):
            pipe.set(f"bulk:{index}", os.urandom(2048))
            if index % 5000 == 4999:
                pipe.execute()
        pipe.execute()
    backups = sandbox.config.backups_dir
    before = set(backups.iterdir()) if backups.exists() else set()
    running = inv_process(cli_env(sandbox), "backup")
    deadline = time.monotonic() + 60
    while not any(p.name.startswith(".partial-") for p in backups.glob(".*")):
        assert time.monotonic() < deadline and running.poll() is None, running.communicate()
        time.sleep(0.01)
    running.send_signal(signal.SIGINT)
    output, _ = running.communicate(timeout=60)
    assert running.returncode == 130, output
    assert "backup interrupted: nothing was kept" in output
    assert set(backups.iterdir()) == before  # no backup, no partial


def test_inv_caches_opskits_bytecode_although_invoke_turns_writing_off(tmp_path):
    """invoke sets sys.dont_write_bytecode before it loads tasks.py; opskit was compiled again
    at every command (≈ 0.15 s of each). Its modules are cached like an installed package's,
    unless the operator asked for no bytecode."""
    import importlib.util

    module = REPO / "opskit" / "tasks" / "health.py"
    cached = Path(importlib.util.cache_from_source(str(module)))
    env = {"PATH": os.environ["PATH"], "PYTHONDONTWRITEBYTECODE": "1"}
    cached.unlink(missing_ok=True)
    assert run_inv(env, "--list").returncode == 0
    assert not cached.exists()  # asked for none: none written
    del env["PYTHONDONTWRITEBYTECODE"]
    assert run_inv(env, "--list").returncode == 0
    assert cached.exists()


def _loaded_after(sandbox, code: str, modules: tuple[str, ...]) -> list[str]:
    """Which of ``modules`` a fresh interpreter has loaded after running ``code`` against the
    started sandbox (``stack`` is its loaded stack)."""
    import sys

    script = (
        "import sys; from opskit.stack import load_stack; "
        f"stack = load_stack({str(sandbox.config.source)!r}); {code}; "
        f"print(sorted(m for m in {modules!r} if m in sys.modules))"
    )
    found = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=cli_env(sandbox),
    )
    assert found.returncode == 0, found.stderr
    return eval(found.stdout.strip())  # a list of names, printed by the script above


def test_roles_load_without_the_backup_code(sandbox):
    """status, health and start build every role; the backup and restore code (zstd, tarfile,
    the artifact store) is loaded by backup and restore only — it was ≈ 15 ms of every
    command."""
    code = "[stack.role(name) for name in stack.services]"
    assert _loaded_after(sandbox, code, ("opskit.backup.artifacts", "zstandard", "tarfile")) == []


def test_status_and_health_of_running_processes_do_not_import_psutil(sandbox):
    """``inv status`` and ``inv health`` read /proc for what they ask of a process (alive,
    ours, memory, CPU) and of the host (memory, disk): psutil's import was ≈ 15 ms of each."""
    code = (
        "from opskit.ops import lifecycle; from opskit.ops.health import run_health; "
        "assert lifecycle.status(stack).ok; run_health(stack)"
    )
    assert _loaded_after(sandbox, code, ("psutil",)) == []
