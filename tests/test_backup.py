"""Backups on real services: redis-server, the sandbox stack on both runtimes, real files.

What an operator relies on: every key comes back with its TTL; appendonly yes does not
silently win over the restored RDB; every kind of damage is found and named; kill -9 during a
backup leaves nothing that looks complete; a restore that fails puts the exact previous data
back; prune keeps what restic keeps.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import httpx
import pytest
import redis
import zstandard

from opskit.backup.artifacts import ArtifactReader, UnsafeArchive, unpack_tree
from opskit.backup.manifest import Manifest
from opskit.backup.rdb import RdbError, check_stream
from opskit.backup.retention import KeepPolicy, apply_policy
from opskit.ops import backup as backups
from opskit.ops import lifecycle
from opskit.ops.restore import restore
from opskit.services.capabilities import Verdict
from opskit.vocabulary import RestoreState

from .conftest import run_inv
from .helpers import redis_service, reseal, stack_text, write_sealed

pytestmark = pytest.mark.timeout(180)


def _client(stack) -> redis.Redis:
    return stack.role("redis").client(timeout=5)


def _masker_keys(client: redis.Redis) -> dict[str, tuple[bytes, int]]:
    return {
        key.decode(): (client.get(key), client.ttl(key))
        for key in client.scan_iter(match="aws_masker:*", count=1000)
    }


# -- RDB files from a real redis-server ------------------------------------------------------------


@pytest.fixture(scope="module")
def rdb_file(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("rdb")
    from sandbox.environment import free_port

    port = free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--dir", str(folder), "--save", ""],
        stdout=subprocess.DEVNULL,
    )
    try:
        client = redis.Redis(port=port)
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.02)
        for i in range(2000):
            client.set(f"aws_masker:map:k{i}", os.urandom(64), ex=3600 if i % 3 else None)
        client.hset("other", mapping={"a": 1, "b": 2})
        client.save()
    finally:
        server.terminate()
        server.wait()
    return folder / "dump.rdb"


def _redis_check_rdb(path: Path) -> bool:
    return subprocess.run(["redis-check-rdb", str(path)], capture_output=True).returncode == 0


def test_rdb_check_agrees_with_redis_check_rdb(rdb_file: Path, tmp_path: Path):
    data = rdb_file.read_bytes()
    with rdb_file.open("rb") as handle:
        info = check_stream(handle, chunk_size=4099)  # odd chunks cross the trailer
    assert info.keys == 2001 and info.expires == 1333 and info.db == 0
    assert _redis_check_rdb(rdb_file)

    variants = {
        "flipped": bytearray(data),
        "truncated": bytearray(data[:-1000]),
        "no_trailer": bytearray(data[:-8]),
        "not_rdb": bytearray(b"HELLO" + data[5:]),
    }
    variants["flipped"][len(data) // 2] ^= 0x10
    for name, content in variants.items():
        path = tmp_path / f"{name}.rdb"
        path.write_bytes(content)
        with pytest.raises(RdbError), path.open("rb") as handle:
            check_stream(handle)
        assert not _redis_check_rdb(path), f"redis-check-rdb accepted {name}"


# -- retention: restic's rules ---------------------------------------------------------------------


def _restic_keep(tmp_path: Path, times: list[float], flags: list[str]) -> set[str]:
    """What the real restic keeps for snapshots taken at ``times``."""
    repo, env = tmp_path / "repo", {**os.environ, "RESTIC_PASSWORD": "x", "TZ": "UTC"}
    subprocess.run(["restic", "init", "-q", "-r", str(repo)], env=env, check=True)
    payload = tmp_path / "payload"
    payload.write_text("x")
    ids = {}
    for created in times:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(created))
        subprocess.run(
            [
                "restic",
                "-q",
                "-r",
                str(repo),
                "backup",
                "--time",
                stamp,
                "--host",
                "h",
                str(payload),
            ],
            env=env,
            check=True,
            capture_output=True,
        )
        ids[stamp] = created
    out = subprocess.run(
        ["restic", "-r", str(repo), "forget", "--dry-run", "--json", *flags],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    kept = set()
    for group in json.loads(out.splitlines()[-1]):
        for snapshot in group["keep"] or []:
            kept.add(snapshot["time"][:19].replace("T", " "))
    return kept


def _calendar() -> list[float]:
    """Irregular backups over ~100 days: several a day at first, gaps later."""
    start, times = 1790000000.0, []
    t = start
    for step in range(36):
        t += 3 * 3600 * (1 + (step * 7) % 29)  # 3 to 87 hours apart, irregular
        times.append(t)
    return times


@pytest.mark.skipif(
    subprocess.run(["which", "restic"], capture_output=True).returncode,
    reason="restic not installed (the oracle for retention)",
)
def test_prune_keeps_exactly_what_restic_keeps(tmp_path: Path):
    times = _calendar()
    policy = KeepPolicy(last=3, hourly=5, daily=7, weekly=4, monthly=3)
    flags = [
        "--keep-last",
        "3",
        "--keep-hourly",
        "5",
        "--keep-daily",
        "7",
        "--keep-weekly",
        "4",
        "--keep-monthly",
        "3",
    ]
    ours = {
        time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(d.created))
        for d in apply_policy(policy, [(str(t), t) for t in times])
        if d.keep
    }
    assert ours == _restic_keep(tmp_path, times, flags)


def test_retention_rules_by_hand():
    day = 86400.0
    base = 1790035200.0  # a Monday 00:00 UTC... any fixed instant works for these rules
    backups_ = [(f"b{i}", base + i * day / 2) for i in range(10)]  # two a day, 5 days
    keep = {d.id for d in apply_policy(KeepPolicy(daily=2), backups_) if d.keep}
    assert keep == {"b9", "b7"}  # the newest of each of the newest two days
    keep = {d.id for d in apply_policy(KeepPolicy(daily=20), backups_) if d.keep}
    assert keep == {"b9", "b7", "b5", "b3", "b1", "b0"}  # count left: the oldest is kept too
    keep = {d.id for d in apply_policy(KeepPolicy(last=1, daily=1), backups_) if d.keep}
    assert keep == {"b9"}  # OR'd rules may agree on one backup


# -- the sandbox, both runtimes --------------------------------------------------------------------


def _seed(stack) -> dict[str, tuple[bytes, int]]:
    """Masking maps written through the Kong stand-in, plus keys written directly."""
    env = stack.config.environ
    with httpx.Client(timeout=10, trust_env=False) as http:
        for instance in ("i-0123456789abcdef0", "i-0fedcba9876543210"):
            response = http.post(
                f"http://127.0.0.1:{env['NGINX_PROXY_PORT']}/v1/messages",
                headers={"x-api-key": "k"},
                json={
                    "model": "m",
                    "max_tokens": 8,
                    "messages": [{"role": "user", "content": f"check {instance} now"}],
                },
            )
            assert response.status_code == 200, response.text
    client = _client(stack)
    client.set("aws_masker:map:DIRECT_TTL", "vpc-0123456789abcdef0", ex=7200)
    client.set("aws_masker:map:DIRECT_KEEP", "subnet-0123456789abcdef0")
    seeded = _masker_keys(client)
    assert len(seeded) >= 6 and any(ttl > 0 for _value, ttl in seeded.values())
    return seeded


def _assert_same(before: dict, after: dict, tolerance: int = 30) -> None:
    assert set(after) == set(before)
    for key, (value, ttl) in before.items():
        assert after[key][0] == value, key
        if ttl < 0:
            assert after[key][1] == ttl, key
        else:
            assert ttl - tolerance <= after[key][1] <= ttl, (key, ttl, after[key][1])


@pytest.mark.slow
def test_backup_flushall_restore_brings_every_key_back(sandbox_stack):
    stack = sandbox_stack
    assert lifecycle.start(stack).ok
    seeded = _seed(stack)

    made = backups.backup(stack, tag="before-flush", count_prefixes=True)
    assert made.ok, [(o.service, o.detail) for o in made.outcomes]
    manifest = Manifest.read(made.path)
    assert {"redis", "kong", "nginx"} <= set(manifest.services)
    assert manifest.services["redis"]["live"]["prefixes"]["aws_masker:map:"] >= 4
    assert manifest.services["kong"]["configuration_hash"]
    for entry in manifest.files:
        mode = (made.path / entry.path).stat().st_mode & 0o777
        assert mode == 0o600, (entry.path, oct(mode))
    assert made.path.stat().st_mode & 0o777 == 0o700
    secret = stack.config.environ["REDIS_PASSWORD"]
    stack_copy = ArtifactReader(made.path, manifest).read_bytes("stack/stack.yml")
    assert secret.encode() not in stack_copy
    assert backups.validate(stack, made.backup_id, deep=True).ok

    _client(stack).flushall()
    result = restore(stack, made.backup_id)
    assert result.state == RestoreState.RESTORED, result.detail
    _assert_same(seeded, _masker_keys(_client(stack)))
    assert backups.validate(stack, result.safety_backup).ok  # the safety backup is real too


@pytest.mark.slow
def test_a_restore_that_fails_midway_rolls_back_to_the_exact_previous_data(sandbox_stack, mocker):
    stack = sandbox_stack
    assert lifecycle.start(stack).ok
    _seed(stack)
    made = backups.backup(stack, ["redis", "kong"])
    client = _client(stack)
    client.flushall()
    client.set("aws_masker:map:NEWER", "i-0aaaaaaaaaaaaaaaa", ex=5000)
    client.set("aws_masker:map:NEWER2", "i-0bbbbbbbbbbbbbbbb")
    previous = _masker_keys(client)

    kong_role = type(stack.role("kong"))
    original = kong_role.apply_backup
    calls = []

    def fail_first(self, artifacts, metadata, plan):  # Kong refuses the restored config once
        calls.append(1)
        if len(calls) == 1:
            return Verdict(False, "injected: POST /config answered 400")
        return original(self, artifacts, metadata, plan)

    mocker.patch.object(kong_role, "apply_backup", fail_first)
    result = restore(stack, made.backup_id)
    assert result.state == RestoreState.ROLLED_BACK, result.detail
    assert result.exit_code == 1 and "rolled back" in result.detail
    _assert_same(previous, _masker_keys(_client(stack)), tolerance=10)


# -- appendonly yes (the restored RDB must win over the AOF) ---------------------------------------


def test_restore_with_appendonly_yes_is_not_overridden_by_the_aof(write_stack, load, port):
    password = "pw-" + os.urandom(6).hex()
    path = write_stack(
        stack_text(redis_service(port, password, config={"appendonly": "yes", "save": ""})).replace(
            'state_dir: "{state}"}', 'state_dir: "{state}", backups: {dir: "{state}/b"}}'
        )
    )
    stack = load(path)
    assert lifecycle.start(stack).ok
    client = _client(stack)
    client.set("aws_masker:map:A", "i-0123456789abcdef0", ex=3000)
    client.set("aws_masker:map:B", "vol-0123456789abcdef0")
    before = _masker_keys(client)
    made = backups.backup(stack)
    assert made.ok
    client.flushall()
    client.set("aws_masker:map:LATER", "x")  # in the AOF: would come back if the AOF won
    result = restore(stack, made.backup_id)
    assert result.state == RestoreState.RESTORED, result.detail
    assert "AOF rewritten" in result.outcomes[0].detail
    _assert_same(before, _masker_keys(_client(stack)))
    info = _client(stack).info("persistence")
    assert info["aof_enabled"] == 1
    # A plain restart now loads the rewritten AOF: still the restored data.
    assert lifecycle.restart(stack).ok
    _assert_same(before, _masker_keys(_client(stack)))


def test_config_renamed_away_falls_back_to_the_rendered_location(write_stack, load, port):
    password = "pw-" + os.urandom(6).hex()
    config = {"rename-command": 'CONFIG ""'}
    path = write_stack(
        stack_text(redis_service(port, password, config=config)).replace(
            'state_dir: "{state}"}', 'state_dir: "{state}", backups: {dir: "{state}/b"}}'
        )
    )
    stack = load(path)
    assert lifecycle.start(stack).ok
    _client(stack).set("aws_masker:map:A", "x")
    made = backups.backup(stack)
    assert made.ok
    metadata = Manifest.read(made.path).services["redis"]
    assert "CONFIG refused" in metadata["rdb_path_source"]
    assert metadata["rdb"]["keys"] == 1


# -- damage, named ---------------------------------------------------------------------------------


@pytest.fixture
def redis_backup(write_stack, load, port):
    password = "pw-" + os.urandom(6).hex()
    path = write_stack(
        stack_text(redis_service(port, password)).replace(
            'state_dir: "{state}"}', 'state_dir: "{state}", backups: {dir: "{state}/b"}}'
        )
    )
    stack = load(path)
    assert lifecycle.start(stack).ok
    client = _client(stack)
    for i in range(500):
        client.set(f"aws_masker:map:K{i}", os.urandom(32).hex())
    made = backups.backup(stack)
    assert made.ok
    assert backups.validate(stack, made.backup_id).ok
    return stack, made.path


def _problems(stack, folder: Path) -> list[str]:
    report = backups.validate(stack, folder.name)
    assert not report.ok
    return report.problems


def test_one_flipped_bit_in_the_rdb_is_found(redis_backup):
    stack, folder = redis_backup
    target = folder / "redis/dump.rdb.zst"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    problems = _problems(stack, folder)
    assert any("redis/dump.rdb.zst" in p and "SHA-256" in p for p in problems), problems


def test_a_flipped_bit_inside_the_rdb_is_found_by_its_crc_even_with_a_matching_hash(redis_backup):
    stack, folder = redis_backup
    target = folder / "redis/dump.rdb.zst"
    raw = bytearray(zstandard.ZstdDecompressor().stream_reader(target.open("rb")).read())
    raw[len(raw) // 2] ^= 0x01
    target.write_bytes(zstandard.ZstdCompressor().compress(bytes(raw)))
    reseal(stack, folder, "redis/dump.rdb.zst")
    problems = _problems(stack, folder)
    assert any("CRC-64 mismatch" in p for p in problems), problems


def test_truncated_extra_missing_and_edited_manifest_are_named(redis_backup):
    stack, folder = redis_backup
    original = (folder / "manifest.json").read_text()
    manifest = json.loads(original)
    manifest["services"]["redis"]["rdb"]["keys"] = 9999
    (folder / "manifest.json").write_text(json.dumps(manifest))
    assert _problems(stack, folder) == [
        f"{folder}/manifest.json: changed after it was sealed: its seal does not match its content"
    ]
    write_sealed(stack, folder, manifest)  # behind the seal, the content is checked too
    assert any("keys is 500, the manifest says 9999" in p for p in _problems(stack, folder))
    (folder / "manifest.json").write_text(original)

    target = folder / "redis/dump.rdb.zst"
    target.write_bytes(target.read_bytes()[:-50])
    problems = _problems(stack, folder)
    assert any("redis/dump.rdb.zst" in p and "bytes on disk" in p for p in problems), problems

    (folder / "redis" / "stray.bin").write_bytes(b"x")
    assert any("redis/stray.bin: extra file" in p for p in _problems(stack, folder))

    (folder / "stack" / "stack.yml.zst").unlink()
    assert any("stack/stack.yml.zst: missing" in p for p in _problems(stack, folder))

    (folder / "manifest.json").write_text("{not json")
    assert any("manifest.json: unreadable" in p for p in _problems(stack, folder))


def test_a_restore_of_a_damaged_backup_changes_nothing(redis_backup):
    stack, folder = redis_backup
    client = _client(stack)
    client.set("aws_masker:map:K0", "changed")
    target = folder / "redis/dump.rdb.zst"
    data = bytearray(target.read_bytes())
    data[100] ^= 0xFF
    target.write_bytes(bytes(data))
    result = restore(stack, folder.name)
    assert result.state == RestoreState.REFUSED and "nothing changed" in result.detail
    assert result.exit_code == 1
    assert _client(stack).get("aws_masker:map:K0") == b"changed"


def _staged_leftovers(stack) -> list[Path]:
    rdb = Path(stack.role("redis").data_dir) / "dump.rdb"
    return sorted(rdb.parent.glob(".dump.rdb.opskit-restore-*"))


def _safety_backups(stack) -> list[str]:
    return [e.id for e in backups.store_of(stack).entries() if "pre-restore" in e.id]


def test_a_staged_rdb_that_fails_its_crc_refuses_with_nothing_left_behind(redis_backup):
    """The restore stages the RDB beside Redis's file while Redis serves, checking it on the
    way instead of a separate validation pass: a bad CRC behind a matching hash must still
    refuse before Redis stops, and neither the staged file nor the safety backup remain."""
    stack, folder = redis_backup
    client = _client(stack)
    client.set("aws_masker:map:K0", "changed")
    target = folder / "redis/dump.rdb.zst"
    raw = bytearray(zstandard.ZstdDecompressor().stream_reader(target.open("rb")).read())
    raw[len(raw) // 2] ^= 0x01
    target.write_bytes(zstandard.ZstdCompressor().compress(bytes(raw)))
    reseal(stack, folder, "redis/dump.rdb.zst")
    pid = stack.role("redis").unit.status().pid
    result = restore(stack, folder.name)
    assert result.state == RestoreState.REFUSED, result.detail
    assert "CRC-64 mismatch" in result.detail and "nothing changed" in result.detail
    assert stack.role("redis").unit.status().pid == pid  # never stopped
    assert _client(stack).get("aws_masker:map:K0") == b"changed"
    assert _staged_leftovers(stack) == []
    assert _safety_backups(stack) == []


def test_a_staged_rdb_a_killed_restore_left_is_removed_by_the_next(redis_backup):
    stack, folder = redis_backup
    rdb = Path(stack.role("redis").data_dir) / "dump.rdb"
    leftover = rdb.with_name(".dump.rdb.opskit-restore-999999")
    leftover.write_bytes(b"half of an RDB from a restore killed with kill -9")
    _client(stack).flushall()
    result = restore(stack, folder.name)
    assert result.state == RestoreState.RESTORED, result.detail
    assert _client(stack).dbsize() == 500
    assert _staged_leftovers(stack) == []


def test_a_restore_killed_while_staging_is_aborted_and_its_staged_rdb_removed(redis_backup):
    """What ``kill -9`` during staging leaves (tried by hand on a 0.2 GB RDB): Redis untouched
    and serving, a journal without a safety backup, and the half-written RDB beside the data
    file. The next command says nothing was changed yet; ``--abort`` forgets the restore and
    removes what it staged."""
    from opskit.backup.journal import JournalFile, RestoreJournal
    from opskit.ops.restore import abort, interrupted

    stack, folder = redis_backup
    rdb = Path(stack.role("redis").data_dir) / "dump.rdb"
    leftover = rdb.with_name(".dump.rdb.opskit-restore-999999")
    leftover.write_bytes(b"half of an RDB")
    JournalFile(stack.state_dir).begin(
        RestoreJournal(folder.name, ["redis"], pid=999999, step="safety backup")
    )
    said = interrupted(stack)
    assert "before anything was changed" in said and "--abort forgets it" in said, said
    result = abort(stack)
    assert result.state == RestoreState.ABORTED and result.exit_code == 0, result.detail
    assert str(leftover) in result.detail
    assert _staged_leftovers(stack) == [] and interrupted(stack) is None
    assert _client(stack).dbsize() == 500  # untouched


def test_archive_members_leaving_the_target_are_refused():
    for name, kind in (
        ("../evil", tarfile.REGTYPE),
        ("/etc/passwd", tarfile.REGTYPE),
        ("conf/link", tarfile.SYMTYPE),
        ("conf/dev", tarfile.CHRTYPE),
    ):
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as archive:
            info = tarfile.TarInfo(name)
            info.type = kind
            if kind is tarfile.SYMTYPE:
                info.linkname = "/etc/shadow"
            archive.addfile(info, io.BytesIO(b"") if kind is tarfile.REGTYPE else None)
        with pytest.raises(UnsafeArchive):
            unpack_tree(buffer.getvalue())


def test_a_path_traversal_member_in_a_backup_is_named_by_validate(tmp_path, running_sandbox):
    stack = running_sandbox
    made = backups.backup(stack, ["nginx"])
    folder = made.path
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo("../../outside.conf")
        info.size = 4
        archive.addfile(info, io.BytesIO(b"evil"))
    (folder / "nginx/conf.tar.zst").write_bytes(
        zstandard.ZstdCompressor().compress(buffer.getvalue())
    )
    reseal(stack, folder, "nginx/conf.tar.zst")
    problems = backups.validate(stack, folder.name).problems
    assert any("'../../outside.conf'" in p and "refused" in p for p in problems), problems


# -- interruption and the lock ---------------------------------------------------------------------


def test_kill_9_during_a_backup_leaves_nothing_that_looks_complete(write_stack, load, port):
    password = "pw-" + os.urandom(6).hex()
    path = write_stack(
        stack_text(redis_service(port, password, config={"save": ""})).replace(
            'state_dir: "{state}"}',
            'state_dir: "{state}", backups: {dir: "{state}/b", keep: {last: 5}}}',
        )
    )
    stack = load(path)
    assert lifecycle.start(stack).ok
    client = _client(stack)
    pipe = client.pipeline(transaction=False)
    for i in range(60_000):  # ~ 60 MB: the backup takes long enough to be caught mid-way
        pipe.set(f"aws_masker:map:K{i}", os.urandom(512))
        if i % 5000 == 0:
            pipe.execute()
    pipe.execute()
    env = {
        "PATH": os.environ["PATH"],
        "OPSKIT_STACK": str(path),
        "OPSKIT_BACKUP_KEY": stack.config.environ["OPSKIT_BACKUP_KEY"],
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "invoke",
            "--search-root",
            str(Path(__file__).parents[1]),
            "backup",
            "--tag",
            "killed",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    backups_dir = stack.config.backups_dir
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # kill it once it is writing
        if backups_dir.is_dir() and any(
            p.name.startswith(".partial-") for p in backups_dir.iterdir()
        ):
            break
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    listed = backups.entries(stack)
    assert not any(e.state.value == "complete" for e in listed), listed
    assert listed and all(e.state.value == "incomplete" for e in listed)
    # prune removes the leftover of the dead process
    pruned = backups.prune(stack)
    assert pruned.removed == [e.id for e in listed]
    assert backups.entries(stack) == []


def test_restore_refuses_without_yes_when_stdin_is_not_a_terminal(running_sandbox, sandbox_env):
    env = dict(running_sandbox.config.environ)
    result = run_inv(env, "restore", "20260101T000000Z")
    assert result.returncode == 2
    assert "--yes" in result.stderr


def test_backup_json_and_list(running_sandbox):
    env = dict(running_sandbox.config.environ)
    made = run_inv(env, "backup", "--json", "--service", "redis")
    assert made.returncode == 0, made.stderr
    payload = json.loads(made.stdout)
    assert payload["ok"] and payload["id"]
    listed = json.loads(run_inv(env, "backup.list", "--json").stdout)
    row = next(r for r in listed["backups"] if r["id"] == payload["id"])
    assert row["status"] == "complete" and row["services"] == ["redis"]
    assert row["where"] == {"local": True} and listed["copies"] == []
    assert env["REDIS_PASSWORD"] not in made.stdout + made.stderr
    checked = run_inv(env, "backup.validate", payload["id"])
    assert checked.returncode == 0 and "ok" in checked.stdout


def test_a_stale_password_fails_the_backup_in_one_line(running_sandbox):
    env = dict(running_sandbox.config.environ, REDIS_PASSWORD="stale-password-after-rotation")
    result = run_inv(env, "backup", "--service", "redis")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "redis: authentication failed" in result.stdout + result.stderr
    assert "stale-password-after-rotation" not in result.stdout + result.stderr
