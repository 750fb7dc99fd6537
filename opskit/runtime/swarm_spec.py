"""One Compose service as a Docker Swarm service: what ``docker stack deploy`` would create.

Pure translation (no engine calls), so each Compose key's mapping is read and tested in one
place. Compose ``command`` is the container's arguments (the image's CMD) and ``entrypoint``
its command (ENTRYPOINT), as Swarm names them. Durations become nanoseconds; sizes bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opskit.durations import parse_duration, parse_size
from opskit.errors import ConfigError

if TYPE_CHECKING:
    from opskit.config import ServiceSpec

_NS = 1_000_000_000
#: Compose's ``restart:`` values as Swarm restart conditions (``deploy.restart_policy`` wins).
_RESTART_CONDITIONS = {"no": "none", "always": "any", "unless-stopped": "any"}
DEFAULT_REPLICAS = 1


@dataclass(frozen=True)
class SecretUse:
    """A Compose secret a service reads: the stack's ``secrets:`` entry and the file name
    Swarm mounts it as under ``/run/secrets``."""

    source: str
    target: str
    mode: int = 0o400


@dataclass(frozen=True)
class MountUse:
    """A volume or bind mount: ``volume`` sources are project-scoped names, ``bind`` host paths."""

    kind: str  # "volume" | "bind"
    source: str
    target: str
    read_only: bool = False


def deploy_section(spec: ServiceSpec) -> Mapping[str, Any]:
    deploy = spec.compose.get("deploy") or {}
    return deploy if isinstance(deploy, Mapping) else {}


def is_global(spec: ServiceSpec) -> bool:
    return deploy_section(spec).get("mode") == "global"


def desired_replicas(spec: ServiceSpec) -> int:
    """``deploy.replicas`` (Compose's default 1)."""
    replicas = deploy_section(spec).get("replicas", DEFAULT_REPLICAS)
    if isinstance(replicas, str) and replicas.strip().isdigit():  # ${REPLICAS:-2}, interpolated
        replicas = int(replicas)
    if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 0:
        raise ConfigError(
            None,
            f"services.{spec.name}.deploy.replicas",
            f"expected a whole number >= 0, got {replicas!r}",
        )
    return replicas


def secret_uses(spec: ServiceSpec) -> list[SecretUse]:
    """``secrets:`` of the service, short (``- name``) or long (``source``/``target``/``mode``)."""
    uses = []
    for index, entry in enumerate(spec.compose.get("secrets") or []):
        if isinstance(entry, str):
            uses.append(SecretUse(entry, entry))
        elif isinstance(entry, Mapping) and isinstance(entry.get("source"), str):
            mode = entry.get("mode", 0o400)
            mode = int(mode, 8) if isinstance(mode, str) else int(mode)
            uses.append(
                SecretUse(entry["source"], str(entry.get("target") or entry["source"]), mode)
            )
        else:
            raise ConfigError(
                None,
                f"services.{spec.name}.secrets[{index}]",
                f"expected a secret name or a mapping with source:, got {entry!r}",
            )
    return uses


def mount_uses(spec: ServiceSpec, project: str, project_dir: Path) -> list[MountUse]:
    """``volumes:``: a named volume becomes ``<project>_<name>`` (as Compose and stack deploy
    name it); a path is a bind mount, relative to the stack file."""
    mounts = []
    for entry in spec.compose.get("volumes") or []:
        if isinstance(entry, Mapping):
            source, target = entry.get("source"), entry.get("target")
            read_only = bool(entry.get("read_only"))
        else:
            parts = str(entry).split(":")
            source, target = (parts[0], parts[1]) if len(parts) > 1 else (None, parts[0])
            read_only = len(parts) > 2 and "ro" in parts[2].split(",")
        if not source or not target:
            continue  # an anonymous volume: a new task gets a new one, as with stack deploy
        if str(source).startswith((".", "/", "~")):
            path = Path(str(source)).expanduser()
            mounts.append(
                MountUse(
                    "bind",
                    str(path if path.is_absolute() else project_dir / path),
                    target,
                    read_only,
                )
            )
        else:
            mounts.append(MountUse("volume", f"{project}_{source}", str(target), read_only))
    return mounts


def _ns(value: Any, key: str) -> int:
    try:
        return int(parse_duration(value) * _NS)
    except ValueError as exc:
        raise ConfigError(None, key, str(exc)) from None


def update_arguments(section: Any, key: str) -> dict[str, Any] | None:
    """``deploy.update_config`` / ``rollback_config`` as UpdateConfig keyword arguments."""
    if not isinstance(section, Mapping):
        return None
    arguments: dict[str, Any] = {"parallelism": int(section.get("parallelism", 1))}
    if "delay" in section:
        arguments["delay"] = _ns(section["delay"], f"{key}.delay")
    if "monitor" in section:
        arguments["monitor"] = _ns(section["monitor"], f"{key}.monitor")
    if "failure_action" in section:
        arguments["failure_action"] = str(section["failure_action"])
    if "max_failure_ratio" in section:
        arguments["max_failure_ratio"] = float(section["max_failure_ratio"])
    if "order" in section:
        order = str(section["order"])
        if order not in ("start-first", "stop-first"):
            raise ConfigError(
                None, f"{key}.order", f"expected start-first or stop-first, got {order!r}"
            )
        arguments["order"] = order
    return arguments


def restart_arguments(spec: ServiceSpec) -> dict[str, Any]:
    """``deploy.restart_policy``, else Compose's ``restart:`` (Swarm's default: any, 5 s)."""
    key = f"services.{spec.name}.deploy.restart_policy"
    policy = deploy_section(spec).get("restart_policy")
    if isinstance(policy, Mapping):
        arguments: dict[str, Any] = {"condition": str(policy.get("condition", "any"))}
        if "delay" in policy:
            arguments["delay"] = _ns(policy["delay"], f"{key}.delay")
        if "max_attempts" in policy:
            arguments["max_attempts"] = int(policy["max_attempts"])
        if "window" in policy:
            arguments["window"] = _ns(policy["window"], f"{key}.window")
        return arguments
    name = spec.restart.partition(":")[0] if spec.restart else "no"
    condition = _RESTART_CONDITIONS.get(name, "on-failure")
    if "restart" not in spec.compose:
        condition = "any"  # Swarm's default when the file says nothing
    return {"condition": condition, "delay": 5 * _NS}


def resource_arguments(spec: ServiceSpec) -> dict[str, Any]:
    """``deploy.resources`` limits and reservations (Compose ``mem_limit``/``cpus`` too)."""
    resources = deploy_section(spec).get("resources") or {}
    limits = resources.get("limits") or {}
    reservations = resources.get("reservations") or {}
    arguments: dict[str, Any] = {}
    memory = limits.get("memory") or spec.compose.get("mem_limit")
    cpus = limits.get("cpus") or spec.compose.get("cpus")
    if memory:
        arguments["mem_limit"] = parse_size(str(memory))
    if cpus:
        arguments["cpu_limit"] = int(float(cpus) * _NS)
    if reservations.get("memory"):
        arguments["mem_reservation"] = parse_size(str(reservations["memory"]))
    if reservations.get("cpus"):
        arguments["cpu_reservation"] = int(float(reservations["cpus"]) * _NS)
    return arguments


def placement_constraints(spec: ServiceSpec) -> list[str]:
    placement = deploy_section(spec).get("placement") or {}
    # an empty one is switched off (``${REDIS_PLACEMENT:-}``)
    return [str(item) for item in placement.get("constraints") or [] if str(item).strip()]


def node_satisfies(node: dict, constraint: str) -> bool:
    """Whether a node (its ``docker node inspect``) meets a placement constraint, for the
    attributes Swarm defines (node.id, node.hostname, node.role, node.platform.*, node.labels.*,
    engine.labels.*); one it does not know is taken as met, so nothing is refused on a guess."""
    for operator in ("==", "!="):
        name, found, expected = constraint.partition(operator)
        if found:
            break
    else:
        return True
    name, expected = name.strip(), expected.strip()
    description = node.get("Description") or {}
    values = {
        "node.id": node.get("ID"),
        "node.hostname": description.get("Hostname"),
        "node.role": (node.get("Spec") or {}).get("Role"),
        "node.platform.os": (description.get("Platform") or {}).get("OS"),
        "node.platform.arch": (description.get("Platform") or {}).get("Architecture"),
    }
    if name.startswith("node.labels."):
        values[name] = ((node.get("Spec") or {}).get("Labels") or {}).get(name[12:])
    elif name.startswith("engine.labels."):
        values[name] = ((description.get("Engine") or {}).get("Labels") or {}).get(name[14:])
    if name not in values:
        return True
    equal = str(values[name] or "").lower() == expected.lower()
    return equal if operator == "==" else not equal


def container_arguments(spec: ServiceSpec) -> dict[str, Any]:
    """The parts of ContainerSpec that come straight from the Compose service."""
    compose = spec.compose
    arguments: dict[str, Any] = {
        "env": [f"{name}={value}" for name, value in spec.environment.items()],
        "stop_signal": spec.stop_signal,
        "stop_grace_period": int(spec.stop_grace_period * _NS),
    }
    if spec.command:
        arguments["args"] = list(spec.command)
    entrypoint = compose.get("entrypoint")
    if entrypoint:
        arguments["command"] = list(entrypoint) if isinstance(entrypoint, list) else [entrypoint]
    for compose_key, swarm_key in (
        ("user", "user"),
        ("working_dir", "workdir"),
        ("hostname", "hostname"),
    ):
        if compose.get(compose_key):
            arguments[swarm_key] = str(compose[compose_key])
    return arguments
