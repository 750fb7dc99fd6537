"""Redis with a least-privilege ACL user and with TLS, against a real redis-server.

opskit's user gets the minimal ACL (``MINIMAL_ACL``) and every operation still works —
health, the write probe, backup, restore, metrics, the events subscription; a permission taken
away is named by health; TLS needs the CA (and a client pair when the server asks for one),
and a plain connection to a TLS port is refused. Certificates are made by the tests.
"""

from __future__ import annotations

import json
import os
import socket

import pytest

from opskit.ops import backup as backups
from opskit.ops import lifecycle
from opskit.ops.health import run_health
from opskit.ops.metrics import gather
from opskit.ops.restore import restore
from opskit.report import CRITICAL, OK

from .helpers import stack_text
from .pki import make_pki


def _redis_stack(write_stack, load, port: int, extension: dict):
    backups_dir = "{state}/b"
    text = stack_text(
        f'  redis:\n    image: redis:7\n    ports: ["{port}:6379"]\n'
        f"    x-opskit: {json.dumps(extension)}"
    ).replace(
        'state_dir: "{state}"}', f'state_dir: "{{state}}", backups: {{dir: "{backups_dir}"}}}}'
    )
    stack = load(write_stack(text))
    assert lifecycle.start(stack).ok
    return stack


def _checks(stack) -> dict[str, object]:
    return {c.name: c for c in run_health(stack, ["redis"]).checks if c.service == "redis"}


def test_opskits_own_acl_user_with_the_minimal_acl_runs_every_operation(write_stack, load, port):
    password = 'acl "quoted" ' + os.urandom(8).hex()  # spaces and quotes reach redis whole
    stack = _redis_stack(write_stack, load, port, {"username": "opskit", "password": password})
    redis = stack.role("redis")
    from opskit.services.probes import RedisNoPermission

    # least privilege: it cannot wipe what it watches
    with redis.probe() as connection, pytest.raises(RedisNoPermission):
        connection.call("FLUSHALL")
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:  # the default user
        conn.sendall(b"SET aws_masker:map:AWS_EC2_001 i-0abc EX 600\r\n")
        assert conn.recv(100).startswith(b"+OK")
    checks = _checks(stack)
    assert all(c.status == OK for c in checks.values()), {n: c.detail for n, c in checks.items()}

    made = backups.backup(stack, count_prefixes=True)
    assert made.ok, made.outcomes
    with redis.probe() as connection:
        connection.call("DEL", "aws_masker:map:AWS_EC2_001")
    restored = restore(stack, made.backup_id)
    assert restored.ok, restored.detail
    with redis.probe() as connection:
        assert connection.call("GET", "aws_masker:map:AWS_EC2_001") == b"i-0abc"

    names = {v.name for v in gather(stack)}
    assert {"redis_memory_used_bytes", "redis_masking_keys", "redis_auth_failures_total"} <= names
    with redis.events("aws-masker:events:masking") as pubsub:  # SUBSCRIBE, on its channel only
        assert pubsub is not None


def test_a_permission_taken_away_is_named_by_health(write_stack, load, port):
    password = "acl-" + os.urandom(8).hex()
    stack = _redis_stack(write_stack, load, port, {"username": "opskit", "password": password})
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:  # the default user
        conn.sendall(b"ACL SETUSER opskit -info\r\n")
        assert conn.recv(100).startswith(b"+OK")
    checks = _checks(stack)
    failing = [c for c in checks.values() if c.status == CRITICAL]
    assert failing, {n: c.detail for n, c in checks.items()}
    detail = " ".join(c.detail for c in failing)
    assert "the ACL user lacks a permission" in detail and "'info'" in detail, detail
    assert password not in detail


@pytest.fixture
def pki(tmp_path) -> dict[str, str]:
    return make_pki(tmp_path)


def _tls_config(pki: dict[str, str], clients: bool) -> dict:
    return {
        "tls-cert-file": pki["server"],
        "tls-key-file": pki["server_key"],
        "tls-ca-cert-file": pki["ca"],
        "tls-auth-clients": "yes" if clients else "no",
    }


def test_redis_over_tls_health_backup_and_metrics(write_stack, load, port, pki):
    password = "tls-" + os.urandom(8).hex()
    stack = _redis_stack(
        write_stack,
        load,
        port,
        {"password": password, "tls": {"ca_file": pki["ca"]}, "config": _tls_config(pki, False)},
    )
    checks = _checks(stack)
    assert all(c.status == OK for c in checks.values()), {n: c.detail for n, c in checks.items()}
    assert backups.backup(stack).ok
    assert any(v.name == "redis_memory_used_bytes" for v in gather(stack))
    client = stack.role("redis").client(timeout=5)  # redis-py, for SHUTDOWN and pub/sub
    try:
        assert client.ping()
    finally:
        client.close()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as plain:  # TLS only
        plain.sendall(b"PING\r\n")
        try:
            answer = plain.recv(100)
        except ConnectionResetError:
            answer = b""
        assert not answer.startswith(b"+PONG")


def test_a_server_that_asks_for_a_client_certificate_gets_opskits(
    write_stack, load, port, pki, tmp_path
):
    password = "tls-" + os.urandom(8).hex()
    tls = {"ca_file": pki["ca"], "cert_file": pki["client"], "key_file": pki["client_key"]}
    stack = _redis_stack(
        write_stack,
        load,
        port,
        {"password": password, "tls": tls, "config": _tls_config(pki, True)},
    )
    assert all(c.status == OK for c in _checks(stack).values())

    # the same server, a client without its pair: refused, in one line
    from opskit.services.redis.options import RedisTls

    redis = stack.role("redis")
    object.__setattr__(redis.options, "tls", RedisTls(ca_file=pki["ca"]))
    probe = redis.probe_ready()
    assert not probe.ready and "closed the TLS connection" in probe.detail, probe.detail
    assert "client certificate" in probe.detail


def test_a_tls_file_that_does_not_exist_is_a_config_error(write_stack, load, port, tmp_path):
    from opskit.errors import ConfigError

    text = stack_text(
        f'  redis:\n    image: redis:7\n    ports: ["{port}:6379"]\n'
        f"    x-opskit: {{password: pw, tls: {{ca_file: {tmp_path}/nope.pem}}}}"
    )
    with pytest.raises(ConfigError) as raised:
        load(write_stack(text))
    assert "services.redis.x-opskit.tls.ca_file" in str(raised.value)
    assert "nope.pem not found" in str(raised.value)
