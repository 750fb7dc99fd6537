"""Restore drills (``inv backup.drill``): a backup restored into throwaway instances, checked,
recorded for the alert rules — and the live stack never touched."""

from __future__ import annotations

import json

from opskit.backup.drills import last_drill
from opskit.backup.manifest import Manifest
from opskit.ops import backup as backups
from opskit.ops.drill import drill
from opskit.ops.metrics import gather

from .conftest import run_inv
from .helpers import reseal, write_sealed


def _seed(client) -> None:
    client.flushall()
    for n in range(300):
        client.set(f"aws_masker:map:AWS_EC2_{n:03d}", f"i-{n:017x}", ex=7200)
        client.set(f"aws_masker:rev:{n:017x}", f"AWS_EC2_{n:03d}", ex=7200)
    for n in range(40):
        client.set(f"plain:{n}", "no ttl")


def test_a_drill_restores_into_throwaways_and_leaves_the_live_stack_alone(sandbox):
    redis = sandbox.role("redis")
    client = redis.client()
    try:
        _seed(client)
        made = backups.backup(sandbox)
        assert made.ok, made.outcomes
        client.set("written:after-the-backup", "still here")
        live_pid, live_keys = redis.unit.status().pid, client.dbsize()

        result = drill(sandbox)  # the newest backup

        assert result.ok, result.problems
        assert result.backup_id == made.backup_id
        figures = result.services["redis"]
        assert (figures["keys"], figures["expires"]) == (640, 600)
        assert figures["prefixes"] == {"aws_masker:map:": 300, "aws_masker:rev:": 300}
        assert result.services["kong"]["drilled"] and result.services["nginx"]["drilled"]
        assert redis.unit.status().pid == live_pid  # never restarted
        assert client.dbsize() == live_keys
        assert client.get("written:after-the-backup") == b"still here"
    finally:
        client.close()
    record = last_drill(sandbox.state_dir)
    assert record is not None and record.ok and record.keys == 640
    assert record.last_success == record.at
    values = {v.name: v.value for v in gather(sandbox) if v.name.startswith("backup_drill")}
    assert values["backup_drill_last_ok"] == 1.0
    assert values["backup_drill_keys"] == 640.0
    assert values["backup_drill_last_success_timestamp_seconds"] == record.at


def test_a_backup_that_does_not_restore_fails_the_drill_and_is_recorded(sandbox):
    made = backups.backup(sandbox)
    assert made.ok
    assert drill(sandbox, made.backup_id).ok
    passed = last_drill(sandbox.state_dir)
    path = backups.store_of(sandbox).path(made.backup_id)
    rdb = next(f for f in Manifest.read(path).files if f.path.startswith("redis/"))
    stored = path / rdb.path
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0x01
    stored.write_bytes(bytes(data))

    env = dict(sandbox.config.environ)
    done = run_inv(env, "backup.drill", made.backup_id, "--json")

    assert done.returncode == 1, done.stdout + done.stderr
    payload = json.loads(done.stdout)
    assert not payload["ok"] and any(rdb.path in p for p in payload["problems"])
    record = last_drill(sandbox.state_dir)
    assert not record.ok and rdb.path in record.detail
    assert record.last_success == passed.at  # the last pass is still known to the alert rule
    assert env["REDIS_PASSWORD"] not in done.stdout + done.stderr


def test_a_drill_needs_a_backup_and_says_so_in_one_line(sandbox):
    env = dict(sandbox.config.environ)
    done = run_inv(env, "backup.drill")
    assert done.returncode == 2
    assert "no complete backup to drill" in done.stderr
    assert "Traceback" not in done.stderr
    malformed = run_inv(env, "backup.drill", "no-such-backup")
    assert malformed.returncode == 2 and "is not a backup id" in malformed.stderr
    absent = run_inv(env, "backup.drill", "20200101T000000Z")
    assert absent.returncode == 2 and "no backup 20200101T000000Z in" in absent.stderr


def _rdb(entries: list[tuple[bytes, bytes]], keys: int, expires: int) -> bytes:
    """A version-9 RDB of string keys, none with a TTL, whose RESIZEDB claims ``keys`` and
    ``expires``: what a dump whose TTLs were lost on the way would look like."""
    import anycrc

    body = bytearray(b"REDIS0009")
    body += bytes([0xFE, 0, 0xFB, keys, expires])  # SELECTDB 0, RESIZEDB
    for key, value in entries:
        body += bytes([0, len(key)]) + key + bytes([len(value)]) + value
    body.append(0xFF)
    crc = anycrc.Model("CRC64-REDIS").calc(bytes(body))
    return bytes(body) + crc.to_bytes(8, "little")


def test_keys_that_lost_their_ttl_fail_the_drill(sandbox):
    """The masking maps must expire: a backup whose keys come back without the TTLs its RDB
    announces is not a good backup, though every byte matches its hash and CRC."""
    import zstandard

    from opskit.backup.rdb import check_stream

    made = backups.backup(sandbox, ["redis"])
    assert made.ok
    folder = backups.store_of(sandbox).path(made.backup_id)
    member = next(f.path for f in Manifest.read(folder).files if f.path.startswith("redis/"))
    crafted = _rdb([(b"aws_masker:map:A", b"i-1"), (b"aws_masker:rev:1", b"A")], 2, 1)
    (folder / member).write_bytes(zstandard.ZstdCompressor().compress(crafted))
    manifest = json.loads((folder / "manifest.json").read_text())
    import io

    manifest["services"]["redis"]["rdb"] = check_stream(io.BytesIO(crafted)).summary()
    write_sealed(sandbox, folder, manifest)
    reseal(sandbox, folder, member)
    assert backups.validate(sandbox, made.backup_id).ok  # hashes, CRC, figures: all fine

    result = drill(sandbox, made.backup_id)

    assert not result.ok
    assert result.problems == [
        "a throwaway redis-server loaded 2 keys without a TTL in db0; the backup holds 1: "
        "TTLs were not kept"
    ]


def test_inspect_says_what_the_backup_holds_from_a_copy(sandbox):
    redis = sandbox.role("redis")
    client = redis.client()
    try:
        _seed(client)  # 600 masker keys with a 2 h TTL, 40 plain keys without
        for n in range(5):
            client.set(f"session:{n}", "x", ex=1800)
        client.set("blob:i-0123456789abcdef0", "x" * 200_000)  # a key naming an AWS id
        made = backups.backup(sandbox, ["redis"])
        assert made.ok
        client.flushall()  # the live data is gone: inspect reads the backup's copy
    finally:
        client.close()

    env = dict(sandbox.config.environ)
    done = run_inv(env, "backup.inspect", made.backup_id)  # not a terminal: JSON

    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)["services"]["redis"]
    assert data["keys"] == 646
    assert data["prefixes"]["aws_masker:map:"]["keys"] == 300
    assert data["prefixes"]["aws_masker:rev:"]["keys"] == 300
    assert data["prefixes"]["session:"]["keys"] == 5
    assert data["ttl"] == {"no TTL": 41, "< 1h": 5, "< 1d": 600, "< 7d": 0, ">= 7d": 0}
    assert data["expiring_within_a_day"] == 605
    top = data["biggest"][0]
    assert top["key"] == "blob:[aws:id]" and top["bytes"] > 200_000 and top["ttl_seconds"] is None
    assert len(data["biggest"]) == 20
    assert data["memory_bytes"] >= sum(g["bytes"] for g in data["prefixes"].values()) > 200_000
    assert "i-0123456789abcdef0" not in done.stdout
    shown = json.loads(run_inv(env, "backup.inspect", made.backup_id, "--show-keys").stdout)
    assert shown["services"]["redis"]["biggest"][0]["key"] == "blob:i-0123456789abcdef0"
    assert env["REDIS_PASSWORD"] not in done.stdout + done.stderr
