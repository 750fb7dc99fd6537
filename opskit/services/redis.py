"""The redis role: authenticated readiness, SHUTDOWN SAVE, configuration without argv secrets.

Readiness is ``PING`` *with* the password plus ``INFO persistence`` ``loading:0``. The original
scripts pinged without the password and read the ``NOAUTH`` error as success; here NOAUTH and
WRONGPASS are fatal probe failures that end the start gate at once with that reason.

In the process runtime redis-server reads its whole configuration from stdin
(``redis-server -``), so ``requirepass`` never appears in argv (``ps``) or in a file on disk.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from opskit.errors import ConfigError
from opskit.files import private_dir
from opskit.services.base import Probe, Role

if TYPE_CHECKING:
    from opskit.config import ServiceSpec, StackConfig
    from opskit.runtime.base import Launch, StopResult

CONTAINER_PORT = 6379
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
