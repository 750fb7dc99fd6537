"""The stack files are Compose files: Debian's docker-compose accepts them, and so does opskit."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from opskit.stack import load_stack

from .conftest import REPO

FILES = [
    REPO / "sandbox" / "stack.yml",
    REPO / "examples" / "kong-aws-masker" / "docker-compose.yml",
]
ENV = {**os.environ, "REDIS_PASSWORD": "placeholder-pw", "ANTHROPIC_API_KEY": "placeholder-key"}


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose not installed")
@pytest.mark.parametrize("path", FILES, ids=lambda p: p.parent.name)
def test_docker_compose_config_accepts_it(path):
    done = subprocess.run(
        ["docker-compose", "-f", str(path), "config", "-q"],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.parent.name)
def test_opskit_loads_it_for_the_docker_runtime(path):
    stack = load_stack(path, environ=ENV, runtime="docker")
    assert {"redis", "kong", "nginx", "backend"} <= set(stack.services)
    assert stack.start_order().index("kong") < stack.start_order().index("nginx")
