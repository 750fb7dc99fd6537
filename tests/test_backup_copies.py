"""Copies of every backup off the host, in restic repositories (``x-opskit.backups.copies``).

Against real servers the tests start on free loopback ports — OpenSSH's sftp (a throwaway host
key and client key) and restic's REST protocol (``rclone serve restic``, with a user and a
password in the URL) — and a local repository; restic itself is the oracle of what a
repository holds. What an operator relies on: a backup reaches every copy; a copy that fails
never costs the backup, is owed, retried and alerted once; a restore or a drill works when the
backups folder is gone or damaged, and a copy that is not what was written is refused; no
password is ever printed; a server killed mid-copy leaves nothing listed, and the next copy
completes; prune applies the same keep rules to every copy.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from opskit.backup.copies import read_records
from opskit.ops import backup as backups
from opskit.ops import copies, lifecycle
from opskit.ops.metrics import gather

from .conftest import PYTHON, cli_env, free_port, run_inv
from .helpers import redis_service, stack_text

pytestmark = pytest.mark.skipif(not shutil.which("restic"), reason="restic (apt install restic)")

SSHD = "/usr/sbin/sshd"


def _wait_port(port: int, process: subprocess.Popen, what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{what} exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise AssertionError(f"{what} did not listen on {port} within {timeout}s")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.kill()
    process.wait(10)


class RestServer:
    """``rclone serve restic`` on a free port, its user and password in the repository URL."""

    def __init__(self, folder: Path, bwlimit: str | None = None):
        self.folder = folder
        self.port = free_port()
        self.password = "rest-" + os.urandom(8).hex()
        self.bwlimit = bwlimit
        self.process: subprocess.Popen | None = None

    @property
    def repository(self) -> str:
        return f"rest:http://opskit:{self.password}@127.0.0.1:{self.port}/"

    def start(self, bwlimit: str | None = None) -> RestServer:
        argv = ["rclone", "serve", "restic", "--addr", f"127.0.0.1:{self.port}"]
        argv += ["--user", "opskit", "--pass", self.password, str(self.folder)]
        if bwlimit or self.bwlimit:
            argv += ["--bwlimit", bwlimit or self.bwlimit]
        self.process = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        _wait_port(self.port, self.process, "rclone serve restic")
        return self

    def kill(self) -> None:
        if self.process is not None:
            _stop(self.process)


def _rest_server(folder: Path, bwlimit: str | None = None):
    if not shutil.which("rclone"):
        pytest.skip("rclone (apt install rclone)")
    server = RestServer(folder)
    server.folder.mkdir()
    yield server.start(bwlimit=bwlimit)
    server.kill()


@pytest.fixture
def rest_server(tmp_path):
    yield from _rest_server(tmp_path / "rest-repo")


@pytest.fixture
def slow_rest_server(tmp_path):
    yield from _rest_server(tmp_path / "rest-repo", bwlimit="1M")


@pytest.fixture
def sftp_server(tmp_path):
    """OpenSSH's sshd on a free port that lets in one throwaway key, as this user."""
    if not os.path.exists(SSHD) or not shutil.which("ssh") or os.geteuid() != 0:
        pytest.skip("sshd as root (apt install openssh-server)")
    folder = tmp_path / "sshd"
    folder.mkdir(mode=0o700)
    for key in ("host_key", "client_key"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(folder / key)], check=True
        )
    shutil.copy(folder / "client_key.pub", folder / "authorized_keys")
    port, user = free_port(), getpass.getuser()
    config = folder / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {folder / 'host_key'}\n"
        f"AuthorizedKeysFile {folder / 'authorized_keys'}\nPidFile {folder / 'sshd.pid'}\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
        f"PermitRootLogin prohibit-password\nAllowUsers {user}\nStrictModes no\n"
        "Subsystem sftp internal-sftp\n"
    )
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation folder
    process = subprocess.Popen(
        [SSHD, "-D", "-e", "-f", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    _wait_port(port, process, "sshd")
    command = (
        f"ssh -p {port} -i {folder / 'client_key'} -o StrictHostKeyChecking=no "
        f"-o UserKnownHostsFile=/dev/null -o IdentitiesOnly=yes -o BatchMode=yes "
        f"-o LogLevel=ERROR {user}@127.0.0.1 -s sftp"
    )
    yield {
        "repository": f"sftp:{user}@127.0.0.1:{tmp_path / 'sftp-repo'}",
        "options": {"sftp.command": command},
    }
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(10)


def _copy(name: str, repository: str, variable: str, **extra) -> dict:
    return {"name": name, "repository": repository, "password_from": variable, **extra}


@pytest.fixture
def copied(write_stack, load, port, tmp_path):
    """``make(copies, env, **backups)``: a running Redis stack whose backups go to ``copies``,
    with ``env`` (the passwords) in its .env."""

    def make(copy_list: list[dict], env: dict[str, str], **settings):
        (tmp_path / ".env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
        backups_setting = {"dir": str(tmp_path / "state" / "b"), "copies": copy_list, **settings}
        text = stack_text(redis_service(port, "pw-" + os.urandom(6).hex())).replace(
            'state_dir: "{state}"}',
            f'state_dir: "{{state}}", backups: {json.dumps(backups_setting)}}}',
        )
        stack = load(write_stack(text), environ=env)
        assert lifecycle.start(stack).ok
        return stack

    return make


def _seed(stack, count: int = 200, value_size: int = 60) -> None:
    client = stack.role("redis").client(timeout=5)
    try:
        for n in range(count):
            client.set(f"aws_masker:map:AWS_EC2_{n:04d}", os.urandom(value_size).hex(), ex=7200)
    finally:
        client.close()


def _keys(stack) -> int:
    client = stack.role("redis").client(timeout=5)
    try:
        return client.dbsize()
    finally:
        client.close()


def _restic_snapshots(repository: str, password: str, options: dict | None = None) -> list[dict]:
    """What restic itself says the repository holds (the oracle, run by hand)."""
    env = {**os.environ, "RESTIC_REPOSITORY": repository, "RESTIC_PASSWORD": password}
    argv = ["restic", "snapshots", "--json"]
    for key, value in (options or {}).items():
        argv += ["-o", f"{key}={value}"]
    out = subprocess.run(argv, env=env, capture_output=True, text=True, check=True, timeout=60)
    return json.loads(out.stdout or "[]")


def _ids(snapshots: list[dict]) -> list[str]:
    return sorted(
        t.split(":", 1)[1] for s in snapshots for t in s["tags"] if t.startswith("opskit-id:")
    )


def test_a_backup_reaches_every_copy_and_the_list_says_where(
    copied, tmp_path, rest_server, sftp_server
):
    passwords = {f"RESTIC_{n}_PASSWORD": "pw-" + os.urandom(8).hex() for n in ("L", "R", "S")}
    stack = copied(
        [
            _copy("local", str(tmp_path / "local-repo"), "RESTIC_L_PASSWORD"),
            _copy("rest", rest_server.repository, "RESTIC_R_PASSWORD"),
            _copy(
                "sftp",
                sftp_server["repository"],
                "RESTIC_S_PASSWORD",
                options=sftp_server["options"],
            ),
        ],
        passwords,
    )
    _seed(stack)
    env = cli_env(stack)
    made = run_inv(env, "backup")
    assert made.returncode == 0, made.stderr
    backup_id = made.stdout.split("backup ", 1)[1].split(":", 1)[0]
    for name in ("local", "rest", "sftp"):
        assert f"copy {name}: {backup_id}: stored" in made.stdout, made.stdout

    # restic by hand holds exactly that backup, under the stack's name, in each repository
    held = {
        "local": _restic_snapshots(str(tmp_path / "local-repo"), passwords["RESTIC_L_PASSWORD"]),
        "rest": _restic_snapshots(rest_server.repository, passwords["RESTIC_R_PASSWORD"]),
        "sftp": _restic_snapshots(
            sftp_server["repository"], passwords["RESTIC_S_PASSWORD"], sftp_server["options"]
        ),
    }
    for snapshots in held.values():
        assert _ids(snapshots) == [backup_id]
        assert snapshots[0]["hostname"] == stack.name

    listed = json.loads(run_inv(env, "backup.list", "--json").stdout)
    (row,) = listed["backups"]
    assert row["where"] == {"local": True, "rest": True, "sftp": True}
    assert {c["name"]: c["reachable"] for c in listed["copies"]} == dict.fromkeys(held, True)
    assert all(c["last_success"] and not c["pending"] for c in listed["copies"])

    # a second copy of the same backup sends nothing again
    again = run_inv(env, "backup.copy", backup_id)
    assert again.returncode == 0 and again.stdout.count("already there") == 3, again.stdout
    everything = made.stdout + made.stderr + again.stdout + json.dumps(listed)
    for secret in [*passwords.values(), rest_server.password]:
        assert secret not in everything


def test_restore_fetches_the_backup_from_a_copy_when_the_backups_folder_is_gone(copied, tmp_path):
    stack = copied([_copy("vault", str(tmp_path / "repo"), "VAULT_PW")], {"VAULT_PW": "v" * 20})
    _seed(stack, 150)
    made = backups.backup(stack)
    assert copies.copy(stack, [made.backup_id]).ok
    _seed(stack, 400)  # the data moves on
    shutil.rmtree(stack.config.backups_dir)  # the host lost its backups folder

    restored = run_inv(cli_env(stack), "restore", made.backup_id, "--yes")

    assert restored.returncode == 0, restored.stderr
    assert "fetched from copy vault" in restored.stdout
    assert _keys(stack) == 150
    assert backups.validate(stack, made.backup_id).ok  # back in the folder, intact


def test_a_damaged_local_backup_is_set_aside_and_restored_from_a_copy(copied, tmp_path):
    stack = copied([_copy("vault", str(tmp_path / "repo"), "VAULT_PW")], {"VAULT_PW": "v" * 20})
    _seed(stack, 120)
    made = backups.backup(stack)
    assert copies.copy(stack, [made.backup_id]).ok
    _seed(stack, 300)
    rdb = next(made.path.glob("redis/*.rdb*"))
    data = bytearray(rdb.read_bytes())
    data[len(data) // 2] ^= 0xFF
    rdb.write_bytes(bytes(data))

    restored = run_inv(cli_env(stack), "restore", made.backup_id, "--yes")

    assert restored.returncode == 0, restored.stderr
    assert "the local backup was damaged" in restored.stdout
    assert _keys(stack) == 120
    (aside,) = stack.config.backups_dir.glob(f".damaged-{made.backup_id}-*")
    assert (aside / rdb.relative_to(made.path)).read_bytes() == bytes(data)  # kept, not deleted
    assert backups.validate(stack, made.backup_id).ok


def test_a_copy_that_is_not_what_was_written_is_refused_and_nothing_is_placed(
    copied, tmp_path, load
):
    """A forged folder stored under the backup's tag (a manifest sealed with another key) is
    fetched, fails the seal and is never put in the backups folder nor restored."""
    repo = tmp_path / "repo"
    stack = copied([_copy("vault", str(repo), "VAULT_PW")], {"VAULT_PW": "v" * 20})
    _seed(stack, 50)
    made = backups.backup(stack)
    forged_root = tmp_path / "forged"
    shutil.copytree(made.path, forged_root / made.backup_id)
    manifest = json.loads((forged_root / made.backup_id / "manifest.json").read_text())
    manifest["seal"] = "0" * len(manifest["seal"])
    (forged_root / made.backup_id / "manifest.json").write_text(json.dumps(manifest))
    env = {**os.environ, "RESTIC_REPOSITORY": str(repo), "RESTIC_PASSWORD": "v" * 20}
    subprocess.run(["restic", "init", "-q"], env=env, check=True)
    subprocess.run(
        ["restic", "backup", "-q", "--host", stack.name, "--tag", "opskit",
         "--tag", f"opskit-id:{made.backup_id}", made.backup_id],
        env=env, cwd=forged_root, check=True,
    )  # fmt: skip
    shutil.rmtree(stack.config.backups_dir)
    _seed(stack, 80)

    restored = run_inv(cli_env(stack), "restore", made.backup_id, "--yes")

    assert restored.returncode == 1
    assert "no copy could give it" in restored.stderr and "not intact" in restored.stderr
    assert not (stack.config.backups_dir / made.backup_id).exists()
    assert _keys(stack) == 80  # untouched
    assert not list(stack.config.backups_dir.glob(".fetch-*"))


def test_a_wrong_password_costs_no_backup_is_owed_alerted_once_and_retried(
    copied, tmp_path, write_stack
):
    alerts_file = tmp_path / "alerts.jsonl"
    script = f"import sys; open({str(alerts_file)!r}, 'a').write(sys.stdin.read() + chr(10))"
    repo = tmp_path / "repo"
    subprocess.run(
        ["restic", "init", "-q", "-r", str(repo)],
        env={**os.environ, "RESTIC_PASSWORD": "the-right-password"},
        check=True,
    )
    wrong = "wrong-" + os.urandom(8).hex()
    stack = copied([_copy("vault", str(repo), "VAULT_PW")], {"VAULT_PW": wrong})
    text = stack.config.source.read_text().replace(
        "x-opskit: {",
        f'x-opskit: {{alerts: {{notify: [{{command: ["{PYTHON}", "-c", "{script}"]}}]}}, ',
        1,
    )
    stack.config.source.write_text(text)
    env = cli_env(stack)

    first = run_inv(env, "backup")
    second = run_inv(env, "backup")

    for run in (first, second):
        assert run.returncode == 0, run.stderr  # the backups are kept
        assert "copy vault: FAILED: copy vault: wrong password" in run.stderr, run.stderr
        assert wrong not in run.stdout + run.stderr
    owed = read_records(stack.state_dir)["vault"].pending
    assert len(owed) == 2
    sent = [json.loads(line) for line in alerts_file.read_text().splitlines() if line.strip()]
    assert [a["kind"] for a in sent] == ["failed"]  # once, not once per backup
    assert "backup copy vault" in sent[0]["subject"] and wrong not in json.dumps(sent)

    env["VAULT_PW"] = "the-right-password"
    (tmp_path / ".env").write_text("VAULT_PW=the-right-password\n")
    retried = run_inv(env, "backup.copy")
    assert retried.returncode == 0, retried.stderr
    snapshots = _restic_snapshots(str(repo), "the-right-password")
    assert _ids(snapshots) == sorted(owed)  # both owed backups, each once
    assert read_records(stack.state_dir)["vault"].pending == []
    sent = [json.loads(line) for line in alerts_file.read_text().splitlines() if line.strip()]
    assert [a["kind"] for a in sent] == ["failed", "recovered"]


def test_a_frozen_server_is_bounded_by_the_timeout_and_the_backup_is_kept(copied, rest_server):
    rest_server.process.send_signal(signal.SIGSTOP)  # accepts connections, answers nothing
    try:
        stack = copied(
            [_copy("rest", rest_server.repository, "REST_PW", connect_timeout="2s")],
            {"REST_PW": "r" * 20},
        )
        began = time.monotonic()
        made = run_inv(cli_env(stack), "backup")
        seconds = time.monotonic() - began
    finally:
        rest_server.process.send_signal(signal.SIGCONT)
    assert made.returncode == 0, made.stderr
    assert "gave no answer within 2s" in made.stderr
    assert seconds < 30, seconds  # 2 s, plus the backup and a start-up: not restic's 15 min
    assert rest_server.password not in made.stdout + made.stderr
    assert len(backups.entries(stack)) == 1


def test_a_server_killed_mid_copy_leaves_nothing_listed_and_the_next_copy_completes(
    copied, slow_rest_server
):
    server = slow_rest_server  # 1 MB/s: an 8 MB upload takes seconds, 'mid-copy' is certain
    try:
        stack = copied(
            [_copy("rest", server.repository, "REST_PW", timeout="20s", connect_timeout="15s")],
            {"REST_PW": "r" * 20},
        )
        _seed(stack, 80, 50_000)  # ~8 MB of random values: zstd cannot shrink them
        made = backups.backup(stack)
        killed = threading.Event()

        def kill_when_uploading() -> None:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                sizes = [
                    p.stat().st_size for p in (server.folder / "data").rglob("*") if p.is_file()
                ]
                if any(1_000_000 < size < 7_000_000 for size in sizes):
                    server.kill()
                    killed.set()
                    return
                time.sleep(0.02)

        watcher = threading.Thread(target=kill_when_uploading)
        watcher.start()
        failed = copies.copy(stack, [made.backup_id])
        watcher.join()
        assert killed.is_set(), failed.outcomes  # it was killed while it uploaded
        assert not failed.ok and read_records(stack.state_dir)["rest"].pending == [made.backup_id]

        server.start(bwlimit=None)
        server.bwlimit = None
        listed = copies.listing(stack)
        assert listed.copies[0].snapshots == []  # nothing half-listed

        done = copies.copy(stack)
        assert done.ok, done.outcomes
        snapshots = _restic_snapshots(server.repository, "r" * 20)
        assert _ids(snapshots) == [made.backup_id]
        checked = copies.check(stack)
        assert checked[0].ok, checked[0].problems
    finally:
        server.kill()


def test_prune_applies_the_keep_rules_to_every_copy(copied, tmp_path):
    stack = copied(
        [_copy("vault", str(tmp_path / "repo"), "VAULT_PW")],
        {"VAULT_PW": "v" * 20},
        keep={"last": 2},
    )
    made = [backups.backup(stack, tag=f"n{n}").backup_id for n in range(4)]
    assert copies.copy(stack, every_local=True).ok
    pruned = run_inv(cli_env(stack), "backup.prune")
    assert pruned.returncode == 0, pruned.stderr
    assert f"copy vault: keep 2; removed: {made[1]}, {made[0]}" in pruned.stdout, pruned.stdout
    assert _ids(_restic_snapshots(str(tmp_path / "repo"), "v" * 20)) == sorted(made[2:])


def test_validate_copies_checks_the_repository_and_a_fetched_backup(copied, tmp_path):
    repo = tmp_path / "repo"
    stack = copied(
        [_copy("vault", str(repo), "VAULT_PW", check_subset="100%")], {"VAULT_PW": "v" * 20}
    )
    _seed(stack, 100, 2000)
    made = backups.backup(stack)
    assert copies.copy(stack).ok
    env = cli_env(stack)
    good = run_inv(env, "backup.validate", "--copies")
    assert good.returncode == 0, good.stdout + good.stderr
    assert f"copy vault: ok (restic check, {made.backup_id} fetched and validated" in good.stdout

    packs = sorted((repo / "data").rglob("*"), key=lambda p: p.stat().st_size if p.is_file() else 0)
    biggest = packs[-1]
    biggest.chmod(0o600)
    data = bytearray(biggest.read_bytes())
    data[len(data) // 2] ^= 0xFF
    biggest.write_bytes(bytes(data))
    bad = run_inv(env, "backup.validate", "--copies")
    assert bad.returncode == 1
    assert "copy vault: FAILED: copy vault: restic check failed" in bad.stdout, bad.stdout


def test_a_drill_runs_from_a_copy_when_the_local_backup_is_gone(copied, tmp_path):
    stack = copied([_copy("vault", str(tmp_path / "repo"), "VAULT_PW")], {"VAULT_PW": "v" * 20})
    _seed(stack, 90)
    made = backups.backup(stack)
    assert copies.copy(stack).ok
    shutil.rmtree(stack.config.backups_dir)
    drilled = run_inv(cli_env(stack), "backup.drill", "--json")
    assert drilled.returncode == 0, drilled.stderr
    result = json.loads(drilled.stdout)
    assert result["id"] == made.backup_id and result["services"]["redis"]["keys"] == 90


def test_a_password_variable_that_is_not_set_is_named_and_other_commands_still_work(
    copied, tmp_path
):
    stack = copied([_copy("vault", str(tmp_path / "repo"), "VAULT_PW")], {})
    env = cli_env(stack)
    assert run_inv(env, "status").returncode == 0
    made = run_inv(env, "backup")
    assert made.returncode == 0
    assert "copy vault: VAULT_PW is not set" in made.stderr, made.stderr


@pytest.mark.parametrize(
    ("copy", "message"),
    [
        ({"repository": "/r", "password_from": "P"}, "copies[0].name: expected a name"),
        ({"name": "Bad Name", "repository": "/r", "password_from": "P"}, "copies[0].name"),
        ({"name": "a", "password_from": "P"}, "copies[0].repository: expected a restic"),
        ({"name": "a", "repository": "/r", "password_from": "not a var"}, "password_from"),
        (
            {
                "name": "a",
                "repository": "/r",
                "password_from": "P",
                "environment": {"RESTIC_X": "1"},
            },
            "copies[0].environment.RESTIC_X",
        ),
        ({"name": "a", "repository": "/r", "password_from": "P", "tiemout": "1s"}, "tiemout"),
    ],
)
def test_a_bad_copy_setting_is_one_line_naming_its_key(write_stack, load, copy, message):
    from opskit.errors import ConfigError

    text = stack_text(redis_service(free_port(), "pw")).replace(
        'state_dir: "{state}"}',
        f'state_dir: "{{state}}", backups: {{copies: [{json.dumps(copy)}]}}}}',
    )
    with pytest.raises(ConfigError) as raised:
        load(write_stack(text))
    assert message in str(raised.value) and "\n" not in str(raised.value)


def test_copy_metrics_say_when_each_copy_last_succeeded(copied, tmp_path):
    stack = copied(
        [
            _copy("vault", str(tmp_path / "repo"), "VAULT_PW"),
            _copy("gone", str(tmp_path / "x"), "NOPE"),
        ],
        {"VAULT_PW": "v" * 20},
        copy_max_age="2h",
    )
    made = backups.backup(stack)
    copies.copy(stack, [made.backup_id])
    values = {
        (v.name, dict(v.labels).get("copy")): v.value
        for v in gather(stack)
        if v.name.startswith("backup_copy")
    }
    assert values[("backup_copy_last_ok", "vault")] == 1.0
    assert values[("backup_copy_last_ok", "gone")] == 0.0
    assert values[("backup_copy_last_success_timestamp_seconds", "gone")] == 0.0
    assert values[("backup_copy_last_success_timestamp_seconds", "vault")] > time.time() - 60
    assert values[("backup_copy_last_size_bytes", "vault")] == made.size
    assert values[("backup_copy_pending", "gone")] == 1.0
    assert values[("backup_copy_max_age_seconds", "vault")] == 7200.0


def _restic_in(folder: Path) -> list[int]:
    """restic processes working in ``folder`` (the copies run restic there)."""
    import psutil

    found = []
    for process in psutil.process_iter(["name"]):
        with contextlib.suppress(psutil.Error):
            if process.info["name"] == "restic" and Path(process.cwd()) == folder:
                found.append(process.pid)
    return found


def _uploading(folder: Path, low: int = 1_000_000) -> bool:
    data = folder / "data"
    return data.is_dir() and any(p.is_file() and p.stat().st_size > low for p in data.rglob("*"))


def test_inv_backup_copy_killed_leaves_no_restic_behind_and_the_backup_stays_owed(
    copied, slow_rest_server
):
    server = slow_rest_server  # 1 MB/s: an 8 MB upload takes seconds, 'mid-copy' is certain
    try:
        stack = copied([_copy("rest", server.repository, "REST_PW")], {"REST_PW": "r" * 20})
        _seed(stack, 80, 50_000)
        made = backups.backup(stack)
        copies.owe(stack, made.backup_id)  # what inv backup does before it copies
        env = cli_env(stack)
        inv = subprocess.Popen(
            [
                PYTHON,
                "-m",
                "invoke",
                "--search-root",
                str(Path(__file__).parents[1]),
                "backup.copy",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while not _uploading(server.folder) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _uploading(server.folder)
        inv.kill()  # kill -9, mid-upload
        inv.wait(10)
        deadline = time.monotonic() + 10
        while _restic_in(stack.config.backups_dir) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _restic_in(stack.config.backups_dir) == []  # restic did not outlive it

        server.kill()
        server.start(bwlimit=None)
        server.bwlimit = None
        again = run_inv(env, "backup.copy")
        assert again.returncode == 0, again.stderr
        assert f"copy rest: {made.backup_id}: stored" in again.stdout
        assert _ids(_restic_snapshots(server.repository, "r" * 20)) == [made.backup_id]
    finally:
        server.kill()


def test_two_copies_at_once_wait_for_each_other_and_store_the_backup_once(copied, slow_rest_server):
    server = slow_rest_server  # 1 MB/s: an 8 MB upload takes seconds, 'mid-copy' is certain
    try:
        stack = copied([_copy("rest", server.repository, "REST_PW")], {"REST_PW": "r" * 20})
        _seed(stack, 30, 50_000)  # ~3 MB: seconds at 1 MB/s
        made = backups.backup(stack)
        env = cli_env(stack)
        repo_root = str(Path(__file__).parents[1])
        runs = [
            subprocess.Popen(
                [PYTHON, "-m", "invoke", "--search-root", repo_root, "backup.copy", made.backup_id],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        outputs = [run.communicate(timeout=120) for run in runs]
        assert [run.returncode for run in runs] == [0, 0], outputs
        said = "".join(out for out, _err in outputs)
        assert said.count("stored") == 1 and said.count("already there") == 1, outputs
        assert "waiting up to" in "".join(err for _out, err in outputs)
        assert _ids(_restic_snapshots(server.repository, "r" * 20)) == [made.backup_id]
    finally:
        server.kill()
