"""Shared fixtures: free ports, temp stacks, and a guarantee that every started process stops."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sandbox.environment import free_port, isolated_environ

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def write_stack(tmp_path: Path) -> Callable[..., Path]:
    """Write a stack file into a temp project dir; ``{python}`` and ``{state}`` are filled in."""

    def write(body: str, name: str = "stack.yml", env_file: str | None = None) -> Path:
        text = textwrap.dedent(body).replace("{python}", PYTHON)
        text = text.replace("{state}", str(tmp_path / "state"))
        path = tmp_path / name
        path.write_text(text)
        if env_file is not None:
            (tmp_path / ".env").write_text(textwrap.dedent(env_file))
        return path

    return write


@pytest.fixture
def stacks() -> Iterator[list]:
    """Stacks registered here are stopped at teardown, whatever the test did."""
    from opskit.ops import lifecycle

    registered: list = []
    yield registered
    for stack in registered:
        try:
            lifecycle.stop(stack)
        except Exception as exc:  # teardown must reach every stack
            print(f"teardown: stopping {stack.name} failed: {exc}", file=sys.stderr)
        if stack.config.runtime in ("docker", "swarm"):
            remove_test_volumes(stack.name)


def remove_test_volumes(project: str) -> None:
    """The named volumes opskit (or Compose, in the adoption test) created for a test's stack —
    their labels say which: opskit never removes data, so the tests clean up what their own
    stacks left."""
    import docker

    client = docker.from_env(timeout=30)
    labels = (f"io.opskit.stack={project}", f"com.docker.compose.project={project}")
    volumes = {v.name: v for label in labels for v in client.volumes.list(filters={"label": label})}
    for volume in volumes.values():
        try:
            volume.remove(force=True)
        except docker.errors.APIError as exc:  # still in use: say so, never fail a test
            print(f"teardown: volume {volume.name} stays: {exc.explanation}", file=sys.stderr)


@pytest.fixture
def load(stacks) -> Callable[..., object]:
    """load_stack that registers the stack for teardown."""
    from opskit.stack import load_stack

    def _load(path: Path, environ: dict | None = None, **kwargs):
        env = {"PATH": os.environ.get("PATH", ""), "OPSKIT_BACKUP_KEY": "tests-seal-" + "k" * 16}
        env.update(environ or {})
        stack = load_stack(path, environ=env, **kwargs)
        stacks.append(stack)
        return stack

    return _load


def make_sandbox_env(base: Path) -> dict[str, str]:
    """Environment for the real sandbox stack on free ports with a private state dir."""
    return isolated_environ(base / "sandbox-state")


@pytest.fixture
def sandbox_env(tmp_path: Path) -> dict[str, str]:
    return make_sandbox_env(tmp_path)


def docker_problem() -> str | None:
    """Why the docker runtime cannot be tested here, or None when it can."""
    try:
        import docker

        client = docker.from_env(timeout=10)
        client.ping()
        client.images.get("opskit-sandbox:latest")
    except Exception as exc:
        return f"docker runtime untestable here: {type(exc).__name__}: {str(exc)[:120]}"
    return None


DOCKER_PROBLEM = docker_problem()


def swarm_problem() -> str | None:
    """Why the swarm runtime cannot be tested here (CI runs `docker swarm init`), or None."""
    if DOCKER_PROBLEM:
        return DOCKER_PROBLEM
    import docker

    state = (docker.from_env(timeout=10).info().get("Swarm") or {}).get("LocalNodeState")
    if state != "active":
        return f"swarm runtime untestable here: the engine is not in a swarm ({state})"
    return None


SWARM_PROBLEM = swarm_problem()


#: Both runtimes, the docker one skipped (saying why) where no engine or image is at hand.
RUNTIME_PARAMS = [
    "process",
    pytest.param(
        "docker",
        marks=[
            pytest.mark.docker,
            pytest.mark.skipif(DOCKER_PROBLEM is not None, reason=str(DOCKER_PROBLEM)),
        ],
    ),
]


@pytest.fixture(params=RUNTIME_PARAMS)
def sandbox_stack(request, sandbox_env, stacks):
    """The sandbox stack (not started) on free ports, once per runtime; stopped at teardown."""
    from opskit.stack import load_stack

    env = dict(sandbox_env)
    if request.param == "docker":
        env["COMPOSE_PROJECT_NAME"] = "optest" + os.urandom(4).hex()
    env["OPSKIT_RUNTIME"] = request.param
    stack = load_stack(REPO / "sandbox" / "stack.yml", environ=env)
    stacks.append(stack)
    return stack


@pytest.fixture
def sandbox(sandbox_env, stacks):
    """The sandbox stack on the process runtime, started; stopped at teardown."""
    from opskit.ops import lifecycle
    from opskit.stack import load_stack

    env = dict(sandbox_env, OPSKIT_RUNTIME="process")
    stack = load_stack(REPO / "sandbox" / "stack.yml", environ=env)
    stacks.append(stack)
    result = lifecycle.start(stack)
    assert result.ok, [(o.service, o.detail, o.log_tail) for o in result.outcomes]
    return stack


@pytest.fixture
def kong_stack(sandbox_env, stacks):
    """The sandbox with Kong (and what it needs) started."""
    from opskit.ops import lifecycle
    from opskit.stack import load_stack

    stack = load_stack(REPO / "sandbox" / "stack.yml", environ=sandbox_env)
    stacks.append(stack)
    assert lifecycle.start(stack, ["kong"]).ok
    return stack


def cli_env(stack) -> dict[str, str]:
    """The stack's own environment for ``inv``, pointed at its stack file."""
    env = dict(stack.config.environ)
    env["OPSKIT_STACK"] = str(stack.config.source)
    return env


@pytest.fixture(scope="module")
def running_sandbox(tmp_path_factory):
    """One started sandbox stack shared by a module's read-only tests."""
    from opskit.ops import lifecycle
    from opskit.stack import load_stack

    env = make_sandbox_env(tmp_path_factory.mktemp("sandbox"))
    stack = load_stack(REPO / "sandbox" / "stack.yml", environ=env)
    result = lifecycle.start(stack)
    try:
        assert result.ok, [(o.service, o.detail, o.log_tail) for o in result.outcomes]
        yield stack
    finally:
        lifecycle.stop(stack)


def run_inv(env: dict, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """``inv ARGS`` from the repository, as an operator types it, with ``env``."""
    return subprocess.run(
        [PYTHON, "-m", "invoke", "--search-root", str(REPO), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )


def inv_process(env: dict, *args: str, output: bool = True) -> subprocess.Popen:
    """``inv ARGS`` started in the background (a watcher, a long rollout), text output piped."""
    pipe = subprocess.PIPE if output else subprocess.DEVNULL
    return subprocess.Popen(
        [PYTHON, "-m", "invoke", "--search-root", str(REPO), *args],
        env=env,
        cwd=REPO,
        stdout=pipe,
        stderr=subprocess.STDOUT if output else subprocess.DEVNULL,
        text=True,
    )
