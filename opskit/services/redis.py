"""The redis role: authenticated readiness, SHUTDOWN SAVE, configuration without argv secrets.

Readiness is ``PING`` *with* the password plus ``INFO persistence`` ``loading:0``. The original
scripts pinged without the password and read the ``NOAUTH`` error as success; here NOAUTH and
WRONGPASS are fatal probe failures that end the start gate at once with that reason.

In the process runtime redis-server reads its whole configuration from stdin
(``redis-server -``), so ``requirepass`` never appears in argv (``ps``) or in a file on disk.
"""

from __future__ import annotations

import signal
import threading
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from opskit.errors import ConfigError
from opskit.files import private_dir
from opskit.services.base import Check, Probe, Role

if TYPE_CHECKING:
    from opskit.config import ServiceSpec, StackConfig
    from opskit.runtime.base import Launch, StopResult

CONTAINER_PORT = 6379
MEMORY_WARNING_PERCENT = 90.0
SAVE_AGE_WARNING_SECONDS = 3600.0
PROBE_KEY_PREFIX = "opskit:health:"
DEFAULT_SAVE = "3600 1 300 100 60 10000"


class RedisRole(Role):
    name: ClassVar[str] = "redis"
    provides_process_command: ClassVar[bool] = True

    @classmethod
    def check(cls, spec: ServiceSpec, config: StackConfig) -> None:
        super().check(spec, config)
        extra = spec.options.get("config", {})
        if not isinstance(extra, dict):
            raise ConfigError(
                config.source,
                f"services.{spec.name}.x-opskit.config",
                "expected a mapping of redis.conf directives",
            )
        shutdown = spec.options.get("shutdown", "save")
        if shutdown not in ("save", "nosave"):
            raise ConfigError(
                config.source,
                f"services.{spec.name}.x-opskit.shutdown",
                f"expected 'save' or 'nosave', got {shutdown!r}",
            )

    @property
    def password(self) -> str | None:
        value = self.spec.options.get("password")
        return str(value) if value not in (None, "") else None

    @property
    def data_dir(self) -> Path:
        return self.config.state_dir / "data" / self.spec.name

    # -- starting --------------------------------------------------------------------------------

    def launch(self) -> Launch:
        from opskit.runtime.base import Launch

        argv = tuple(self.spec.process.command) or ("redis-server", "-")
        return Launch(argv=argv, stdin=self.render_config().encode())

    def render_config(self) -> str:
        """redis.conf for the process runtime; fed on stdin, never written to disk."""
        host, port = self.address(CONTAINER_PORT)
        directives: dict[str, Any] = {
            "bind": host,
            "port": port,
            "dir": str(self.data_dir),
            "daemonize": "no",
            "save": DEFAULT_SAVE,
            "appendonly": "no",
        }
        directives.update(self.spec.options.get("config", {}))
        lines = [f"{key} {_value(value)}" for key, value in directives.items()]
        if self.password:
            lines.append(f"requirepass {_quote(self.password)}")
        return "\n".join(lines) + "\n"

    def prepare(self) -> None:
        if self.unit.runs_on_host:
            private_dir(self.data_dir)

    def client(self, timeout: float = 1.0) -> redis.Redis:
        """A client that fails at once: redis-py's default retries (with backoff) would turn
        one refused connection into seconds of waiting, in probes and in SHUTDOWN alike."""
        host, port = self.address(CONTAINER_PORT)
        return redis.Redis(
            host=host,
            port=port,
            password=self.password,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )

    def probe_ready(self) -> Probe:
        client = self.client()
        try:
            client.ping()
            loading = client.info("persistence").get("loading", 0)
        except redis.AuthenticationError as exc:
            return Probe(False, f"authentication failed: {exc}", fatal=True)
        except redis.ResponseError as exc:
            text = str(exc)
            if text.startswith(("NOAUTH", "WRONGPASS")):
                return Probe(False, f"authentication failed: {text}", fatal=True)
            return Probe(False, f"error reply: {text}")
        except redis.BusyLoadingError:
            return Probe(False, "loading the dataset into memory")
        except redis.ConnectionError as exc:
            return Probe(False, f"not reachable: {exc}")
        except redis.TimeoutError:
            return Probe(False, "PING timed out")
        finally:
            client.close()
        if str(loading) != "0":
            return Probe(False, "loading the dataset into memory")
        return Probe(True, "PING ok (authenticated), loading:0")

    def health_checks(self) -> list[Check]:
        return RedisHealth(self).checks()

    # -- stopping ---------------------------------------------------------------------------------

    @property
    def stop_method(self) -> str:
        return f"SHUTDOWN {self.spec.options.get('shutdown', 'save').upper()}"

    def stop(self) -> StopResult:
        """``SHUTDOWN SAVE`` (or NOSAVE) through the client; SIGTERM if that is refused.

        A renamed-away SHUTDOWN command or a failed save must not hang the stop: the grace period
        and SIGKILL escalation still apply.
        """
        if not self.unit.status().running:
            return self.unit.stop(signal.SIGTERM, self.spec.stop_grace_period)
        mode = self.spec.options.get("shutdown", "save")
        client = self.client(timeout=self.spec.stop_grace_period)
        how = f"SHUTDOWN {mode.upper()}"
        try:
            client.shutdown(save=mode == "save", nosave=mode == "nosave")
        except redis.ConnectionError:
            pass  # the server closed the connection: it is going down
        except redis.RedisError as exc:
            how = f"SIGTERM (SHUTDOWN refused: {exc})"
            self.unit.send_signal(signal.SIGTERM)
        finally:
            client.close()
        return self.unit.finish_stop(self.spec.stop_grace_period, how)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _quote(text: str) -> str:
    """A redis.conf double-quoted string (backslash escapes), safe for any password."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


class RedisHealth:
    """The redis role's health checks. One PING + INFO is shared by all of them per run."""

    def __init__(self, role: RedisRole):
        self.role = role
        options = role.spec.options.get("health") or {}
        self.memory_warning = float(options.get("memory_warning_percent", MEMORY_WARNING_PERCENT))
        self.save_age_warning = float(options.get("save_age_warning", SAVE_AGE_WARNING_SECONDS))
        self._lock = threading.Lock()
        self._info: dict | None = None
        self._error: str | None = None

    def checks(self) -> list[Check]:
        return [
            Check("ping", self.ping),
            Check("memory", self.memory),
            Check("clients", self.clients),
            Check("persistence", self.persistence),
            Check("write_probe", self.write_probe),
        ]

    def snapshot(self) -> tuple[dict | None, str | None]:
        with self._lock:
            if self._info is None and self._error is None:
                client = self.role.client(timeout=2.0)
                try:
                    client.ping()
                    self._info = client.info()
                except redis.AuthenticationError as exc:
                    self._error = f"authentication failed: {exc}"
                except redis.ResponseError as exc:
                    text = str(exc)
                    auth = text.startswith(("NOAUTH", "WRONGPASS"))
                    self._error = f"authentication failed: {text}" if auth else f"error: {text}"
                except redis.RedisError as exc:
                    self._error = f"not reachable: {type(exc).__name__}: {exc}"
                finally:
                    client.close()
            return self._info, self._error

    def _needs_info(self) -> tuple[dict | None, tuple[str, str] | None]:
        info, error = self.snapshot()
        return info, (("UNKNOWN", f"skipped: {error}") if error else None)

    def ping(self) -> tuple[str, str]:
        info, error = self.snapshot()
        if error:
            return "CRITICAL", error
        if str(info.get("loading", 0)) != "0":
            return "CRITICAL", "loading the dataset into memory"
        return "OK", f"PING ok (authenticated), redis {info.get('redis_version', '?')}, loading:0"

    def memory(self) -> tuple[str, str]:
        info, skipped = self._needs_info()
        if skipped:
            return skipped
        used, limit = int(info.get("used_memory", 0)), int(info.get("maxmemory", 0))
        human = info.get("used_memory_human", f"{used}B")
        if not limit:
            return "OK", f"used {human}, no maxmemory set"
        percent = 100.0 * used / limit
        status = "WARNING" if percent >= self.memory_warning else "OK"
        policy = info.get("maxmemory_policy", "?")
        return status, f"used {human} = {percent:.0f}% of maxmemory ({policy})"

    def clients(self) -> tuple[str, str]:
        info, skipped = self._needs_info()
        if skipped:
            return skipped
        connected = info.get("connected_clients", 0)
        blocked = info.get("blocked_clients", 0)
        rejected = int(info.get("rejected_connections", 0))
        status = "WARNING" if rejected else "OK"
        return status, f"{connected} connected, {blocked} blocked, {rejected} rejected"

    def persistence(self) -> tuple[str, str]:
        info, skipped = self._needs_info()
        if skipped:
            return skipped
        if info.get("rdb_last_bgsave_status") != "ok":
            return "CRITICAL", f"last background save failed ({info.get('rdb_last_bgsave_status')})"
        if int(info.get("aof_enabled", 0)):
            for key in ("aof_last_write_status", "aof_last_bgrewrite_status"):
                if info.get(key, "ok") != "ok":
                    return "CRITICAL", f"AOF {key} is {info.get(key)}"
        changes = int(info.get("rdb_changes_since_last_save", 0))
        age = time.time() - int(info.get("rdb_last_save_time", time.time()))
        aof = " AOF on," if int(info.get("aof_enabled", 0)) else ""
        detail = f"last save {age:.0f}s ago,{aof} {changes} changes since"
        if changes and age > self.save_age_warning:
            return "WARNING", f"{detail} (unsaved for more than {self.save_age_warning:g}s)"
        return "OK", detail

    def write_probe(self) -> tuple[str, str]:
        """SET/GET/DEL on a namespaced key with a 10 s TTL: the server accepts writes."""
        _info, skipped = self._needs_info()
        if skipped:
            return skipped
        key, value = PROBE_KEY_PREFIX + uuid.uuid4().hex, uuid.uuid4().hex
        client = self.role.client(timeout=2.0)
        try:
            client.set(key, value, px=10_000)
            read = client.get(key)
            client.delete(key)
        except redis.RedisError as exc:
            return "CRITICAL", f"write probe failed: {exc}"
        finally:
            client.close()
        if read is None or read.decode() != value:
            return "CRITICAL", "write probe read back a different value"
        return "OK", "SET/GET/DEL on a probe key ok"
