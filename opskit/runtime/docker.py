"""The docker runtime: each service is a container, created from its Compose definition.

Containers opskit creates carry the labels ``io.opskit.stack`` and ``io.opskit.service`` and
live on the project network ``<stack>_default`` with the service name as DNS alias, as Compose
does. Containers that ``docker compose up`` created are **adopted**: found by Compose's labels
(project, service) or by ``container_name``, then started, stopped, signalled and inspected in
place — never removed. opskit removes only containers it created, and never prunes anything.

Readiness uses the container's own HEALTHCHECK when it has one (``unhealthy`` or an exit fails
the start at once); the role's probe then has the last word. Runtime code names no role.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from opskit.errors import OpskitError, RuntimeUnavailableError
from opskit.runtime import host
from opskit.runtime.base import (
    ExecResult,
    HostFile,
    Launch,
    LogLine,
    Runtime,
    Unit,
    UnitProcess,
    UnitStats,
    UnitStatus,
)
from opskit.runtime.containers import (
    SERVICE_LABEL,
    STACK_LABEL,
    bind_mount_file,
    bounded_exec,
    build_images,
    connect,
    container_zone,
    epoch,
    list_containers,
    log_line,
    port_problems,
    read_file,
    streamed_exec,
    top,
    write_file,
)
from opskit.vocabulary import UnitState

if TYPE_CHECKING:
    import docker
    from docker.models.containers import Container

    from opskit.config import ServiceSpec, StackConfig

COMPOSE_PROJECT = "com.docker.compose.project"
COMPOSE_SERVICE = "com.docker.compose.service"
_NS = 1_000_000_000


class DockerRuntime(Runtime):
    name = "docker"

    def __init__(self, config: StackConfig):
        self.config = config
        self._client: docker.DockerClient | None = None
        self._units: dict[str, DockerUnit] = {}
        self._network_lock = threading.Lock()

    @property
    def project(self) -> str:
        return self.config.name

    @property
    def network_name(self) -> str:
        return f"{self.project}_default"

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            self._client = connect()
        return self._client

    def unit(self, spec: ServiceSpec) -> DockerUnit:
        known = self._units.get(spec.name)
        if known is None or known.spec != spec:  # a relief instance's spec changes its port
            self._units[spec.name] = DockerUnit(spec, self)
        return self._units[spec.name]

    def ensure_network(self) -> None:
        """The project network: Compose's, when Compose made one; else ours, labelled.

        Services start concurrently, and the engine happily creates two networks with one
        name, so the check and the creation happen under a lock.
        """
        with self._network_lock:
            if self.client.networks.list(names=[self.network_name]):
                return
            self.client.networks.create(
                self.network_name, driver="bridge", labels={STACK_LABEL: self.project}
            )

    def remove_network_if_unused(self) -> None:
        """Remove the project network once empty — only if opskit created it (its label)."""
        import docker

        with self._network_lock:
            for network in self.client.networks.list(names=[self.network_name]):
                with contextlib.suppress(docker.errors.APIError):
                    network.reload()
                    if network.attrs.get("Labels", {}).get(STACK_LABEL) == self.project and not (
                        network.attrs.get("Containers")
                    ):
                        network.remove()

    def build_images(self, specs: list[ServiceSpec], progress) -> None:
        """``build:`` through the engine for services without a container or an image."""
        build_images(
            self.client,
            self.config,
            specs,
            progress,
            lambda s: self.unit(s).container() is not None,
        )

    def preflight(self, plans: list[tuple[ServiceSpec, Launch]]) -> list[str]:
        import docker

        try:
            self.client.ping()
        except RuntimeUnavailableError as exc:
            return [str(exc)]
        problems: list[str] = []
        for spec, _launch in plans:
            unit = self.unit(spec)
            if unit.container() is not None:
                continue  # exists (stopped): it is started as it is
            if not spec.image and not spec.compose.get("build"):
                problems.append(f"{spec.name}: no image: in the Compose file")
            elif spec.image:
                try:
                    self.client.images.get(spec.image)
                except docker.errors.ImageNotFound:
                    problems.append(
                        f"{spec.name}: image {spec.image} is not on this machine and no registry "
                        "is reachable; build it first (scripts/build-images for the sandbox, "
                        "`docker build -t IMAGE …` otherwise)"
                    )
            problems += port_problems(spec, self.container_on_port, "container")
        return problems

    def container_on_port(self, port: int) -> str | None:
        for container in list_containers(self.client):
            for bindings in (container.ports or {}).values():
                for binding in bindings or []:
                    if binding.get("HostPort") == str(port):
                        return container.name
        return None


class DockerUnit(Unit):
    follows_launch = False  # the container runs its image's command

    def __init__(self, spec: ServiceSpec, runtime: DockerRuntime):
        super().__init__(spec)
        self.runtime = runtime
        self._zones: dict[str, str] = {}  # container id → its zone (it cannot change)

    @property
    def container_name(self) -> str:
        return self.spec.container_name or f"{self.runtime.project}-{self.spec.name}-1"

    def may_come_back(self) -> bool:
        return bool(self.spec.restart) and self.spec.restart != "no"  # the engine's policy

    def container(self) -> Container | None:
        """Ours (opskit labels), else Compose's (project/service labels), else by name."""
        import docker

        client = self.runtime.client
        for labels in (
            [f"{STACK_LABEL}={self.runtime.project}", f"{SERVICE_LABEL}={self.spec.name}"],
            [f"{COMPOSE_PROJECT}={self.runtime.project}", f"{COMPOSE_SERVICE}={self.spec.name}"],
        ):
            found = list_containers(client, all=True, filters={"label": labels})
            if found:
                return found[0]
        if self.spec.container_name:
            with contextlib.suppress(docker.errors.NotFound):
                return client.containers.get(self.spec.container_name)
        return None

    def created_by_opskit(self, container: Container) -> bool:
        return container.labels.get(STACK_LABEL) == self.runtime.project

    # -- start -------------------------------------------------------------------------------

    def start(self, launch: Launch) -> UnitStatus:
        """Start the existing container (ours or adopted), or create ours from Compose."""
        import docker

        container = self.container()
        try:
            if container is None:
                self.runtime.ensure_network()
                container = self.runtime.client.containers.create(**self.create_arguments())
            container.start()
        except docker.errors.APIError as exc:
            raise OpskitError(
                f"{self.name}: docker could not start it: {exc.explanation}"
            ) from None
        return self.status()

    def create_arguments(self) -> dict[str, Any]:
        """The Compose service as docker SDK arguments."""
        import docker

        spec, compose = self.spec, self.spec.compose
        arguments: dict[str, Any] = {
            "image": spec.image or f"{self.runtime.project}-{spec.name}",
            "name": self.container_name,
            "detach": True,
            "labels": {
                **spec.labels,
                STACK_LABEL: self.runtime.project,
                SERVICE_LABEL: spec.name,
            },
            "environment": dict(spec.environment),
            "stop_signal": spec.stop_signal,
            "network": self.runtime.network_name,
            "networking_config": {
                self.runtime.network_name: self.runtime.client.api.create_endpoint_config(
                    aliases=[spec.name]
                )
            },
            "ports": {
                f"{p.container_port}/{p.protocol}": (p.host_ip or "0.0.0.0", p.host_port)
                for p in spec.ports
                if p.host_port is not None
            },
        }
        if spec.command:
            arguments["command"] = list(spec.command)
        if compose.get("entrypoint"):
            entrypoint = compose["entrypoint"]
            arguments["entrypoint"] = entrypoint if isinstance(entrypoint, list) else [entrypoint]
        for key in ("user", "working_dir", "hostname"):
            if compose.get(key):
                arguments[key] = str(compose[key])
        if spec.restart and spec.restart != "no":
            name, _, retries = spec.restart.partition(":")
            policy = {"Name": name}
            if retries:
                policy["MaximumRetryCount"] = int(retries)
            arguments["restart_policy"] = policy
        if spec.healthcheck and not spec.healthcheck.disabled and spec.healthcheck.test:
            check = spec.healthcheck
            # The SDK takes nanoseconds and has no start_interval.
            arguments["healthcheck"] = docker.types.Healthcheck(
                test=list(check.test),
                interval=int(check.interval * _NS),
                timeout=int(check.timeout * _NS),
                retries=check.retries,
                start_period=int(check.start_period * _NS),
            )
        volumes = self._volumes(compose.get("volumes") or [])
        if volumes:
            arguments["volumes"] = volumes
        limits = ((compose.get("deploy") or {}).get("resources") or {}).get("limits") or {}
        memory = compose.get("mem_limit") or limits.get("memory")
        if memory:
            arguments["mem_limit"] = str(memory)
        cpus = compose.get("cpus") or limits.get("cpus")
        if cpus:
            arguments["nano_cpus"] = int(float(cpus) * _NS)
        return arguments

    def _volumes(self, entries: list) -> dict[str, dict[str, str]]:
        """Bind mounts (paths relative to the stack file) and named volumes (project-scoped)."""
        volumes: dict[str, dict[str, str]] = {}
        for entry in entries:
            if isinstance(entry, dict):
                source, target = entry.get("source"), entry.get("target")
                mode = "ro" if entry.get("read_only") else "rw"
            else:
                parts = str(entry).split(":")
                source, target = (parts[0], parts[1]) if len(parts) > 1 else (None, parts[0])
                mode = parts[2] if len(parts) > 2 else "rw"
            if not source or not target:
                continue
            if source.startswith((".", "/", "~")):
                path = Path(source).expanduser()
                source = str(path if path.is_absolute() else self.runtime.config.project_dir / path)
            else:
                source = f"{self.runtime.project}_{source}"
                self._ensure_volume(source)
            volumes[source] = {"bind": target, "mode": mode}
        return volumes

    def _ensure_volume(self, name: str) -> None:
        import docker

        try:
            self.runtime.client.volumes.get(name)
        except docker.errors.NotFound:
            self.runtime.client.volumes.create(name, labels={STACK_LABEL: self.runtime.project})

    # -- inspection --------------------------------------------------------------------------

    def status(self) -> UnitStatus:
        container = self.container()
        if container is None:
            return UnitStatus(self.name, UnitState.ABSENT)
        state = container.attrs.get("State", {})
        restarts = container.attrs.get("RestartCount")
        if state.get("Running") and not state.get("Restarting"):
            return UnitStatus(
                self.name,
                UnitState.RUNNING,
                pid=state.get("Pid") or None,
                started_at=epoch(state.get("StartedAt")),
                restarts=restarts,
                detail=f"container {container.name}"
                + ("" if self.created_by_opskit(container) else " (adopted)"),
            )
        if state.get("Status") == "created":
            return UnitStatus(
                self.name, UnitState.ABSENT, detail=f"container {container.name} created"
            )
        return UnitStatus(
            self.name,
            UnitState.EXITED,
            exit_code=state.get("ExitCode"),
            restarts=restarts,
            detail=f"container {container.name}",
        )

    def container_health(self) -> str | None:
        """The engine's HEALTHCHECK verdict (``starting``/``healthy``/``unhealthy``), if any."""
        container = self.container()
        if container is None:
            return None
        health = container.attrs.get("State", {}).get("Health")
        return health.get("Status") if health else None

    def host_pid(self) -> int | None:
        """The container's init process as this host sees it — only when the engine runs here:
        the process with that pid must have started when the container did (a remote engine's
        pid, or one from Docker Desktop's VM, names some unrelated local process or none)."""
        import psutil

        status = self.status()
        if not status.running or not status.pid or not status.started_at:
            return None
        try:
            started = psutil.Process(status.pid).create_time()
        except psutil.Error:
            return None
        return status.pid if abs(started - status.started_at) < 2.0 else None

    def stats(self) -> UnitStats | None:
        """From the container's processes on the host (cheap), not `docker stats` (slow)."""
        status = self.status()
        return host.process_tree_stats(status.pid) if status.running and status.pid else None

    # -- control -------------------------------------------------------------------------------

    def send_signal(self, sig) -> bool:
        import docker

        container = self.container()
        if container is None or not self.status().running:
            return False
        try:
            container.kill(signal=int(sig))
        except docker.errors.APIError:
            return False
        return True

    def kill(self) -> None:
        import docker

        container = self.container()
        if container is not None and self.status().running:
            with contextlib.suppress(docker.errors.APIError):
                container.kill()
            self.wait_stopped(10)

    def forget(self) -> None:
        """Remove the container if opskit created it; an adopted one stays (stopped)."""
        import docker

        container = self.container()
        if container is not None and self.created_by_opskit(container):
            with contextlib.suppress(docker.errors.APIError):
                container.remove()
            self.runtime.remove_network_if_unused()

    def exec(self, argv: list[str], timeout: float = 15.0) -> ExecResult:
        container = self.container()
        if container is None or not self.status().running:
            return ExecResult(None, f"container of {self.name} is not running")
        return bounded_exec(self.runtime.client, container, argv, timeout, self.name)

    def logs(
        self, since: float | None = None, until: float | None = None, follow: bool = False
    ) -> Iterator[LogLine]:
        """The container's stdout/stderr with the engine's own timestamps."""
        import docker

        container = self.container()
        if container is None:
            return
        options: dict[str, Any] = {"timestamps": True}
        if since is not None:
            options["since"] = datetime.utcfromtimestamp(since)
        if until is not None:
            options["until"] = datetime.utcfromtimestamp(until)
        try:
            if follow:
                chunks = container.logs(stream=True, follow=True, **options)
            else:
                chunks = iter([container.logs(**options)])
            pending = b""
            for chunk in chunks:
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    yield log_line(self.name, line)
            if pending:
                yield log_line(self.name, pending)
        except docker.errors.APIError:
            return

    def create(self) -> None:
        """Create our container (not started) when none exists, so files can be placed in it
        before it runs; an existing one (ours or adopted) is left as it is."""
        import docker

        if self.container() is not None:
            return
        try:
            self.runtime.ensure_network()
            self.runtime.client.containers.create(**self.create_arguments())
        except docker.errors.APIError as exc:
            raise OpskitError(
                f"{self.name}: docker could not create it: {exc.explanation}"
            ) from None

    def exec_stream(self, argv: list[str]) -> contextlib.AbstractContextManager[BinaryIO]:
        container = self.container()
        if container is None or not self.status().running:
            raise OpskitError(f"container of {self.name} is not running")
        return streamed_exec(self.runtime.client, container, argv, self.name)

    @contextlib.contextmanager
    def open_file(self, path: str) -> Iterator[BinaryIO]:
        container = self.container()
        if container is None:
            raise OpskitError(f"{self.name}: no container to copy {path} from")
        with read_file(container, path, self.name) as data:
            yield data

    def write_file(self, path: str, data: BinaryIO, size: int) -> None:
        container = self.container()
        if container is None:
            raise OpskitError(f"{self.name}: no container to copy {path} into")
        write_file(container, path, data, size, self.name)

    def log_tail(self, lines: int = 20) -> list[str]:
        import docker

        container = self.container()
        if container is None:
            return []
        try:
            raw = container.logs(tail=lines, timestamps=False)
        except docker.errors.APIError:
            return []
        return raw.decode("utf-8", errors="replace").splitlines()[-lines:]

    def peer_address(self, container_port: int) -> tuple[str, int]:
        return (self.spec.name, container_port)  # its alias on the project network

    def processes(self) -> list[UnitProcess]:
        container = self.container()
        return top(container) if container is not None and self.status().running else []

    def host_file(self, path: str) -> HostFile | None:
        return bind_mount_file(
            self.spec, self.runtime.project, self.runtime.config.project_dir, path
        )

    def time_zone(self) -> str | None:
        """The container's own: its ``TZ`` variable, else the zone its ``/etc/localtime``
        links to, else UTC (an image without one). Never this host's."""
        container = self.container()
        if container is None:
            return super().time_zone() or "UTC"
        cached = self._zones.get(container.id)
        if cached is None:
            cached = self._zones[container.id] = self._container_zone(container)
        return cached

    def _container_zone(self, container: Container) -> str:
        running = self.status().running
        return container_zone(container, running, lambda argv: self.exec(argv, timeout=5))

    def address(self, container_port: int) -> tuple[str, int]:
        mapping = self.spec.port(container_port) or self.spec.port()
        if mapping is not None and mapping.host_port is not None:
            host = mapping.host_ip if mapping.host_ip not in ("", "0.0.0.0") else "127.0.0.1"
            return (host, mapping.host_port)
        return ("127.0.0.1", container_port)
