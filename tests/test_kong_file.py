"""The file Kong loads at start keeps what kong.apply, kong.rollout and kong.rollback made run
(issue 20, item 6): a restart by anyone runs the same configuration, and drift — whatever its
cause — is a health WARNING and a metric naming both hashes."""

from __future__ import annotations

import os

import pytest

from opskit.declarative.document import md5_of
from opskit.declarative.history import ConfigHistory
from opskit.ops import declarative, lifecycle
from opskit.ops.health import run_health
from opskit.runtime.base import HostFile
from opskit.services.kong.file import write_host_file
from opskit.vocabulary import CheckStatus

from .conftest import run_inv

pytestmark = pytest.mark.timeout(120)


def _drift(stack):
    report = run_health(stack, ["kong"])
    return next(c for c in report.checks if (c.service, c.name) == ("kong", "config_drift"))


def _edited(stack, ttl: int) -> str:
    original = stack.role("kong").declarative_source()
    edited = original.replace("mapping_ttl: 86400", f"mapping_ttl: {ttl}")
    assert edited != original
    return edited


def test_an_applied_config_survives_a_restart_and_so_does_a_rollback(kong_stack, tmp_path):
    kong = kong_stack.role("kong")
    original = kong.declarative_source()
    path = tmp_path / "kong.yml"
    path.write_text(_edited(kong_stack, 3600))

    result = declarative.apply(kong_stack, path)
    assert result.ok and result.persisted is not None and result.persisted.ok, result
    assert not result.file_differs
    assert lifecycle.restart(kong_stack, ["kong"]).ok
    assert kong.configuration_hash() == md5_of(path.read_text())  # not the template's again
    assert _drift(kong_stack).status is CheckStatus.OK
    assert ConfigHistory(kong_stack.state_dir).latest_with(md5_of(original)) is not None

    back = declarative.rollback(kong_stack)
    assert back.ok and back.persisted.ok, back.detail
    assert lifecycle.restart(kong_stack, ["kong"]).ok
    assert kong.configuration_hash() == md5_of(original)


def test_a_memory_only_apply_is_drift_named_by_both_hashes_until_a_restart(kong_stack, tmp_path):
    kong = kong_stack.role("kong")
    file_hash = md5_of(kong.declarative_source())
    path = tmp_path / "kong.yml"
    path.write_text(_edited(kong_stack, 1800))
    env = dict(kong_stack.config.environ, OPSKIT_STACK=str(kong_stack.config.source))

    done = run_inv(env, "kong.apply", str(path), "--memory-only")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "WARNING: memory only" in done.stderr
    drift = _drift(kong_stack)
    running = md5_of(path.read_text())
    assert drift.status is CheckStatus.WARNING, drift
    assert running[:12] in drift.detail and file_hash[:12] in drift.detail

    metrics = run_inv(env, "metrics")
    assert 'opskit_kong_config_drift{service="kong"} 1.0' in metrics.stdout, metrics.stdout

    assert lifecycle.restart(kong_stack, ["kong"]).ok  # the file wins, as Kong does
    assert kong.configuration_hash() == file_hash
    assert _drift(kong_stack).status is CheckStatus.OK


def test_a_rollout_makes_its_last_good_stage_the_file(kong_stack):
    from opskit.ops.rollout import Guards, rollout

    kong = kong_stack.role("kong")
    result = rollout(kong_stack, "aws-masker", [{"mapping_ttl": 7200}], Guards(soak=0.5))
    assert result.persisted is not None and result.persisted.ok, result.persisted
    running = kong.configuration_hash()
    assert lifecycle.restart(kong_stack, ["kong"]).ok
    assert kong.configuration_hash() == running


def test_a_pin_gives_way_when_the_template_changes(kong_stack, tmp_path):
    """The operator edits the template after an apply: their edit wins at the next start."""
    kong = kong_stack.role("kong")
    path = tmp_path / "kong.yml"
    path.write_text(_edited(kong_stack, 600))
    assert declarative.apply(kong_stack, path).persisted.ok
    assert kong.declarative_source() == path.read_text()
    template = kong.template
    saved = template.read_bytes()
    try:
        template.write_bytes(saved + b"# edited by the operator\n")
        assert kong.declarative_source().endswith("# edited by the operator\n")
    finally:
        template.write_bytes(saved)


def test_a_host_file_is_replaced_atomically_or_in_place_with_its_mode(tmp_path):
    target = tmp_path / "kong.yml"
    target.write_text("old\n")
    os.chmod(target, 0o640)
    inode = target.stat().st_ino
    write_host_file(HostFile(target), "new\n")
    assert target.read_text() == "new\n" and target.stat().st_mode & 0o777 == 0o640
    assert target.stat().st_ino != inode  # renamed into place
    inode = target.stat().st_ino
    write_host_file(HostFile(target, in_place=True), "newer, longer\n")
    assert target.read_text() == "newer, longer\n"
    assert target.stat().st_ino == inode  # a file bind-mounted on its own keeps its inode
    assert [p.name for p in tmp_path.iterdir()] == ["kong.yml"]  # no temp file left
