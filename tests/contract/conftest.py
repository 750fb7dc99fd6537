"""One unit contract, four runtimes: the same tests run on process, docker, swarm and the
fake runtime (``opskit.runtime.fake``). A runtime that passes them is one roles can use; a role
test on the fake then means what it says on the others."""

from __future__ import annotations

import os
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from opskit.polling import deadline_in, poll_until
from opskit.runtime.base import Unit
from opskit.stack import Stack, load_stack

from ..conftest import DOCKER_PROBLEM, SWARM_PROBLEM

READY_LINE = "contract-ready"
POLITE = f"echo {READY_LINE}; trap 'exit 0' TERM; while :; do sleep 0.1; done"
STUBBORN = f"echo {READY_LINE}; trap '' TERM; while :; do sleep 0.1; done"
CHATTY = "i=0; while :; do i=$$((i+1)); echo tick $$i; sleep 0.2; done"  # $$: Compose's escape

STACK = """\
name: {project}
x-opskit:
  runtime: {runtime}
  state_dir: {state}
  swarm: {{publish: host, endpoint_mode: dnsrr}}
services:
  polite:
    image: opskit-sandbox:latest
    command: ["sh", "-c", "{polite}"]
    environment: {{CONTRACT_VAR: from-compose}}
    stop_grace_period: 5s
    x-opskit:
      role: http
      process: {{command: ["sh", "-c", "{polite}"]}}
  chatty:
    image: opskit-sandbox:latest
    command: ["sh", "-c", "{chatty}"]
    stop_grace_period: 1s
    x-opskit:
      role: http
      process: {{command: ["sh", "-c", "{chatty}"]}}
  stubborn:
    image: opskit-sandbox:latest
    command: ["sh", "-c", "{stubborn}"]
    stop_grace_period: 1s
    x-opskit:
      role: http
      process: {{command: ["sh", "-c", "{stubborn}"]}}
"""

RUNTIMES = [
    "process",
    "fake",
    pytest.param(
        "docker",
        marks=[
            pytest.mark.docker,
            pytest.mark.skipif(DOCKER_PROBLEM is not None, reason=str(DOCKER_PROBLEM)),
        ],
    ),
    pytest.param(
        "swarm",
        marks=[
            pytest.mark.docker,
            pytest.mark.timeout(300),
            pytest.mark.skipif(SWARM_PROBLEM is not None, reason=str(SWARM_PROBLEM)),
        ],
    ),
]


@dataclass
class Subject:
    """A stack of two services on one runtime, and a folder its units can write files in."""

    stack: Stack
    folder: str

    def unit(self, name: str) -> Unit:
        return self.stack.role(name).unit

    def started(self, name: str = "polite") -> Unit:
        unit = self.unit(name)
        status = unit.start(self.stack.role(name).launch())
        assert status.service == name
        # start() returns at once (readiness is the role's business); a Swarm task and a
        # container take a moment to run.
        running = poll_until(lambda: True if unit.status().running else None, deadline_in(60))
        assert running, unit.status()
        return unit


@pytest.fixture(params=RUNTIMES)
def subject(request, tmp_path: Path, stacks) -> Subject:
    runtime = request.param
    project = "opct" + os.urandom(3).hex()
    text = STACK.format(
        project=project,
        runtime=runtime,
        state=tmp_path / "state",
        polite=POLITE,
        stubborn=STUBBORN,
        chatty=CHATTY,
    )
    path = tmp_path / "stack.yml"
    path.write_text(textwrap.dedent(text))
    stack = load_stack(path, environ={"PATH": os.environ["PATH"], "HOME": str(tmp_path)})
    stacks.append(stack)
    if runtime == "fake":
        from opskit.runtime.fake import FakeService

        stack.runtime.play("polite", FakeService(output=(READY_LINE,)))
        stack.runtime.play("stubborn", FakeService(output=(READY_LINE,), exits_on=frozenset()))
        stack.runtime.play("chatty", FakeService(output=("tick 1",)))
    if runtime == "process":
        folder = tmp_path / "files"
        folder.mkdir(mode=0o700)
        return Subject(stack, str(folder))
    return Subject(stack, "/tmp")
