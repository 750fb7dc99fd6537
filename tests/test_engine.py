"""The operations engine: DAG walks both ways, skips, ensure_ready, the lock, capabilities."""

from __future__ import annotations

import json
import threading
import time

import pytest

from opskit.errors import LockBusyError
from opskit.lock import stack_lock
from opskit.ops import lifecycle
from opskit.ops.engine import (
    StepResult,
    ensure_ready,
    for_each_capable,
    mutation,
    walk,
)
from opskit.ops.reload import reload
from opskit.services.capabilities import Reloadable
from opskit.vocabulary import Direction, Phase, StepOutcome

from .helpers import stack_text


def sh_service(name: str, depends_on: list[str] | None = None, stop_delay: float = 0.0) -> str:
    """A shell loop that exits ``stop_delay`` seconds after SIGTERM; ready while it runs."""
    trap = f"trap 'sleep {stop_delay}; exit 0' TERM; while :; do sleep 30 & wait $!; done"
    lines = [f"  {name}:", "    image: example/sh", "    stop_grace_period: 10s"]
    if depends_on:
        lines.append(f"    depends_on: {json.dumps(depends_on)}")
    extension = {"role": "http", "process": {"command": ["sh", "-c", trap]}}
    lines.append(f"    x-opskit: {json.dumps(extension)}")
    return "\n".join(lines)


@pytest.fixture
def diamond(write_stack, load):
    """a <- b <- d, a <- c <- d  (d needs b and c, both need a), plus a lone e."""
    text = stack_text(
        sh_service("a"),
        sh_service("b", ["a"]),
        sh_service("c", ["a"]),
        sh_service("d", ["b", "c"]),
        sh_service("e"),
    )
    return load(write_stack(text))


def test_a_failed_step_skips_exactly_what_waits_on_it_and_names_it(diamond):
    ran: list[str] = []
    lock = threading.Lock()

    def step(name: str) -> StepResult:
        with lock:
            ran.append(name)
        state = StepOutcome.FAILED if name == "b" else StepOutcome.DONE
        return StepResult(name, state)

    results = {
        r.service: r
        for r in walk(diamond, diamond.services, step, direction=Direction.DEPENDENCIES_FIRST)
    }
    assert set(ran) == {"a", "b", "c", "e"}  # c and e are independent of b: they still run
    assert results["d"].state is StepOutcome.SKIPPED
    assert results["d"].detail == "skipped: b failed"
    assert results["c"].state is StepOutcome.DONE and results["e"].state is StepOutcome.DONE


def test_a_skip_names_the_root_failure_through_other_skips(write_stack, load):
    stack = load(
        write_stack(stack_text(sh_service("a"), sh_service("b", ["a"]), sh_service("c", ["b"])))
    )

    def step(name: str) -> StepResult:
        return StepResult(name, StepOutcome.FAILED if name == "a" else StepOutcome.DONE)

    results = walk(stack, stack.services, step, direction=Direction.DEPENDENCIES_FIRST)
    assert [(r.service, r.state, r.detail) for r in results] == [
        ("a", StepOutcome.FAILED, ""),
        ("b", StepOutcome.SKIPPED, "skipped: a failed"),
        ("c", StepOutcome.SKIPPED, "skipped: a failed"),
    ]


def test_reverse_walk_runs_dependents_first(diamond):
    finished: list[str] = []
    lock = threading.Lock()

    def step(name: str) -> StepResult:
        with lock:
            finished.append(name)
        return StepResult(name, StepOutcome.DONE)

    results = walk(diamond, diamond.services, step, direction=Direction.DEPENDENTS_FIRST)
    assert finished.index("d") < finished.index("b") < finished.index("a")
    assert finished.index("c") < finished.index("a")
    assert results[0].service in ("d", "e")  # results come in reverse graph order


def test_a_step_runs_as_soon_as_its_own_predecessors_are_done_not_by_levels(write_stack, load):
    """slow and fast->base are independent: base's step must not wait for slow's."""
    stack = load(
        write_stack(
            stack_text(sh_service("slow"), sh_service("base"), sh_service("fast", ["base"]))
        )
    )
    started: dict[str, float] = {}

    def step(name: str) -> StepResult:
        started[name] = time.monotonic()
        time.sleep(0.6 if name == "slow" else 0.01)
        return StepResult(name, StepOutcome.DONE)

    walk(stack, stack.services, step, direction=Direction.DEPENDENCIES_FIRST)
    # In whole levels, fast (level 2) would start only after slow (level 1) ended.
    assert started["fast"] - started["slow"] < 0.3


def test_stop_does_not_wait_for_whole_levels(write_stack, load):
    """Real processes: `lone` takes 1 s to stop; `app` -> `db` must not wait for it."""
    stack = load(
        write_stack(
            stack_text(
                sh_service("lone", stop_delay=1.0), sh_service("db"), sh_service("app", ["db"])
            )
        )
    )
    assert lifecycle.start(stack).ok
    events = []
    result = lifecycle.stop(stack, on_event=lambda e: events.append((time.monotonic(), e)))
    assert result.ok
    stopping_db = next(t for t, e in events if e.service == "db" and e.phase is Phase.STOPPING)
    lone_stopped = next(t for t, e in events if e.service == "lone" and e.phase is Phase.STOPPED)
    assert stopping_db < lone_stopped  # db's stop began while lone was still stopping


def test_ensure_ready_starts_a_service_and_says_so(diamond):
    result = ensure_ready(diamond, "a")
    assert result.state is StepOutcome.STARTED and result.detail.startswith("ready in")
    again = ensure_ready(diamond, "a")
    assert again.state is StepOutcome.ALREADY_RUNNING


def test_mutation_is_taken_once_and_nests_in_one_process(diamond):
    with (
        mutation(diamond, "outer"),
        mutation(diamond, "inner"),  # nested: no self-deadlock
        pytest.raises(LockBusyError, match="outer"),
        stack_lock(diamond.state_dir, "other", wait=0.1),  # another holder is refused
    ):
        pass


def test_restart_takes_the_stack_lock_once(diamond, mocker):
    assert lifecycle.start(diamond, ["a"]).ok
    spy = mocker.spy(__import__("opskit.ops.engine", fromlist=["stack_lock"]), "stack_lock")
    result = lifecycle.restart(diamond, ["a"])
    assert result.ok
    assert spy.call_count == 1
    assert spy.call_args.args[1] == "restart"


def test_unsupported_capability_is_reported_by_the_engine(diamond):
    def step(name, role):  # never called: no role in this stack can reload
        raise AssertionError(name)

    results = for_each_capable(diamond, ["a", "e"], Reloadable, step)
    assert [r.state for r in results] == [StepOutcome.UNSUPPORTED] * 2
    assert results[0].detail == "the http role cannot reload its configuration"


def test_reload_operation_reloads_nginx_and_reports_redis_unsupported(running_sandbox):
    result = reload(running_sandbox, ["redis", "nginx", "kong"])
    states = {o.service: o.state for o in result.outcomes}
    assert states["redis"] is StepOutcome.UNSUPPORTED
    assert states["nginx"] is StepOutcome.DONE, result.outcomes
    assert states["kong"] in (StepOutcome.DONE, StepOutcome.UNCHANGED), result.outcomes
    assert result.ok


def test_an_independent_branch_that_becomes_ready_after_a_failure_still_runs(write_stack, load):
    """`bad` fails at once; `slow` -> `after` is another branch that is ready only later."""
    stack = load(
        write_stack(
            stack_text(sh_service("bad"), sh_service("slow"), sh_service("after", ["slow"]))
        )
    )

    def step(name: str) -> StepResult:
        if name == "slow":
            time.sleep(0.3)
        return StepResult(name, StepOutcome.FAILED if name == "bad" else StepOutcome.DONE)

    results = {
        r.service: r.state
        for r in walk(stack, stack.services, step, direction=Direction.DEPENDENCIES_FIRST)
    }
    assert results == {
        "bad": StepOutcome.FAILED,
        "slow": StepOutcome.DONE,
        "after": StepOutcome.DONE,
    }
