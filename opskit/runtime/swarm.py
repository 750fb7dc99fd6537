"""The swarm runtime: each Compose service is a Docker Swarm service, driven through the SDK.

opskit drives Swarm; it does not manage a cluster of its own. A unit is a *service with
tasks*: it runs while Swarm runs at least one of its tasks, is settled once every desired task
runs (Swarm holds a task in ``starting`` until its HEALTHCHECK passes), and is stopped by
scaling it to 0 — Swarm then sends the service's stop signal and kills after its
``stop_grace_period``, the Compose contract. A task Swarm is replacing is ``converging``:
recovery leaves that to Swarm instead of fighting it.

Services opskit creates are named ``<stack>_<service>`` as ``docker stack deploy`` names them
and carry ``io.opskit.stack`` / ``io.opskit.service``; they sit on the overlay network
``<stack>_default`` with the service name as alias. A service ``docker stack deploy`` created
(``com.docker.stack.namespace``) is **adopted**: scaled, updated and inspected in place, never
removed. Exec, file copies, processes and stats go to a task's container through the engine of
the node it runs on (:mod:`opskit.runtime.swarm_nodes`): the manager's own, or the one
``x-opskit.swarm.engines`` names; a task on a node opskit cannot reach is named, not guessed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, BinaryIO

from opskit.errors import ConfigError, OpskitError, RollingImpossible, RuntimeUnavailableError
from opskit.polling import deadline_in, poll_until
from opskit.runtime import host, swarm_spec
from opskit.runtime.base import (
    ExecResult,
    HostFile,
    Launch,
    LogLine,
    Runtime,
    StopResult,
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
    is_local_engine,
    list_containers,
    port_problems,
    read_file,
    streamed_exec,
    top,
    write_file,
)
from opskit.runtime.containers import epoch as _epoch
from opskit.runtime.containers import log_line as _log_line
from opskit.runtime.swarm_nodes import NodeEngines
from opskit.vocabulary import EndpointMode, PublishMode, TaskState, UnitState

if TYPE_CHECKING:
    import docker
    from docker.models.containers import Container
    from docker.models.services import Service

    from opskit.config import ServiceSpec, StackConfig

STACK_NAMESPACE = "com.docker.stack.namespace"
TASK_SERVICE_LABEL = "com.docker.swarm.service.id"
STAGING_LABEL = "io.opskit.staging"


#: Task states on the way to ``running``.
_ON_THE_WAY = {
    TaskState.NEW,
    TaskState.ALLOCATED,
    TaskState.PENDING,
    TaskState.ASSIGNED,
    TaskState.ACCEPTED,
    TaskState.PREPARING,
    TaskState.READY,
    TaskState.STARTING,
}
_FAILED = {TaskState.FAILED, TaskState.REJECTED, TaskState.ORPHANED}
_UPDATE_FAILED = {"paused", "rollback_started", "rollback_paused", "rollback_completed"}


class SwarmRuntime(Runtime):
    name = "swarm"

    def __init__(self, config: StackConfig):
        self.config = config
        self._client: docker.DockerClient | None = None
        self._units: dict[str, SwarmUnit] = {}
        self._network_lock = threading.Lock()
        self._engines: NodeEngines | None = None

    @property
    def project(self) -> str:
        return self.config.name

    @property
    def network_name(self) -> str:
        return f"{self.project}_default"

    def unit(self, spec: ServiceSpec) -> SwarmUnit:
        known = self._units.get(spec.name)
        if not isinstance(known, SwarmUnit) or known.spec != spec:
            self._units[spec.name] = SwarmUnit(spec, self)
        return self._units[spec.name]  # type: ignore[return-value]

    @property
    def client(self):
        """The engine's client, once it is known to be a swarm manager: every call after this
        one (services, tasks, secrets) needs one, and a plain engine answers each with an API
        error instead of one line saying why."""
        if self._client is None:
            client = connect()
            self._client = client
            problem = self.swarm_problem()
            if problem:
                self._client = None
                raise RuntimeUnavailableError(problem)
        return self._client

    # -- the cluster -------------------------------------------------------------------------

    def swarm_problem(self) -> str | None:
        """Why this engine cannot run a swarm stack, or None."""
        assert self._client is not None
        info = self._client.info().get("Swarm") or {}
        if info.get("LocalNodeState") != "active":
            return (
                "swarm runtime: this Docker Engine is not part of a swarm "
                f"(state {info.get('LocalNodeState') or 'unknown'}): `docker swarm init` on a "
                "manager, or use --runtime docker"
            )
        if not info.get("ControlAvailable"):
            return (
                "swarm runtime: this node is a worker; opskit must talk to a manager "
                "(DOCKER_HOST=ssh://manager or run it there)"
            )
        return None

    @property
    def local_node(self) -> str:
        return self.engines.local_node

    @property
    def engines(self) -> NodeEngines:
        """Every node's engine: the manager's for its own node, ``x-opskit.swarm.engines``'s
        for the others."""
        if self._engines is None:
            node_id = (self.client.info().get("Swarm") or {}).get("NodeID", "")
            settings = self.config.swarm
            self._engines = NodeEngines(self.client, node_id, settings.engines, settings.engine_tls)
        return self._engines

    def node_name(self, node_id: str) -> str:
        return self.engines.name(node_id)

    def manager_host(self) -> str:
        """Where this machine reaches the manager: its DOCKER_HOST's host, else loopback."""
        from urllib.parse import urlsplit

        url = str(self.client.api.base_url)
        host = urlsplit(url).hostname if url.startswith(("http://", "https://")) else None
        return host or "127.0.0.1"

    def ensure_network(self) -> None:
        """The stack's overlay network: ``docker stack deploy``'s when it made one, else ours.
        Attachable, so a one-off container (a restore's staging container) can join it."""
        with self._network_lock:
            if self.client.networks.list(names=[self.network_name]):
                return
            self.client.networks.create(
                self.network_name,
                driver="overlay",
                attachable=True,
                labels={STACK_LABEL: self.project},
            )

    def remove_network_if_unused(self) -> None:
        """Remove our overlay network once no service of ours is left on it."""
        import docker

        with self._network_lock:
            if self.client.services.list(filters={"label": f"{STACK_LABEL}={self.project}"}):
                return
            for network in self.client.networks.list(names=[self.network_name]):
                if (network.attrs.get("Labels") or {}).get(STACK_LABEL) == self.project:
                    with contextlib.suppress(docker.errors.APIError):
                        network.remove()

    def ensure_secret(self, name: str) -> Any:
        """The stack's secret ``name`` as a Swarm secret: ``<stack>_<name>``, created from the
        stack file's ``secrets.<name>`` (file or environment) when absent; ``external`` ones
        must exist already."""
        import docker

        definition = self.config.secrets.get(name)
        if definition is None:
            known = ", ".join(sorted(self.config.secrets)) or "none"
            raise ConfigError(
                self.config.source,
                f"secrets.{name}",
                f"a service uses it but the stack file does not define it (defined: {known})",
            )
        swarm_name = definition.external_name or f"{self.project}_{name}"
        for secret in self.client.secrets.list(filters={"name": swarm_name}):
            if secret.name == swarm_name:
                return secret
        if definition.external_name:
            raise OpskitError(
                f"secrets.{name}: external secret {swarm_name} does not exist in the swarm "
                f"(`docker secret create {swarm_name} FILE`)"
            )
        try:
            return self.client.secrets.create(
                name=swarm_name, data=definition.read(), labels={STACK_LABEL: self.project}
            )
        except docker.errors.APIError as exc:
            raise OpskitError(f"secrets.{name}: swarm refused it: {exc.explanation}") from None

    def remove_unused_secrets(self) -> None:
        """Our secrets no service uses any more: the next start creates them from the file
        again, which is how a rotated secret reaches the services (Swarm secrets are
        immutable)."""
        import docker

        used = {
            reference.get("SecretID")
            for service in self.client.services.list()
            for reference in (
                service.attrs["Spec"]["TaskTemplate"]["ContainerSpec"].get("Secrets") or []
            )
        }
        for secret in self.client.secrets.list(filters={"label": f"{STACK_LABEL}={self.project}"}):
            if secret.id not in used:
                with contextlib.suppress(docker.errors.APIError):
                    secret.remove()

    # -- before a start ----------------------------------------------------------------------

    def preflight(self, plans: list[tuple[ServiceSpec, Launch]]) -> list[str]:
        import docker

        try:
            self.client  # noqa: B018 - connects, and is a swarm manager, or says why not
        except RuntimeUnavailableError as exc:
            return [str(exc)]
        problems: list[str] = []
        ipvs = self.ipvs_problem()
        if ipvs:
            problems.append(ipvs)
        published = self.published_ports()
        for spec, _launch in plans:
            unit = self.unit(spec)
            if unit.service() is not None:
                continue  # exists (scaled to 0 or adopted): it is scaled up as it is
            if spec.image:
                try:
                    self.client.images.get(spec.image)
                except docker.errors.ImageNotFound:
                    problems.append(
                        f"{spec.name}: image {spec.image} is not on this node; on a cluster every "
                        "node that may run it needs it: push it to a registry the nodes can "
                        "pull from (docs/scaling.md), or build it on each node"
                    )
            else:
                problems.append(f"{spec.name}: no image: in the Compose file")
            problems += port_problems(spec, published.get, "swarm service")
        return problems

    def ipvs_problem(self) -> str | None:
        """The routing mesh and virtual IPs run on the kernel's IPVS; a kernel without it
        (some VMs, some minimal kernels) starts the services but never routes to them. Only
        knowable for an engine on this machine."""
        settings = self.config.swarm
        needs = [
            what
            for what, used in (
                ("publish: ingress", settings.publish is PublishMode.INGRESS),
                ("endpoint_mode: vip", settings.endpoint_mode is EndpointMode.VIP),
            )
            if used
        ]
        remote = os.environ.get("DOCKER_HOST", "unix://").split("://")[0] not in ("unix", "")
        if not needs or remote or Path("/proc/sys/net/ipv4/vs").exists():
            return None
        return (
            f"x-opskit.swarm: {' and '.join(needs)} need the kernel's IPVS (ip_vs), which this "
            "node lacks; set x-opskit.swarm: {publish: host, endpoint_mode: dnsrr} "
            "(docs/scaling.md)"
        )

    def published_ports(self) -> dict[int, str]:
        ports = {}
        for service in self.client.services.list():
            for port in (service.attrs.get("Endpoint") or {}).get("Ports") or []:
                if port.get("PublishedPort"):
                    ports[int(port["PublishedPort"])] = service.name
        return ports

    def build_images(self, specs: list[ServiceSpec], progress) -> None:
        """Built on this node only: a cluster's other nodes need a registry (docs/scaling.md)."""

        def exists(spec: ServiceSpec) -> bool:
            unit = self.unit(spec)
            return unit.service() is not None or unit.container() is not None

        build_images(self.client, self.config, specs, progress, exists)


class SwarmUnit(Unit):
    """A Swarm service. Container-level operations (exec, files, signals, stats) act on its
    task containers through the engine of each task's node; everything else asks Swarm."""

    follows_launch = False  # the container runs its image's command
    rolls_replicas = True

    def may_come_back(self) -> bool:
        return True  # Swarm's orchestrator replaces a finished task by itself

    def __init__(self, spec: ServiceSpec, runtime: SwarmRuntime):
        super().__init__(spec)
        self.runtime = runtime
        self._zones: dict[str, str] = {}  # container id → its zone (it cannot change)

    @property
    def service_name(self) -> str:
        return f"{self.runtime.project}_{self.spec.name}"

    @property
    def staging_name(self) -> str:
        return f"{self.service_name}-staging"

    # -- finding things ------------------------------------------------------------------------

    def service(self) -> Service | None:
        """Ours (opskit labels), else the one ``docker stack deploy`` made for this stack."""
        client = self.runtime.client
        ours = client.services.list(
            filters={
                "label": [
                    f"{STACK_LABEL}={self.runtime.project}",
                    f"{SERVICE_LABEL}={self.spec.name}",
                ]
            }
        )
        if ours:
            return ours[0]
        for service in client.services.list(
            filters={
                "label": f"{STACK_NAMESPACE}={self.runtime.project}",
                "name": self.service_name,
            }
        ):
            if service.name == self.service_name:  # the name filter matches prefixes
                return service
        return None

    def created_by_opskit(self, thing: Any) -> bool:
        labels = (thing.attrs.get("Spec") or {}).get("Labels") if hasattr(thing, "attrs") else None
        labels = labels if labels is not None else getattr(thing, "labels", {}) or {}
        return labels.get(STACK_LABEL) == self.runtime.project

    def tasks(self, service: Service | None = None) -> list[dict]:
        """The service's tasks Swarm wants running (or ready: a replacement held back by the
        restart policy's delay), newest first."""
        service = service or self.service()
        if service is None:
            return []
        wanted = [
            t
            for t in service.tasks()
            if t.get("DesiredState") in (TaskState.RUNNING, TaskState.READY)
        ]
        return sorted(wanted, key=lambda t: t.get("CreatedAt", ""), reverse=True)

    def will_restart(self, service: Service, history: list[dict]) -> bool:
        """Whether Swarm's restart policy brings a finished task back by itself (Swarm may
        not have created the replacement yet, the instant after a task died)."""
        policy = service.attrs["Spec"]["TaskTemplate"].get("RestartPolicy") or {}
        condition = policy.get("Condition", "any")
        latest = history[0] if history else {}
        if condition == "none" or (condition == "on-failure" and _exit_code(latest) == 0):
            return False
        attempts = policy.get("MaxAttempts") or 0
        return not attempts or len(history) <= attempts

    def history(self, service: Service) -> list[dict]:
        """Every task Swarm still remembers (``task_history_retention_limit``), newest first."""
        return sorted(service.tasks(), key=lambda t: t.get("CreatedAt", ""), reverse=True)

    def local_containers(self, running: bool = True) -> list[Container]:
        """The service's task containers on the manager opskit talks to (by label)."""
        service = self.service()
        if service is None:
            return []
        filters: dict[str, Any] = {"label": f"{TASK_SERVICE_LABEL}={service.id}"}
        if running:
            filters["status"] = "running"
        return list_containers(self.runtime.client, all=not running, filters=filters)

    def task_containers(self) -> list[Container]:
        """The running tasks' containers opskit can reach, newest task first, each from the
        engine of its own node (``container.client``)."""
        found = []
        for task in self.tasks():
            if _state(task) is TaskState.RUNNING:
                container = self._task_container(task)
                if container is not None:
                    found.append(container)
        return found

    def _task_container(self, task: dict) -> Container | None:
        import docker
        import requests

        node_id = task.get("NodeID", "")
        container_id = ((task.get("Status") or {}).get("ContainerStatus") or {}).get("ContainerID")
        client = self.runtime.engines.client(node_id)
        if client is None or not container_id:
            return None
        try:
            container = client.containers.get(container_id)
        except docker.errors.NotFound:
            return None
        except (docker.errors.DockerException, requests.RequestException, OSError):
            self.runtime.engines.drop(node_id)
            return None
        return container if container.status == "running" else None

    def data_node(self) -> tuple[str | None, str | None]:
        """The node whose volumes a restore must write: (node id, None), or (None, why not).

        A volume lives on one node. The service's placement pins it there (``node.hostname
        ==`` or ``node.id ==``); on a one-node swarm there is nowhere else; otherwise the data
        is wherever the last task ran and the next may start elsewhere, with an empty volume —
        so a restore is refused rather than written where Redis will not read it."""
        service = self.service()
        constraints = (
            _constraints(service)
            if service is not None and not self.created_by_opskit(service)
            else swarm_spec.placement_constraints(self.spec)  # what the next start applies
        )
        nodes = self.runtime.engines.nodes()
        for constraint in constraints:
            field, _, value = (part.strip() for part in constraint.partition("=="))
            for node in nodes:
                if (field, value) in (("node.hostname", node.hostname), ("node.id", node.id)):
                    return node.id, None
        if len(nodes) == 1:
            return nodes[0].id, None
        history = self.history(service) if service is not None else []
        last = self.runtime.node_name(history[0].get("NodeID", "")) if history else None
        where = f" (its last task ran on {last})" if last else ""
        return None, (
            f"its volumes live on one node, but nothing pins it to one of the swarm's "
            f"{len(nodes)} nodes{where}: add deploy.placement.constraints: "
            f"[node.hostname == NODE] to services.{self.name} (docs/scaling.md)"
        )

    def _staging_client(self) -> docker.DockerClient | None:
        node_id, _problem = self.data_node()
        return self.runtime.engines.client(node_id) if node_id else None

    def staging_container(self) -> Container | None:
        import docker

        client = self._staging_client()
        if client is None:
            return None
        try:
            container = client.containers.get(self.staging_name)
        except docker.errors.NotFound:
            return None
        return container if container.labels.get(STAGING_LABEL) == self.runtime.project else None

    def container(self) -> Container | None:
        """A running task container; while the service is scaled to 0, the staging container
        a restore writes into (:meth:`create`)."""
        reachable = self.task_containers()
        return reachable[0] if reachable else self.staging_container()

    def _elsewhere(self, what: str) -> str:
        """Why ``what`` cannot be done: no task running, or why each task's node is out of
        reach."""
        engines = self.runtime.engines
        reasons = sorted(
            {
                engines.why_not(t.get("NodeID", ""))
                for t in self.tasks()
                if _state(t) is TaskState.RUNNING
            }
        )
        if not reasons:
            return f"{self.name}: no task is running, so there is no container to {what}"
        return f"{self.name}: cannot {what}: {'; '.join(reasons)}"

    # -- status ---------------------------------------------------------------------------------

    def status(self) -> UnitStatus:
        service = self.service()
        if service is None:
            return UnitStatus(self.name, UnitState.ABSENT)
        mode = service.attrs["Spec"].get("Mode") or {}
        desired = (mode.get("Replicated") or {}).get("Replicas")
        adopted = "" if self.created_by_opskit(service) else " (adopted)"
        if desired == 0:
            return UnitStatus(
                self.name, UnitState.ABSENT, detail=f"service {service.name} scaled to 0{adopted}"
            )
        tasks = self.tasks(service)
        history = self.history(service)
        lost = self._lost_nodes(history)
        running = [
            t
            for t in tasks
            if _state(t) is TaskState.RUNNING
            and self.runtime.node_name(t.get("NodeID", "")) not in lost
        ]
        wanted = desired if desired is not None else len(tasks)  # global: one per eligible node
        failures = [t for t in history if _state(t) in _FAILED or _exit_code(t) not in (None, 0)]
        nodes = tuple(self.runtime.node_name(t.get("NodeID", "")) for t in running)
        placed = ", ".join(f"{node} ×{count}" for node, count in sorted(Counter(nodes).items()))
        detail = f"service {service.name}{adopted}: {len(running)}/{wanted} tasks running"
        detail += f" on {placed}" if placed else ""
        for node, state in sorted(lost.items()):
            detail += f"; node {node} is {state}: its task there is lost"
        last_error = _task_error(failures[0]) if failures else ""
        stranded = self._stranded_on(lost, service)
        if stranded and not running:
            return UnitStatus(
                self.name,
                UnitState.EXITED,
                restarts=len(failures),
                detail=f"{detail}; {stranded}",
            )
        if running:
            local = self.local_containers() if is_local_engine(self.runtime.client) else []
            state = local[0].attrs.get("State", {}) if len(local) == 1 else {}
            if len(running) < wanted and last_error:
                detail += f"; last task error: {last_error}"
            return UnitStatus(
                self.name,
                UnitState.RUNNING,
                pid=state.get("Pid") or None,
                started_at=min(_epoch(t["Status"].get("Timestamp")) or 0.0 for t in running)
                or None,
                restarts=len(failures),
                detail=detail,
                nodes=nodes,
            )
        if any(_state(t) in _ON_THE_WAY for t in tasks) or self.will_restart(service, history):
            why = f"; last task error: {last_error}" if last_error else ""
            return UnitStatus(
                self.name,
                UnitState.CONVERGING,
                restarts=len(failures),
                detail=f"{detail}; Swarm is starting a task{why}",
            )
        latest = history[0] if history else {}
        return UnitStatus(
            self.name,
            UnitState.EXITED,
            exit_code=_exit_code(latest),
            restarts=len(failures),
            detail=f"{detail}; {_task_error(latest) or 'no task left running'}",
        )

    def _lost_nodes(self, history: list[dict]) -> dict[str, str]:
        """Nodes that are not ``ready`` (down, disconnected) where Swarm last saw a task of
        this service running: name → state. Their tasks cannot be reached nor counted."""
        engines = self.runtime.engines
        lost = {}
        for task in history:
            if _state(task) in _ON_THE_WAY | {TaskState.RUNNING}:
                node = engines.node(task.get("NodeID", ""))
                if node is not None and not node.ready:
                    lost[node.hostname] = node.state
        return lost

    def _stranded_on(self, lost: dict[str, str], service: Service) -> str | None:
        """A sentence when the service is pinned (deploy.placement) to a node that is lost:
        Swarm will not start it anywhere else, and its volumes — its data — are there."""
        if not lost:
            return None
        eligible = self.runtime.engines.eligible(_constraints(service))
        if any(node.ready for node in eligible) or not eligible:
            return None
        where = ", ".join(sorted(node.hostname for node in eligible))
        has_volumes = any(
            m.kind == "volume"
            for m in swarm_spec.mount_uses(
                self.spec, self.runtime.project, self.runtime.config.project_dir
            )
        )
        data = (
            f"its data (its volumes) is on node {where}, which"
            if has_volumes
            else (f"it may only run on node {where}, which")
        )
        return (
            f"{data} is {lost.get(where, 'down')}: Swarm cannot start it anywhere else — "
            "bring the node back, or restore the latest backup onto another node "
            "(docs/scaling.md, 'A lost node')"
        )

    def settling(self) -> str | None:
        """None once every desired task runs (healthy: Swarm holds an unhealthy-yet task in
        ``starting``) and no update is rolling; otherwise what is still moving."""
        service = self.service()
        if service is None:
            return "the service does not exist"
        update = (service.attrs.get("UpdateStatus") or {}).get("State")
        if update in ("updating", "rollback_started"):
            return f"a rolling update is {update.replace('_', ' ')}"
        desired = ((service.attrs["Spec"].get("Mode") or {}).get("Replicated") or {}).get(
            "Replicas"
        )
        tasks = self.tasks(service)
        running = sum(1 for t in tasks if _state(t) is TaskState.RUNNING)
        wanted = desired if desired is not None else len(tasks)
        if running < wanted:
            return f"{running}/{wanted} tasks running and healthy"
        return None

    def container_health(self) -> str | None:
        """The worst HEALTHCHECK verdict among the task containers opskit reaches."""
        verdicts = {
            (c.attrs.get("State", {}).get("Health") or {}).get("Status")
            for c in self.task_containers()
        } - {None}
        for verdict in ("unhealthy", "starting", "healthy"):
            if verdict in verdicts:
                return verdict
        return None

    def host_pid(self) -> int | None:
        return None  # tasks come and go under Swarm: watch the service by asking

    def processes(self) -> list[UnitProcess]:
        """The processes of its newest task's container (the task a reload must reach)."""
        reachable = self.task_containers()
        return top(reachable[0]) if reachable else []

    def stats(self) -> UnitStats | None:
        """Every reachable task container together: from /proc where the engine is on this
        machine (cheap), else from the node's engine (``docker stats --no-stream``)."""
        total = [0, 0.0, 0.0]
        seen = False
        for container in self.task_containers():
            stats = _container_stats(container)
            if stats is not None:
                total[0] += stats.rss_bytes
                total[1] += stats.cpu_percent
                total[2] += stats.cpu_seconds or 0.0
                seen = True
        return UnitStats(int(total[0]), total[1], total[2]) if seen else None

    # -- start -----------------------------------------------------------------------------------

    def start(self, launch: Launch) -> UnitStatus:
        """Create our service, or scale an existing one (ours or adopted) back to its replicas."""
        import docker

        self._remove_staging()
        service = self.service()
        try:
            if service is None:
                self.runtime.ensure_network()
                self.runtime.client.api.create_service(**self.service_arguments())
            else:
                self._place_as_the_file_says(service)
                if not swarm_spec.is_global(self.spec) and _replicas(service) == 0:
                    service.scale(swarm_spec.desired_replicas(self.spec))
        except docker.errors.APIError as exc:
            raise OpskitError(f"{self.name}: swarm could not start it: {exc.explanation}") from None
        return self.status()

    def _place_as_the_file_says(self, service: Service) -> None:
        """A service of ours that is started again (scaled to 0, or stranded on a lost node)
        takes the stack file's placement first: how Redis moves to another node
        (docs/scaling.md, 'A lost node') — the restore writes its data onto the node the file
        now names, and the task must start there."""
        wanted = swarm_spec.placement_constraints(self.spec)
        if not self.created_by_opskit(service) or _constraints(service) == wanted:
            return
        service.update(constraints=wanted)
        service.reload()

    def service_arguments(self) -> dict[str, Any]:
        """The Compose service as ``create_service`` arguments (the SDK's Swarm types)."""
        import docker

        spec, types = self.spec, docker.types
        key = f"services.{spec.name}"
        try:
            replicas = swarm_spec.desired_replicas(spec)
            container = swarm_spec.container_arguments(spec)
            container["labels"] = {STACK_LABEL: self.runtime.project, SERVICE_LABEL: spec.name}
            container["mounts"] = [
                types.Mount(m.target, m.source, type=m.kind, read_only=m.read_only)
                for m in swarm_spec.mount_uses(
                    spec, self.runtime.project, self.runtime.config.project_dir
                )
            ]
            container["secrets"] = [
                types.SecretReference(secret.id, secret.name, filename=use.target, mode=use.mode)
                for use in swarm_spec.secret_uses(spec)
                for secret in [self.runtime.ensure_secret(use.source)]
            ]
            if spec.healthcheck and spec.healthcheck.test:
                check = spec.healthcheck
                container["healthcheck"] = types.Healthcheck(
                    test=["NONE"] if check.disabled else list(check.test),
                    interval=int(check.interval * 1e9),
                    timeout=int(check.timeout * 1e9),
                    retries=check.retries,
                    start_period=int(check.start_period * 1e9),
                )
            update = swarm_spec.update_arguments(
                swarm_spec.deploy_section(spec).get("update_config"), f"{key}.deploy.update_config"
            )
            rollback = swarm_spec.update_arguments(
                swarm_spec.deploy_section(spec).get("rollback_config"),
                f"{key}.deploy.rollback_config",
            )
            resources = swarm_spec.resource_arguments(spec)
            restart = swarm_spec.restart_arguments(spec)
        except ConfigError as exc:
            raise ConfigError(self.runtime.config.source, exc.key, exc.problem) from None
        except ValueError as exc:
            raise ConfigError(self.runtime.config.source, key, str(exc)) from None
        mode = (
            types.ServiceMode("global")
            if swarm_spec.is_global(spec)
            else types.ServiceMode("replicated", replicas=replicas)
        )
        template = types.TaskTemplate(
            container_spec=types.ContainerSpec(
                spec.image or f"{self.runtime.project}-{spec.name}", **container
            ),
            restart_policy=types.RestartPolicy(**restart),
            resources=types.Resources(**resources) if resources else None,
            placement=types.Placement(constraints=swarm_spec.placement_constraints(spec)) or None,
            networks=[
                types.NetworkAttachmentConfig(self.runtime.network_name, aliases=[spec.name])
            ],
        )
        settings = self.runtime.config.swarm
        ports = {
            p.host_port: (p.container_port, p.protocol, settings.publish.value)
            for p in spec.ports
            if p.host_port is not None
        }
        endpoint_mode = str(
            swarm_spec.deploy_section(spec).get("endpoint_mode") or settings.endpoint_mode.value
        )
        return {
            "task_template": template,
            "name": self.service_name,
            "labels": {**spec.labels, STACK_LABEL: self.runtime.project, SERVICE_LABEL: spec.name},
            "mode": mode,
            "update_config": types.UpdateConfig(**update) if update else None,
            "rollback_config": types.RollbackConfig(**rollback) if rollback else None,
            "endpoint_spec": types.EndpointSpec(mode=endpoint_mode, ports=ports or None),
        }

    # -- stop ------------------------------------------------------------------------------------

    def stop(self, sig: signal.Signals, grace: float) -> StopResult:
        """Scale to 0: Swarm sends the service's stop signal and kills after its grace."""
        service = self.service()
        if service is None or _replicas(service) == 0:
            self.forget()
            return StopResult(self.name, was_running=False, detail="not running")
        stop_signal = service.attrs["Spec"]["TaskTemplate"]["ContainerSpec"].get("StopSignal")
        return self.finish_stop(grace, f"{stop_signal or sig.name} from Swarm")

    def finish_stop(self, grace: float, how: str) -> StopResult:
        """After a stop was asked for (Redis's SHUTDOWN): scale to 0 so Swarm does not start a
        replacement, and wait until the tasks are gone."""
        import docker

        service = self.service()
        if service is None:
            return StopResult(self.name, was_running=True, detail=f"stopped by {how}")
        if swarm_spec.is_global(self.spec) or "Global" in (service.attrs["Spec"].get("Mode") or {}):
            if not self.created_by_opskit(service):
                raise OpskitError(
                    f"{self.name}: a global service cannot be scaled to 0 and opskit did not "
                    "create it, so it is not removed: `docker service rm` it yourself"
                )
            self._remove(service)
        else:
            try:
                service.scale(0)
            except docker.errors.APIError as exc:
                raise OpskitError(
                    f"{self.name}: swarm could not scale it to 0: {exc.explanation}"
                ) from None
        # Swarm waits the service's own grace (not the caller's) before it kills.
        spec_grace = service.attrs["Spec"]["TaskTemplate"]["ContainerSpec"].get("StopGracePeriod")
        wait = (spec_grace / 1e9 if spec_grace else 10.0) + 15.0
        began = time.time()
        gone = poll_until(lambda: True if self._quiet() else None, deadline_in(wait))
        killed = any(
            _exit_code(task) == 128 + signal.SIGKILL
            for task in self.history(service)
            if (_epoch((task.get("Status") or {}).get("Timestamp")) or 0) >= began - 1
        )
        self.forget()
        if not gone:
            return StopResult(
                self.name,
                was_running=True,
                killed=True,
                detail=f"tasks still shutting down {wait:g}s after the scale to 0",
            )
        what = "killed by Swarm after its grace" if killed else f"stopped by {how}"
        return StopResult(
            self.name, was_running=True, killed=killed, detail=f"{what} (scaled to 0)"
        )

    def _quiet(self) -> bool:
        """No task running or on its way, and no task container left running on the manager
        (Swarm marks a task shut down before its container has finished stopping)."""
        service = self.service()
        if service is None:
            return True
        history = service.tasks()
        lost = self._lost_nodes(history)  # a task on a node that is down never reports back
        busy = [
            t
            for t in history
            if _state(t) in _ON_THE_WAY | {TaskState.RUNNING}
            and self.runtime.node_name(t.get("NodeID", "")) not in lost
        ]
        return not busy and not self.local_containers()

    def kill(self) -> None:
        """SIGKILL this node's task containers, then scale to 0 so none is replaced."""
        import docker

        for container in self.task_containers():
            with contextlib.suppress(docker.errors.APIError):
                container.kill()
        service = self.service()
        if service is not None and _replicas(service):
            with contextlib.suppress(docker.errors.APIError):
                service.scale(0)

    def send_signal(self, sig) -> bool:
        """Signal every task container opskit reaches (an nginx HUP reaches each replica)."""
        import docker

        sent = False
        for container in self.task_containers():
            with contextlib.suppress(docker.errors.APIError):
                container.kill(signal=int(sig))
                sent = True
        return sent

    def forget(self) -> None:
        """Remove the service if opskit created it (an adopted one stays, at 0 replicas), then
        our staging container, unused secrets and the network."""
        service = self.service()
        if service is not None and self.created_by_opskit(service):
            poll_until(lambda: True if self._reaped(service) else None, deadline_in(10.0))
            self._remove(service)
            # Swarm's agent removes the task containers a moment later.
            filters = {"label": f"{TASK_SERVICE_LABEL}={service.id}"}
            client = self.runtime.client
            poll_until(
                lambda: None if list_containers(client, all=True, filters=filters) else True,
                deadline_in(15.0),
            )
        self._remove_staging()
        self.runtime.remove_unused_secrets()
        self.runtime.remove_network_if_unused()

    def _reaped(self, service: Service) -> bool:
        """Swarm's task reaper has deleted the tasks a scale-down marked for removal.

        Why wait for it: Docker 20.10's swarmkit (Debian bookworm's docker.io) re-reads each
        task while removing a service and dereferences nil when the reaper deleted one in
        between — the whole daemon panics (``SetServiceTasksRemove``, orchestrator/service.go).
        A service removed right after its scale to 0 hits that window.
        """
        import docker

        try:
            return not any(t.get("DesiredState") == TaskState.REMOVE for t in service.tasks())
        except docker.errors.NotFound:
            return True

    def _remove(self, service: Service) -> None:
        import docker

        with contextlib.suppress(docker.errors.APIError):
            service.remove()

    # -- rolling replacement -----------------------------------------------------------------

    def replace_rolling(self, timeout: float) -> str:
        """``docker service update --force`` with ``order: start-first``: each new task runs
        and is healthy before an old one stops; verified until Swarm reports the update
        completed and every desired task runs. Raises with Swarm's own message otherwise, and
        then rolls the update back (``docker service rollback``): a failed roll never leaves
        an update hanging. Refused before anything changes (:class:`RollingImpossible`) when
        the new task could never be placed."""
        import docker

        service = self.service()
        if service is None:
            raise OpskitError(f"{self.name}: no swarm service to update")
        blocker = self._roll_blocker(service)
        if blocker:
            raise RollingImpossible(f"{self.name}: {blocker}")
        spec = service.attrs["Spec"]
        task_template = spec["TaskTemplate"]
        task_template["ForceUpdate"] = int(task_template.get("ForceUpdate") or 0) + 1
        update = dict(spec.get("UpdateConfig") or {"Parallelism": 1})
        note = ""
        if update.get("Order") != "start-first":
            update["Order"] = "start-first"
            note = "; update order set to start-first"
        try:
            self.runtime.client.api.update_service(
                service.id,
                service.version,
                task_template=task_template,
                name=spec["Name"],
                labels=spec.get("Labels"),
                mode=spec.get("Mode"),
                update_config=update,
                rollback_config=spec.get("RollbackConfig"),
                networks=spec.get("TaskTemplate", {}).get("Networks") or spec.get("Networks"),
                endpoint_spec=spec.get("EndpointSpec"),
            )
        except docker.errors.APIError as exc:
            raise OpskitError(f"{self.name}: swarm refused the update: {exc.explanation}") from None

        def finished() -> str | None:
            current = self.service()
            if current is None:
                raise OpskitError(f"{self.name}: the service disappeared during the update")
            status = current.attrs.get("UpdateStatus") or {}
            state = status.get("State")
            if state in _UPDATE_FAILED:
                raise OpskitError(
                    f"{self.name}: the rolling update {state.replace('_', ' ')}: "
                    f"{status.get('Message', '')}"
                )
            if state == "completed" and self.settling() is None:
                return status.get("Message") or "update completed"
            return None

        try:
            message = poll_until(finished, deadline_in(timeout), first=0.2, cap=1.0)
        except OpskitError as exc:
            raise OpskitError(f"{exc}{self._roll_back()}") from None
        if message is None:
            why = self.settling() or "still updating"
            raise OpskitError(
                f"{self.name}: the rolling update did not complete within {timeout:g}s "
                f"({why}){self._roll_back()}"
            )
        replicas = len([t for t in self.tasks() if _state(t) is TaskState.RUNNING])
        return f"rolling update, start-first, {replicas} tasks replaced one at a time{note}"

    def _roll_blocker(self, service: Service) -> str | None:
        """Why a start-first roll could never place its new task: every node that can take
        one already runs a task of this service holding its host-mode port (Swarm would leave
        the new task Pending: "host-mode port already in use")."""
        ports = [
            str(port.get("PublishedPort"))
            for port in (service.attrs.get("Endpoint", {}).get("Spec", {}).get("Ports") or [])
            if port.get("PublishMode") == "host" and port.get("PublishedPort")
        ]
        if not ports:
            return None
        mode = service.attrs["Spec"].get("Mode") or {}
        replicas = (mode.get("Replicated") or {}).get("Replicas", 1)
        nodes = [
            node
            for node in self.runtime.engines.eligible(_constraints(service))
            if node.ready and node.availability == "active"
        ]
        if "Global" in mode:
            return (
                f"a start-first rolling update cannot place a new task: it publishes port "
                f"{', '.join(ports)} in host mode and runs one task on every node"
            )
        if replicas < len(nodes):
            return None
        return (
            f"a start-first rolling update cannot place a new task: it publishes port "
            f"{', '.join(ports)} in host mode and its {replicas} task(s) already hold it on "
            f"the {len(nodes)} node(s) that can run one. Publish through the routing mesh "
            "(x-opskit.swarm.publish: ingress), or run fewer replicas than nodes"
        )

    def _roll_back(self) -> str:
        """``docker service rollback`` of an update that failed or hangs; what it did."""
        import docker

        service = self.service()
        if service is None or not service.attrs.get("PreviousSpec"):
            return ""
        api = self.runtime.client.api
        try:  # docker-py has no call for it: the Engine API's update with rollback=previous
            response = api._post_json(
                api._url("/services/{0}/update", service.id),
                data=service.attrs["Spec"],
                params={"version": service.version, "rollback": "previous"},
            )
            api._raise_for_status(response)
        except (docker.errors.APIError, OSError) as exc:
            return f"; rolling it back failed too: {exc}"
        return "; rolled back to the previous spec (docker service rollback)"

    # -- addresses -----------------------------------------------------------------------------

    def address(self, container_port: int) -> tuple[str, int]:
        """Where this machine reaches ``container_port``. Published through the routing mesh:
        on any node, so the manager's. Published in host mode: on the node its newest running
        task is on (loopback when that is the manager on this machine). Unpublished: at the
        task container's address on ``docker_gwbridge``, which only its own node reaches."""
        mapping = self.spec.port(container_port)
        if mapping is not None and mapping.host_port is not None:
            # Swarm publishes on every address of a node: a mapping's host IP is not kept.
            return (self._published_host(), mapping.host_port)
        gateway = self._gateway_address()
        return (gateway or "127.0.0.1", container_port)

    def reach_url(self, url: str) -> str:
        """A URL the stack file gives on loopback at one of this service's published ports
        (``admin_url: http://127.0.0.1:8001``) reaches the node that port is published on."""
        from urllib.parse import urlsplit, urlunsplit

        parts = urlsplit(url)
        if parts.hostname not in ("127.0.0.1", "localhost", "::1") or parts.port is None:
            return url
        mapping = next((p for p in self.spec.ports if p.host_port == parts.port), None)
        if mapping is None:
            return url
        host, port = self.address(mapping.container_port)
        if host in ("127.0.0.1", parts.hostname):
            return url
        netloc = f"{parts.username}@" if parts.username else ""
        return urlunsplit(parts._replace(netloc=f"{netloc}{host}:{port}"))

    def _published_host(self) -> str:
        engines = self.runtime.engines
        manager_host = self.runtime.manager_host()
        if self.runtime.config.swarm.publish is not PublishMode.HOST:
            return manager_host
        for task in self.tasks():
            if _state(task) is TaskState.RUNNING:
                node_id = task.get("NodeID", "")
                node = engines.node(node_id)
                if engines.is_local(node_id) or node is None or not node.address:
                    return manager_host
                return node.address
        return manager_host

    def _gateway_address(self) -> str | None:
        import docker

        reachable = self.task_containers()
        if not reachable:
            return None
        try:
            bridge = reachable[0].client.networks.get("docker_gwbridge")
        except docker.errors.APIError:
            return None
        endpoint = (bridge.attrs.get("Containers") or {}).get(reachable[0].id) or {}
        address = endpoint.get("IPv4Address", "")
        return address.split("/")[0] or None

    # -- exec, files, logs -------------------------------------------------------------------

    def exec(self, argv: list[str], timeout: float = 15.0) -> ExecResult:
        reachable = self.task_containers()
        if not reachable:
            return ExecResult(None, self._elsewhere("exec into it"))
        return bounded_exec(reachable[0].client, reachable[0], argv, timeout, self.name)

    def exec_stream(self, argv: list[str]) -> contextlib.AbstractContextManager[BinaryIO]:
        reachable = self.task_containers()
        if not reachable:
            raise OpskitError(self._elsewhere("exec into it"))
        return streamed_exec(reachable[0].client, reachable[0], argv, self.name)

    def create(self) -> None:
        """While the service is scaled to 0 (a restore), a stopped *staging* container with
        the service's volumes, on the node they live on (:meth:`data_node`), so files are
        written where the next task will read them."""
        import docker

        if self.task_containers() or self.staging_container() is not None:
            return
        node_id, problem = self.data_node()
        if node_id is None:
            raise OpskitError(f"{self.name}: {problem}")
        client = self.runtime.engines.client(node_id)
        if client is None:
            raise OpskitError(
                f"{self.name}: cannot write its volumes: {self.runtime.engines.why_not(node_id)}"
            )
        mounts = swarm_spec.mount_uses(
            self.spec, self.runtime.project, self.runtime.config.project_dir
        )
        volumes = {
            m.source: {"bind": m.target, "mode": "ro" if m.read_only else "rw"} for m in mounts
        }
        try:
            client.containers.create(
                self.spec.image or f"{self.runtime.project}-{self.spec.name}",
                name=self.staging_name,
                command=["true"],
                volumes=volumes,
                labels={STAGING_LABEL: self.runtime.project, STACK_LABEL: self.runtime.project},
            )
        except docker.errors.APIError as exc:
            raise OpskitError(
                f"{self.name}: could not create a staging container: {exc.explanation}"
            ) from None

    def _remove_staging(self) -> None:
        import docker

        if not swarm_spec.mount_uses(
            self.spec, self.runtime.project, self.runtime.config.project_dir
        ):
            return  # a staging container exists only to write into volumes
        container = self.staging_container()
        if container is not None:
            with contextlib.suppress(docker.errors.APIError):
                container.remove(force=True)

    @contextlib.contextmanager
    def open_file(self, path: str) -> Iterator[BinaryIO]:
        container = self.container()
        if container is None:
            raise OpskitError(self._elsewhere(f"copy {path} out"))
        with read_file(container, path, self.name) as data:
            yield data

    def write_file(self, path: str, data: BinaryIO, size: int) -> None:
        """Into this node's task container, or, while scaled to 0, into the staging container
        — only under one of its volumes: a file anywhere else would vanish with it, since
        Swarm starts every task in a new container."""
        container = self.container()
        if container is None:
            raise OpskitError(self._elsewhere(f"copy {path} in"))
        if container.labels.get(STAGING_LABEL):
            problem = self.keeps_file(path)
            if problem:
                raise OpskitError(f"{self.name}: {problem}")
        write_file(container, path, data, size, self.name)

    def host_file(self, path: str) -> HostFile | None:
        runtime = self.runtime
        return bind_mount_file(self.spec, runtime.project, runtime.config.project_dir, path)

    def peer_address(self, container_port: int) -> tuple[str, int]:
        return (self.spec.name, container_port)  # its alias on the stack's network

    def time_zone(self) -> str | None:
        """This node's task container's own zone (its TZ, its /etc/localtime), else UTC."""
        container = self.container()
        if container is None:
            return super().time_zone() or "UTC"
        cached = self._zones.get(container.id)
        if cached is None:
            running = self.status().running
            cached = container_zone(container, running, lambda argv: self.exec(argv, timeout=5))
            self._zones[container.id] = cached
        return cached

    def keeps_file(self, path: str) -> str | None:
        mounts = swarm_spec.mount_uses(
            self.spec, self.runtime.project, self.runtime.config.project_dir
        )
        target = PurePosixPath(path)
        if any(target.is_relative_to(m.target) for m in mounts if not m.read_only):
            return None
        return (
            f"{path} is not on a volume of the service: Swarm starts each task in a new "
            "container, so a file written there while it is stopped would be lost; mount a "
            f"volume at {target.parent} (services.{self.name}.volumes)"
        )

    def logs(
        self, since: float | None = None, until: float | None = None, follow: bool = False
    ) -> Iterator[LogLine]:
        """The service's logs, every task's, with the engine's timestamps (``docker service
        logs``); the API takes whole seconds, so the edges are trimmed here."""
        import docker

        service = self.service()
        if service is None:
            return
        try:
            chunks = self.runtime.client.api.service_logs(
                service.id,
                stdout=True,
                stderr=True,
                timestamps=True,
                follow=follow,
                since=int(since) if since else 0,
                is_tty=False,
            )
            if isinstance(chunks, bytes):
                chunks = iter([chunks])
            pending = b""
            for chunk in chunks:
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for raw in lines:
                    line = _log_line(self.name, raw)
                    if _within(line, since, until):
                        yield line
            if pending:
                line = _log_line(self.name, pending)
                if _within(line, since, until):
                    yield line
        except docker.errors.APIError:
            return

    def log_tail(self, lines: int = 20) -> list[str]:
        import docker

        service = self.service()
        if service is None:
            return []
        try:
            raw = self.runtime.client.api.service_logs(
                service.id, stdout=True, stderr=True, tail=str(lines), is_tty=False
            )
        except docker.errors.APIError:
            return []
        if not isinstance(raw, bytes):
            raw = b"".join(raw)
        return raw.decode("utf-8", errors="replace").splitlines()[-lines:]


def _container_stats(container: Container) -> UnitStats | None:
    """One task container's use: its process tree in /proc when its engine is on this machine
    (the PID is this host's), else the engine's own one-shot stats."""
    import docker
    import requests

    if is_local_engine(container.client):
        pid = container.attrs.get("State", {}).get("Pid")
        return host.process_tree_stats(pid) if pid else None
    try:
        raw = container.client.api.stats(container.id, stream=False, one_shot=True)
    except (docker.errors.DockerException, requests.RequestException, OSError):
        return None
    memory = raw.get("memory_stats") or {}
    rss = (memory.get("stats") or {}).get("rss") or memory.get("usage") or 0
    cpu_seconds = ((raw.get("cpu_stats") or {}).get("cpu_usage") or {}).get("total_usage", 0) / 1e9
    started = _epoch(container.attrs.get("State", {}).get("StartedAt")) or time.time()
    age = max(time.time() - started, 1e-3)
    return UnitStats(int(rss), 100.0 * cpu_seconds / age, cpu_seconds)


def _within(line: LogLine, since: float | None, until: float | None) -> bool:
    if line.timestamp is None:
        return True
    return (since is None or line.timestamp >= since) and (until is None or line.timestamp <= until)


def _state(task: dict) -> TaskState | None:
    try:
        return TaskState((task.get("Status") or {}).get("State", ""))
    except ValueError:  # a state a newer engine added
        return None


def _constraints(service: Service) -> list[str]:
    """The placement constraints the service runs with now."""
    placement = service.attrs["Spec"]["TaskTemplate"].get("Placement") or {}
    return list(placement.get("Constraints") or [])


def _replicas(service: Service) -> int | None:
    return ((service.attrs["Spec"].get("Mode") or {}).get("Replicated") or {}).get("Replicas")


def _exit_code(task: dict) -> int | None:
    return ((task.get("Status") or {}).get("ContainerStatus") or {}).get("ExitCode")


def _task_error(task: dict) -> str:
    status = task.get("Status") or {}
    error = status.get("Err") or ""
    code = _exit_code(task)
    if not error and code not in (None, 0):
        error = f"exited with code {code}"
    return f"{status.get('State', '?')}: {error}" if error else ""
