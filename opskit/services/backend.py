"""The backend role: the Node API in front of nginx (`/health`, `/health/ready`).

Readiness is ``GET /health/ready`` — the backend's own check of its dependencies — not the
liveness ``/health`` the original scripts grepped for.
"""

from __future__ import annotations

from typing import ClassVar

from opskit.services.base import Probe, Role


class BackendRole(Role):
    name: ClassVar[str] = "backend"

    def probe_ready(self) -> Probe:
        host, port = self.address()
        path = self.spec.options.get("ready_path", "/health/ready")
        return self.probe_http(f"http://{host}:{port}{path}")
