"""A node's engine behind ``--tlsverify`` (x-opskit.swarm.engine_tls), against a real dockerd:
a second engine on this machine, on a loopback TCP port, with a CA, a server and a client
certificate the test makes. The client certificate opens it; without one, or without TLS,
opskit gets no client — and never an engine it did not authenticate."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from opskit.config import EngineTls
from opskit.runtime.swarm_nodes import connect_engine

from .helpers import free_port
from .pki import make_pki

pytestmark = [
    pytest.mark.docker,
    pytest.mark.skipif(shutil.which("dockerd") is None, reason="dockerd is not installed"),
    pytest.mark.timeout(120),
]


@pytest.fixture
def tls_engine(tmp_path):
    """(url, pki) of a dockerd that only answers clients with a certificate from our CA."""
    pki = make_pki(tmp_path)
    port = free_port()
    root = tmp_path / "engine"
    root.mkdir()
    # its containerd's socket lives under --exec-root: a unix socket path has 108 bytes at most
    exec_root = Path(tempfile.mkdtemp(prefix="opskit-tls-"))
    engine = subprocess.Popen(
        [
            "dockerd",
            f"--data-root={root / 'data'}",
            f"--exec-root={exec_root}",
            f"--pidfile={root / 'dockerd.pid'}",
            f"--host=tcp://127.0.0.1:{port}",
            "--tlsverify",
            f"--tlscacert={pki['ca']}",
            f"--tlscert={pki['server']}",
            f"--tlskey={pki['server_key']}",
            "--bridge=none",
            "--iptables=false",
            "--ip6tables=false",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(root / "dockerd.log").open("wb"),
        start_new_session=True,
    )
    url = f"tcp://127.0.0.1:{port}"
    tls = EngineTls(pki["ca"], pki["client"], pki["client_key"])
    try:
        deadline = time.monotonic() + 60
        while connect_engine(url, tls) is None:
            assert engine.poll() is None, (root / "dockerd.log").read_text()[-2000:]
            assert time.monotonic() < deadline, (root / "dockerd.log").read_text()[-2000:]
            time.sleep(0.5)
        yield url, pki
    finally:
        engine.terminate()
        try:
            engine.wait(30)
        except subprocess.TimeoutExpired:
            engine.kill()
            engine.wait(10)
        subprocess.run(["umount", "-R", str(root)], capture_output=True)
        subprocess.run(["umount", "-R", str(exec_root)], capture_output=True)
        shutil.rmtree(exec_root, ignore_errors=True)


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
