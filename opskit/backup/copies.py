"""``x-opskit.backups.copies``: restic repositories that hold a copy of every backup, and
what the last copy to each did.

```yaml
x-opskit:
  backups:
    copy_max_age: 26h                  # OpskitBackupCopyTooOld fires past this (default 26h)
    copies:
      - name: offsite                  # a label: metrics, alerts, backup.list
        repository: sftp:backup@vault.example.com:/srv/opskit   # any URL restic takes
        password_from: RESTIC_OFFSITE_PASSWORD                  # a variable in .env/the env
        options: {sftp.command: "ssh -i /etc/opskit/vault-key backup@vault -s sftp"}
        environment: {AWS_ACCESS_KEY_ID: "${AWS_KEY_ID}"}       # for s3:, rclone: backends
        timeout: 1h                    # a copy, a fetch, a prune (default 1h)
        connect_timeout: 30s           # opening the repository (default 30s)
        check_subset: 5%               # backup.validate --copies: restic check --read-data-subset
```

A copy whose ``repository`` is empty is off (``repository: ${OFFSITE_REPO:-}``: machines
without it). The password is read from the named variable when a copy runs — not when the
stack file is loaded — so every other command works on a machine without it; its value, the
URL's user information and the ``environment`` values are secrets (redacted everywhere).

A copy stores the backup folder as it is on disk (zstd, and age when ``encrypt_to`` is set),
one snapshot per backup, tagged ``opskit`` and ``opskit-id:<id>``, under the stack's name as
restic's host.

``<state_dir>/backup-copies.json`` keeps, per copy, the last attempt and the last success and
the backups still owed (a copy that failed is retried by the next ``inv backup`` or
``inv backup.copy``). It holds ids, times, sizes and a redacted one-line reason.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from opskit.files import atomic_write_json, read_json
from opskit.options import OptionReader

NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
SUBSET = re.compile(r"^(\d+(\.\d+)?%|\d+/\d+|\d+[KMGT]?)$")
DEFAULT_MAX_AGE = 26 * 3600.0


@dataclass(frozen=True)
class CopySpec:
    name: str
    repository: str
    password_from: str
    options: tuple[tuple[str, str], ...] = ()
    environment: tuple[tuple[str, str], ...] = ()
    timeout: float = 3600.0
    connect_timeout: float = 30.0
    check_subset: str = "5%"

    def secrets(self, environ: dict[str, str]) -> list[str]:
        """What must never be printed: the password, the URL's user information (a REST
        server's ``user:password@``) and the extra environment's values."""
        values = [value for _name, value in self.environment]
        password = environ.get(self.password_from, "")
        if password:
            values.append(password)
        url = self.repository.partition(":")[2] if self.repository.startswith("rest:") else ""
        userinfo = urlsplit(url).netloc.rpartition("@")[0] if "@" in url else ""
        if userinfo:
            values += [userinfo, userinfo.partition(":")[2]]
        return [value for value in values if value]


@dataclass(frozen=True)
class CopySettings:
    copies: tuple[CopySpec, ...] = ()
    max_age: float = DEFAULT_MAX_AGE

    def named(self, name: str) -> CopySpec | None:
        return next((c for c in self.copies if c.name == name), None)


def read_copy_settings(backups: OptionReader) -> CopySettings:
    """``copies`` and ``copy_max_age`` of ``x-opskit.backups``; every bad value names its key."""
    max_age = backups.positive_duration("copy_max_age", DEFAULT_MAX_AGE)
    copies: list[CopySpec] = []
    for index, item in enumerate(backups.items("copies")):
        key = f"copies[{index}]"
        if not isinstance(item, dict):
            raise backups.fail(key, "expected a mapping with name, repository, password_from")
        reader = OptionReader(backups.source, backups.key(key), item, backups.project_dir)
        spec = _copy(reader)
        if spec is None:
            continue
        if any(c.name == spec.name for c in copies):
            raise reader.fail("name", f"{spec.name!r} is used by another copy")
        copies.append(spec)
    return CopySettings(tuple(copies), max_age)


def _copy(reader: OptionReader) -> CopySpec | None:
    """One copy; None when its repository is empty — ``${VAR:-}`` with VAR unset switches
    it off, so one stack file serves machines with and without that repository."""
    name = reader.required_string("name", "a name (lowercase letters, digits, _ and -)")
    if not NAME.match(name):
        raise reader.fail("name", f"expected lowercase letters, digits, _ and -, got {name!r}")
    if not reader.has("repository"):
        raise reader.fail(
            "repository", "expected a restic repository (a path, sftp:…, rest:…, s3:…, rclone:…)"
        )
    repository = reader.string("repository") or ""
    if not repository:
        return None
    if repository.strip() != repository or "\n" in repository:
        raise reader.fail("repository", "expected a URL without spaces around it")
    variable = reader.required_string("password_from", "the name of the password's variable")
    if not VARIABLE.match(variable):
        raise reader.fail(
            "password_from", f"expected a variable name (e.g. RESTIC_PASSWORD), got {variable!r}"
        )
    options = tuple((str(k), str(v)) for k, v in reader.mapping("options").items())
    environment = tuple((str(k), str(v)) for k, v in reader.mapping("environment").items())
    for name_, _value in environment:
        if not VARIABLE.match(name_) or name_.startswith("RESTIC_"):
            raise reader.fail(
                f"environment.{name_}",
                "expected a variable name not starting with RESTIC_ (opskit sets those)",
            )
    subset = reader.string("check_subset", "5%") or "5%"
    if not SUBSET.match(subset):
        raise reader.fail("check_subset", f"expected e.g. 5%, 1/10 or 100M, got {subset!r}")
    spec = CopySpec(
        name=name,
        repository=repository,
        password_from=variable,
        options=options,
        environment=environment,
        timeout=reader.positive_duration("timeout", 3600.0),
        connect_timeout=reader.positive_duration("connect_timeout", 30.0),
        check_subset=subset,
    )
    reader.finish()
    return spec


# -- what the copies did -------------------------------------------------------------------------

FILE = "backup-copies.json"


@dataclass
class CopyRecord:
    last_attempt: float = 0.0
    last_ok: bool = False
    last_success: float = 0.0  # 0: none yet
    last_backup_id: str | None = None
    last_size: int = 0  # bytes of the backup last copied
    last_added: int = 0  # what restic stored for it after deduplication
    detail: str = ""  # the last failure, redacted
    pending: list[str] = field(default_factory=list)  # backups still owed, oldest first


def read_records(state_dir: Path) -> dict[str, CopyRecord]:
    raw = read_json(state_dir / FILE)
    records: dict[str, CopyRecord] = {}
    for name, item in (raw if isinstance(raw, dict) else {}).items():
        try:
            records[str(name)] = CopyRecord(**item)
        except TypeError:
            continue  # a record from another version: start that copy's afresh
    return records


def write_records(state_dir: Path, records: dict[str, CopyRecord]) -> None:
    atomic_write_json(state_dir / FILE, {name: asdict(r) for name, r in records.items()})
