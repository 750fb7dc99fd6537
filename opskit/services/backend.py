"""The backend role: the Node API in front of nginx (`/health`, `/health/ready`).

Readiness is ``GET /health/ready`` — the backend's own check of its dependencies — not the
liveness ``/health`` the original scripts grepped for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from opskit.config import ServiceSpec, StackConfig
from opskit.options import OptionReader
from opskit.services.base import Check, Probe, Role


@dataclass(frozen=True)
class BackendOptions:
    health_path: str = "/health"
    ready_path: str = "/health/ready"


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
        )

    def probe_ready(self) -> Probe:
        return self.probe_http(self.base_url() + self.options.ready_path)

    def health_checks(self) -> list[Check]:
        base = self.base_url()
        return [
            self.http_check("health", base + self.options.health_path),
            self.http_check("ready", base + self.options.ready_path),
        ]
