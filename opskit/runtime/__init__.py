"""Where a service runs. Runtime code knows units (processes, containers), never roles.

The runtimes are :class:`~opskit.vocabulary.RuntimeKind`; this module maps each to its code,
imported only when a stack uses it (docker's SDK costs an ``inv status`` on processes
nothing). Adding a runtime: a member there, a line here, one module with its Runtime and Unit
classes, and its row in ``tests/contract``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from opskit.vocabulary import RuntimeKind

if TYPE_CHECKING:
    from opskit.config import StackConfig
    from opskit.runtime.base import Runtime

_RUNTIME_MODULES = {
    RuntimeKind.PROCESS: ("opskit.runtime.process", "ProcessRuntime"),
    RuntimeKind.DOCKER: ("opskit.runtime.docker", "DockerRuntime"),
    RuntimeKind.SWARM: ("opskit.runtime.swarm", "SwarmRuntime"),
    RuntimeKind.FAKE: ("opskit.runtime.fake", "FakeRuntime"),
}


def create_runtime(config: StackConfig) -> Runtime:
    """The runtime named by the stack (after --runtime / OPSKIT_RUNTIME overrides; the stack
    file's reader has checked the name against RuntimeKind)."""
    module_name, class_name = _RUNTIME_MODULES[RuntimeKind(config.runtime)]
    return getattr(importlib.import_module(module_name), class_name)(config)
