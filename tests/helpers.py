"""Small real services for lifecycle tests, written as stack-file snippets."""

from __future__ import annotations

import io
import json
import time
from dataclasses import asdict, is_dataclass
from pathlib import Path

import zstandard

from .conftest import PYTHON, free_port


def http_service(name: str, depends_on: list[str] | None = None, **extra: str) -> tuple[str, int]:
    """A real HTTP server (python -m http.server) on a free port, probed by the http role."""
    port = free_port()
    lines = [
        f"  {name}:",
        "    image: example/http",
        f'    ports: ["{port}:{port}"]',
        "    stop_grace_period: 5s",
    ]
    if depends_on:
        lines.append(f"    depends_on: {json.dumps(depends_on)}")
    options = {
        "role": "http",
        "url": f"http://127.0.0.1:{port}/",
        "process": {"command": [PYTHON, "-m", "http.server", str(port), "--bind", "127.0.0.1"]},
        **extra,
    }
    lines.append(f"    x-opskit: {json.dumps(options)}")
    return "\n".join(lines), port


def script_service(
    name: str, code: str, url: str | None = None, args: tuple[str, ...] = (), **fields: object
) -> str:
    """A python -c script as a service; ``fields`` are Compose keys, x-opskit via ``x``."""
    extension = dict(fields.pop("x", {}))
    extension.setdefault("role", "http")
    if url:
        extension["url"] = url
    extension["process"] = {"command": [PYTHON, "-u", "-c", code, *args]}
    lines = [f"  {name}:", "    image: example/script"]
    lines += [f"    {key}: {json.dumps(value)}" for key, value in fields.items()]
    lines.append(f"    x-opskit: {json.dumps(extension)}")
    return "\n".join(lines)


def stack_text(*services: str) -> str:
    head = 'x-opskit: {runtime: process, state_dir: "{state}"}\nservices:\n'
    return head + "\n".join(services) + "\n"


def redis_service(port: int, password: str, **options: str) -> str:
    """The redis role on ``port`` (process runtime feeds the config on stdin)."""
    extension = {"password": password, **options}
    return (
        f'  redis:\n    image: redis:7\n    ports: ["{port}:6379"]\n'
        f"    x-opskit: {json.dumps(extension)}"
    )


def wait_for_log_line(unit, prefix: str, timeout: float = 5.0) -> str:
    """The first recent log line of ``unit`` starting with ``prefix``, waiting for it to appear."""
    deadline = time.monotonic() + timeout
    while True:
        for line in unit.log_tail(20):
            if line.startswith(prefix):
                return line
        assert time.monotonic() < deadline, f"no log line starting with {prefix!r}"
        time.sleep(0.02)


_EXIT_OF = {"OK": 0, "WARNING": 1, "CRITICAL": 2, "UNKNOWN": 3}


def assert_healthy(checks) -> int:
    """Every check of the stack OK. The host's own checks (load, memory, disk) belong to the
    machine running the tests — a loaded CI box may make them WARNING or even CRITICAL, and
    opskit is right to say so — so they are left out of the assertion but not of the exit
    code this returns for the caller to compare with what it got."""
    items = [asdict(c) if is_dataclass(c) else c for c in checks]
    bad = [c for c in items if _status(c) != "OK" and c["service"] != "host"]
    assert not bad, bad
    statuses = {_status(c) for c in items}
    for status in ("CRITICAL", "UNKNOWN", "WARNING"):  # the report's own precedence
        if status in statuses:
            return _EXIT_OF[status]
    return 0


def _status(check) -> str:
    status = check["status"]
    return getattr(status, "value", status)


class Receiver:
    """A real HTTP server on a free port that records every JSON body POSTed to it — the
    webhook end of an alert. ``fail_next`` answers that many requests with 500 first."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.bodies: list[tuple[str, object]] = []
        self.fail_next = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if receiver.fail_next > 0:
                    receiver.fail_next -= 1
                    self.send_response(500)
                    self.end_headers()
                    return
                receiver.bodies.append((self.path, json.loads(raw or b"null")))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *_args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def titles(self, path: str = "/hook") -> list[str]:
        return [body["title"] for where, body in self.bodies if where == path]

    def wait_for(self, predicate, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self.bodies):
                return True
            time.sleep(0.05)
        return False

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# -- backups edited behind their seal (someone holding the stack's key) -----------------------


def write_sealed(stack, folder: Path, manifest: dict) -> None:
    """manifest.json as someone holding the stack's key would write it: damage that only the
    content checks behind the seal can find."""
    from opskit.backup.seal import seal
    from opskit.ops.backup import seal_key

    manifest["seal"] = seal(manifest, seal_key(stack))
    (folder / "manifest.json").write_text(json.dumps(manifest))


def reseal(stack, folder: Path, member: str) -> None:
    """Rewrite the manifest entry of ``member`` so its size and SHA-256 match again, and seal
    it with the stack's key."""
    import hashlib

    manifest = json.loads((folder / "manifest.json").read_text())
    data = (folder / member).read_bytes()
    for entry in manifest["files"]:
        if entry["path"] == member:
            entry["size"], entry["sha256"] = len(data), hashlib.sha256(data).hexdigest()
            raw = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read()
            entry["raw_size"] = len(raw)
    write_sealed(stack, folder, manifest)
