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

    def __init__(self, config: StackConfig):
        self.config = config
        self._runtime: Runtime | None = None
        self._roles: dict[str, Role] = {}
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
        wanted = [name for name in self.services if names is None or name in set(names)]
        placed: list[str] = []
        while len(placed) < len(wanted):
            for name in wanted:
                if name not in placed and all(
                    dep in placed or dep not in wanted for dep in self.dependencies(name)
                ):
                    placed.append(name)
                    break
        return placed

    def sorter(self, names: Iterable[str] | None = None, reverse: bool = False):
        """A prepared :class:`graphlib.TopologicalSorter` over ``names``.

        Forward: a service becomes ready once its dependencies are done (start). Reverse: once
        its dependents are done (stop). Callers use ``get_ready``/``done`` to run whole graph
        levels concurrently.
        """
        wanted = set(self.services if names is None else names)
        graph: dict[str, set[str]] = {}
        for name in wanted:
            edges = self.dependents(name) if reverse else self.dependencies(name)
            graph[name] = {other for other in edges if other in wanted}
        sorter = graphlib.TopologicalSorter(graph)
        sorter.prepare()
        return sorter

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
            self._roles[name] = role_class(spec.role)(spec, self.runtime.unit(spec), self.config)
        return self._roles[name]

    def secrets(self) -> list[str]:
        """Every secret value this stack knows, for redaction."""
        from opskit.redact import secret_values

        return secret_values(self.config)


def load_stack(
    path: str | Path,
    environ: Mapping[str, str] | None = None,
    runtime: str | None = None,
) -> Stack:
    """Load and fully validate a stack file; nothing is started and nothing is written."""
    from opskit.services import role_class

    config = load_config(path, environ=environ, runtime=runtime)
    stack = Stack(config)
    for spec in config.services.values():
        role_class(spec.role).check(spec, config)
    return stack
