"""The redis role: authenticated readiness, SHUTDOWN SAVE, configuration without argv secrets.

Readiness is ``PING`` *with* the password plus ``INFO persistence`` ``loading:0``. The original
scripts pinged without the password and read the ``NOAUTH`` error as success; here NOAUTH and
WRONGPASS are fatal probe failures that end the start gate at once with that reason.

In the process runtime redis-server reads its whole configuration from stdin
(``redis-server -``), so ``requirepass`` never appears in argv (``ps``) or in a file on disk.
"""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from opskit.config import ServiceSpec, StackConfig
from opskit.errors import OpskitError
from opskit.files import private_dir
from opskit.options import OptionReader
from opskit.services.base import Check, CheckOutcome, Probe, Role
from opskit.services.capabilities import Drilled, MetricValue, RestorePlan, Staged, Verdict
from opskit.services.probes import (
    RedisAuthFailed,
    RedisLoading,
    RedisProbe,
    RedisProbeError,
    RedisReplyError,
    RedisUnreachable,
)
from opskit.services.redis.options import EVENTS_CHANNEL, RedisOptions, RedisTls
from opskit.vocabulary import CheckStatus, ShutdownMode

if TYPE_CHECKING:
    import redis

    from opskit.backup.artifacts import ArtifactReader, ServiceArtifacts
    from opskit.runtime.base import Launch, StopResult
    from opskit.services.redis.backup import RdbLocation, RedisBackup

CONTAINER_PORT = 6379
PROBE_KEY_PREFIX = "opskit:health:"
DEFAULT_SAVE = "3600 1 300 100 60 10000"


class RedisRole(Role):
    name: ClassVar[str] = "redis"
    provides_process_command: ClassVar[bool] = True
    outage_impact: ClassVar[str] = (
        "the aws-masker plugin can neither store nor look up masking maps, so requests "
        "carrying AWS ids fail or leave unmasked"
    )
    options: RedisOptions

    @classmethod
    def read_options(
        cls, reader: OptionReader, spec: ServiceSpec, config: StackConfig
    ) -> RedisOptions:
        health = reader.section("health")
        options = RedisOptions(
            username=reader.string("username") or None,
            password=reader.string("password") or None,
            tls=_tls(reader.section("tls")) if reader.has("tls") else None,
            config=reader.mapping("config"),
            shutdown=reader.choice("shutdown", ShutdownMode, ShutdownMode.SAVE),
            memory_warning_percent=health.number(
                "memory_warning_percent", RedisOptions.memory_warning_percent, high=100
            ),
            save_age_warning=health.duration("save_age_warning", RedisOptions.save_age_warning),
            rdb_path=reader.string("rdb_path") or None,
            events_channel=reader.string("events_channel") or EVENTS_CHANNEL,
        )
        health.finish()
        return options

    @property
    def password(self) -> str | None:
        return self.options.password

    @property
    def data_dir(self) -> Path:
        return self.config.state_dir / "data" / self.spec.name

    # -- starting --------------------------------------------------------------------------------

    def launch(self, restoring: RdbLocation | None = None) -> Launch:
        from opskit.runtime.base import Launch

        argv = tuple(self.spec.process.command) or ("redis-server", "-")
        return Launch(argv=argv, stdin=self.render_config(restoring).encode())

    def render_config(self, restoring: RdbLocation | None = None) -> str:
        """redis.conf for the process runtime; fed on stdin, never written to disk. For the
        start that loads a ``restoring`` RDB, appendonly is off where the old AOF would win."""
        host, port = self.address(CONTAINER_PORT)
        directives: dict[str, Any] = {
            "bind": host,
            "port": port,
            "dir": str(self.data_dir),
            "daemonize": "no",
            "save": DEFAULT_SAVE,
            "appendonly": "no",
        }
        directives.update(self.options.config)
        if restoring is not None and restoring.appendonly:
            directives["appendonly"] = "no"  # the restored RDB must win over the old AOF
        if self.options.tls is not None:  # the port speaks TLS only (certificates: config)
            directives.setdefault("tls-port", port)
            directives["port"] = 0
        lines = [f"{key} {_value(value)}" for key, value in directives.items()]
        if self.password and self.options.username:  # opskit's user, with the minimal ACL
            password = _quote(">" + self.password)  # any character, as requirepass's
            lines.append(f"user {self.options.username} on {password} {MINIMAL_ACL}")
        elif self.password:
            lines.append(f"requirepass {_quote(self.password)}")
        return "\n".join(lines) + "\n"

    def prepare(self) -> None:
        if self.unit.follows_launch:
            private_dir(self.data_dir)  # the dir of the config it starts with

    def client(self, timeout: float = 1.0) -> redis.Redis:
        """A redis-py client that fails at once: its default retries (with backoff) would turn
        one refused connection into seconds of waiting. For SHUTDOWN, pub/sub and backups;
        probes use :meth:`probe`, which does not pay redis-py's import."""
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        host, port = self.address(CONTAINER_PORT)
        tls: dict[str, Any] = {}
        if self.options.tls is not None:
            tls = {  # redis-py checks the certificate against ``host`` (no server_name)
                "ssl": True,
                "ssl_ca_certs": self.options.tls.ca_file,
                "ssl_certfile": self.options.tls.cert_file,
                "ssl_keyfile": self.options.tls.key_file,
                "ssl_cert_reqs": "required" if self.options.tls.verify else "none",
                "ssl_check_hostname": self.options.tls.verify,
            }
        return redis.Redis(
            host=host,
            port=port,
            username=self.options.username,
            password=self.password,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
            **tls,
        )

    def probe(self, timeout: float = 1.0) -> RedisProbe:
        host, port = self.address(CONTAINER_PORT)
        tls = self.options.tls.context(host) if self.options.tls is not None else None
        return RedisProbe(
            host, port, self.password, timeout, username=self.options.username, tls=tls
        )

    def probe_ready(self) -> Probe:
        try:
            with self.probe() as connection:
                connection.call("PING")
                loading = connection.info("persistence").get("loading", "0")
        except RedisAuthFailed as exc:
            return Probe(False, f"authentication failed: {exc}", fatal=True)
        except RedisLoading:
            return Probe(False, "loading the dataset into memory")
        except RedisReplyError as exc:
            return Probe(False, f"error reply: {exc}")
        except RedisUnreachable as exc:
            return Probe(False, f"not reachable: {exc}")
        if loading != "0":
            return Probe(False, "loading the dataset into memory")
        return Probe(True, "PING ok (authenticated), loading:0")

    def health_checks(self) -> list[Check]:
        return RedisHealth(self).checks()

    # -- stopping ---------------------------------------------------------------------------------

    @property
    def stop_method(self) -> str:
        return f"SHUTDOWN {self.options.shutdown.value.upper()}"

    def stop(self) -> StopResult:
        """``SHUTDOWN SAVE`` (or NOSAVE) through the client; SIGTERM when it is refused.

        Only a connection the server closed after SHUTDOWN means "going down". A refused
        SHUTDOWN — a stale password after a rotation, the command renamed away, no connection
        at all — falls back to SIGTERM, on which Redis saves when persistence is on; waiting
        out the grace period instead would end in SIGKILL and lose every write since the last
        save. The grace period and SIGKILL escalation still apply either way.
        """
        return self._stop(self.options.shutdown)

    def _stop(self, mode: ShutdownMode) -> StopResult:
        if not self.unit.status().running:
            return self.unit.stop(signal.SIGTERM, self.spec.stop_grace_period)
        how = f"SHUTDOWN {mode.value.upper()}"
        refused = self._shutdown(mode)
        if refused is not None:
            how = f"SIGTERM (SHUTDOWN refused: {refused})"
            self.unit.send_signal(signal.SIGTERM)
        return self.unit.finish_stop(self.spec.stop_grace_period, how)

    def _shutdown(self, mode: ShutdownMode) -> str | None:
        """Send SHUTDOWN; None when Redis is going down, else why it was refused.

        Not redis-py's ``shutdown()``: it swallows every ConnectionError as "going down", and
        AuthenticationError is one. PING first, so a refused password is seen as such.
        """
        import redis

        client = self.client(timeout=self.spec.stop_grace_period)
        try:
            client.ping()
        except redis.AuthenticationError as exc:
            return f"authentication failed: {exc}"
        except redis.ResponseError as exc:
            return f"authentication failed: {exc}" if "NOAUTH" in str(exc) else str(exc)
        except redis.RedisError as exc:
            return f"not reachable: {exc}"
        try:
            client.execute_command("SHUTDOWN", mode.value.upper())
        except redis.ConnectionError:
            return None  # the server closed the connection: it is going down
        except redis.RedisError as exc:  # renamed away, or the save failed (MISCONF …)
            return str(exc)
        finally:
            client.close()
        return "SHUTDOWN returned without closing the connection"

    # -- the masking store (capabilities.MaskingStore) ---------------------------------------------

    def masked_token_for(self, original: str) -> tuple[str | None, str | None, int | None]:
        """The aws-masker plugin's keys for ``original``: rev → token, map:token → original."""
        rev_key = "aws_masker:rev:" + base64.b64encode(original.encode()).decode()
        with self.probe(timeout=2.0) as connection:
            token = connection.call("GET", rev_key)
            if token is None:
                return None, None, None
            token_text = token.decode()
            stored = connection.call("GET", f"aws_masker:map:{token_text}")
            ttl = connection.call("TTL", f"aws_masker:map:{token_text}")
        return token_text, (stored.decode() if stored is not None else None), ttl

    @contextlib.contextmanager
    def events(self, channel: str | None = None) -> Iterator[Any]:
        """A pub/sub subscription to the plugin's masking events (redis-py PubSub) on
        ``channel``, by default the role's ``events_channel``."""
        client = self.client(timeout=2.0)
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.subscribe(channel or self.options.events_channel)
            pubsub.get_message(timeout=0.5)  # the subscribe confirmation
            yield pubsub
        finally:
            pubsub.close()
            client.close()

    def interrupt(self) -> StopResult:
        return self.stop()

    # -- metrics (capabilities.MetricReporting) ----------------------------------------------------

    def metric_values(self) -> list[MetricValue]:
        from opskit.services.redis.metrics import redis_metric_values

        try:
            with self.probe(timeout=2.0) as connection:
                return redis_metric_values(connection)
        except RedisProbeError:
            return []

    # -- backup and restore (capabilities.BackingUp, Restorable) -----------------------------------

    @contextlib.contextmanager
    def _backup(self) -> Iterator[RedisBackup]:
        """The backup and restore code, imported by what uses it only (status, health and start
        do not: it brings zstd, tarfile and the artifact store, ≈ 15 ms of every command);
        a refused password or an error reply inside it is this service's failure, one line."""
        from opskit.services.redis.backup import RedisBackup, redis_failures

        with redis_failures(self.spec.name):
            yield RedisBackup(self)

    def back_up(self, artifacts: ServiceArtifacts) -> dict[str, Any]:
        with self._backup() as backup:
            return backup.back_up(artifacts)

    def check_backup(self, artifacts: ArtifactReader, metadata: dict, deep: bool) -> list[str]:
        with self._backup() as backup:
            return backup.check(artifacts, metadata, deep)

    def inspect_backup(self, artifacts: ArtifactReader) -> dict[str, Any]:
        with self._backup() as backup:
            return backup.inspect(artifacts)

    def drill_backup(self, artifacts: ArtifactReader, metadata: dict) -> Drilled:
        with self._backup() as backup:
            return backup.drill(artifacts, metadata)

    def plan_restore(self, artifacts: ArtifactReader, metadata: dict) -> RestorePlan:
        with self._backup() as backup:
            return backup.plan(artifacts, metadata)

    def stage_backup(
        self, artifacts: ArtifactReader, metadata: dict, plan: RestorePlan
    ) -> Staged | None:
        """Where the RDB is a host file: decompressed and verified *beside* the data file
        while Redis still serves (by hand an operator decompresses while Redis is down)."""
        with self._backup() as backup:
            return backup.stage(artifacts, metadata, plan.state)

    def discard_staged(self) -> list[str]:
        with self._backup() as backup:
            return backup.discard_staged()

    def place_backup(
        self, artifacts: ArtifactReader, metadata: dict, plan: RestorePlan[RdbLocation]
    ) -> Launch:
        """Stop (NOSAVE: a fresh safety backup exists and the data file is replaced next, so
        saving the old data first would only cost time), put the RDB where Redis reads it, and
        return the launch that loads it: appendonly off when the AOF would otherwise win. The
        outage is stop, rename, start and load where the RDB was staged (by the restore
        beforehand, or here while Redis still runs); a staged RDB that failed its checks stops
        nothing."""
        staged = plan.staged or self.stage_backup(artifacts, metadata, plan)
        try:
            if staged is not None and staged.problems:
                raise OpskitError(f"{self.spec.name}: {'; '.join(staged.problems)}")
            if self.unit.status().running:
                self._stop(ShutdownMode.NOSAVE)
            if staged is not None:
                staged.commit()
            else:
                with self._backup() as backup:
                    backup.place(artifacts, plan.state)
        finally:
            if staged is not None and staged is not plan.staged:
                staged.discard()
        return self.launch(restoring=plan.state)

    def apply_backup(
        self, artifacts: ArtifactReader, metadata: dict, plan: RestorePlan[RdbLocation]
    ) -> Verdict:
        with self._backup() as backup:
            return backup.apply(plan.state, metadata)


#: What opskit's own ACL user needs, and no more (docs/configuration.md says which operation
#: needs which): reading state (INFO, PING, SCAN/TYPE/TTL/GET over the masker's keys, DBSIZE),
#: the write probe's own keys, BGSAVE/LASTSAVE/CONFIG GET for backups, SHUTDOWN to stop,
#: CONFIG SET appendonly and BGREWRITEAOF for a restore, SUBSCRIBE to the events channel,
#: ACL LOG for the refused-AUTH count.
MINIMAL_ACL = (
    "resetchannels resetkeys -@all "
    "+ping +info +dbsize +scan +type +ttl +pttl +get +mget +exists +memory|usage +eval "
    "+set +del +expire "
    "+bgsave +lastsave +config|get +config|set +bgrewriteaof +shutdown "
    "+subscribe +unsubscribe +acl|log +client|setname "
    "~aws_masker:* ~opskit:* &aws-masker:events:*"
)


def _tls(reader: OptionReader) -> RedisTls:
    """``x-opskit.tls``: paths on the host opskit runs on; every one must exist now."""
    tls = RedisTls(
        ca_file=str(p) if (p := reader.existing_path("ca_file")) else None,
        cert_file=str(p) if (p := reader.existing_path("cert_file")) else None,
        key_file=str(p) if (p := reader.existing_path("key_file")) else None,
        verify=reader.boolean("verify", True),
        server_name=reader.string("server_name") or None,
    )
    if bool(tls.cert_file) != bool(tls.key_file):
        raise reader.fail("key_file", "expected cert_file and key_file together (a client pair)")
    reader.finish()
    return tls


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
                try:
                    with self.role.probe(timeout=2.0) as connection:
                        connection.call("PING")
                        self._info = connection.info()
                except RedisAuthFailed as exc:
                    self._error = f"authentication failed: {exc}"
                except RedisReplyError as exc:
                    self._error = f"error: {exc}"
                except RedisProbeError as exc:
                    self._error = f"not reachable: {exc}"
            return self._info, self._error

    def _needs_info(self) -> tuple[dict | None, CheckOutcome | None]:
        info, error = self.snapshot()
        return info, ((CheckStatus.UNKNOWN, f"skipped: {error}") if error else None)

    def ping(self) -> CheckOutcome:
        info, error = self.snapshot()
        if error:
            return CheckStatus.CRITICAL, error
        if str(info.get("loading", 0)) != "0":
            return CheckStatus.CRITICAL, "loading the dataset into memory"
        version = info.get("redis_version", "?")
        return CheckStatus.OK, f"PING ok (authenticated), redis {version}, loading:0"

    def memory(self) -> CheckOutcome:
        info, skipped = self._needs_info()
        if skipped:
            return skipped
        used, limit = int(info.get("used_memory", 0)), int(info.get("maxmemory", 0))
        human = info.get("used_memory_human", f"{used}B")
        if not limit:
            return CheckStatus.OK, f"used {human}, no maxmemory set"
        percent = 100.0 * used / limit
        warning = self.role.options.memory_warning_percent
        status = CheckStatus.WARNING if percent >= warning else CheckStatus.OK
        policy = info.get("maxmemory_policy", "?")
        return status, f"used {human} = {percent:.0f}% of maxmemory ({policy})"

    def clients(self) -> CheckOutcome:
        info, skipped = self._needs_info()
        if skipped:
            return skipped
        connected = info.get("connected_clients", 0)
        blocked = info.get("blocked_clients", 0)
        rejected = int(info.get("rejected_connections", 0))
        status = CheckStatus.WARNING if rejected else CheckStatus.OK
        return status, f"{connected} connected, {blocked} blocked, {rejected} rejected"

    def persistence(self) -> CheckOutcome:
        info, skipped = self._needs_info()
        if skipped:
            return skipped
        if info.get("rdb_last_bgsave_status") != "ok":
            status = info.get("rdb_last_bgsave_status")
            return CheckStatus.CRITICAL, f"last background save failed ({status})"
        if int(info.get("aof_enabled", 0)):
            for key in ("aof_last_write_status", "aof_last_bgrewrite_status"):
                if info.get(key, "ok") != "ok":
                    return CheckStatus.CRITICAL, f"AOF {key} is {info.get(key)}"
        changes = int(info.get("rdb_changes_since_last_save", 0))
        age = time.time() - int(info.get("rdb_last_save_time", time.time()))
        aof = " AOF on," if int(info.get("aof_enabled", 0)) else ""
        detail = f"last save {age:.0f}s ago,{aof} {changes} changes since"
        limit = self.role.options.save_age_warning
        if changes and age > limit:
            return CheckStatus.WARNING, f"{detail} (unsaved for more than {limit:g}s)"
        return CheckStatus.OK, detail

    def write_probe(self) -> CheckOutcome:
        """SET/GET/DEL on a namespaced key with a 10 s TTL: the server accepts writes."""
        _info, skipped = self._needs_info()
        if skipped:
            return skipped
        key, value = PROBE_KEY_PREFIX + os.urandom(16).hex(), os.urandom(16).hex()
        try:
            with self.role.probe(timeout=2.0) as connection:
                connection.call("SET", key, value, "PX", 10_000)
                read = connection.call("GET", key)
                connection.call("DEL", key)
        except RedisProbeError as exc:
            return CheckStatus.CRITICAL, f"write probe failed: {exc}"
        if read is None or read.decode() != value:
            return CheckStatus.CRITICAL, "write probe read back a different value"
        return CheckStatus.OK, "SET/GET/DEL on a probe key ok"
