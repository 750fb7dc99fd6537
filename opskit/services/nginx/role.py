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
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, ClassVar

from opskit.config import ServiceSpec, StackConfig
from opskit.errors import ConfigError, OpskitError
from opskit.files import atomic_write, private_dir
from opskit.options import OptionReader
from opskit.services.base import Check, CheckOutcome, Probe, Role
from opskit.services.capabilities import (
    LogSource,
    MetricType,
    MetricValue,
    RequestRecord,
    RestorePlan,
    Traffic,
    Verdict,
)
from opskit.services.probes import ProbeError
from opskit.vocabulary import CheckStatus

if TYPE_CHECKING:
    from opskit.backup.artifacts import ArtifactReader, ServiceArtifacts
    from opskit.runtime.base import Launch, OutputCursor, UnitProcess
    from opskit.services.certificates import CertificateInfo
    from opskit.services.nginx.backup import NginxBackup
    from opskit.services.nginx.upstream import UpstreamEditor

# "2026/11/24 00:45:21 [emerg] 13111#13111: unknown directive" -> "[emerg] unknown directive"
_LOG_PREFIX = re.compile(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d (\[\w+\]) \d+#\d+: ")
_STUB_STATUS = re.compile(
    r"Active connections:\s*(\d+).*?\n\s*(\d+)\s+(\d+)\s+(\d+).*?Reading:\s*(\d+)"
    r"\s*Writing:\s*(\d+)\s*Waiting:\s*(\d+)",
    re.S,
)
CHAIN_PROBE_PATH = "/__opskit/chain-probe"
CERTIFICATE_CACHE = 300.0  # seconds
_LOG_DIRECTIVE = re.compile(r"(?:^|[;{}])[ \t]*(access_log|error_log)\s+([^\s;]+)", re.M)
_NOT_FILES = {"off", "stderr", "stdout"}
_TEMP_DIRS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


@dataclass(frozen=True)
class NginxOptions:
    config_template: Path | None = None
    health_path: str = "/health"
    status_path: str = "/nginx_status"
    chain_path: str = CHAIN_PROBE_PATH
    proxies_to: str | None = None  # "kong": health also proves a request reaches Kong
    fronts: str | None = None  # a service nginx sends requests to through an upstream block
    fronts_upstream: str | None = None  # that block's name (default: the service's name)


class NginxRole(Role):
    """nginx: also a ConfigValidating, Reloadable and EntryPoint capability."""

    name: ClassVar[str] = "nginx"
    provides_process_command: ClassVar[bool] = True
    graceful_signal: ClassVar[signal.Signals] = signal.SIGQUIT
    outage_impact: ClassVar[str] = "no client request reaches Kong"
    options: NginxOptions

    @classmethod
    def read_options(
        cls, reader: OptionReader, spec: ServiceSpec, config: StackConfig
    ) -> NginxOptions:
        template = reader.existing_path("config_template")
        if template is None and config.runtime.follows_launch:
            raise ConfigError(
                config.source,
                f"services.{spec.name}.x-opskit.config_template",
                f"expected the path of an nginx.conf template for runtime '{config.runtime}'",
            )
        proxies_to = reader.string("proxies_to")
        if proxies_to not in (None, "kong"):
            raise reader.fail("proxies_to", f"expected 'kong' or nothing, got {proxies_to!r}")
        fronts = reader.string("fronts")
        if fronts is not None and (fronts not in config.services or fronts == spec.name):
            raise reader.fail("fronts", f"expected another service of this stack, got {fronts!r}")
        return NginxOptions(
            fronts=fronts,
            fronts_upstream=reader.string("fronts_upstream") or fronts,
            config_template=template,
            health_path=reader.url_path("health_path", NginxOptions.health_path),
            status_path=reader.url_path("status_path", NginxOptions.status_path),
            chain_path=reader.url_path("chain_path", NginxOptions.chain_path),
            proxies_to=proxies_to,
        )

    @property
    def prefix(self) -> Path:
        return self.config.state_dir / "nginx" / self.spec.name

    @property
    def conf_path(self) -> Path:
        return self.prefix / "conf" / "nginx.conf"

    @property
    def template_path(self) -> Path:
        assert self.options.config_template is not None
        return self.options.config_template

    @property
    def binary(self) -> str:
        return self.spec.process.command[0] if self.spec.process.command else "nginx"

    @property
    def renders_config(self) -> bool:
        """opskit renders the nginx.conf this nginx loads (its unit runs the role's launch);
        a container's nginx uses its image's own configuration and paths."""
        return self.unit.follows_launch

    def nginx_args(self) -> tuple[str, ...]:
        """Where our rendered config is; a container's nginx uses its image's own paths."""
        if not self.renders_config:
            return ()
        return ("-p", f"{self.prefix}/", "-c", str(self.conf_path), "-e", "stderr")

    # -- starting --------------------------------------------------------------------------------

    def launch(self) -> Launch:
        from opskit.runtime.base import Launch

        return Launch(argv=(self.binary, *self.nginx_args(), "-g", "daemon off;"))

    def render(self) -> str:
        return self.render_template(self.template_path)

    def prepare(self) -> None:
        if not self.renders_config:
            return  # the container's image brings its own config
        for sub in ("conf", "logs", "tmp", *(f"tmp/{name}" for name in _TEMP_DIRS)):
            private_dir(self.prefix / sub)
        atomic_write(self.conf_path, self.render())
        if self.options.fronts_upstream:
            self.upstream_editor().forget()  # a fresh render: no switched upstream to restore

    def preflight(self) -> list[str]:
        """``nginx -t`` on the rendered config, so a typo fails before anything starts."""
        if not self.renders_config:
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
        return self.probe_http(self.base_url() + self.options.health_path)

    # -- capabilities --------------------------------------------------------------------------

    def validate_config(self) -> Verdict:
        """``nginx -t`` on the configuration nginx would load next (re-rendered first)."""
        self.prepare()
        ok, output = self.test_config()
        return Verdict(ok, "nginx -t: syntax ok" if ok else f"nginx -t failed: {output}")

    def reload(self) -> Verdict:
        """``nginx -t``, then HUP: a config nginx rejects is never signalled in."""
        verdict = self.validate_config()
        if not verdict.ok:
            return verdict
        if not self.unit.send_signal(signal.SIGHUP):
            return Verdict(False, "nginx is not running")
        return Verdict(True, "nginx -t ok; HUP sent: workers reload the configuration")

    def graceful_restart(self) -> Verdict:
        """``nginx -t`` (abort with its message), HUP, then proof: the same master and a new set
        of workers. nginx keeps its old workers when it cannot apply a configuration at HUP (a
        port it cannot bind, a file it cannot open): "HUP sent" alone proves nothing."""
        verdict = self.validate_config()
        if not verdict.ok:
            return Verdict(False, f"{verdict.detail}; no HUP sent")
        return self._reload_verified().verdict

    def _reload_verified(self) -> _Reload:
        """HUP the running configuration in and prove the workers were replaced: the unit's
        own process list (a process tree on the host, ``docker top`` of a container or of this
        node's Swarm task) shows the same master with new workers under it."""
        from opskit.polling import deadline_in, poll_until

        master, before = _master_and_workers(self.unit.processes())
        if master is None:
            why = "no nginx master process among the unit's processes: cannot verify"
            return _Reload(Verdict(False, why), set())
        if not self.unit.send_signal(signal.SIGHUP):
            return _Reload(Verdict(False, "nginx is not running"), before)

        def reloaded() -> bool | None:  # new workers exist; old ones may still be draining
            now, workers = _master_and_workers(self.unit.processes())
            return True if now == master and workers - before else None

        done = poll_until(reloaded, deadline_in(RELOAD_WAIT), first=0.01, cap=0.05)
        now, workers = _master_and_workers(self.unit.processes())
        if now != master:
            why = f"nginx's master changed during the reload (was pid {master})"
            return _Reload(Verdict(False, why), before)
        if not done:
            tail = " | ".join(self.unit.log_tail(3))
            return _Reload(
                Verdict(
                    False,
                    f"HUP sent but the workers did not change within {RELOAD_WAIT:g}s: nginx "
                    f"kept its old configuration ({tail})",
                ),
                before,
            )
        old = ", ".join(map(str, sorted(before)))
        new = ", ".join(map(str, sorted(workers - before)))
        detail = f"nginx -t ok; HUP: master {master} kept, new workers {new} (old {old} drain)"
        return _Reload(Verdict(True, detail), before, master)

    # -- fronting a service (capabilities.UpstreamSwitching) -----------------------------------

    @property
    def fronted_service(self) -> str | None:
        return self.options.fronts

    def upstream_editor(self) -> UpstreamEditor:
        from opskit.services.nginx.upstream import UpstreamEditor  # graceful restarts only

        assert self.options.fronts_upstream is not None
        return UpstreamEditor(
            self.unit, self.options.fronts_upstream, self.prefix / "edits", self.dump_config
        )

    def dump_config(self) -> str:
        """``nginx -T``: every file of the configuration nginx loads, with its path."""
        result = self.unit.exec([self.binary, "-T", *self.nginx_args(), "-g", "daemon off;"])
        if result.exit_code != 0:
            raise OpskitError(f"{self.spec.name}: nginx -T failed: {result.output.strip()[-300:]}")
        return result.output

    def log_sources(self) -> list[LogSource]:
        """Its output plus every file an ``access_log`` / ``error_log`` of the loaded
        configuration writes to (``nginx -T``); stdout, stderr, syslog and ``off`` are the
        output or nowhere. Relative paths are relative to the prefix (ours on the host)."""
        sources = [LogSource("output")]
        try:
            dump = self.dump_config()
        except OpskitError:
            return sources  # not running or no binary: its output is all there is
        seen: set[str] = set()
        for match in _LOG_DIRECTIVE.finditer(dump):
            path = match.group(2).strip("\"'")
            if path in _NOT_FILES or path.startswith(("syslog:", "memory:", "/dev/", "/proc/")):
                continue
            if "$" in path:
                continue  # a per-request file name: cannot be listed
            if not path.startswith("/"):
                if not self.nginx_args():
                    continue  # relative to a prefix compiled into the image's nginx
                path = str(self.prefix / path)
            if path not in seen:
                seen.add(path)
                sources.append(LogSource(f"{match.group(1)}:{Path(path).name}", path))
        return sources

    def upstream_servers(self) -> list[str]:
        return self.upstream_editor().current_servers()

    def point_upstream(self, servers: list[str], drain: float) -> Verdict:
        """Send the fronted service's requests to ``servers``: edit, ``-t``, HUP (verified),
        then wait up to ``drain`` seconds for the old workers to finish their requests. A
        config nginx rejects is put back before anything is signalled."""
        editor = self.upstream_editor()
        editor.point_at(servers)
        ok, output = self.test_config()
        if not ok:
            editor.restore()
            editor.forget()
            return Verdict(False, f"nginx -t failed on the switched upstream: {output}; put back")
        return self._reload_and_drain(drain, f"upstream {editor.block} -> {', '.join(servers)}")

    def restore_upstream(self, drain: float) -> Verdict:
        """Write back the bytes :meth:`point_upstream` replaced, reload, drain, forget them."""
        editor = self.upstream_editor()
        if not editor.restore():
            return Verdict(True, "no switched upstream to put back", changed=False)
        verdict = self._reload_and_drain(drain, f"upstream {editor.block} restored")
        if verdict.ok:
            editor.forget()
        return verdict

    def _reload_and_drain(self, drain: float, what: str) -> Verdict:
        reload = self._reload_verified()
        if not reload.verdict.ok:
            return Verdict(False, f"{what}: {reload.verdict.detail}")
        waited = self._drain(reload, drain)
        if waited is None:
            left = ", ".join(map(str, sorted(self._alive(reload.old_workers))))
            return Verdict(True, f"{what}; old workers {left} still draining after {drain:g}s")
        return Verdict(True, f"{what}; old workers drained in {waited:.2f}s")

    def _alive(self, pids: set[int]) -> set[int]:
        return pids & {process.pid for process in self.unit.processes()}

    def _drain(self, reload: _Reload, timeout: float) -> float | None:
        """Seconds until the workers replaced by ``reload`` exited (their in-flight requests
        done), or None after ``timeout``."""
        from opskit.polling import deadline_in, poll_until

        began = time.monotonic()
        done = poll_until(
            lambda: True if not self._alive(reload.old_workers) else None,
            deadline_in(timeout),
            first=0.01,
            cap=0.05,
        )
        return time.monotonic() - began if done else None

    def traffic_since(self, since: float, path_prefix: str) -> Traffic:
        """From the JSON access log lines nginx wrote since ``since`` (``log_format json`` of
        the stack's template: time, status, request_time, uri). Lines in another format are
        not requests to count."""
        import json
        from datetime import datetime

        durations: list[float] = []
        errors = to_path = 0
        for line in self.unit.logs(since=since - 1):
            text = line.text.strip()
            if not text.startswith("{"):
                continue
            try:
                record = json.loads(text)
                at = datetime.fromisoformat(record["time"]).timestamp()
                status = int(record["status"])
                seconds = float(record.get("request_time") or 0.0)
            except (ValueError, KeyError, TypeError):
                continue
            if at < int(since):  # nginx logs whole seconds
                continue
            durations.append(seconds)
            errors += status >= 500
            to_path += str(record.get("uri", "")).startswith(path_prefix)
        durations.sort()
        p95 = durations[min(len(durations) - 1, int(len(durations) * 0.95))] if durations else None
        return Traffic(len(durations), errors, p95, to_path)

    def request_records(
        self, cursor: OutputCursor | None, limit: int
    ) -> tuple[list[RequestRecord], OutputCursor]:
        """The requests in the JSON access lines written since ``cursor`` (the stack's
        ``log_format json``: status, request_time, uri); other lines are not requests."""
        import json

        lines, cursor = self.unit.read_output(cursor, limit)
        records = []
        for text in lines:
            text = text.strip()
            if not text.startswith("{"):
                continue
            try:
                record = json.loads(text)
                status, seconds = int(record["status"]), float(record.get("request_time") or 0)
            except (ValueError, KeyError, TypeError):
                continue
            path = str(record.get("uri", "")).partition("?")[0]
            records.append(RequestRecord(path, status, seconds))
        return records, cursor

    def entry_url(self, path: str) -> str:
        return self.base_url() + path

    # -- backup and restore (capabilities.BackingUp, Restorable) -----------------------------------

    def _backup(self) -> NginxBackup:
        """The backup and restore code, imported by what uses it only (status, health and
        start do not)."""
        from opskit.services.nginx.backup import NginxBackup

        return NginxBackup(self)

    def back_up(self, artifacts: ServiceArtifacts) -> dict[str, Any]:
        return self._backup().back_up(artifacts)

    def check_backup(self, artifacts: ArtifactReader, metadata: dict, deep: bool) -> list[str]:
        return self._backup().check(artifacts, metadata, deep)

    def plan_restore(self, artifacts: ArtifactReader, metadata: dict) -> RestorePlan:
        from opskit.services.nginx.backup import TREE_ARTIFACT

        artifacts.entry(TREE_ARTIFACT)
        return self._backup().plan(metadata)

    def place_backup(self, artifacts: ArtifactReader, metadata: dict, plan: RestorePlan) -> None:
        """Nothing to place while stopped: the files go into the running unit, then HUP."""

    def apply_backup(self, artifacts: ArtifactReader, metadata: dict, plan: RestorePlan) -> Verdict:
        return self._backup().apply(artifacts, metadata, plan)

    # -- health ---------------------------------------------------------------------------------

    def health_checks(self) -> list[Check]:
        base = self.base_url()
        checks = [
            self.http_check("health", base + self.options.health_path),
            Check("stub_status", lambda: self.check_stub_status(base)),
            Check("config", self.check_config),
            Check("certificates", self.check_certificates),
        ]
        if self.options.proxies_to == "kong":
            checks.append(Check("reaches_kong", lambda: self.check_reaches_kong(base)))
        if self.options.fronts:
            fronted = self.options.fronts
            checks.append(
                Check(f"reaches_{fronted}", lambda: self.check_reaches_fronted(base, fronted))
            )
        return checks

    def check_reaches_fronted(self, base: str, fronted: str) -> CheckOutcome:
        """A request through the front must be answered by the service it fronts (any answer
        counts: its 404 too). nginx's own 502/503/504 page — the upstream refused, timed out or
        no longer exists at the address nginx resolved at start (a Swarm task moved to
        another node) — is CRITICAL, so recover restarts the front and it resolves again."""
        url = base + self.options.chain_path
        try:
            response = self.get(url)
        except ProbeError as exc:
            return CheckStatus.CRITICAL, f"GET {url}: {exc.kind}"
        own_page = b"<center>nginx" in response.body[:2048]
        if response.status_code in (502, 503, 504) and own_page:
            return (
                CheckStatus.CRITICAL,
                f"nginx answered {response.status_code}: {fronted} is not reachable from it",
            )
        return (
            CheckStatus.OK,
            f"request through nginx answered by {fronted} (HTTP {response.status_code})",
        )

    def check_stub_status(self, base: str) -> CheckOutcome:
        path = self.options.status_path
        try:
            response = self.get(base + path)
        except ProbeError as exc:
            return CheckStatus.CRITICAL, f"GET {path}: {exc.kind}"
        match = _STUB_STATUS.search(response.text) if response.status_code == 200 else None
        if not match:
            status = response.status_code
            return CheckStatus.WARNING, f"GET {path}: HTTP {status}, no stub_status output"
        active, accepts, handled, requests, reading, writing, waiting = map(int, match.groups())
        detail = (
            f"{active} active ({reading} reading, {writing} writing, {waiting} waiting), "
            f"{requests} requests"
        )
        if handled < accepts:
            dropped = accepts - handled
            return CheckStatus.WARNING, f"{detail}; {dropped} connections dropped (limits hit)"
        return CheckStatus.OK, detail

    def metric_values(self) -> list[MetricValue]:
        """stub_status as nginx-prometheus-exporter names it, under opskit's prefix; the
        expiry of its TLS certificates."""
        from opskit.services import certificates

        return self._stub_status_values() + certificates.metric_values(self.certificates())

    def certificates(self) -> list[CertificateInfo]:
        """The ``ssl_certificate`` files of the configuration nginx loads, read where it runs
        (kept :data:`CERTIFICATE_CACHE` seconds: a certificate's expiry does not move, and
        ``nginx -T`` need not run on every health pass). Empty when nginx cannot say."""
        cached = self.__dict__.get("_certificates")
        if cached is not None and time.monotonic() - cached[0] < CERTIFICATE_CACHE:
            return cached[1]
        from opskit.services import certificates
        from opskit.services.nginx.backup import split_dump

        try:
            files = split_dump(self.dump_config())
        except OpskitError:
            return []
        prefix = PurePosixPath(next(iter(files), "/etc/nginx/nginx.conf")).parent
        found = []
        for path, host in certificates.nginx_certificates(files):
            full = str(prefix / path) if not path.startswith("/") else path
            try:
                with self.unit.open_file(full) as data:
                    pem = data.read(1 << 20)
            except (OpskitError, OSError) as exc:
                found.append(
                    certificates.CertificateInfo(full, "", 0.0, host=host, problem=str(exc))
                )
                continue
            found.append(certificates.from_pem(full, pem, host))
        self.__dict__["_certificates"] = (time.monotonic(), found)
        return found

    def check_certificates(self) -> CheckOutcome:
        from opskit.services import certificates

        return certificates.judge(self.certificates())

    def _stub_status_values(self) -> list[MetricValue]:
        try:
            response = self.get(self.base_url() + self.options.status_path)
        except ProbeError:
            return []
        match = _STUB_STATUS.search(response.text) if response.status_code == 200 else None
        if not match:
            return []
        active, accepts, handled, requests, reading, writing, waiting = map(int, match.groups())
        counter = MetricType.COUNTER
        states = (("active", active), ("reading", reading), ("writing", writing))
        return [
            MetricValue(
                "nginx_connections_accepted_total", "Accepted connections.", accepts, counter
            ),
            MetricValue(
                "nginx_connections_handled_total", "Handled connections.", handled, counter
            ),
            MetricValue("nginx_http_requests_total", "Client requests.", requests, counter),
            *(
                MetricValue(
                    "nginx_connections",
                    "Client connections by state (stub_status).",
                    value,
                    labels=(("state", state),),
                )
                for state, value in (*states, ("waiting", waiting))
            ),
        ]

    def check_config(self) -> CheckOutcome:
        ok, output = self.test_config()
        if ok:
            return CheckStatus.OK, "nginx -t: syntax ok"
        return CheckStatus.CRITICAL, f"nginx -t failed: {output}"

    def check_reaches_kong(self, base: str) -> CheckOutcome:
        """A request through nginx must come back from Kong (its 404 counts): /health is static."""
        url = base + self.options.chain_path
        try:
            response = self.get(url)
        except ProbeError as exc:
            return CheckStatus.CRITICAL, f"GET {url}: {exc.kind}"
        headers = response.headers
        from_kong = any(name.startswith("x-kong-") for name in headers) or any(
            "kong" in headers.get(name, "").lower() for name in ("via", "server")
        )
        if response.status_code in (502, 503, 504) and not from_kong:
            code = response.status_code
            return CheckStatus.CRITICAL, f"nginx answered {code}: Kong is not reachable"
        if not from_kong:
            code = response.status_code
            return CheckStatus.CRITICAL, f"HTTP {code} without Kong's headers: not via Kong"
        return (
            CheckStatus.OK,
            f"request through nginx answered by Kong (HTTP {response.status_code})",
        )


#: How long a HUP may take to replace nginx's workers before the reload counts as failed.
RELOAD_WAIT = 10.0


@dataclass(frozen=True)
class _Reload:
    verdict: Verdict
    old_workers: set[int]
    master: int | None = None


def _master_and_workers(processes: list[UnitProcess]) -> tuple[int | None, set[int]]:
    """nginx's master (its title says so) and the pids of its workers, old ones shutting
    down included."""
    masters = [p.pid for p in processes if p.command.startswith("nginx: master")]
    if len(masters) != 1:
        return None, set()
    master = masters[0]
    workers = {p.pid for p in processes if p.ppid == master and "nginx: worker" in p.command}
    return master, workers
