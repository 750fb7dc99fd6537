"""Dependency graph: order, closures, and partial start/stop/restart on real processes."""

from __future__ import annotations

import psutil
import pytest

from opskit.errors import UsageError
from opskit.ops import lifecycle

from .helpers import http_service, stack_text


@pytest.fixture
def chain(write_stack, load):
    """a <- b <- c (c needs b needs a), and d on its own."""
    a, _ = http_service("a")
    b, _ = http_service("b", ["a"])
    c, _ = http_service("c", ["b"])
    d, _ = http_service("d")
    return load(write_stack(stack_text(c, d, b, a)))


def pids(stack) -> dict[str, int | None]:
    return {row.service: row.status.pid for row in lifecycle.status(stack).rows}


def test_order_and_closures(chain):
    assert chain.start_order() == ["d", "a", "b", "c"]
    assert chain.with_dependencies(["c"]) == {"a", "b", "c"}
    assert chain.with_dependents(["a"]) == {"a", "b", "c"}
    assert chain.with_dependents(["d"]) == {"d"}


def test_unknown_service_gets_a_suggestion(chain):
    with pytest.raises(UsageError, match=r"unknown service 'dd' \(did you mean d\?\)"):
        chain.resolve(["dd"])


def test_partial_start_brings_dependencies_only(chain):
    result = lifecycle.start(chain, ["c"])
    assert result.ok
    assert [o.service for o in result.outcomes] == ["a", "b", "c"]
    running = {row.service for row in lifecycle.status(chain).rows if row.status.running}
    assert running == {"a", "b", "c"}


def test_dependents_start_only_after_dependencies_are_ready(chain):
    events = []
    lifecycle.start(chain, ["c"], on_event=events.append)
    phases = [(e.service, e.phase) for e in events]
    assert phases.index(("a", "ready")) < phases.index(("b", "starting"))
    assert phases.index(("b", "ready")) < phases.index(("c", "starting"))


def test_stop_takes_dependents_down_first_and_leaves_others(chain):
    assert lifecycle.start(chain).ok
    before = pids(chain)
    events = []
    result = lifecycle.stop(chain, ["a"], on_event=events.append)
    assert [o.service for o in result.outcomes] == ["c", "b", "a"]
    stopped_at = [e.service for e in events if e.phase == "stopped"]
    assert stopped_at == ["c", "b", "a"]
    for name in ("a", "b", "c"):
        assert not psutil.pid_exists(before[name]) or psutil.Process(before[name]).status() == (
            psutil.STATUS_ZOMBIE
        )
    assert pids(chain)["d"] == before["d"]


def test_restart_cascades_to_dependents_not_dependencies(chain):
    assert lifecycle.start(chain).ok
    before = pids(chain)
    result = lifecycle.restart(chain, ["b"])
    assert result.ok
    after = pids(chain)
    assert after["a"] == before["a"] and after["d"] == before["d"]
    assert after["b"] != before["b"] and after["c"] != before["c"]
    assert all(after.values())


def test_start_and_stop_are_idempotent(chain):
    assert lifecycle.start(chain).ok
    first = pids(chain)
    again = lifecycle.start(chain)
    assert again.ok and again.nothing_to_do
    assert {o.state for o in again.outcomes} == {lifecycle.ALREADY_RUNNING}
    assert pids(chain) == first
    assert lifecycle.stop(chain).ok
    twice = lifecycle.stop(chain)
    assert twice.ok and twice.nothing_to_do
    assert {o.state for o in twice.outcomes} == {lifecycle.NOT_RUNNING}
