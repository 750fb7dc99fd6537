"""The Stack: a loaded stack file, its dependency graph, and one role object per service.

Operations (:mod:`opskit.ops`) receive a Stack and ask it two things: *in which order?* (the
graph helpers here) and *who handles this service?* (:meth:`Stack.role`, which binds the
service's role to a unit of the chosen runtime).
"""

from __future__ import annotations

import difflib
import graphlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from opskit.config import ServiceSpec, StackConfig, load_config
from opskit.errors import ConfigError, UsageError

if TYPE_CHECKING:
    from opskit.runtime.base import Runtime
    from opskit.services.base import Role


class Stack:
    """A validated stack: services, graph and runtime. Build it with :func:`load_stack`."""

    def __init__(self, config: StackConfig, role_options: Mapping[str, object] | None = None):
        self.config = config
        self._runtime: Runtime | None = None
        self._roles: dict[str, Role] = {}
        self._role_options = dict(role_options or {})
        self._check_graph()

    # -- identity ------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def services(self) -> Mapping[str, ServiceSpec]:
        return self.config.services

    @property
    def state_dir(self) -> Path:
        return self.config.state_dir

    # -- graph -------------------------------------------------------------------------------

    def dependencies(self, name: str) -> tuple[str, ...]:
        return tuple(self.services[name].depends_on)

    def dependents(self, name: str) -> tuple[str, ...]:
        return tuple(svc.name for svc in self.services.values() if name in svc.depends_on)

    def with_dependencies(self, names: Iterable[str]) -> set[str]:
        """``names`` plus everything they need, transitively (what ``start`` must start)."""
        return self._closure(names, self.dependencies)

    def with_dependents(self, names: Iterable[str]) -> set[str]:
        """``names`` plus everything that needs them, transitively (what ``stop`` must stop)."""
        return self._closure(names, self.dependents)

    def start_order(self, names: Iterable[str] | None = None) -> list[str]:
        """Topological order (dependencies first) restricted to ``names``; ties keep file order."""
        wanted = set(self.services) if names is None else set(names)
        position = {name: index for index, name in enumerate(self.services)}
        waiting = {
            name: {dep for dep in self.dependencies(name) if dep in wanted} for name in wanted
        }
        placed: list[str] = []
        ready = sorted((n for n, deps in waiting.items() if not deps), key=position.__getitem__)
        while ready:
            name = ready.pop(0)
            placed.append(name)
            for dependent in self.dependents(name):
                if dependent in waiting and name in waiting[dependent]:
                    waiting[dependent].discard(name)
                    if not waiting[dependent]:
                        ready.append(dependent)
                        ready.sort(key=position.__getitem__)
        return placed

    def resolve(self, names: Iterable[str] | None) -> list[str]:
        """Validate service names from the command line; ``None`` or empty means all."""
        names = list(names or [])
        if not names:
            return list(self.services)
        for name in names:
            if name not in self.services:
                close = difflib.get_close_matches(name, list(self.services), n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                known = ", ".join(self.services)
                raise UsageError(f"unknown service {name!r}{hint}; services: {known}")
        return names

    def _closure(self, names: Iterable[str], step) -> set[str]:
        seen: set[str] = set()
        todo = list(names)
        while todo:
            name = todo.pop()
            if name not in seen:
                seen.add(name)
                todo.extend(step(name))
        return seen

    def _check_graph(self) -> None:
        graph = {name: set(svc.depends_on) for name, svc in self.services.items()}
        try:
            graphlib.TopologicalSorter(graph).prepare()
        except graphlib.CycleError as exc:
            cycle = list(reversed(exc.args[1]))  # graphlib lists the cycle dependents-first
            raise ConfigError(
                self.config.source,
                f"services.{cycle[0]}.depends_on",
                "dependency cycle: " + " -> ".join(cycle),
            ) from None

    # -- runtime and roles -------------------------------------------------------------------------

    @property
    def runtime(self) -> Runtime:
        if self._runtime is None:
            from opskit.runtime import create_runtime

            self._runtime = create_runtime(self.config)
        return self._runtime

    def role(self, name: str) -> Role:
        """The role object for service ``name``, bound to its runtime unit."""
        if name not in self._roles:
            from opskit.services import role_class

            spec = self.services[name]
            options = self._role_options.get(name)
            self._roles[name] = role_class(spec.role)(
                spec, self.runtime.unit(spec), self.config, options
            )
        return self._roles[name]

    def role_for(self, spec: ServiceSpec, options: object) -> Role:
        """A role for a service that is not in the stack file — a relief instance of one
        that is (``options`` are the original's) — bound to its own runtime unit."""
        from opskit.services import role_class

        return role_class(spec.role)(spec, self.runtime.unit(spec), self.config, options)

    def secrets(self) -> list[str]:
        """Every secret value this stack knows, for redaction."""
        return self.config.secret_values()


def load_stack(
    path: str | Path,
    environ: Mapping[str, str] | None = None,
    runtime: str | None = None,
) -> Stack:
    """Load and fully validate a stack file; nothing is started and nothing is written."""
    from opskit.services import role_class

    config = load_config(path, environ=environ, runtime=runtime)
    options = {
        name: role_class(spec.role).parse_options(spec, config)
        for name, spec in config.services.items()
    }
    return Stack(config, options)
