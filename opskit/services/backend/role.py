"""The backend role: the Node API in front of nginx (`/health`, `/health/ready`).

Readiness is ``GET /health/ready`` — the backend's own check of its dependencies — not the
liveness ``/health`` the original scripts grepped for.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

from opskit.config import PortMapping, ServiceSpec, StackConfig
from opskit.options import OptionReader
from opskit.services.base import Check, Probe, Role


@dataclass(frozen=True)
class BackendOptions:
    health_path: str = "/health"
    ready_path: str = "/health/ready"
    port_env: str = "PORT"  # the variable that sets its listening port (process runtime)


def relief_name(service: str) -> str:
    """The name a service's relief instance runs under (unit, pidfile, container)."""
    return f"{service}-relief"


class BackendRole(Role):
    name: ClassVar[str] = "backend"
    outage_impact: ClassVar[str] = "the application's API is down"
    options: BackendOptions

    @classmethod
    def read_options(
        cls, reader: OptionReader, spec: ServiceSpec, config: StackConfig
    ) -> BackendOptions:
        return BackendOptions(
            health_path=reader.url_path("health_path", BackendOptions.health_path),
            ready_path=reader.url_path("ready_path", BackendOptions.ready_path),
            port_env=reader.string("port_env", BackendOptions.port_env) or "PORT",
        )

    def probe_ready(self) -> Probe:
        return self.probe_http(self.base_url() + self.options.ready_path)

    def relief_spec(self, port: int) -> ServiceSpec:
        """The same service as ``<name>-relief`` on ``port``: on this host it listens there
        (``port_env``); in a container it keeps its port and is published on 127.0.0.1:port.
        No fixed container name, no restart policy, no dependencies of its own."""
        spec = self.spec
        first = spec.port()
        inside = first.container_port if first else port
        process = spec.process
        if self.unit.follows_launch:  # its launch's environment picks the port it listens on
            inside = port
            environment = {**spec.process.environment, self.options.port_env: str(port)}
            process = replace(spec.process, environment=environment)
        return replace(
            spec,
            name=relief_name(spec.name),
            ports=(PortMapping(container_port=inside, host_port=port, host_ip="127.0.0.1"),),
            process=process,
            container_name=None,
            restart="no",
            depends_on={},
        )

    def health_checks(self) -> list[Check]:
        base = self.base_url()
        return [
            self.http_check("health", base + self.options.health_path),
            self.http_check("ready", base + self.options.ready_path),
        ]
