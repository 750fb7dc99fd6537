"""graceful-restart of a stateless service behind an nginx front: a relief instance takes over.

Real nginx, real HTTP servers, real sockets. What an operator relies on: no request through the
front fails while the backend restarts; the front's configuration ends byte-identical; a relief
that never becomes ready changes nothing; an operation killed half-way is finished by the next
one (or by ``inv stop``), never leaving a stray instance; without a front it is refused, saying
what would make it possible.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import httpx
import pytest

from opskit.ops import lifecycle
from opskit.ops.graceful import graceful_restart
from opskit.services.nginx.upstream import loaded_files, servers_of, with_servers
from opskit.vocabulary import StepOutcome

from .conftest import PYTHON, inv_process, run_inv
from .helpers import free_port, stack_text

pytestmark = pytest.mark.timeout(180)

#: A backend stand-in: serves 200 on any GET at $PORT, slowly enough to be in flight at a switch.
APP = (
    "import http.server, os, time\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    protocol_version = 'HTTP/1.1'\n"
    "    def do_GET(self):\n"
    "        time.sleep(0.02)\n"
    "        body = str(os.getpid()).encode()\n"
    "        self.send_response(200)\n"
    "        self.send_header('Content-Length', str(len(body)))\n"
    "        self.end_headers()\n"
    "        self.wfile.write(body)\n"
    "    def log_message(self, *a): pass\n"
    "http.server.ThreadingHTTPServer(('127.0.0.1', int(os.environ['PORT'])), H)"
    ".serve_forever()\n"
)

FRONT = """worker_processes 1;
pid nginx.pid;
error_log stderr notice;
events {}
http {
    include upstreams.conf;
    server {
        listen 127.0.0.1:${LISTEN};
        location / { proxy_pass http://app; proxy_http_version 1.1;
                     proxy_set_header Connection ""; proxy_next_upstream error timeout; }
    }
}
"""

UPSTREAMS = """# operator's file: comments and other directives survive a switch and its undo
upstream app {
    server 127.0.0.1:${APP_PORT} max_fails=0;   # the backend
    keepalive 8;
}
"""


def _stack(write_stack, tmp_path, *, front: bool = True, port_env: str = "PORT"):
    app_port, front_port = free_port(), free_port()
    conf = tmp_path / "conf"
    conf.mkdir(exist_ok=True)
    (conf / "front.conf.template").write_text(FRONT)
    services = [
        "  app:\n    image: example/app\n"
        f'    ports: ["127.0.0.1:{app_port}:{app_port}"]\n'
        f"    environment: {{PORT: '{app_port}'}}\n"
        "    stop_grace_period: 5s\n"
        "    x-opskit: "
        + json.dumps(
            {
                "role": "backend",
                "health_path": "/",
                "ready_path": "/",
                "port_env": port_env,
                "process": {"command": [PYTHON, "-u", "-c", APP]},
            }
        )
    ]
    if front:
        services.append(
            "  front:\n    image: nginx\n"
            f'    ports: ["127.0.0.1:{front_port}:{front_port}"]\n'
            f"    environment: {{LISTEN: '{front_port}'}}\n"
            "    depends_on: [app]\n"
            "    stop_grace_period: 5s\n"
            "    x-opskit: "
            + json.dumps(
                {
                    "config_template": "conf/front.conf.template",
                    "fronts": "app",
                    "fronts_upstream": "app",
                }
            )
        )
    path = write_stack(stack_text(*services))
    return path, app_port, front_port


def _place_upstreams(stack, app_port: int) -> bytes:
    """The included file sits beside the rendered nginx.conf, as an operator's conf.d would."""
    role = stack.role("front")
    role.prepare()
    data = UPSTREAMS.replace("${APP_PORT}", str(app_port)).encode()
    (role.conf_path.parent / "upstreams.conf").write_bytes(data)
    return data


def _started(write_stack, load, tmp_path, **kwargs):
    path, app_port, front_port = _stack(write_stack, tmp_path, **kwargs)
    stack = load(path)
    original = _place_upstreams(stack, app_port) if "front" in stack.services else b""
    assert lifecycle.start(stack).ok
    return stack, path, front_port, original


class Load:
    """GETs through the front from two threads until stopped; counts every failure.

    Each request on a new connection: an nginx reload closes its old workers' *idle*
    keep-alive connections, and a request a client sends on one at that very instant is reset
    — nginx's behaviour on any reload, which clients answer by retrying on a new connection.
    What this counts is what the switch itself costs.
    """

    def __init__(self, url: str) -> None:
        self.url, self.ok, self.failures = url, 0, []
        self.pids: set[str] = set()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(2)]

    def _run(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self._stop.is_set():
                try:
                    answer = client.get(self.url, headers={"Connection": "close"})
                    if answer.status_code == 200:
                        self.ok += 1
                        self.pids.add(answer.text)
                    else:
                        self.failures.append(answer.status_code)
                except httpx.HTTPError as exc:
                    self.failures.append(repr(exc))

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=15)


def test_the_backend_restarts_behind_its_front_without_a_failed_request(
    write_stack, load, tmp_path
):
    stack, _path, front_port, original = _started(write_stack, load, tmp_path)
    old_pid = stack.role("app").unit.status().pid
    included = stack.role("front").conf_path.parent / "upstreams.conf"
    with Load(f"http://127.0.0.1:{front_port}/") as traffic:
        time.sleep(0.5)
        result = graceful_restart(stack, ["app"])
        time.sleep(0.5)
    assert result.ok, result.outcomes
    assert traffic.failures == [] and traffic.ok > 20, (traffic.ok, traffic.failures[:5])
    new_pid = stack.role("app").unit.status().pid
    assert new_pid != old_pid
    # Three processes answered: the old backend, the relief, the new backend.
    assert {str(old_pid), str(new_pid)} < traffic.pids and len(traffic.pids) == 3
    assert included.read_bytes() == original  # the operator's include, byte for byte
    assert not (stack.state_dir / "relief" / "app.json").exists()
    assert "took its requests" in result.outcome("app").detail


def test_a_relief_that_never_becomes_ready_changes_nothing(write_stack, load, tmp_path):
    # The relief is told its port through a variable the app ignores: it binds the backend's
    # own port, fails, and exits — a real failed start.
    stack, _path, _port, original = _started(write_stack, load, tmp_path, port_env="NOT_USED")
    pid = stack.role("app").unit.status().pid
    result = graceful_restart(stack, ["app"])
    step = result.outcome("app")
    assert step.state is StepOutcome.FAILED
    assert "relief instance did not become ready" in step.detail and "left as it was" in step.detail
    assert stack.role("app").unit.status().pid == pid
    assert (stack.role("front").conf_path.parent / "upstreams.conf").read_bytes() == original
    assert not (stack.state_dir / "relief" / "app.json").exists()


def _kill_mid_switch(path, stack) -> None:
    """Run graceful-restart in its own process and SIGKILL it once the front points at the
    relief (the journal and the kept original exist): the worst moment to die."""
    runner = inv_process(
        {"PATH": os.environ["PATH"]}, "graceful-restart", "-f", str(path), "-s", "app"
    )
    kept = stack.role("front").prefix / "edits" / "upstream-app.json"
    try:
        deadline = time.monotonic() + 30
        while not kept.exists():
            assert time.monotonic() < deadline and runner.poll() is None, runner.poll()
            time.sleep(0.005)
        runner.send_signal(signal.SIGKILL)
        runner.wait(timeout=10)
    finally:
        if runner.poll() is None:
            runner.kill()


def _relief_unit(stack):
    journal = json.loads((stack.state_dir / "relief" / "app.json").read_text())
    role = stack.role("app")
    return stack.role_for(role.relief_spec(journal["port"]), role.options).unit


def test_a_killed_graceful_restart_is_finished_by_the_next_one(write_stack, load, tmp_path):
    stack, path, front_port, original = _started(write_stack, load, tmp_path)
    included = stack.role("front").conf_path.parent / "upstreams.conf"
    _kill_mid_switch(path, stack)
    relief = _relief_unit(stack)
    assert relief.status().running  # left serving: requests still get an answer
    assert httpx.get(f"http://127.0.0.1:{front_port}/", timeout=5).status_code == 200

    again = run_inv({"PATH": os.environ["PATH"]}, "graceful-restart", "-f", str(path), "-s", "app")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "finished an interrupted graceful restart" in again.stdout.replace("\n", " ")
    assert not relief.status().running
    assert included.read_bytes() == original


def test_inv_stop_stops_a_relief_an_interrupted_restart_left(write_stack, load, tmp_path):
    stack, path, _port, _original = _started(write_stack, load, tmp_path)
    _kill_mid_switch(path, stack)
    relief = _relief_unit(stack)
    assert relief.status().running
    stopped = run_inv({"PATH": os.environ["PATH"]}, "stop", "-f", str(path))
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert not relief.status().running
    assert not (stack.state_dir / "relief" / "app.json").exists()


def test_without_a_front_it_is_refused_saying_what_would_make_it_possible(
    write_stack, load, tmp_path
):
    stack, path, _port, _original = _started(write_stack, load, tmp_path, front=False)
    pid = stack.role("app").unit.status().pid
    refused = run_inv(
        {"PATH": os.environ["PATH"], "COLUMNS": "400"},
        "graceful-restart",
        "-f",
        str(path),
        "-s",
        "app",
    )
    assert refused.returncode == 1
    text = " ".join(refused.stdout.split())
    assert "cannot restart without downtime" in text and "x-opskit.fronts: app" in text
    assert stack.role("app").unit.status().pid == pid


def test_fronts_must_name_another_service(write_stack, tmp_path):
    path, _a, _f = _stack(write_stack, tmp_path)
    path.write_text(path.read_text().replace('"fronts": "app"', '"fronts": "ap"'))
    done = run_inv({"PATH": os.environ["PATH"]}, "status", "-f", str(path))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "services.front.x-opskit.fronts" in lines[0], lines
    assert "expected another service of this stack, got 'ap'" in lines[0]


def test_switching_servers_keeps_the_rest_of_the_block():
    text = "http {\n  upstream app {\n    zone z 64k;\n    server a:1;\n    server b:2 backup;\n"
    text += "    keepalive 4;\n  }\n  upstream other { server c:3; }\n}\n"
    switched = with_servers(text, "app", ["r:9"])
    assert servers_of(switched, "app") == ["r:9"]
    assert servers_of(switched, "other") == ["c:3"]
    assert "zone z 64k;" in switched and "keepalive 4;" in switched
    dump = "# configuration file /etc/nginx/nginx.conf:\nhttp {}\n\n"
    dump += "# configuration file /etc/nginx/conf.d/up.conf:\n" + text
    files = loaded_files(dump)
    assert [f.path for f in files] == ["/etc/nginx/nginx.conf", "/etc/nginx/conf.d/up.conf"]
    assert servers_of(files[1].text, "app") == ["a:1", "b:2 backup"]


def test_the_sandbox_backend_restarts_behind_its_front_on_both_runtimes(sandbox_stack):
    stack = sandbox_stack
    assert lifecycle.start(stack).ok
    front = stack.role("front")
    conf = str(front.conf_path) if front.unit.follows_launch else "/etc/nginx/nginx.conf"
    with front.unit.open_file(conf) as handle:
        before = handle.read()
    old = stack.role("backend").unit.status().pid
    with Load(front.entry_url("/health/ready")) as traffic:
        time.sleep(0.5)
        result = graceful_restart(stack, ["backend"])
        time.sleep(0.5)
    assert result.ok, result.outcomes
    assert traffic.failures == [] and traffic.ok > 20, (traffic.ok, traffic.failures[:5])
    assert stack.role("backend").unit.status().pid != old
    with front.unit.open_file(conf) as handle:
        assert handle.read() == before
    relief = stack.role_for(stack.role("backend").relief_spec(1), None).unit
    assert not relief.status().running
    if not relief.follows_launch:  # the relief container is removed, not left stopped
        assert relief.container() is None
