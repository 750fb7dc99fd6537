"""The Compose → Swarm translation (pure: no engine), key by key."""

from __future__ import annotations

import pytest

from opskit.config import load_config
from opskit.errors import ConfigError
from opskit.runtime import swarm_spec


def _spec(write_stack, body: str):
    path = write_stack(f"services:\n  app:\n    image: x\n{body}")
    return load_config(path, environ={"PATH": ""}).services["app"]


def test_deploy_keys_become_swarm_arguments(write_stack):
    spec = _spec(
        write_stack,
        "    command: [serve, --fast]\n"
        "    entrypoint: [tini, --]\n"
        "    stop_grace_period: 7s\n"
        "    volumes: [data:/data, ./conf:/etc/app:ro]\n"
        "    secrets: [token, {source: cert, target: tls.pem, mode: '0440'}]\n"
        "    deploy:\n"
        "      replicas: '3'\n"
        "      update_config: {parallelism: 2, delay: 1500ms, order: start-first}\n"
        "      restart_policy: {condition: on-failure, max_attempts: 4, delay: 2s}\n"
        "      resources: {limits: {memory: 256M, cpus: '0.5'}, reservations: {memory: 64M}}\n"
        "      placement: {constraints: [node.labels.redis == true]}\n",
    )
    assert swarm_spec.desired_replicas(spec) == 3
    container = swarm_spec.container_arguments(spec)
    assert container["args"] == ["serve", "--fast"]  # Compose command = the image's CMD
    assert container["command"] == ["tini", "--"]  # Compose entrypoint = ENTRYPOINT
    assert container["stop_grace_period"] == 7_000_000_000
    assert swarm_spec.update_arguments(spec.compose["deploy"]["update_config"], "k") == {
        "parallelism": 2,
        "delay": 1_500_000_000,
        "order": "start-first",
    }
    assert swarm_spec.restart_arguments(spec) == {
        "condition": "on-failure",
        "max_attempts": 4,
        "delay": 2_000_000_000,
    }
    assert swarm_spec.resource_arguments(spec) == {
        "mem_limit": 256 * 2**20,
        "cpu_limit": 500_000_000,
        "mem_reservation": 64 * 2**20,
    }
    assert swarm_spec.placement_constraints(spec) == ["node.labels.redis == true"]
    mounts = swarm_spec.mount_uses(spec, "proj", write_stack("").parent)
    assert [(m.kind, m.source.rsplit("/", 1)[-1], m.target, m.read_only) for m in mounts] == [
        ("volume", "proj_data", "/data", False),
        ("bind", "conf", "/etc/app", True),
    ]
    uses = swarm_spec.secret_uses(spec)
    assert [(u.source, u.target, u.mode) for u in uses] == [
        ("token", "token", 0o400),
        ("cert", "tls.pem", 0o440),
    ]


def test_compose_restart_maps_to_a_swarm_condition(write_stack):
    assert (
        swarm_spec.restart_arguments(_spec(write_stack, "    restart: 'no'\n"))["condition"]
        == "none"
    )
    assert swarm_spec.restart_arguments(_spec(write_stack, ""))["condition"] == "any"


@pytest.mark.parametrize(
    "deploy, key",
    [
        ("{replicas: many}", "services.app.deploy.replicas"),
        ("{update_config: {order: sideways}}", "k.order"),
        ("{update_config: {delay: soon}}", "k.delay"),
    ],
)
def test_a_bad_deploy_value_names_its_key(write_stack, deploy, key):
    spec = _spec(write_stack, f"    deploy: {deploy}\n")
    with pytest.raises(ConfigError) as caught:
        swarm_spec.desired_replicas(spec)
        swarm_spec.update_arguments(spec.compose["deploy"].get("update_config"), "k")
    assert caught.value.key == key
