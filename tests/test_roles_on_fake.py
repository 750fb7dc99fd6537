"""Role code on the fake runtime: what a role decides from what its unit answers, checked
without the software's binary — nginx's reload proof, Kong's parse of a file it must not leave
behind. Real software is exercised by the other tests; these pin the role's own logic, fast,
including answers real software gives rarely (a HUP it could not apply)."""

from __future__ import annotations

import signal

import pytest

from opskit.runtime.base import ExecResult
from opskit.runtime.fake import FakeService, FakeUnit
from opskit.services.nginx import role as nginx

NGINX_STACK = """\
x-opskit: {runtime: fake, state_dir: "{state}"}
services:
  web:
    image: nginx
    ports: ["127.0.0.1:18080:80"]
    x-opskit: {config_template: nginx.conf.template}
"""

KONG_STACK = """\
x-opskit: {runtime: fake, state_dir: "{state}"}
services:
  kong:
    image: kong
    x-opskit:
      admin_url: "http://127.0.0.1:18001"
      status_url: "http://127.0.0.1:18100"
      process: {command: [kong, start]}
"""


def _nginx(write_stack, load, tmp_path, **script):
    (tmp_path / "nginx.conf.template").write_text("events {}\nhttp { server { listen 80; } }\n")
    stack = load(write_stack(NGINX_STACK))
    tested: list[list[str]] = []

    def nginx_binary(unit: FakeUnit, argv: list[str]) -> ExecResult:
        tested.append(argv)
        return script.pop("test_answer", None) or ExecResult(0, "")

    hups: list[signal.Signals] = []

    def on_signal(unit: FakeUnit, sig: signal.Signals) -> None:
        hups.append(sig)
        if script.get("applies_hup", True):
            unit.replace_workers()

    stack.runtime.play(
        "web",
        FakeService(
            workers=2,
            main_title="nginx: master process nginx -g daemon off;",
            worker_title="nginx: worker process",
            commands={"nginx": nginx_binary},
            on_signal=on_signal,
        ),
    )
    role = stack.role("web")
    role.unit.start(role.launch())
    return role, tested, hups


def test_a_reload_is_proven_by_new_workers_under_the_same_master(write_stack, load, tmp_path):
    role, tested, hups = _nginx(write_stack, load, tmp_path)
    master = role.unit.status().pid
    old = {p.pid for p in role.unit.processes() if p.pid != master}

    verdict = role.graceful_restart()

    assert verdict.ok, verdict.detail
    assert hups == [signal.SIGHUP]
    assert tested and tested[0][1] == "-t"  # nginx -t came first
    new = {p.pid for p in role.unit.processes() if p.pid != master}
    assert new and not new & old
    assert f"master {master} kept" in verdict.detail


def test_a_hup_nginx_could_not_apply_is_a_failure(write_stack, load, tmp_path, monkeypatch):
    monkeypatch.setattr(nginx, "RELOAD_WAIT", 0.3)
    role, _tested, hups = _nginx(write_stack, load, tmp_path, applies_hup=False)

    verdict = role.graceful_restart()

    assert not verdict.ok
    assert hups == [signal.SIGHUP]
    assert "workers did not change" in verdict.detail


def test_a_config_nginx_t_rejects_is_never_signalled_in(write_stack, load, tmp_path):
    rejected = ExecResult(1, 'nginx: [emerg] unknown directive "bogus" in nginx.conf:1')
    role, _tested, hups = _nginx(write_stack, load, tmp_path, test_answer=rejected)

    verdict = role.graceful_restart()

    assert not verdict.ok and "bogus" in verdict.detail and "no HUP sent" in verdict.detail
    assert hups == []


def test_without_a_master_among_its_processes_a_reload_cannot_be_verified(
    write_stack, load, tmp_path
):
    role, _tested, hups = _nginx(write_stack, load, tmp_path)
    role.unit.script.main_title = "something else"
    role.unit.stop(signal.SIGTERM, 1.0)
    role.unit.start(role.launch())

    verdict = role.graceful_restart()

    assert not verdict.ok and "cannot verify" in verdict.detail
    assert hups == []


@pytest.mark.parametrize(
    "answer, ok",
    [(ExecResult(0, "parse successful"), True), (ExecResult(1, "Error: bad plugin"), False)],
)
def test_kong_parses_in_a_scratch_folder_it_leaves_nowhere(write_stack, load, answer, ok):
    stack = load(write_stack(KONG_STACK))
    parsed: list[bytes] = []

    def kong(unit: FakeUnit, argv: list[str]) -> ExecResult:
        if argv[1:] == ["version"]:
            return ExecResult(0, "Kong 3.9.0")
        with unit.open_file(argv[3]) as handle:  # kong config parse PATH
            parsed.append(handle.read())
        return answer

    stack.runtime.play("kong", FakeService(commands={"kong": kong}))
    role = stack.role("kong")
    secret_config = (
        "_format_version: '3.0'\nconsumers: [{username: x, keyauth_credentials: [{key: s3cret}]}]\n"
    )

    verdict = role.parse_declarative(secret_config)

    assert verdict is not None and verdict.ok is ok
    assert parsed == [secret_config.encode()]
    assert role.unit.files == {}, "the file holding credentials was left behind"
