"""Backups encrypted at rest with age (``x-opskit.backups.encrypt_to``).

What an operator relies on: nothing the gateway masks (an original AWS id in Redis) and no kept
secret (``--include-secrets``) is readable under the backups folder, partials included; the
standard ``age`` tool gets a file back without opskit; the host that takes backups checks them
without the identity; restore, drills and ``validate --deep`` need it, say so in one line
without it, and refuse a wrong one without printing anything secret.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from pyrage import x25519

from opskit.ops import backup as backups
from opskit.ops import lifecycle
from opskit.ops.drill import drill
from opskit.ops.restore import restore
from opskit.vocabulary import RestoreState

from .conftest import cli_env, run_inv
from .helpers import redis_service, stack_text

CANARY_ID = "i-0c4a7e5b9d1f2a3b4"  # an original AWS id, as the masking maps hold them
CANARY_SECRET = "canary-secret-" + "7" * 16


@pytest.fixture
def encrypted(write_stack, load, port, tmp_path):
    """A Redis stack whose backups are encrypted to a fresh age key; its identity in a file."""
    identity = x25519.Identity.generate()
    key_file = tmp_path / "backup-identity.txt"
    key_file.write_text(f"# created by the test\n{identity}\n")
    key_file.chmod(0o600)
    password = "pw-" + os.urandom(6).hex()
    (tmp_path / ".env").write_text(f"CANARY_TOKEN={CANARY_SECRET}\n")
    backups_setting = f'backups: {{dir: "{{state}}/b", encrypt_to: ["{identity.to_public()}"]}}'
    text = stack_text(redis_service(port, password)).replace(
        'state_dir: "{state}"}', f'state_dir: "{{state}}", {backups_setting}}}'
    )
    stack = load(write_stack(text))
    assert lifecycle.start(stack).ok
    client = stack.role("redis").client(timeout=5)
    client.set("aws_masker:map:AWS_EC2_001", CANARY_ID, ex=3600)
    client.set(f"aws_masker:rev:{CANARY_ID}", "AWS_EC2_001", ex=3600)
    client.close()
    return stack, key_file, str(identity)


def _with_identity(stack, key_file: Path):
    from opskit.stack import load_stack

    environ = dict(stack.config.environ, OPSKIT_BACKUP_IDENTITY_FILE=str(key_file))
    return load_stack(stack.config.source, environ=environ)


def _plaintext_under(folder: Path, *needles: str) -> list[str]:
    found = []
    for path in folder.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            found += [f"{path}: {n}" for n in needles if n.encode() in data]
    return found


def test_nothing_masked_and_no_kept_secret_is_readable_under_the_backups_folder(encrypted):
    stack, _key_file, _identity = encrypted
    made = backups.backup(stack, include_secrets=True)
    assert made.ok, made.outcomes
    folder = stack.config.backups_dir
    assert all(f.path.endswith(".zst.age") for f in backups.Manifest.read(made.path).files)
    assert _plaintext_under(folder, CANARY_ID, CANARY_SECRET) == []
    # an interrupted backup's partial folder is encrypted as it is written, too
    partial = folder / ".partial-test"
    shutil.copytree(made.path, partial)
    assert _plaintext_under(partial, CANARY_ID, CANARY_SECRET) == []


@pytest.mark.skipif(
    not shutil.which("age") or not shutil.which("zstd"), reason="Debian's age, zstd"
)
def test_the_standard_age_tool_gets_the_data_back_without_opskit(encrypted):
    stack, key_file, _identity = encrypted
    made = backups.backup(stack, include_secrets=True)
    assert made.ok
    rdb = subprocess.run(
        f"age -d -i {key_file} {made.path}/redis/dump.rdb.zst.age | zstd -d",
        shell=True,
        capture_output=True,
        check=True,
    ).stdout
    assert rdb.startswith(b"REDIS") and CANARY_ID.encode() in rdb
    env = subprocess.run(
        f"age -d -i {key_file} {made.path}/stack/env.zst.age | zstd -d",
        shell=True,
        capture_output=True,
        check=True,
    ).stdout
    assert CANARY_SECRET.encode() in env


def test_the_backup_host_checks_without_the_identity_and_reading_needs_it(encrypted):
    stack, key_file, _identity = encrypted
    made = backups.backup(stack)
    assert made.ok
    checked = backups.validate(stack, made.backup_id)
    assert checked.ok and checked.notes and "age identity" in checked.notes[0]

    env = cli_env(stack)
    deep = run_inv(env, "backup.validate", made.backup_id, "--deep")
    assert deep.returncode == 2
    assert "is encrypted: validate --deep needs its age identity in OPSKIT_BACKUP_IDENTITY" in (
        deep.stderr
    )
    refused = run_inv(env, "restore", made.backup_id, "--yes")
    assert refused.returncode == 2 and "needs its age identity" in refused.stderr

    reader = _with_identity(stack, key_file)
    assert backups.validate(reader, made.backup_id, deep=True).ok
    drilled = drill(reader, made.backup_id)
    assert drilled.ok, drilled.problems
    assert drilled.services["redis"]["keys"] == 2


def test_a_restore_with_the_identity_brings_the_data_back_and_its_safety_copy_is_encrypted(
    encrypted,
):
    stack, key_file, _identity = encrypted
    made = backups.backup(stack)
    assert made.ok
    client = stack.role("redis").client(timeout=5)
    client.flushall()
    client.close()

    reader = _with_identity(stack, key_file)
    result = restore(reader, made.backup_id)

    assert result.state == RestoreState.RESTORED, result.detail
    client = reader.role("redis").client(timeout=5)
    try:
        assert client.get("aws_masker:map:AWS_EC2_001").decode() == CANARY_ID
        assert 0 < client.ttl("aws_masker:map:AWS_EC2_001") <= 3600
    finally:
        client.close()
    safety = backups.store_of(stack).path(result.safety_backup)
    assert all(f.path.endswith(".age") for f in backups.Manifest.read(safety).files)


def test_a_wrong_identity_is_one_line_and_prints_no_key(encrypted, tmp_path):
    stack, _key_file, identity = encrypted
    made = backups.backup(stack)
    assert made.ok
    other = x25519.Identity.generate()
    env = dict(cli_env(stack), OPSKIT_BACKUP_IDENTITY=str(other))
    done = run_inv(env, "backup.drill", made.backup_id)
    assert done.returncode == 1
    assert "cannot decrypt it" in done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert str(other) not in done.stdout + done.stderr and identity not in done.stdout + done.stderr
    broken = dict(cli_env(stack), OPSKIT_BACKUP_IDENTITY="not-a-key")
    bad = run_inv(broken, "backup.drill", made.backup_id)
    assert bad.returncode == 2 and "OPSKIT_BACKUP_IDENTITY: expected age identities" in bad.stderr
    assert "not-a-key" not in bad.stderr


@pytest.mark.parametrize(
    "recipient, expected",
    [
        ("ssh-rsa AAAA", "expected an age recipient"),
        ("${BACKUP_RECIPIENT}", "a variable that is not set"),  # unset: never "no encryption"
    ],
)
def test_a_recipient_that_is_not_an_age_key_is_named_when_the_stack_loads(
    write_stack, recipient, expected
):
    from opskit.config import load_config
    from opskit.errors import ConfigError

    path = write_stack(
        'x-opskit: {runtime: process, state_dir: "{state}", '
        f'backups: {{dir: b, encrypt_to: ["{recipient}"]}}}}\nservices: {{app: {{image: x}}}}\n'
    )
    with pytest.raises(ConfigError) as error:
        load_config(path, environ={})
    assert error.value.key == "x-opskit.backups.encrypt_to[0]"
    assert expected in error.value.problem


def test_a_changed_encrypted_file_is_found_without_the_identity(encrypted):
    stack, _key_file, _identity = encrypted
    made = backups.backup(stack)
    assert made.ok
    stored = made.path / "redis" / "dump.rdb.zst.age"
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0x01
    stored.write_bytes(bytes(data))
    checked = backups.validate(stack, made.backup_id)
    assert not checked.ok
    assert checked.problems == [
        f"redis/dump.rdb.zst.age: SHA-256 {checked.problems[0].split('SHA-256 ')[1][:16]}… "
        "differs from the manifest's "
        f"{backups.Manifest.read(made.path).file('redis/dump.rdb.zst.age').sha256[:16]}… "
        "(changed since the backup)"
    ]
