"""The nodes of a swarm, and how opskit reaches each node's own Docker Engine.

A manager answers for the cluster (services, tasks, nodes), but a task's *container* is known
only to the engine of the node Swarm placed it on: exec, file copies, its processes and its
resource use go there. That is the manager opskit talks to when the task runs on it; for any
other node it is the engine ``x-opskit.swarm.engines`` names — a URL per node hostname, or one
template for every node (``"*": tcp://{address}:2376``, ``{address}`` being the node's Swarm
address, ``{hostname}`` its name) with ``engine_tls`` for TCP. opskit contacts nothing the
operator did not name there: no SSH unless a URL says ``ssh://`` (the operator's own ssh
client and keys, as ``docker -H ssh://`` uses them), no helper containers.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from opskit.runtime.containers import MINIMUM_API_VERSION, negotiated
from opskit.runtime.swarm_spec import node_satisfies

if TYPE_CHECKING:
    import docker

    from opskit.config import EngineTls

#: How long a node's state (ready, down, drained) is taken as known.
NODE_STATE_TTL = 2.0
#: A remote engine's socket timeout: a frozen node costs this, never a hang.
ENGINE_TIMEOUT = 15.0
#: How long the first answer of a node's engine may take (it is asked only when needed).
CONNECT_TIMEOUT = 3.0
ANY_NODE = "*"


@dataclass(frozen=True)
class SwarmNode:
    id: str
    hostname: str
    address: str  # the node's Swarm address (Status.Addr)
    state: str  # Swarm's view: ready, down, unknown, disconnected
    availability: str  # active, pause, drain
    role: str  # manager or worker
    attrs: dict = field(default_factory=dict, compare=False, repr=False)  # node inspect

    @property
    def ready(self) -> bool:
        return self.state == "ready"

    @classmethod
    def of(cls, attrs: dict) -> SwarmNode:
        status, spec = attrs.get("Status") or {}, attrs.get("Spec") or {}
        return cls(
            id=attrs.get("ID", ""),
            hostname=(attrs.get("Description") or {}).get("Hostname", "") or attrs.get("ID", ""),
            address=status.get("Addr", ""),
            state=status.get("State", "unknown"),
            availability=spec.get("Availability", "active"),
            role=spec.get("Role", "worker"),
            attrs=attrs,
        )


class NodeEngines:
    """Each node's engine client: the manager's for its own node, the configured URL for the
    others (connected once, kept), or None with a sentence saying why."""

    def __init__(
        self,
        manager: docker.DockerClient,
        local_node: str,
        engines: tuple[tuple[str, str], ...],
        tls: EngineTls | None,
    ):
        self.manager = manager
        self.local_node = local_node
        self.engines = dict(engines)
        self.tls = tls
        self._nodes: dict[str, tuple[float, SwarmNode]] = {}
        self._clients: dict[str, docker.DockerClient] = {}
        self._lock = threading.Lock()

    # -- nodes -----------------------------------------------------------------------------------

    def node(self, node_id: str) -> SwarmNode | None:
        import docker

        if not node_id:
            return None  # a task not assigned to a node yet
        cached = self._nodes.get(node_id)
        if cached and time.monotonic() - cached[0] < NODE_STATE_TTL:
            return cached[1]
        try:
            node = SwarmNode.of(self.manager.nodes.get(node_id).attrs)
        except (docker.errors.DockerException, KeyError):
            return cached[1] if cached else None
        self._nodes[node_id] = (time.monotonic(), node)
        return node

    def nodes(self) -> list[SwarmNode]:
        found = [SwarmNode.of(n.attrs) for n in self.manager.nodes.list()]
        now = time.monotonic()
        for node in found:
            self._nodes[node.id] = (now, node)
        return found

    def eligible(self, constraints: list[str]) -> list[SwarmNode]:
        """The nodes a service with these placement constraints may run on (any state)."""
        return [
            node
            for node in self.nodes()
            if all(node_satisfies(node.attrs, constraint) for constraint in constraints)
        ]

    def name(self, node_id: str) -> str:
        node = self.node(node_id)
        return node.hostname if node else (node_id[:12] or "unassigned")

    # -- engines ---------------------------------------------------------------------------------

    def url(self, node: SwarmNode) -> str | None:
        template = self.engines.get(node.hostname) or self.engines.get(ANY_NODE)
        if not template:
            return None
        return template.format(address=node.address, hostname=node.hostname)

    def is_local(self, node_id: str) -> bool:
        return node_id == self.local_node

    def client(self, node_id: str) -> docker.DockerClient | None:
        """The engine that knows this node's containers, or None (:meth:`why_not` says why)."""
        if self.is_local(node_id):
            return self.manager
        node = self.node(node_id)
        url = self.url(node) if node else None
        if node is None or url is None or not node.ready:
            return None
        with self._lock:
            client = self._clients.get(url)
            if client is None:
                client = connect_engine(url, self.tls)
                if client is None:
                    return None
                self._clients[url] = client
            return client

    def drop(self, node_id: str) -> None:
        """Forget a node's client after it failed (the next call connects again)."""
        node = self.node(node_id)
        url = self.url(node) if node else None
        with self._lock:
            self._clients.pop(url or "", None)

    def why_not(self, node_id: str) -> str:
        """Why this node's engine cannot be reached, as the end of a sentence."""
        node = self.node(node_id)
        if node is None:
            return f"node {node_id[:12] or '?'} is not in the swarm any more"
        if not node.ready:
            return f"node {node.hostname} is {node.state} (Swarm cannot reach it)"
        url = self.url(node)
        if url is None:
            return (
                f"it runs on node {node.hostname}, whose engine opskit has no address for: "
                "name it in x-opskit.swarm.engines (docs/scaling.md)"
            )
        return f"node {node.hostname}'s engine does not answer at {_public(url)}"


def connect_engine(url: str, tls: EngineTls | None) -> docker.DockerClient | None:
    """A client for the engine at ``url`` once it answered a ping, else None. TLS (the
    client side of the engine's ``--tlsverify``) for tcp:// when ``tls`` is given."""
    import docker

    try:
        client = docker.DockerClient(
            base_url=url,
            timeout=CONNECT_TIMEOUT,
            tls=tls.docker_config() if tls and url.startswith("tcp://") else False,
            use_ssh_client=url.startswith("ssh://"),
            version=MINIMUM_API_VERSION,
        )
        negotiated(client).ping()
    except (docker.errors.DockerException, OSError):
        return None
    client.api.timeout = ENGINE_TIMEOUT  # a frozen engine answers nothing: bounded
    return client


def _public(url: str) -> str:
    """A URL without any user information (an ssh:// URL may carry a user)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{':' + str(parts.port) if parts.port else ''}"
