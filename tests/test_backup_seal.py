"""A backup steers nothing (issue 21, part 1): the manifest is sealed under the stack's key,
every field of it is covered, and a restore writes only where the running stack says."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from opskit.backup.seal import seal
from opskit.ops import backup as backups
from opskit.ops.restore import restore
from opskit.stack import load_stack
from opskit.vocabulary import RestoreState

from .conftest import REPO, run_inv

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def sealed_backup(running_sandbox):
    made = backups.backup(running_sandbox, ["redis", "kong", "nginx"])
    assert made.ok
    return running_sandbox, made.path


@pytest.fixture
def manifest(sealed_backup):
    """manifest.json of the backup, put back as it was after each test."""
    _stack, folder = sealed_backup
    path = folder / "manifest.json"
    original = path.read_text()
    yield json.loads(original)
    path.write_text(original)


def _leaves(value, path=()):
    """Every (path, value) of a JSON document's scalars."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _leaves(item, (*path, index))
    else:
        yield path, value


def _edited(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value + 1
    if value is None:
        return "x"
    return str(value) + "x"


def _set(document, path, value):
    target = document
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value


def test_every_field_of_the_manifest_is_sealed(sealed_backup, manifest):
    stack, folder = sealed_backup
    assert backups.validate(stack, folder.name).ok
    leaves = [(p, v) for p, v in _leaves(manifest) if p[0] != "seal"]
    assert len(leaves) > 30  # ids, sizes, hashes, key counts, expires, roots, paths, …
    for path, value in leaves:
        document = json.loads(json.dumps(manifest))
        _set(document, path, _edited(value))
        (folder / "manifest.json").write_text(json.dumps(document))
        problems = backups.validate(stack, folder.name).problems
        where = ".".join(map(str, path))
        refused = ("changed after it was sealed", "not an opskit manifest")  # format: 2
        assert len(problems) == 1 and any(r in problems[0] for r in refused), (where, problems)
    for extra in ({"note": "added"}, {"seal": {**manifest["seal"], "mac": "0" * 64}}):
        (folder / "manifest.json").write_text(json.dumps({**manifest, **extra}))
        assert "changed after it was sealed" in backups.validate(stack, folder.name).problems[0]


def test_unsealed_or_foreign_sealed_manifests_are_refused_before_anything(sealed_backup, manifest):
    stack, folder = sealed_backup
    unsealed = {k: v for k, v in manifest.items() if k != "seal"}
    (folder / "manifest.json").write_text(json.dumps(unsealed))
    assert "not sealed" in backups.validate(stack, folder.name).problems[0]
    result = restore(stack, folder.name, ["redis"])
    assert result.state == RestoreState.REFUSED and "not sealed" in result.detail

    other = {**unsealed, "seal": seal(unsealed, b"someone-elses-key-0123456789")}
    (folder / "manifest.json").write_text(json.dumps(other))
    problem = backups.validate(stack, folder.name).problems[0]
    assert "sealed with another key" in problem
    assert stack.config.environ["OPSKIT_BACKUP_KEY"] not in problem


def test_a_manifest_sealed_by_an_insider_still_cannot_steer_the_restore(
    sealed_backup, manifest, tmp_path
):
    """Even a manifest sealed with the right key cannot choose where files go: the nginx
    root comes from the running nginx, and a recorded one that differs refuses."""
    stack, folder = sealed_backup
    elsewhere = tmp_path / "elsewhere"
    document = json.loads(json.dumps(manifest))
    document["services"]["nginx"]["root"] = str(elsewhere)
    document["seal"] = seal(document, backups.seal_key(stack))
    (folder / "manifest.json").write_text(json.dumps(document))
    assert backups.validate(stack, folder.name).ok
    result = restore(stack, folder.name, ["nginx"])
    assert result.state == RestoreState.REFUSED, result.detail
    assert str(elsewhere) in result.detail and "nginx now loads" in result.detail
    assert not elsewhere.exists()


def test_an_old_backup_is_vouched_for_and_a_damaged_one_is_not(sealed_backup, manifest):
    stack, folder = sealed_backup
    env = dict(stack.config.environ, OPSKIT_STACK=str(stack.config.source))
    unsealed = {k: v for k, v in manifest.items() if k != "seal"}
    (folder / "manifest.json").write_text(json.dumps(unsealed))
    done = run_inv(env, "backup.seal", folder.name)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "was not sealed" in done.stdout and "sealed with this stack's key" in done.stdout
    assert backups.validate(stack, folder.name).ok

    (folder / "manifest.json").write_text(json.dumps(unsealed))
    target = folder / "redis" / "dump.rdb.zst"
    saved = target.read_bytes()
    try:
        target.write_bytes(saved[:-10])
        refused = run_inv(env, "backup.seal", folder.name)
        assert refused.returncode == 1 and "does not match its own manifest" in refused.stderr
        assert "not sealed" in backups.validate(stack, folder.name).problems[0]
    finally:
        target.write_bytes(saved)


def test_a_backup_without_a_key_is_refused_in_one_line(sandbox_env, tmp_path):
    env = dict(sandbox_env)
    env["OPSKIT_BACKUP_KEY"] = ""  # over sandbox/.env's, which ./dev wrote
    env["OPSKIT_STACK"] = str(REPO / "sandbox" / "stack.yml")
    stack = load_stack(Path(env["OPSKIT_STACK"]), environ=env)
    with pytest.raises(Exception) as caught:
        backups.backup(stack)
    assert "OPSKIT_BACKUP_KEY is not set" in str(caught.value)
    done = run_inv(env, "backup")
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
