"""A node's engine behind ``--tlsverify`` (x-opskit.swarm.engine_tls), against a real dockerd
in a container, published on a loopback TCP port, with a CA, a server and a client
certificate the test makes. The client certificate opens it; without one, or without TLS,
opskit gets no client — and never an engine it did not authenticate."""

from __future__ import annotations

import subprocess
import time
import uuid

import pytest

from opskit.config import EngineTls
from opskit.runtime.swarm_nodes import connect_engine

from .helpers import free_port
from .pki import make_pki

NODE_IMAGE = "opskit-node:bookworm"  # scripts/swarm-cluster builds it
HOST_DOCKER = ("docker", "-H", "unix:///var/run/docker.sock")


def _node_image_problem() -> str | None:
    found = subprocess.run(
        [*HOST_DOCKER, "image", "inspect", NODE_IMAGE], capture_output=True, timeout=30
    )
    return None if found.returncode == 0 else f"no {NODE_IMAGE}: scripts/swarm-cluster up"


pytestmark = [
    pytest.mark.docker,
    pytest.mark.skipif(_node_image_problem() is not None, reason=str(_node_image_problem())),
    pytest.mark.timeout(120),
]


@pytest.fixture
def tls_engine(tmp_path):
    """(url, pki) of a dockerd that only answers clients with a certificate from our CA: the
    cluster's node image in a container of its own (its own network namespace: a second
    dockerd on this host's would take this host's docker0 away), published on loopback."""
    pki = make_pki(tmp_path)
    port = free_port()
    name = f"opskit-tls-engine-{uuid.uuid4().hex[:8]}"
    started = subprocess.run(
        [
            *HOST_DOCKER, "run", "-d", "--rm", "--name", name,
            "--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE",
            "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
            "--tmpfs", "/var/lib/docker", "--tmpfs", "/run",
            "-v", f"{tmp_path}:/certs:ro", "-p", f"127.0.0.1:{port}:2376",
            "--entrypoint", "dockerd", NODE_IMAGE,
            "--host=tcp://0.0.0.0:2376", "--tlsverify", "--tlscacert=/certs/ca.pem",
            "--tlscert=/certs/server.pem", "--tlskey=/certs/server.key",
            "--storage-driver=vfs", "--bridge=none", "--iptables=false",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    url = f"tcp://127.0.0.1:{port}"
    tls = EngineTls(pki["ca"], pki["client"], pki["client_key"])
    try:
        deadline = time.monotonic() + 60
        while connect_engine(url, tls) is None:
            logs = subprocess.run([*HOST_DOCKER, "logs", name], capture_output=True, text=True)
            assert time.monotonic() < deadline, (logs.stdout + logs.stderr)[-2000:]
            time.sleep(0.5)
        yield url, pki
    finally:
        subprocess.run([*HOST_DOCKER, "rm", "-f", name], capture_output=True, timeout=60)


def test_the_client_certificate_opens_the_engine_and_nothing_else_does(tls_engine, monkeypatch):
    url, pki = tls_engine
    # as on many hosts (and this one): requests would let it override the engine's own CA
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    client = connect_engine(url, EngineTls(pki["ca"], pki["client"], pki["client_key"]))
    assert client is not None
    assert client.version()["ApiVersion"]
    assert client.api.timeout == 15.0  # bounded once connected
    # no client certificate: the engine refuses the handshake
    assert connect_engine(url, EngineTls(ca_file=pki["ca"])) is None
    # no TLS at all
    assert connect_engine(url, None) is None
