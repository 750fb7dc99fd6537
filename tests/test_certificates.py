"""TLS certificates checked before they expire: nginx's ``ssl_certificate`` files (real nginx,
real handshakes), Kong's configured certificates and the TLS endpoints its services point at
(a local TLS server). Certificates are made by the tests — expired, 5 days, 15 days, 60 days,
and one for another host — and nothing beyond loopback is contacted."""

from __future__ import annotations

import ssl
import threading
from pathlib import Path

import pytest
import yaml

from opskit.ops import lifecycle
from opskit.ops.health import run_health
from opskit.ops.metrics import gather
from opskit.services.certificates import from_pem, hostname_matches, nginx_certificates
from opskit.vocabulary import CheckStatus

from .conftest import free_port
from .pki import make_certificate


@pytest.mark.parametrize(
    ("days", "host", "served_for", "status", "says"),
    [
        (60, "api.test", "api.test", CheckStatus.OK, "60 days left"),
        (15, "api.test", "api.test", CheckStatus.WARNING, "15 days left"),
        (5, "api.test", "api.test", CheckStatus.CRITICAL, "5 days left"),
        (-3, "api.test", "api.test", CheckStatus.CRITICAL, "EXPIRED on"),
        (60, "other.test", "api.test", CheckStatus.CRITICAL, "does not name api.test"),
        (60, "*.example.test", "api.example.test", CheckStatus.OK, "60 days left"),
    ],
)
def test_a_certificate_is_judged_by_days_left_and_its_hostname(
    tmp_path, days, host, served_for, status, says
):
    cert, _key = make_certificate(tmp_path, "c", host, days + 0.5)
    info = from_pem(str(cert), cert.read_bytes(), served_for)
    verdict, detail = info.verdict()
    assert verdict is status and says in detail, detail


def test_wildcards_match_one_label_only():
    assert hostname_matches("a.example.test", ["*.example.test"])
    assert not hostname_matches("example.test", ["*.example.test"])
    assert not hostname_matches("a.b.example.test", ["*.example.test"])
    assert hostname_matches("127.0.0.1", ["127.0.0.1"])
    assert not hostname_matches("127.0.0.2", ["127.0.0.1"])


def test_nginx_dump_gives_each_certificate_with_its_server_name():
    files = {
        "/etc/nginx/nginx.conf": (
            "http {\n  ssl_certificate /etc/tls/default.pem;  # every server's\n"
            "  server { listen 443 ssl; server_name api.test www.api.test;\n"
            "    ssl_certificate tls/api.pem; location / { return 200; } }\n"
            "  server { server_name _; ssl_certificate /etc/tls/catchall.pem; }\n"
            "  server { server_name ~^(.+)\\.test$; ssl_certificate $dynamic; }\n}\n"
        )
    }
    assert nginx_certificates(files) == [
        ("/etc/tls/default.pem", None),
        ("tls/api.pem", "api.test"),
        ("/etc/tls/catchall.pem", None),
    ]


def _nginx_stack(write_stack, load, tmp_path, servers: list[tuple[int, str, Path, Path]]):
    blocks = "".join(
        f"  server {{ listen 127.0.0.1:{port} ssl; server_name {name};\n"
        f"    ssl_certificate {cert}; ssl_certificate_key {key};\n"
        "    location / { return 200 'ok'; } }\n"
        for port, name, cert, key in servers
    )
    web = free_port()
    template = tmp_path / "nginx.conf.template"
    template.write_text(
        "worker_processes 1; pid nginx.pid; error_log logs/error.log info;\n"
        "events {}\nhttp {\n"
        "  client_body_temp_path tmp/client_body; proxy_temp_path tmp/proxy;\n"
        "  fastcgi_temp_path tmp/fastcgi; uwsgi_temp_path tmp/uwsgi; scgi_temp_path tmp/scgi;\n"
        f"  server {{ listen 127.0.0.1:{web}; location / {{ return 200 'ok'; }} }}\n"
        f"{blocks}}}\n"
    )
    path = write_stack(
        f"""
        x-opskit: {{runtime: process, state_dir: "{{state}}"}}
        services:
          web:
            image: nginx
            ports: ["{web}:{web}"]
            x-opskit: {{role: nginx, config_template: {template}, health_path: /}}
        """
    )
    stack = load(path)
    assert lifecycle.start(stack).ok
    return stack


def test_nginx_certificates_expired_soon_and_wrong_host_are_critical(write_stack, load, tmp_path):
    made = {
        "good": make_certificate(tmp_path, "good", "good.test", 60.5),
        "soon": make_certificate(tmp_path, "soon", "soon.test", 5.5),
        "old": make_certificate(tmp_path, "old", "old.test", -2),
        "wrong": make_certificate(tmp_path, "wrong", "other.test", 60.5),
    }
    ports = {name: free_port() for name in made}
    servers = [
        (ports["good"], "good.test", *made["good"]),
        (ports["soon"], "soon.test", *made["soon"]),
        (ports["old"], "old.test", *made["old"]),
        (ports["wrong"], "wrong.test", *made["wrong"]),
    ]
    stack = _nginx_stack(write_stack, load, tmp_path, servers)
    # nginx really serves them (an expired certificate loads: only clients refuse it)
    served = ssl.get_server_certificate(("127.0.0.1", ports["old"]))
    assert served.strip() == made["old"][0].read_text().strip()

    check = {c.name: c for c in run_health(stack, ["web"]).checks}["certificates"]
    assert check.status is CheckStatus.CRITICAL, check.detail
    assert "old.pem: EXPIRED on" in check.detail
    assert "soon.pem: 5 days left" in check.detail
    assert "wrong.pem: does not name wrong.test (it names other.test)" in check.detail
    assert "good.pem" not in check.detail  # only the ones that are not OK are named

    expiry = {
        dict(v.labels)["certificate"]: v.value
        for v in gather(stack)
        if v.name == "certificate_expiry_timestamp_seconds"
    }
    assert set(expiry) == {str(made[name][0]) for name in made}
    good = from_pem("x", made["good"][0].read_bytes())
    assert expiry[str(made["good"][0])] == good.not_after
    host_ok = {
        dict(v.labels)["certificate"]: v.value
        for v in gather(stack)
        if v.name == "certificate_hostname_ok"
    }
    assert host_ok[str(made["wrong"][0])] == 0.0 and host_ok[str(made["good"][0])] == 1.0


def test_nginx_with_good_certificates_only_is_ok(write_stack, load, tmp_path):
    cert, key = make_certificate(tmp_path, "good", "good.test", 90.5)
    stack = _nginx_stack(write_stack, load, tmp_path, [(free_port(), "good.test", cert, key)])
    check = {c.name: c for c in run_health(stack, ["web"]).checks}["certificates"]
    assert check.status is CheckStatus.OK and "90 days left" in check.detail, check.detail


class TLSServer:
    """A TLS server on loopback that serves ``cert`` and closes each connection."""

    def __init__(self, cert: Path, key: Path):
        import socket

        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                raw, _ = self.listener.accept()
            except OSError:
                return
            try:
                with self.context.wrap_socket(raw, server_side=True) as tls:
                    tls.recv(1)
            except (OSError, ssl.SSLError):
                pass

    def close(self) -> None:
        self.listener.close()


def test_kong_certificates_and_its_tls_upstreams_are_checked(kong_stack, tmp_path):
    served_cert, served_key = make_certificate(tmp_path, "upstream", "127.0.0.1", 5.5)
    server = TLSServer(served_cert, served_key)
    try:
        configured, _key = make_certificate(tmp_path, "site", "site.test", 60.5)
        kong = kong_stack.role("kong")
        document = yaml.safe_load(kong.export_config())
        document["services"].append(
            {"name": "tls-upstream", "protocol": "https", "host": "127.0.0.1",
             "port": server.port}
        )  # fmt: skip
        document["certificates"] = [
            {
                "cert": configured.read_text(),
                "key": _key.read_text(),
                "snis": [{"name": "site.test"}],
            }
        ]
        assert kong.apply_config(yaml.safe_dump(document)).status == 201
        kong.__dict__.pop("_certificates", None)
        check = {c.name: c for c in run_health(kong_stack, ["kong"]).checks}["certificates"]
        assert check.status is CheckStatus.CRITICAL, check.detail
        assert f"https://127.0.0.1:{server.port}: 5 days left" in check.detail
        assert "certificates[0]" not in check.detail  # 60 days: fine
        infos = {c.where: c for c in kong.certificates()}
        assert infos["certificates[0]"].host == "site.test" and infos["certificates[0]"].host_ok
    finally:
        server.close()
