"""The backend role: the Node API in front of nginx (`/health`, `/health/ready`).

Readiness is ``GET /health/ready`` — the backend's own check of its dependencies — not the
liveness ``/health`` the original scripts grepped for.
"""

from __future__ import annotations

from typing import ClassVar

from opskit.services.base import Check, Probe, Role


class BackendRole(Role):
    name: ClassVar[str] = "backend"

    def probe_ready(self) -> Probe:
        host, port = self.address()
        path = self.spec.options.get("ready_path", "/health/ready")
        return self.probe_http(f"http://{host}:{port}{path}")

    def health_checks(self) -> list[Check]:
        host, port = self.address()
        base = f"http://{host}:{port}"
        return [
            self.http_check("health", base + self.spec.options.get("health_path", "/health")),
            self.http_check("ready", base + self.spec.options.get("ready_path", "/health/ready")),
        ]
