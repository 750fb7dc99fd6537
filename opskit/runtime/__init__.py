"""Where a service runs. Runtime code knows units (processes, containers), never roles."""

from __future__ import annotations

from typing import TYPE_CHECKING

from opskit.errors import UsageError

if TYPE_CHECKING:
    from opskit.config import StackConfig
    from opskit.runtime.base import Runtime


def create_runtime(config: StackConfig) -> Runtime:
    """The runtime named by the stack (after --runtime / OPSKIT_RUNTIME overrides)."""
    if config.runtime == "process":
        from opskit.runtime.process import ProcessRuntime

        return ProcessRuntime(config)
    if config.runtime == "docker":
        from opskit.runtime.docker import DockerRuntime

        return DockerRuntime(config)
    if config.runtime == "swarm":
        from opskit.runtime.swarm import SwarmRuntime

        return SwarmRuntime(config)
    raise UsageError(
        f"{config.source}: runtime {config.runtime!r} is not available in this opskit version; "
        "set x-opskit.runtime: process (or --runtime process)"
    )
