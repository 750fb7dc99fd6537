"""A log bundle: every service's logs, redacted, in one ``.tar.zst`` with a manifest.

Built as files in a private staging folder beside the destination (each member written line by
line through the redactor, never whole in memory), then packed into ``<name>.tar.zst.partial``,
fsynced and renamed: a reader never sees half a bundle, and an interrupted run leaves only a
``.staging-*`` folder that the next run removes once its process is gone. Members are 0600,
owned by nobody in the archive, and the archive is 0600 in a 0700 folder: logs hold data.

Retention removes only files whose whole name is a bundle name (:data:`BUNDLE_NAME`): a folder
shared with anything else loses nothing else.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tarfile
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from opskit.files import fsync_dir, pid_alive, private_dir
from opskit.redact import Redactor

BUNDLE_NAME = re.compile(r"^opskit-logs-\d{8}T\d{6}Z(?:\.\d+)?\.tar\.zst$")
MANIFEST = "manifest.json"
STAGING_PREFIX = ".staging-"


@dataclass
class BundleFile:
    """One member: a service's log source as collected."""

    path: str
    service: str
    source: str
    lines: int = 0
    bytes: int = 0
    sha256: str = ""
    first: float | None = None  # epoch seconds of the first and last timed line
    last: float | None = None


@dataclass
class BundleManifest:
    stack: str
    created: float
    since: float | None
    mask_aws: bool
    files: list[BundleFile] = field(default_factory=list)
    redactions: dict[str, int] = field(default_factory=dict)  # kind -> count, never values
    problems: list[str] = field(default_factory=list)  # sources that could not be read

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"


class BundleWriter:
    """Stage members, then :meth:`finish` packs them. Use as a context manager: leaving it
    without :meth:`finish` (an error, Ctrl-C) removes the staging folder."""

    def __init__(self, out_dir: Path, manifest: BundleManifest, redactor: Redactor):
        self.out_dir = private_dir(out_dir)
        self.manifest = manifest
        self.redactor = redactor
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(manifest.created))
        self.name = _free_name(self.out_dir, f"opskit-logs-{stamp}")
        self.staging = self.out_dir / f"{STAGING_PREFIX}{self.name}-{os.getpid()}"

    def __enter__(self) -> BundleWriter:
        _remove_dead_staging(self.out_dir)
        self.staging.mkdir(mode=0o700)
        return self

    def __exit__(self, *exc_info: object) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)

    def add(
        self, service: str, source: str, lines: Iterable[tuple[float | None, str]]
    ) -> BundleFile:
        """Write ``(time, text)`` lines, redacted, as ``<service>/<source>.log``."""
        member = BundleFile(f"{service}/{_safe(source)}.log", service, source)
        target = self.staging / member.path
        target.parent.mkdir(mode=0o700, exist_ok=True)
        digest = hashlib.sha256()
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            for when, text in lines:
                data = (self.redactor(text) + "\n").encode("utf-8", errors="replace")
                handle.write(data)
                digest.update(data)
                member.lines += 1
                member.bytes += len(data)
                if when is not None:
                    member.first = when if member.first is None else min(member.first, when)
                    member.last = when if member.last is None else max(member.last, when)
        member.sha256 = digest.hexdigest()
        self.manifest.files.append(member)
        return member

    def finish(self) -> Path:
        """Pack the staged members and the manifest; return the bundle's path."""
        import zstandard

        self.manifest.redactions = dict(sorted(self.redactor.counts.items()))
        (self.staging / MANIFEST).write_text(self.manifest.to_json())
        os.chmod(self.staging / MANIFEST, 0o600)
        final = self.out_dir / f"{self.name}.tar.zst"
        partial = final.with_name(final.name + ".partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as raw:
                compressor = zstandard.ZstdCompressor(level=6)
                members = [MANIFEST, *(f.path for f in self.manifest.files)]
                with (
                    compressor.stream_writer(raw, closefd=False) as zstd_stream,
                    tarfile.open(fileobj=zstd_stream, mode="w|") as tar,
                ):
                    for name in members:
                        tar.add(self.staging / name, arcname=name, filter=_anonymous)
                raw.flush()
                os.fsync(raw.fileno())
            os.replace(partial, final)
            fsync_dir(self.out_dir)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                partial.unlink()
            raise
        return final


def prune_bundles(out_dir: Path, keep: int) -> list[Path]:
    """Remove all but the newest ``keep`` bundles in ``out_dir``; return what was removed."""
    if not out_dir.is_dir():
        return []
    bundles = sorted(
        (p for p in out_dir.iterdir() if BUNDLE_NAME.match(p.name) and p.is_file()),
        key=lambda p: p.name,
    )
    removed = bundles[: max(0, len(bundles) - keep)]
    for path in removed:
        path.unlink()
    return removed


def read_manifest(bundle: Path) -> dict:
    """The manifest of a bundle (tests, ``inv logs.collect`` summaries)."""
    import zstandard

    with (
        bundle.open("rb") as raw,
        zstandard.ZstdDecompressor().stream_reader(raw) as stream,
        tarfile.open(fileobj=stream, mode="r|") as tar,
    ):
        for member in tar:
            if member.name == MANIFEST:
                extracted = tar.extractfile(member)
                assert extracted is not None
                return json.loads(extracted.read())
    raise ValueError(f"{bundle}: no {MANIFEST}")


def _anonymous(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mode = 0o700 if info.isdir() else 0o600
    return info


def _safe(source: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", source.strip("/")) or "output"


def _free_name(folder: Path, base: str) -> str:
    name, counter = base, 1
    while (folder / f"{name}.tar.zst").exists():
        name, counter = f"{base}.{counter}", counter + 1
    return name


def _remove_dead_staging(folder: Path) -> None:
    for path in folder.glob(f"{STAGING_PREFIX}*"):
        pid = path.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)
