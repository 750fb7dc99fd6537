"""The nginx role: rendered config, ``nginx -t`` before start, QUIT to stop gracefully.

In the process runtime nginx runs in the foreground (``daemon off``) with its prefix under
``<state_dir>/nginx/<service>/``; ``x-opskit.config_template`` is rendered there first. The
template uses ``${NAME}`` for values from the service's environment — as the official nginx
image's envsubst does — and nginx's own variables stay ``$lowercase``. A ``${NAME}`` that the
environment does not define is a config error, not an empty string in a listen directive.
"""

from __future__ import annotations

import re
import signal
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import httpx

from opskit.errors import ConfigError
from opskit.files import atomic_write, private_dir
from opskit.services.base import Check, Probe, Role
from opskit.services.template import render_template

if TYPE_CHECKING:
    from opskit.config import ServiceSpec, StackConfig
    from opskit.runtime.base import Launch

# "2026/11/24 00:45:21 [emerg] 13111#13111: unknown directive" -> "[emerg] unknown directive"
_LOG_PREFIX = re.compile(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d (\[\w+\]) \d+#\d+: ")
_STUB_STATUS = re.compile(
    r"Active connections:\s*(\d+).*?\n\s*(\d+)\s+(\d+)\s+(\d+).*?Reading:\s*(\d+)"
    r"\s*Writing:\s*(\d+)\s*Waiting:\s*(\d+)",
    re.S,
)
CHAIN_PROBE_PATH = "/__opskit/chain-probe"
_TEMP_DIRS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


class NginxRole(Role):
    name: ClassVar[str] = "nginx"
    provides_process_command: ClassVar[bool] = True
    graceful_signal: ClassVar[signal.Signals] = signal.SIGQUIT

    @classmethod
    def check(cls, spec: ServiceSpec, config: StackConfig) -> None:
        super().check(spec, config)
        if config.runtime == "process" and not spec.options.get("config_template"):
            raise ConfigError(
                config.source,
                f"services.{spec.name}.x-opskit.config_template",
                "expected the path of an nginx.conf template for runtime 'process'",
            )

    @property
    def prefix(self) -> Path:
        return self.config.state_dir / "nginx" / self.spec.name

    @property
    def conf_path(self) -> Path:
        return self.prefix / "conf" / "nginx.conf"

    @property
    def template_path(self) -> Path:
        path = Path(str(self.spec.options["config_template"]))
        return path if path.is_absolute() else self.config.project_dir / path

    @property
    def binary(self) -> str:
        return self.spec.process.command[0] if self.spec.process.command else "nginx"

    def nginx_args(self) -> tuple[str, ...]:
        """Where our rendered config is; in a container nginx uses its own default paths."""
        if not self.unit.runs_on_host:
            return ()
        return ("-p", f"{self.prefix}/", "-c", str(self.conf_path), "-e", "stderr")

    # -- starting --------------------------------------------------------------------------------

    def launch(self) -> Launch:
        from opskit.runtime.base import Launch

        return Launch(argv=(self.binary, *self.nginx_args(), "-g", "daemon off;"))

    def render(self) -> str:
        return render_template(
            self.template_path,
            {**self.spec.environment, **self.spec.process.environment},
            f"services.{self.spec.name}.environment",
            self.config.source,
        )

    def prepare(self) -> None:
        if not self.unit.runs_on_host:
            return  # the container renders its own config
        for sub in ("conf", "logs", "tmp", *(f"tmp/{name}" for name in _TEMP_DIRS)):
            private_dir(self.prefix / sub)
        atomic_write(self.conf_path, self.render())

    def preflight(self) -> list[str]:
        """``nginx -t`` on the rendered config, so a typo fails before anything starts."""
        if not self.unit.runs_on_host:
            return []  # no container to exec in yet; the start gate sees a bad config exit
        ok, output = self.test_config()
        if ok:
            return []
        return [f"{self.spec.name}: nginx -t failed: {output}"]

    def test_config(self) -> tuple[bool, str]:
        result = self.unit.exec([self.binary, "-t", "-q", *self.nginx_args(), "-g", "daemon off;"])
        lines = [_LOG_PREFIX.sub(r"\1 ", line) for line in result.output.splitlines()]
        problems = [line for line in lines if "[emerg]" in line or "[alert]" in line]
        return result.exit_code == 0, " | ".join(problems or [line for line in lines if line][-2:])

    def probe_ready(self) -> Probe:
        host, port = self.address()
        path = self.spec.options.get("health_path", "/health")
        return self.probe_http(f"http://{host}:{port}{path}")

    # -- health ---------------------------------------------------------------------------------

    def health_checks(self) -> list[Check]:
        host, port = self.address()
        base = f"http://{host}:{port}"
        checks = [
            self.http_check("health", base + self.spec.options.get("health_path", "/health")),
            Check("stub_status", lambda: self.check_stub_status(base)),
            Check("config", self.check_config),
        ]
        if self.spec.options.get("proxies_to") == "kong":
            checks.append(Check("reaches_kong", lambda: self.check_reaches_kong(base)))
        return checks

    def check_stub_status(self, base: str) -> tuple[str, str]:
        path = self.spec.options.get("status_path", "/nginx_status")
        try:
            response = self.http().get(base + path)
        except httpx.HTTPError as exc:
            return "CRITICAL", f"GET {path}: {type(exc).__name__}"
        match = _STUB_STATUS.search(response.text) if response.status_code == 200 else None
        if not match:
            return "WARNING", f"GET {path}: HTTP {response.status_code}, no stub_status output"
        active, accepts, handled, requests, reading, writing, waiting = map(int, match.groups())
        detail = (
            f"{active} active ({reading} reading, {writing} writing, {waiting} waiting), "
            f"{requests} requests"
        )
        if handled < accepts:
            return "WARNING", f"{detail}; {accepts - handled} connections dropped (limits hit)"
        return "OK", detail

    def check_config(self) -> tuple[str, str]:
        ok, output = self.test_config()
        return ("OK", "nginx -t: syntax ok") if ok else ("CRITICAL", f"nginx -t failed: {output}")

    def check_reaches_kong(self, base: str) -> tuple[str, str]:
        """A request through nginx must come back from Kong (its 404 counts): /health is static."""
        url = base + self.spec.options.get("chain_path", CHAIN_PROBE_PATH)
        try:
            response = self.http().get(url)
        except httpx.HTTPError as exc:
            return "CRITICAL", f"GET {url}: {type(exc).__name__}"
        headers = response.headers
        from_kong = any(name.lower().startswith("x-kong-") for name in headers) or any(
            "kong" in headers.get(name, "").lower() for name in ("via", "server")
        )
        if response.status_code in (502, 503, 504) and not from_kong:
            return "CRITICAL", f"nginx answered {response.status_code}: Kong is not reachable"
        if not from_kong:
            return "CRITICAL", f"HTTP {response.status_code} without Kong's headers: not via Kong"
        return "OK", f"request through nginx answered by Kong (HTTP {response.status_code})"
