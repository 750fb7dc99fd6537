"""The docker runtime against a real Docker Engine, with the locally built sandbox image.

Skips (with the reason) only where no engine answers or the images were not built; CI starts
dockerd and runs scripts/build-images first. A foreign container — no opskit or Compose labels
of ours — lives through the whole module and must survive every test.
"""

from __future__ import annotations

import subprocess
import time
import uuid

import pytest

from opskit.errors import PreflightError, RuntimeUnavailableError
from opskit.ops import lifecycle
from opskit.ops.health import run_health
from opskit.report import CRITICAL, OK
from opskit.stack import load_stack
from sandbox.environment import STACK_FILE, free_port, isolated_environ

from .helpers import assert_healthy, stack_text

SANDBOX_IMAGE = "opskit-sandbox:latest"


def _engine_problem() -> str | None:
    try:
        import docker

        client = docker.from_env(timeout=10)
        client.ping()
    except Exception as exc:
        return f"no Docker Engine: {type(exc).__name__}: {str(exc)[:120]}"
    try:
        client.images.get(SANDBOX_IMAGE)
    except Exception:
        return f"image {SANDBOX_IMAGE} missing: run scripts/build-images"
    return None


PROBLEM = _engine_problem()
pytestmark = [pytest.mark.docker, pytest.mark.skipif(PROBLEM is not None, reason=str(PROBLEM))]


@pytest.fixture(scope="module")
def engine():
    import docker

    return docker.from_env(timeout=60)


@pytest.fixture(scope="module", autouse=True)
def foreign(engine):
    """A container that is none of opskit's business: every test must leave it running."""
    name = f"foreign-{uuid.uuid4().hex[:8]}"
    container = engine.containers.run(
        SANDBOX_IMAGE,
        ["python3", "-m", "http.server", "8000"],
        name=name,
        detach=True,
        ports={"8000/tcp": ("127.0.0.1", free_port())},
        labels={"purpose": "opskit-test-foreign"},
    )
    yield container
    container.reload()
    status = container.status
    container.remove(force=True)
    assert status == "running", "opskit touched a container it did not create"


def project_env(tmp_path, prefix: str) -> dict[str, str]:
    env = isolated_environ(tmp_path / "state")
    env["COMPOSE_PROJECT_NAME"] = f"{prefix}{uuid.uuid4().hex[:8]}"
    return env


@pytest.fixture
def docker_sandbox(tmp_path, stacks):
    stack = load_stack(STACK_FILE, environ=project_env(tmp_path, "optest"), runtime="docker")
    stacks.append(stack)
    return stack


def containers_of(engine, project: str) -> list:
    return engine.containers.list(all=True, filters={"label": f"io.opskit.stack={project}"})


def test_lifecycle_and_health_on_containers(docker_sandbox, engine):
    stack = docker_sandbox
    started = lifecycle.start(stack)
    assert started.ok, [(o.service, o.detail, o.log_tail) for o in started.outcomes]
    rows = {r.service: r.status for r in lifecycle.status(stack).rows}
    assert all(s.running for s in rows.values())
    assert all("container" in s.detail for s in rows.values())

    report = run_health(stack, e2e=True)
    assert report.exit_code == assert_healthy(report.checks), report.one_line()
    checks = {(c.service, c.name): c for c in report.checks}
    assert checks[("nginx", "config")].status == OK  # nginx -t through docker exec
    assert "masked as AWS_EC2_" in checks[("e2e", "masked_in_redis")].detail

    ids = {c.labels["io.opskit.service"]: c.id for c in containers_of(engine, stack.name)}
    assert lifecycle.restart(stack, ["nginx"]).ok
    after = {c.labels["io.opskit.service"]: c.id for c in containers_of(engine, stack.name)}
    assert after["kong"] == ids["kong"] and after["redis"] == ids["redis"]
    assert after["nginx"] != ids["nginx"] and after["backend"] != ids["backend"]

    engine.containers.get(after["backend"]).kill()
    killed = run_health(stack)
    assert {(c.service, c.name): c.status for c in killed.checks}[
        ("backend", "process")
    ] == CRITICAL
    assert killed.exit_code == 2

    assert lifecycle.stop(stack).ok
    assert containers_of(engine, stack.name) == []
    assert engine.networks.list(names=[f"{stack.name}_default"]) == []


def test_a_compose_started_stack_is_adopted_and_restarted_in_place(tmp_path, engine, stacks):
    env = project_env(tmp_path, "adopt")
    compose = ["docker-compose", "-f", str(STACK_FILE)]
    up = subprocess.run(
        [*compose, "up", "-d"], env=env, capture_output=True, text=True, timeout=300
    )
    try:
        assert up.returncode == 0, up.stderr
        stack = load_stack(STACK_FILE, environ=env, runtime="docker")
        stacks.append(stack)
        gate = lifecycle.start(stack)  # all running already: only the readiness gate
        assert gate.ok and gate.nothing_to_do, [(o.service, o.detail) for o in gate.outcomes]
        assert all("(adopted)" in r.status.detail for r in lifecycle.status(stack).rows)
        adopted = run_health(stack, e2e=True)
        assert adopted.exit_code == assert_healthy(adopted.checks)

        nginx = engine.containers.get(f"{env['COMPOSE_PROJECT_NAME']}_nginx_1")
        before = nginx.attrs["State"]["StartedAt"]
        assert lifecycle.restart(stack, ["nginx"]).ok
        nginx.reload()
        assert nginx.attrs["State"]["StartedAt"] != before  # same container, started again

        assert lifecycle.stop(stack).ok
        left = engine.containers.list(
            all=True, filters={"label": f"com.docker.compose.project={env['COMPOSE_PROJECT_NAME']}"}
        )
        # stopped, not removed
        assert len(left) == len(stack.services) and {c.status for c in left} == {"exited"}
    finally:
        subprocess.run([*compose, "down"], env=env, capture_output=True, timeout=120)


def single_service_stack(write_stack, body: str, project: str):
    text = stack_text(body).replace("runtime: process", "runtime: docker")
    path = write_stack(text)
    env = isolated_environ(path.parent / "state")
    env["COMPOSE_PROJECT_NAME"] = f"{project}{uuid.uuid4().hex[:8]}"
    return load_stack(path, environ=env)


def test_a_container_that_ignores_sigterm_is_killed_after_its_grace(write_stack, stacks, engine):
    body = (
        "  stubborn:\n"
        f"    image: {SANDBOX_IMAGE}\n"
        "    command: [python3, -c, 'import time; time.sleep(600)']\n"  # PID 1: SIGTERM ignored
        "    stop_grace_period: 1s\n"
        "    x-opskit: {role: http}"
    )
    stack = single_service_stack(write_stack, body, "stubborn")
    stacks.append(stack)
    assert lifecycle.start(stack).ok
    began = time.monotonic()
    outcome = lifecycle.stop(stack).outcome("stubborn")
    assert outcome.state == lifecycle.KILLED and "killed after 1s grace" in outcome.detail
    assert 1.0 <= time.monotonic() - began < 10
    assert containers_of(engine, stack.name) == []


def test_a_container_that_exits_at_once_fails_fast_with_its_logs(write_stack, stacks):
    port = free_port()
    body = (
        "  crash:\n"
        f"    image: {SANDBOX_IMAGE}\n"
        "    command: [python3, -c, \"print('boom: missing config'); raise SystemExit(4)\"]\n"
        f'    ports: ["{port}:8000"]\n'
        f"    x-opskit: {{role: http, url: 'http://127.0.0.1:{port}/', start_timeout: 60s}}"
    )
    stack = single_service_stack(write_stack, body, "crash")
    stacks.append(stack)
    outcome = lifecycle.start(stack).outcome("crash")
    assert outcome.state == lifecycle.FAILED
    assert outcome.detail.startswith("exited during start (code 4)")
    assert outcome.seconds < 15
    assert "boom: missing config" in outcome.log_tail


def test_a_missing_image_is_named_with_how_to_build_it(write_stack, stacks):
    body = "  ghost:\n    image: opskit-missing:nope\n    x-opskit: {role: http}"
    stack = single_service_stack(write_stack, body, "ghost")
    stacks.append(stack)
    with pytest.raises(PreflightError) as info:
        lifecycle.start(stack)
    assert "ghost: image opskit-missing:nope is not on this machine" in str(info.value)
    assert "scripts/build-images" in str(info.value)


def test_a_port_published_by_another_container_names_it(write_stack, stacks, foreign):
    foreign.reload()
    port = int(foreign.ports["8000/tcp"][0]["HostPort"])
    body = (
        f"  web:\n    image: {SANDBOX_IMAGE}\n"
        f'    ports: ["{port}:80"]\n'
        "    x-opskit: {role: http}"
    )
    stack = single_service_stack(write_stack, body, "port")
    stacks.append(stack)
    with pytest.raises(PreflightError) as info:
        lifecycle.start(stack)
    assert f"web: port {port} is already published by container {foreign.name}" in str(info.value)


def test_an_unreachable_engine_is_one_clear_line(write_stack, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///tmp/opskit-no-engine.sock")
    body = f"  web:\n    image: {SANDBOX_IMAGE}\n    x-opskit: {{role: http}}"
    stack = single_service_stack(write_stack, body, "noengine")
    with pytest.raises(RuntimeUnavailableError) as info:
        lifecycle.status(stack)
    message = str(info.value)
    assert "no engine answers on unix:///tmp/opskit-no-engine.sock" in message
    assert "--runtime process" in message


def test_build_through_the_engine_with_progress(write_stack, stacks, engine, tmp_path):
    context = tmp_path / "app"
    context.mkdir()
    (context / "Dockerfile").write_text(
        f"FROM {SANDBOX_IMAGE}\nRUN echo built-by-opskit > /built\n"
        'CMD ["python3", "-c", "import time; time.sleep(600)"]\n'
    )
    tag = f"opskit-test-build:{uuid.uuid4().hex[:8]}"
    body = f"  app:\n    build: ./app\n    image: {tag}\n    x-opskit: {{role: http}}"
    stack = single_service_stack(write_stack, body, "build")
    stacks.append(stack)
    events = []
    try:
        result = lifecycle.start(stack, on_event=events.append)
        assert result.ok, [(o.service, o.detail) for o in result.outcomes]
        building = [e.detail for e in events if e.phase == "building"]
        assert any("RUN echo built-by-opskit" in line for line in building)
        assert stack.role("app").unit.exec(["cat", "/built"]).output.strip() == "built-by-opskit"
    finally:
        lifecycle.stop(stack)
        engine.images.remove(tag, force=True)


def test_an_unhealthy_container_fails_the_start_gate_at_once(write_stack, stacks):
    body = (
        "  sick:\n"
        f"    image: {SANDBOX_IMAGE}\n"
        "    command: [python3, -c, 'import time; time.sleep(600)']\n"
        "    healthcheck: {test: [CMD, 'false'], interval: 1s, timeout: 1s, retries: 1}\n"
        f"    x-opskit: {{role: http, url: 'http://127.0.0.1:{free_port()}/', start_timeout: 60s}}"
    )
    stack = single_service_stack(write_stack, body, "sick")
    stacks.append(stack)
    outcome = lifecycle.start(stack).outcome("sick")
    assert outcome.state == lifecycle.FAILED
    assert outcome.detail.startswith("the container's HEALTHCHECK reports unhealthy")
    assert outcome.seconds < 20  # not the 60 s start timeout


def _idle_unit(write_stack, stacks, project: str):
    """The unit of one started container that only sleeps: something to exec in."""
    body = (
        "  idle:\n"
        f"    image: {SANDBOX_IMAGE}\n"
        "    command: [python3, -c, 'import time; time.sleep(600)']\n"
        "    x-opskit: {role: http}"
    )
    stack = single_service_stack(write_stack, body, project)
    stacks.append(stack)
    assert lifecycle.start(stack).ok
    return stack.role("idle").unit


def test_an_exec_whose_exit_the_engine_has_not_recorded_yet_is_waited_for(
    write_stack, stacks, monkeypatch
):
    """The engine can close an exec's output stream a moment before it records the exit
    (``Running`` true, ``ExitCode`` null): that instant, injected here on a real container's
    real exec, must read as the exec's real exit code, not as a failure."""
    unit = _idle_unit(write_stack, stacks, "execrace")
    api = unit.runtime.client.api
    real_inspect = api.exec_inspect
    lagging: dict[str, int] = {}

    def engine_still_recording(exec_id):
        state = dict(real_inspect(exec_id))
        if lagging.setdefault(exec_id, 0) < 3:  # the first reads lag behind the stream
            lagging[exec_id] += 1
            state.update(Running=True, ExitCode=None)
        return state

    monkeypatch.setattr(api, "exec_inspect", engine_still_recording)
    ok = unit.exec(["sh", "-c", "echo done"], timeout=10)
    assert (ok.exit_code, ok.output.strip()) == (0, "done")
    failed = unit.exec(["sh", "-c", "exit 3"], timeout=10)
    assert failed.exit_code == 3


def test_a_redis_container_with_appendonly_on_is_restored_with_aof_on(write_stack, stacks):
    """The container's command keeps appendonly on, so opskit cannot start it once with it
    off (it used to refuse): the restored RDB becomes the base of a new multi-part AOF, and
    the restored data survives a restart, which loads that AOF."""
    from opskit.ops import backup as backups
    from opskit.ops.restore import restore
    from opskit.vocabulary import RestoreState

    password = "pw-" + uuid.uuid4().hex[:8]
    body = (
        "  redis:\n"
        f"    image: {SANDBOX_IMAGE}\n"
        '    command: ["sh", "-c", "exec redis-server - <<EOF\\nrequirepass \\"$$REDIS_PASSWORD'
        '\\"\\nappendonly yes\\ndir /data\\nEOF"]\n'
        f"    environment: {{REDIS_PASSWORD: {password}}}\n"
        f'    ports: ["{free_port()}:6379"]\n'
        "    volumes: [redis-data:/data]\n"
        f"    x-opskit: {{role: redis, password: {password}}}"
    )
    with_backups = 'state_dir: "{state}", backups: {dir: "{state}/b"}}'

    def write(text: str):
        return write_stack(text.replace('state_dir: "{state}"}', with_backups))

    stack = single_service_stack(write, body, "aof")
    stacks.append(stack)
    assert lifecycle.start(stack).ok
    client = stack.role("redis").client(timeout=5)
    client.set("aws_masker:map:A", "i-0123456789abcdef0", ex=3000)
    client.set("aws_masker:map:B", "vol-0123456789abcdef0")
    made = backups.backup(stack)
    client.flushall()
    client.set("aws_masker:map:LATER", "x")  # in the AOF: would come back if the old AOF won

    result = restore(stack, made.backup_id)

    assert result.state == RestoreState.RESTORED, result.detail
    assert "AOF on throughout" in result.outcomes[0].detail
    client = stack.role("redis").client(timeout=5)
    assert sorted(client.keys("aws_masker:*")) == [b"aws_masker:map:A", b"aws_masker:map:B"]
    assert client.ttl("aws_masker:map:A") > 0
    assert client.info("persistence")["aof_enabled"] == 1
    assert lifecycle.restart(stack).ok  # a new container, the same volume: the AOF is loaded
    client = stack.role("redis").client(timeout=5)
    assert sorted(client.keys("aws_masker:*")) == [b"aws_masker:map:A", b"aws_masker:map:B"]
    client.set("aws_masker:map:AFTER", "y")  # and the AOF keeps working
    assert lifecycle.restart(stack).ok
    assert stack.role("redis").client(timeout=5).get("aws_masker:map:AFTER") == b"y"


def test_an_execs_stdout_lines_stay_whole_whatever_it_writes_to_stderr(write_stack, stacks):
    """The engine multiplexes stdout and stderr frame by frame: a stderr line written between
    two halves of a stdout line used to land inside it (nginx -T's "# configuration file …:"
    marker was cut that way, and a backup failed with "nginx -T failed: } | }")."""
    unit = _idle_unit(write_stack, stacks, "execmux")
    # Half a line, a pause (the engine reads what is there), a stderr line, the other half.
    script = (
        "for i in $(seq 1 20); do printf '# configuration '; sleep 0.02;"
        " printf 'nginx: note %s\\n' $i >&2; sleep 0.02; printf 'file /etc/x/%s:\\n' $i; done"
    )
    result = unit.exec(["sh", "-c", script], timeout=30)
    assert result.exit_code == 0
    lines = result.output.splitlines()
    markers = [line for line in lines if line.startswith("# configuration file /etc/x/")]
    assert len(markers) == 20, [line for line in lines if "configuration" in line][:3]
