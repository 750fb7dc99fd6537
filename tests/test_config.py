"""Stack-file loading: interpolation sources, parsing, and one clear line per config error."""

from __future__ import annotations

import itertools
import subprocess
from pathlib import Path

import pytest

from opskit.config import load_config
from opskit.errors import ConfigError
from opskit.stack import load_stack
from opskit.vocabulary import ExitCode

from .conftest import PYTHON, REPO

MINIMAL = """
x-opskit: {runtime: process, state_dir: "{state}"}
services:
  app:
    image: example/app
    x-opskit:
      process: {command: ["{python}", "-c", "pass"]}
"""


def error_of(path: Path, environ: dict | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_stack(path, environ=environ or {})
    return info.value


def test_env_file_beside_the_stack_and_process_env_wins(write_stack):
    path = write_stack(
        """
        x-opskit: {runtime: process}
        services:
          app:
            image: img:${TAG:-latest}
            environment: {A: "${FROM_FILE}", B: "${BOTH}"}
            x-opskit: {process: {command: [run]}}
        """,
        env_file="FROM_FILE=file-value\nBOTH=file\nTAG=1.2\n",
    )
    config = load_config(path, environ={"BOTH": "process"})
    app = config.services["app"]
    assert app.image == "img:1.2"
    assert app.environment == {"A": "file-value", "B": "process"}


def test_compose_fields_are_parsed(write_stack):
    path = write_stack(
        """
        x-opskit: {runtime: process, state_dir: "{state}"}
        services:
          db:
            image: redis:7-alpine
            ports: ["127.0.0.1:7000:6379", "7001:6380/tcp", {target: 6381, published: 7002}]
            healthcheck: {test: "redis-cli ping", interval: 2s, retries: 4, start_period: 1m30s}
            stop_grace_period: 1500ms
            stop_signal: QUIT
            environment: ["LIST_FORM=yes", "PASSED_THROUGH"]
          web:
            image: example/web
            depends_on: {db: {condition: service_healthy}}
            x-opskit: {role: http, process: {command: "serve --port 1"}}
        """
    )
    config = load_config(path, environ={"PASSED_THROUGH": "from-env"})
    db, web = config.services["db"], config.services["web"]
    assert db.role == "redis"  # inferred from the image
    assert [(p.host_ip, p.published, p.container_port) for p in db.ports] == [
        ("127.0.0.1", 7000, 6379),
        ("", 7001, 6380),
        ("", 7002, 6381),
    ]
    assert db.healthcheck.start_budget == 90 + 2 * 4
    assert db.start_timeout == 98
    assert db.stop_grace_period == 1.5
    assert db.stop_signal == "SIGQUIT"
    assert db.environment == {"LIST_FORM": "yes", "PASSED_THROUGH": "from-env"}
    assert web.depends_on == {"db": "service_healthy"}
    assert web.process.command == ("serve", "--port", "1")
    assert config.state_dir == path.parent / "state"


@pytest.mark.parametrize(
    ("body", "key", "expected"),
    [
        ("services: []", "services", "expected a mapping of at least one service"),
        (
            "services: {app: {image: x, ports: 80}}",
            "services.app.ports",
            "expected a list, got int",
        ),
        (
            "services: {app: {image: x, ports: ['eighty:80']}}",
            "services.app.ports[0]",
            "numeric ports",
        ),
        (
            "services: {app: {image: x, stop_grace_period: soon}}",
            "services.app.stop_grace_period",
            "expected a duration",
        ),
        (
            "services: {app: {image: x, environment: 5}}",
            "services.app.environment",
            "expected a mapping or a list",
        ),
        (
            "services: {app: {image: x, healthcheck: {retries: many}}}",
            "services.app.healthcheck.retries",
            "expected an integer",
        ),
        (
            "services: {app: {image: x, stop_signal: SIGNOPE}}",
            "services.app.stop_signal",
            "expected a signal name",
        ),
        (
            "services: {app: {image: x, x-opskit: {process: {command: {a: 1}}}}}",
            "services.app.x-opskit.process.command",
            "expected a command",
        ),
        (
            "x-opskit: {runtime: podman}\nservices: {app: {image: x}}",
            "x-opskit.runtime",
            "expected one of process, docker, swarm, fake, got 'podman'",
        ),
        (
            "x-opskit: {swarm: {publish: mesh}}\nservices: {app: {image: x}}",
            "x-opskit.swarm.publish",
            "expected one of",
        ),
        (
            "secrets: {token: {environment: NOT_SET_ANYWHERE}}\nservices: {app: {image: x}}",
            "secrets.token.environment",
            "variable NOT_SET_ANYWHERE is not set",
        ),
        (
            "secrets: {token: {}}\nservices: {app: {image: x}}",
            "secrets.token",
            "expected file:, environment: or external: true",
        ),
        (
            "services: {app: {image: x, depends_on: {db: {condition: service_done}}}}",
            "services.app.depends_on.db.condition",
            "expected one of service_started, service_healthy",
        ),
    ],
)
def test_wrong_types_name_the_key(write_stack, body, key, expected):
    path = write_stack(body)
    error = error_of(path)
    assert error.key == key
    assert expected in error.problem
    assert str(error).startswith(f"{path}: {key}: ")


def test_required_variable_unset(write_stack):
    path = write_stack(
        """
        x-opskit: {runtime: process}
        services:
          redis:
            image: redis
            x-opskit: {password: "${REDIS_PASSWORD:?set REDIS_PASSWORD in .env}"}
        """
    )
    error = error_of(path)
    assert error.key == "services.redis.x-opskit.password"
    assert "REDIS_PASSWORD" in error.problem and "set REDIS_PASSWORD in .env" in error.problem


def test_depends_on_unknown_service(write_stack):
    path = write_stack(
        """
        x-opskit: {runtime: process}
        services:
          app: {image: x, depends_on: [kong], x-opskit: {process: {command: [run]}}}
          redis: {image: redis}
        """
    )
    error = error_of(path)
    assert error.key == "services.app.depends_on.kong"
    assert error.problem == "unknown service (known: app, redis)"


def test_dependency_cycle_is_named(write_stack):
    path = write_stack(
        """
        x-opskit: {runtime: process}
        services:
          a: {image: x, depends_on: [b], x-opskit: {process: {command: [run]}}}
          b: {image: x, depends_on: [c], x-opskit: {process: {command: [run]}}}
          c: {image: x, depends_on: [a], x-opskit: {process: {command: [run]}}}
          d: {image: x, x-opskit: {process: {command: [run]}}}
        """
    )
    error = error_of(path)
    assert "dependency cycle" in error.problem
    cycle = error.problem.split(": ", 1)[1].split(" -> ")
    assert set(cycle) == {"a", "b", "c"} and cycle[0] == cycle[-1] and len(cycle) == 4
    for first, second in itertools.pairwise(cycle):  # each depends on the next
        assert second in {"a": "b", "b": "c", "c": "a"}[first]


def test_self_dependency(write_stack):
    path = write_stack("services: {a: {image: x, depends_on: [a]}}")
    assert error_of(path).problem == "a service cannot depend on itself"


def test_unknown_role(write_stack):
    path = write_stack("services: {app: {image: x, x-opskit: {role: mongo}}}")
    error = error_of(path)
    assert error.key == "services.app.x-opskit.role"
    assert "expected one of redis, kong, nginx, backend, http, got 'mongo'" in error.problem


def test_service_without_a_command_for_the_process_runtime(write_stack):
    path = write_stack("x-opskit: {runtime: process}\nservices: {app: {image: x}}")
    error = error_of(path)
    assert error.key == "services.app.x-opskit.process.command"
    assert "runtime 'process'" in error.problem


def test_roles_that_bring_their_own_command_need_none(write_stack, tmp_path):
    (tmp_path / "nginx.conf.template").write_text("events {}\n")
    path = write_stack(
        """
        x-opskit: {runtime: process}
        services:
          redis: {image: redis:7}
          nginx: {image: nginx, x-opskit: {config_template: nginx.conf.template}}
        """
    )
    stack = load_stack(path, environ={})
    assert [stack.services[n].role for n in ("redis", "nginx")] == ["redis", "nginx"]


def test_nginx_without_a_template_in_process_runtime(write_stack):
    path = write_stack("x-opskit: {runtime: process}\nservices: {web: {image: nginx}}")
    assert error_of(path).key == "services.web.x-opskit.config_template"


def test_invalid_yaml_names_the_line(write_stack):
    path = write_stack("services:\n  app: [unclosed\n")
    error = error_of(path)
    assert "invalid YAML" in error.problem and "line" in error.problem


def test_missing_file(tmp_path):
    error = error_of(tmp_path / "nope.yml")
    assert "stack file not found" in str(error)


def test_runtime_override_from_argument_and_environment(write_stack):
    path = write_stack(MINIMAL.replace("runtime: process", "runtime: docker"))
    assert load_config(path, environ={}).runtime == "docker"
    assert load_config(path, environ={"OPSKIT_RUNTIME": "process"}).runtime == "process"
    assert load_config(path, environ={"OPSKIT_RUNTIME": "docker"}, runtime="process").runtime == (
        "process"
    )


def test_cli_bad_config_exits_2_with_one_line_and_starts_nothing(write_stack, tmp_path):
    marker = tmp_path / "started"
    path = write_stack(
        f"""
        x-opskit: {{runtime: process, state_dir: "{{state}}"}}
        services:
          first:
            image: x
            x-opskit: {{process: {{command: ["{{python}}", "-c", "open('{marker}', 'w')"]}}}}
          second: {{image: x, depends_on: [ghost], x-opskit: {{process: {{command: [run]}}}}}}
        """
    )
    done = subprocess.run(
        [PYTHON, "-m", "invoke", "--search-root", str(REPO), "start", "--stack", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == ExitCode.USAGE
    lines = done.stderr.strip().splitlines()
    assert lines == [
        f"opskit: {path}: services.second.depends_on.ghost: unknown service (known: first, second)"
    ]
    assert not marker.exists()
    assert not (tmp_path / "state").exists()


def test_role_options_are_typed_frozen_and_read_once(write_stack, tmp_path):
    import dataclasses

    import pytest

    path = write_stack(
        """
        x-opskit: {runtime: process}
        services:
          kong:
            image: kong:3
            x-opskit:
              admin_url: http://127.0.0.1:8001/
              status_url: http://127.0.0.1:8100
              quit_wait: 2s
              process: {command: [kong, start]}
        """
    )
    options = load_stack(path, environ={}).role("kong").options
    assert options.admin_url == "http://127.0.0.1:8001"  # trailing slash gone, once
    assert options.quit_wait == 2.0 and options.masked_path == "/v1/messages"
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.quit_wait = 0


def test_a_yaml_alias_bomb_is_refused_not_expanded(write_stack):
    lines = ['a0: &a0 ["x","x","x","x","x","x","x","x","x","x"]']
    lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    lines += ["services: {app: {image: x, x-opskit: {process: {command: [sleep, '1']}}}}"]
    path = write_stack("\n".join(lines) + "\n")
    error = error_of(path)  # within the test timeout: 10**9 values are never walked
    assert "expands to more than 200000 values" in error.problem


@pytest.mark.parametrize("name", ["../../escape", "a/b", ".hidden", "-flag", "white space"])
def test_service_names_that_could_leave_the_state_dir_are_refused(write_stack, name):
    path = write_stack(f'services:\n  "{name}": {{image: x}}\n')
    error = error_of(path)
    assert error.key == f"services.{name}" and "expected a service name" in error.problem
