"""Backing up and restoring Redis: BGSAVE, the RDB out of its unit, and back in.

- **Backup** never blocks clients: ``BGSAVE`` (``SCHEDULE`` when an AOF rewrite runs), waited
  for through ``INFO persistence`` — ``rdb_saves`` (or ``LASTSAVE``) moving on — never a fixed
  sleep; a save already running is waited for first; a failed one is an error. The RDB is then
  streamed out of the unit (a file under process, ``docker cp`` under docker) through the CRC-64
  check and zstd in one pass. Key counts per ``aws_masker:`` prefix come from ``SCAN``, never
  ``KEYS``.
- **Where the RDB is** comes from ``CONFIG GET dir/dbfilename/appendonly``; where CONFIG is
  renamed away, from ``x-opskit.rdb_path`` (or, under the process runtime, from the
  configuration opskit renders itself).
- **Restore** swaps the file while Redis is stopped (a running Redis would save over it on
  shutdown). With ``appendonly yes`` Redis loads the AOF, not the RDB, at start; so the restore
  start runs with appendonly off and then turns it on, which rewrites the AOF from the restored
  data (redis/redis#1826). Key counts are compared with the RDB's own RESIZEDB numbers.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Protocol

from opskit.backup.artifacts import ArtifactError, ArtifactReader, ServiceArtifacts, drain
from opskit.backup.rdb import RdbChecker, RdbError
from opskit.errors import OpskitError
from opskit.files import fsync_dir, private_dir, write_stream_private
from opskit.polling import deadline_in, poll_until
from opskit.services.capabilities import Drilled, RestorePlan, Staged, Verdict
from opskit.services.probes import RedisAuthFailed, RedisProbeError, RedisReplyError

if TYPE_CHECKING:
    from opskit.config import ServiceSpec
    from opskit.runtime.base import Unit
    from opskit.services.probes import RedisProbe
    from opskit.services.redis.options import RedisOptions

RDB_ARTIFACT = "dump.rdb"
_STAGED_SUFFIX = ".opskit-restore-"
MASKER_PREFIX = "aws_masker:"
SCAN_BATCH = 5000
SAVE_TIMEOUT = 3600.0  # a save of many gigabytes on a slow disk still finishes
REWRITE_TIMEOUT = 3600.0


@dataclass(frozen=True)
class RdbLocation:
    path: str  # as the unit sees it
    appendonly: bool
    source: str  # "CONFIG GET" or the option it came from
    aof_dir: str | None = None  # Redis 7's multi-part AOF folder (appenddirname), if known
    aof_name: str = "appendonly.aof"  # appendfilename: the prefix of its files
    #: Redis starts with appendonly on whatever opskit asks (a container's own command):
    #: the restored RDB must become the base of a new AOF. Decided once, by the plan.
    as_aof_base: bool = False

    def aof_file(self, seq: int, kind: str) -> str:
        """``appendonly.aof.<seq>.base.rdb`` / ``….incr.aof`` in the AOF folder."""
        suffix = "base.rdb" if kind == "b" else "incr.aof"
        return f"{self.aof_dir}/{self.aof_name}.{seq}.{suffix}"

    @property
    def aof_manifest(self) -> str | None:
        return f"{self.aof_dir}/{self.aof_name}.manifest" if self.aof_dir else None


@contextlib.contextmanager
def redis_failures(service: str) -> Iterator[None]:
    """A refused password, a dead server or an error reply during a backup or restore is that
    service's failure, in one line: never a traceback."""
    try:
        yield
    except RedisAuthFailed as exc:
        raise OpskitError(f"{service}: authentication failed: {exc}") from None
    except RedisProbeError as exc:
        raise OpskitError(f"{service}: {exc}") from None


class RedisService(Protocol):
    """What a backup needs of the redis role: its unit, its settings, a probe connection. The
    role hands itself in; this module never imports it (no circle)."""

    spec: ServiceSpec
    unit: Unit
    options: RedisOptions

    @property
    def data_dir(self) -> Path: ...

    def probe(self, timeout: float = 1.0) -> RedisProbe: ...


class RedisBackup:
    """The redis role's backup and restore, one instance per operation."""

    def __init__(self, role: RedisService):
        self.role = role

    # -- where the data is ---------------------------------------------------------------------

    def location(self) -> RdbLocation:
        try:
            with self.role.probe(timeout=5.0) as redis:
                directory = _config_get(redis, "dir")
                filename = _config_get(redis, "dbfilename")
                appendonly = _config_get(redis, "appendonly") == "yes"
                aof_dir, aof_name = None, "appendonly.aof"
                if appendonly:
                    with contextlib.suppress(RedisReplyError):  # Redis < 7: one AOF file
                        aof_dir = str(
                            PurePosixPath(directory) / _config_get(redis, "appenddirname")
                        )
                        aof_name = _config_get(redis, "appendfilename")
            path = str(PurePosixPath(directory) / filename)
            return RdbLocation(path, appendonly, "CONFIG GET", aof_dir, aof_name)
        except RedisReplyError as exc:  # CONFIG renamed away (rename-command CONFIG "")
            return self._configured_location(f"CONFIG refused ({exc})")

    def _configured_location(self, why: str, recorded: dict | None = None) -> RdbLocation:
        """Where the RDB is when Redis cannot be asked: x-opskit.rdb_path, the config opskit
        renders, else where the backup being restored says it came from (``recorded``: the
        same Redis's CONFIG GET at backup time — how a restore onto another swarm node, with
        Redis lost with its node, knows the path)."""
        options = self.role.options
        appendonly = str(options.config.get("appendonly", "no")).lower() in ("yes", "true")
        if options.rdb_path:
            return RdbLocation(options.rdb_path, appendonly, f"x-opskit.rdb_path ({why})")
        if self.role.unit.follows_launch:  # the config opskit rendered is the one it runs
            directory = Path(str(options.config.get("dir", self.role.data_dir)))
            filename = str(options.config.get("dbfilename", "dump.rdb"))
            return RdbLocation(str(directory / filename), appendonly, f"x-opskit.config ({why})")
        path = (recorded or {}).get("rdb_path")
        if isinstance(path, str) and PurePosixPath(path).is_absolute():
            return RdbLocation(
                path,
                bool((recorded or {}).get("appendonly", appendonly)),
                f"where the backup came from ({why})",
            )
        raise OpskitError(
            f"{self.role.spec.name}: cannot find the RDB file: {why}; set "
            f"services.{self.role.spec.name}.x-opskit.rdb_path to its path in the container"
        )

    # -- backup --------------------------------------------------------------------------------

    def back_up(self, artifacts: ServiceArtifacts) -> dict[str, Any]:
        location = self.location()
        saved_at = self.bgsave()
        checker = RdbChecker()
        with self.role.unit.open_file(location.path) as data:
            stored = artifacts.add_stream(RDB_ARTIFACT, data, checker.feed)
        try:
            info = checker.finish()
        except RdbError as exc:
            raise OpskitError(f"{self.role.spec.name}: {location.path}: {exc}") from None
        counts = self.count_keys(by_prefix=artifacts.count_prefixes)
        return {
            "rdb": info.summary(),
            "rdb_path": location.path,
            "rdb_path_source": location.source,
            "appendonly": location.appendonly,
            "saved_at": saved_at,
            "live": counts,
            "stored_bytes": stored.size,
        }

    def bgsave(self) -> float:
        """Run a BGSAVE and wait for it; the epoch second it finished (LASTSAVE)."""
        name = self.role.spec.name
        with self.role.probe(timeout=5.0) as redis:
            self._wait(
                redis, lambda info: info.get("rdb_bgsave_in_progress") == "0", "earlier save"
            )
            before = redis.info("persistence")
            try:
                redis.call("BGSAVE", "SCHEDULE")  # queued behind an AOF rewrite, never refused
            except RedisReplyError as exc:
                raise OpskitError(f"{name}: BGSAVE refused: {exc}") from None

            def saved(info: dict[str, str]) -> bool | None:
                if _moved_on(before, info):
                    return True
                idle = (
                    info.get("rdb_bgsave_in_progress") == "0"
                    and info.get("aof_rewrite_in_progress", "0") == "0"
                )
                if idle and info.get("rdb_last_bgsave_status") == "err":
                    raise OpskitError(
                        f"{name}: BGSAVE failed (rdb_last_bgsave_status:err; see its log: disk "
                        "full, permissions, or fork refused)"
                    )
                return None

            info = self._wait(redis, saved, "BGSAVE")
        return float(info.get("rdb_last_save_time", time.time()))

    def _wait(self, redis, done, what: str) -> dict[str, str]:
        latest: dict[str, dict[str, str]] = {}

        def observe() -> bool | None:
            latest["info"] = redis.info("persistence")
            return True if done(latest["info"]) else None

        if not poll_until(observe, deadline_in(SAVE_TIMEOUT), first=0.01, cap=0.1):
            raise OpskitError(f"{self.role.spec.name}: {what} did not finish in {SAVE_TIMEOUT:g}s")
        return latest["info"]

    def count_keys(self, by_prefix: bool = True) -> dict[str, Any]:
        """DBSIZE per database and, ``by_prefix``, keys per ``aws_masker:<kind>:`` prefix, by
        SCAN in batches: no command holds the server longer than one batch. Each batch is
        counted inside Redis (one small script per SCAN step) so gigabytes of key names never
        cross the socket; where scripting is refused (ACL, renamed EVAL) the names are counted
        here instead. The prefix pass walks the whole keyspace (≈ 20 % of a backup of 2 M
        keys), so a backup makes it only on request (``--count-prefixes``)."""
        with self.role.probe(timeout=30.0) as redis:
            keyspace = _keyspace(redis.info("keyspace"))
            if not by_prefix:
                return {"keyspace": keyspace}
            try:
                prefixes = _count_in_redis(redis)
            except RedisReplyError:
                prefixes = _count_here(redis)
        return {"keyspace": keyspace, "prefixes": dict(sorted(prefixes.items()))}

    # -- checking a stored copy ----------------------------------------------------------------

    def check(self, artifacts: ArtifactReader, metadata: dict, deep: bool) -> list[str]:
        entry = artifacts.entry(RDB_ARTIFACT)
        checker = RdbChecker()
        try:
            with artifacts.open(RDB_ARTIFACT) as data:
                drain(data, checker.feed)
            info = checker.finish()
        except (ArtifactError, RdbError) as exc:
            return [_artifact_problem(entry.path, exc)]
        problems = _against_manifest(entry.path, info.summary(), metadata)
        if deep and not problems:
            problems += self._deep_check(artifacts, info.summary(), metadata)
        return problems

    def _deep_check(self, artifacts: ArtifactReader, rdb: dict, metadata: dict) -> list[str]:
        """Load the RDB into a throwaway redis-server on a free port and count its keys."""
        with _throwaway(artifacts) as loaded:
            if isinstance(loaded, str):
                return [loaded]
            return compare_counts(loaded.keyspace, rdb, "a throwaway redis-server loaded")

    def drill(self, artifacts: ArtifactReader, metadata: dict) -> Drilled:
        """The backup's RDB checked as :meth:`check` does (size, SHA-256, CRC-64, the
        manifest's figures) on its way into a throwaway redis-server, which must then hold what
        the RDB says: its keys (less only those whose TTL ran out since), exactly its keys
        without a TTL (a key that lost its TTL would stay forever: the masking maps must expire),
        and the ``aws_masker:`` prefixes, counted. The live Redis is never touched."""
        entry = artifacts.entry(RDB_ARTIFACT)
        checker = RdbChecker()
        with _throwaway(artifacts, checker.feed) as loaded:
            try:
                rdb = checker.finish().summary()
            except RdbError as exc:
                return Drilled([_artifact_problem(entry.path, exc)], {})
            problems = _against_manifest(entry.path, rdb, metadata)
            if isinstance(loaded, str):
                return Drilled([*problems, loaded], {})
            db = f"db{rdb.get('db')}"
            have = loaded.keyspace.get(db, {})
            keys, expires = have.get("keys", 0), have.get("expires", 0)
            problems += compare_counts(loaded.keyspace, rdb, "a throwaway redis-server loaded")
            if rdb.get("keys") is not None:
                persistent = rdb["keys"] - (rdb.get("expires") or 0)
                if keys - expires != persistent:
                    problems.append(
                        f"a throwaway redis-server loaded {keys - expires} keys without a TTL in "
                        f"{db}; the backup holds {persistent}: TTLs were not kept"
                    )
            figures: dict[str, Any] = {
                "keys": keys,
                "expires": expires,
                "prefixes": loaded.prefixes(),
            }
        recorded = (metadata.get("live") or {}).get("prefixes")
        if recorded is not None:
            figures["prefixes_at_backup"] = recorded
        return Drilled(problems, figures)

    def inspect(self, artifacts: ArtifactReader) -> dict[str, Any]:
        """What the backup's RDB holds, read from a throwaway redis-server that loaded it
        (:mod:`opskit.services.redis.inspect`); the live Redis is never asked."""
        from opskit.services.redis.inspect import inspect_redis

        with _throwaway(artifacts) as loaded:
            if isinstance(loaded, str):
                raise OpskitError(f"{self.role.spec.name}: {loaded}")
            return inspect_redis(loaded.port)

    # -- restore -------------------------------------------------------------------------------

    def plan(self, artifacts: ArtifactReader, metadata: dict) -> RestorePlan:
        artifacts.entry(RDB_ARTIFACT)
        location = (
            self.location()
            if self.role.unit.status().running
            else self._configured_location("redis is not running", recorded=metadata)
        )
        as_aof_base = location.appendonly and not self.role.unit.follows_launch
        location = replace(location, as_aof_base=as_aof_base)
        if as_aof_base and location.aof_dir is None:
            raise OpskitError(
                f"{self.role.spec.name}: appendonly is on and its container's command sets it, "
                "and this Redis has a single-file AOF (before 7.0) that would win over the "
                "restored RDB; turn appendonly off for the restore, or restore under the process "
                "runtime"
            )
        for path in (location.path, location.aof_manifest if as_aof_base else None):
            lost = self.role.unit.keeps_file(path) if path else None
            if lost:
                raise OpskitError(f"{self.role.spec.name}: cannot restore here: {lost}")
        aof = "; AOF rewritten from it after start" if location.appendonly else ""
        if as_aof_base:
            # The container's command keeps appendonly on: Redis 7 loads its AOF, so the RDB
            # becomes that AOF's base (a manifest naming only it), and the data is the restored
            # data with AOF on from the first moment.
            aof = f"; also the base of a new AOF in {location.aof_dir}"
        detail = f"stop, replace {location.path} ({location.source}), start{aof}"
        return RestorePlan(True, detail, location)

    def stage(
        self, artifacts: ArtifactReader, metadata: dict, location: RdbLocation
    ) -> Staged | None:
        """The backup's RDB decompressed into a temp file in the data file's folder (same
        filesystem: the swap is one rename) while Redis still serves, checked on the way as
        :meth:`check` checks it (size, SHA-256, CRC-64, the manifest's figures) — where that
        folder is a host folder; None where it is not (a container's own file, a file
        bind-mounted on its own, the AOF-base restore): :meth:`place` then writes it while
        Redis is down. Staged files an earlier, killed restore left are removed first (the
        stack lock is held: no other restore of this stack is running)."""
        target = self.role.unit.host_file(location.path)
        if target is None or target.in_place or location.as_aof_base:
            return None
        private_dir(target.path.parent)
        _remove_staged(target.path)
        staged = target.path.with_name(f".{target.path.name}{_STAGED_SUFFIX}{os.getpid()}")
        entry = artifacts.entry(RDB_ARTIFACT)
        checker = RdbChecker()
        try:
            with artifacts.open(RDB_ARTIFACT) as data:
                write_stream_private(_Observed(data, checker.feed), staged)
            problems = _against_manifest(entry.path, checker.finish().summary(), metadata)
        except (ArtifactError, RdbError) as exc:
            problems = [_artifact_problem(entry.path, exc)]
        except BaseException:
            staged.unlink(missing_ok=True)
            raise
        if problems:
            staged.unlink(missing_ok=True)
        swap = _Swap(staged, target.path)
        return Staged(tuple(problems), swap.commit, swap.discard)

    def discard_staged(self) -> list[str]:
        """Remove the RDBs interrupted restores staged beside the data file; their paths."""
        target = self.role.unit.host_file(self.location().path)
        return [] if target is None or target.in_place else _remove_staged(target.path)

    def place(self, artifacts: ArtifactReader, location: RdbLocation) -> None:
        entry = artifacts.entry(RDB_ARTIFACT)
        unit = self.role.unit
        unit.create()
        as_aof_base = location.as_aof_base and location.aof_dir
        base_seq, incr_seq = self._next_aof_sequence(location) if as_aof_base else (0, 0)
        targets = [location.path]
        if as_aof_base:
            targets.append(location.aof_file(base_seq, "b"))
        for target in targets:
            checker = RdbChecker()
            with artifacts.open(RDB_ARTIFACT) as data:
                unit.write_file(target, _Observed(data, checker.feed), entry.raw_size)
            checker.finish()
        if as_aof_base:
            # New sequence numbers, above every file the old manifest names: Redis appends to
            # the last incr file its manifest lists, and an old one of the same name would
            # bring the pre-restore writes back at the next start. The manifest goes last:
            # until it is replaced, the old AOF (and data) still rule.
            incr = location.aof_file(incr_seq, "i")
            unit.write_file(incr, io.BytesIO(b""), 0)
            manifest = (
                f"file {PurePosixPath(location.aof_file(base_seq, 'b')).name} seq {base_seq} "
                f"type b\nfile {PurePosixPath(incr).name} seq {incr_seq} type i\n"
            ).encode()
            unit.write_file(location.aof_manifest, io.BytesIO(manifest), len(manifest))

    def _next_aof_sequence(self, location: RdbLocation) -> tuple[int, int]:
        """(base, incr) sequence numbers above those the current AOF manifest names."""
        seqs = {"b": 0, "h": 0, "i": 0}
        try:
            with self.role.unit.open_file(location.aof_manifest) as handle:
                text = handle.read(1 << 20).decode("utf-8", errors="replace")
        except (OpskitError, OSError):
            text = ""
        for line in text.splitlines():
            fields = line.split()
            values = dict(zip(fields[0::2], fields[1::2], strict=False))
            kind, seq = values.get("type"), values.get("seq", "")
            if kind in seqs and seq.isdigit():
                seqs[kind] = max(seqs[kind], int(seq))
        return max(seqs["b"], seqs["h"]) + 1, seqs["i"] + 1

    def apply(self, location: RdbLocation, metadata: dict) -> Verdict:
        name = self.role.spec.name
        rewrite = ""
        if location.as_aof_base and location.aof_dir:
            rewrite = f"; AOF on throughout: the restored RDB is the base of {location.aof_dir}"
        elif location.appendonly:
            with self.role.probe(timeout=10.0) as redis:
                redis.call("CONFIG", "SET", "appendonly", "yes")  # rewrites the AOF from memory

                def rewritten() -> bool | None:
                    info = redis.info("persistence")
                    busy = (
                        info.get("aof_rewrite_in_progress") != "0"
                        or info.get("aof_rewrite_scheduled") != "0"
                    )
                    if busy or info.get("aof_enabled") != "1":
                        return None
                    if info.get("aof_last_bgrewrite_status") != "ok":
                        raise OpskitError(f"{name}: the AOF rewrite after restore failed")
                    return True

                if not poll_until(rewritten, deadline_in(REWRITE_TIMEOUT), first=0.01, cap=0.1):
                    return Verdict(False, "the AOF rewrite did not finish")
            rewrite = "; appendonly back on, AOF rewritten from the restored data"
        with self.role.probe(timeout=5.0) as redis:
            keyspace = _keyspace(redis.info("keyspace"))
        problems = compare_counts(keyspace, metadata.get("rdb", {}), "after restore redis holds")
        if problems:
            return Verdict(False, "; ".join(problems))
        keys = sum(space.get("keys", 0) for space in keyspace.values())
        return Verdict(True, f"restored {keys} keys from {location.path}{rewrite}")


_COUNT_BATCH = """
local step = redis.call('SCAN', ARGV[1], 'MATCH', ARGV[2] .. '*', 'COUNT', ARGV[3])
local counts, flat = {}, {}
for _, key in ipairs(step[2]) do
  local kind = string.match(key, '^' .. ARGV[2] .. '([^:]*):') or ''
  counts[kind] = (counts[kind] or 0) + 1
end
for kind, count in pairs(counts) do
  table.insert(flat, kind)
  table.insert(flat, count)
end
return {step[1], flat}
"""


def _count_in_redis(redis) -> dict[str, int]:
    prefixes: dict[str, int] = {}
    cursor = "0"
    while True:
        cursor, flat = redis.call("EVAL", _COUNT_BATCH, 0, cursor, MASKER_PREFIX, SCAN_BATCH)
        cursor = cursor.decode() if isinstance(cursor, bytes) else str(cursor)
        for kind, count in zip(flat[::2], flat[1::2], strict=True):
            name = f"{MASKER_PREFIX}{kind.decode()}:" if kind else MASKER_PREFIX
            prefixes[name] = prefixes.get(name, 0) + int(count)
        if cursor == "0":
            return prefixes


def _count_here(redis) -> dict[str, int]:
    prefixes: dict[str, int] = {}
    cursor = "0"
    while True:
        cursor, keys = redis.call("SCAN", cursor, "MATCH", f"{MASKER_PREFIX}*", "COUNT", SCAN_BATCH)
        for key in keys:
            parts = key.split(b":", 2)
            name = (
                f"{MASKER_PREFIX}{parts[1].decode(errors='replace')}:"
                if len(parts) > 2
                else (MASKER_PREFIX)
            )
            prefixes[name] = prefixes.get(name, 0) + 1
        cursor = cursor.decode() if isinstance(cursor, bytes) else str(cursor)
        if cursor == "0":
            return prefixes


@dataclass(frozen=True)
class _Loaded:
    """A throwaway redis-server that has loaded a backup's RDB."""

    port: int
    keyspace: dict[str, dict[str, int]]

    def prefixes(self) -> dict[str, int]:
        from opskit.services.probes import RedisProbe

        with RedisProbe("127.0.0.1", self.port, None, 30.0) as redis:
            try:
                counted = _count_in_redis(redis)
            except RedisReplyError:
                counted = _count_here(redis)
        return dict(sorted(counted.items()))


@contextlib.contextmanager
def _throwaway(artifacts: ArtifactReader, observe=None) -> Iterator[_Loaded | str]:
    """The backup's RDB (each chunk also handed to ``observe``) loaded by a redis-server of
    its own on a free loopback port, in a private temp folder, with no password, no saving
    and no AOF; killed and removed afterwards. Yields why not, when it did not load."""
    from opskit.ports import free_loopback_port
    from opskit.services.probes import RedisLoading, RedisProbe, RedisUnreachable

    with tempfile.TemporaryDirectory(prefix="opskit-deep-") as folder:
        path = Path(folder) / "dump.rdb"
        with artifacts.open(RDB_ARTIFACT) as data, path.open("wb") as out:
            drain(_Observed(data, observe) if observe else data, out.write)
        port = free_loopback_port()
        conf = Path(folder) / "redis.conf"
        conf.write_text(
            f'port {port}\nbind 127.0.0.1\ndir {folder}\ndbfilename dump.rdb\nsave ""\n'
            "appendonly no\n"
        )
        try:
            server = subprocess.Popen(
                ["redis-server", str(conf)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as exc:
            yield f"cannot run a throwaway redis-server here: {exc.strerror or exc}"
            return
        try:

            def loaded() -> dict | None:
                if server.poll() is not None:
                    raise OpskitError(
                        f"throwaway redis-server exited {server.returncode} loading it"
                    )
                try:
                    with RedisProbe("127.0.0.1", port, None, 2.0) as redis:
                        return _keyspace(redis.info("keyspace"))
                except (RedisLoading, RedisUnreachable):
                    return None

            try:
                keyspace = poll_until(loaded, deadline_in(600), first=0.02, cap=0.2)
            except OpskitError as exc:
                yield str(exc)
                return
            if keyspace is None:
                yield "throwaway redis-server did not load the RDB in 600s"
                return
            yield _Loaded(port, keyspace)
        finally:
            server.kill()
            server.wait()


def compare_counts(keyspace: dict, rdb: dict, what: str) -> list[str]:
    """The RDB's RESIZEDB says ``keys`` (``expires`` of them with a TTL) for its first database;
    a load may drop only keys whose TTL ran out since."""
    db, keys, expires = rdb.get("db"), rdb.get("keys"), rdb.get("expires") or 0
    if keys is None:
        return []
    have = keyspace.get(f"db{db}", {}).get("keys", 0) if db is not None else 0
    if keys - expires <= have <= keys:
        return []
    return [f"{what} {have} keys in db{db}; the backup holds {keys} ({expires} with a TTL)"]


def _keyspace(info: dict[str, str]) -> dict[str, dict[str, int]]:
    """``db0:keys=3,expires=1,avg_ttl=0`` → {"db0": {"keys": 3, "expires": 1, ...}}."""
    spaces = {}
    for name, value in info.items():
        if name.startswith("db") and name[2:].isdigit():
            fields = dict(part.split("=", 1) for part in value.split(",") if "=" in part)
            spaces[name] = {key: int(number) for key, number in fields.items() if number.isdigit()}
    return spaces


def _config_get(redis, name: str) -> str:
    reply = redis.call("CONFIG", "GET", name)
    if not reply or len(reply) < 2:
        raise RedisReplyError(f"CONFIG GET {name} returned nothing")
    value = reply[1]
    return value.decode() if isinstance(value, bytes) else str(value)


def _moved_on(before: dict[str, str], after: dict[str, str]) -> bool:
    """A save finished since ``before``: ``rdb_saves`` (Redis 7) counts them; LASTSAVE has
    one-second resolution, so it only counts when ``rdb_saves`` is missing."""
    if after.get("rdb_bgsave_in_progress") != "0":
        return False
    if "rdb_saves" in before and "rdb_saves" in after:
        return (
            int(after["rdb_saves"]) > int(before["rdb_saves"])
            and after.get("rdb_last_bgsave_status") == "ok"
        )
    return int(after.get("rdb_last_save_time", 0)) > int(before.get("rdb_last_save_time", 0))


class _Swap:
    """A staged RDB and the data file it replaces."""

    def __init__(self, staged: Path, target: Path):
        self.staged, self.target = staged, target

    def commit(self) -> None:
        os.replace(self.staged, self.target)
        fsync_dir(self.target.parent)

    def discard(self) -> None:
        self.staged.unlink(missing_ok=True)


def _remove_staged(data_file: Path) -> list[str]:
    """Remove what restores staged beside ``data_file``; the paths removed."""
    removed = []
    for leftover in data_file.parent.glob(f".{data_file.name}{_STAGED_SUFFIX}*"):
        leftover.unlink(missing_ok=True)
        removed.append(str(leftover))
    return removed


def _against_manifest(path: str, found: dict, metadata: dict) -> list[str]:
    """What the RDB's own header and trailer say against what the manifest recorded."""
    recorded = metadata.get("rdb", {})
    return [
        f"{path}: {key} is {found[key]}, the manifest says {recorded.get(key)}"
        for key in ("crc64", "rdb_version", "keys")
        if recorded.get(key) != found[key]
    ]


def _artifact_problem(path: str, exc: Exception) -> str:
    return f"{path}: {exc}" if isinstance(exc, RdbError) else str(exc)


class _Observed:
    def __init__(self, data, observe):
        self.data, self.observe = data, observe

    def read(self, count: int = -1) -> bytes:
        chunk = self.data.read(count)
        self.observe(chunk)
        return chunk
