"""Writing a service's files into a backup, and reading them back, through zstd streams.

:class:`ArtifactWriter` compresses as it writes and hashes what lands on disk, one pass over
the source and constant memory whatever its size; every file is listed in the manifest with
its SHA-256. :class:`ArtifactReader` checks a file's size and SHA-256 against the manifest
while it decompresses, so whoever reads a backup reads only what was written.

A folder (nginx's config tree) is stored as one tar: :func:`pack_tree` / :func:`unpack_tree`.
Unpacking refuses absolute names, ``..``, links, devices and anything but regular files and
directories, so a hostile archive cannot write outside its target.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import tarfile
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from opskit.backup.encryption import (
    IDENTITY_FILE_VARIABLE,
    IDENTITY_VARIABLE,
    SUFFIX,
    EncryptingSink,
    EncryptionError,
    decrypted,
)
from opskit.backup.manifest import Manifest, StoredFile, safe_member
from opskit.errors import Interrupted, OpskitError
from opskit.files import private_dir

CHUNK = 1 << 20
ZSTD_LEVEL = 3


class ArtifactError(OpskitError):
    """A stored file does not match its manifest entry (size, SHA-256) or cannot be read."""


class _HashingFile:
    """The file zstd writes into: counts and hashes what reaches the disk, and ends the write
    at the next chunk once ``stop`` is set (a multi-gigabyte RDB need not finish streaming
    before Ctrl-C is heard)."""

    def __init__(self, handle: BinaryIO, stop: threading.Event | None = None):
        self.handle = handle
        self.stop = stop
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        if self.stop is not None and self.stop.is_set():
            raise Interrupted("interrupted while writing the backup")
        self.sha256.update(data)
        self.size += len(data)
        return self.handle.write(data)

    def flush(self) -> None:
        self.handle.flush()


class ArtifactWriter:
    """Files of one backup under construction (its folder is private and not yet final)."""

    def __init__(
        self,
        root: Path,
        stop: threading.Event | None = None,
        *,
        level: int = ZSTD_LEVEL,
        count_prefixes: bool = False,
        recipients: Sequence[str] = (),
    ):
        self.root = root
        self.stop = stop
        self.level = level  # 1 for a restore's safety copy: it only has to be correct
        self.count_prefixes = count_prefixes  # roles' optional second pass (Redis's SCAN)
        self.recipients = tuple(recipients)  # age public keys: every file encrypted to them
        self.files: list[StoredFile] = []

    def for_service(self, service: str) -> ServiceArtifacts:
        return ServiceArtifacts(self, service)

    def add_stream(
        self, name: str, source: BinaryIO, observe: Callable[[bytes], None] | None = None
    ) -> StoredFile:
        """Compress ``source`` into ``name`` (+ ``.zst``, and ``.age`` when encrypted to
        recipients); ``observe`` sees every raw chunk (the RDB check runs there, in the same
        pass). The SHA-256 and size are of the bytes on disk."""
        import zstandard

        member = safe_member(f"{name}.zst" + (SUFFIX if self.recipients else ""))
        target = self.root / member
        private_dir(target.parent)
        raw_size = 0
        compressor = zstandard.ZstdCompressor(level=self.level, threads=-1)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            hashed = _HashingFile(handle, self.stop)
            sink = EncryptingSink(hashed, self.recipients) if self.recipients else hashed
            try:
                with compressor.stream_writer(sink, closefd=False) as writer:
                    while chunk := source.read(CHUNK):
                        if observe is not None:
                            observe(chunk)
                        writer.write(chunk)
                        raw_size += len(chunk)
            finally:
                if sink is not hashed:
                    sink.close()
            handle.flush()
            os.fsync(handle.fileno())
        stored = StoredFile(member, hashed.size, hashed.sha256.hexdigest(), raw_size)
        self.files.append(stored)
        return stored

    def add_bytes(self, name: str, data: bytes) -> StoredFile:
        return self.add_stream(name, io.BytesIO(data))


class ServiceArtifacts:
    """One service's corner of a backup: names are relative to ``<service>/``."""

    def __init__(self, writer: ArtifactWriter, service: str):
        self.writer, self.service = writer, service

    @property
    def count_prefixes(self) -> bool:
        """Whether a role should also count its keys by prefix (a second pass: on request)."""
        return self.writer.count_prefixes

    def add_stream(
        self, name: str, source: BinaryIO, observe: Callable[[bytes], None] | None = None
    ) -> StoredFile:
        return self.writer.add_stream(f"{self.service}/{name}", source, observe)

    def add_bytes(self, name: str, data: bytes) -> StoredFile:
        return self.writer.add_bytes(f"{self.service}/{name}", data)

    def add_tree(self, name: str, files: dict[str, bytes]) -> StoredFile:
        return self.add_bytes(name, pack_tree(files))


class ArtifactReader:
    """Files of a finished backup, checked against its manifest as they are read."""

    def __init__(
        self,
        root: Path,
        manifest: Manifest,
        service: str | None = None,
        identities: Sequence[Any] | None = None,
    ):
        self.root, self.manifest, self.service = root, manifest, service
        self.identities = identities  # age identities, for an encrypted backup

    def for_service(self, service: str) -> ArtifactReader:
        return ArtifactReader(self.root, self.manifest, service, self.identities)

    def entry(self, name: str) -> StoredFile:
        suffix = ".zst" + (SUFFIX if self.manifest.encrypted_to else "")
        member = f"{self.service}/{name}{suffix}" if self.service else f"{name}{suffix}"
        entry = self.manifest.file(member)
        if entry is None:
            raise ArtifactError(f"{member}: not in the manifest")
        return entry

    def has(self, name: str) -> bool:
        try:
            self.entry(name)
        except ArtifactError:
            return False
        return True

    @contextlib.contextmanager
    def open(self, name: str) -> Iterator[BinaryIO]:
        """The decompressed content of ``name``; at its end the stored bytes' size and SHA-256
        must match the manifest, else ArtifactError (a reader that stops early checks less)."""
        entry = self.entry(name)
        with open_checked(self.root, entry, self.identities) as data:
            yield data

    def read_bytes(self, name: str) -> bytes:
        with self.open(name) as data:
            return data.read()

    def read_tree(self, name: str) -> dict[str, bytes]:
        return unpack_tree(self.read_bytes(name))


@contextlib.contextmanager
def open_checked(
    root: Path, entry: StoredFile, identities: Sequence[Any] | None = None
) -> Iterator[BinaryIO]:
    """``entry``'s content, decompressed (and decrypted, for an ``.age`` file); its size and
    SHA-256 on disk are checked when the reader reaches its end."""
    import zstandard

    path = root / safe_member(entry.path)
    encrypted = entry.path.endswith(SUFFIX)
    if encrypted and not identities:
        raise ArtifactError(
            f"{entry.path}: encrypted; set {IDENTITY_VARIABLE} (or {IDENTITY_FILE_VARIABLE}) to "
            "the age identity to read it"
        )
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise ArtifactError(f"{entry.path}: cannot read: {exc.strerror}") from None
    with handle, contextlib.ExitStack() as layers:
        hashed = _HashingReader(handle, entry)
        compressed = (
            layers.enter_context(decrypted(hashed, identities, entry.path)) if encrypted else hashed
        )
        reader = zstandard.ZstdDecompressor().stream_reader(compressed, read_across_frames=True)
        try:
            yield _Checked(reader, hashed)
        except zstandard.ZstdError as exc:
            raise ArtifactError(f"{entry.path}: not a valid zstd stream: {exc}") from None


class _HashingReader:
    """Counts the stored bytes the decompressor reads; their SHA-256 is computed by a second
    thread over its own handle (hashlib releases the GIL), so checking a backup costs about
    one pass of decompression, not hashing plus decompression one after the other."""

    def __init__(self, handle: BinaryIO, entry: StoredFile):
        import threading

        self.handle, self.entry = handle, entry
        self.size = 0
        self._digest: list[str] = []
        self._hasher = threading.Thread(target=self._hash, args=(handle.name,), daemon=True)
        self._hasher.start()

    def _hash(self, path: str) -> None:
        digest = hashlib.sha256()
        with open(path, "rb") as data:
            while chunk := data.read(4 * CHUNK):
                digest.update(chunk)
        self._digest.append(digest.hexdigest())

    def read(self, count: int = -1) -> bytes:
        chunk = self.handle.read(count)
        self.size += len(chunk)
        return chunk

    def verify(self) -> None:
        while self.read(CHUNK):  # what the decompressor did not need still counts
            pass
        self._hasher.join()
        problem = _mismatch(self.entry, self.size, self._digest[0] if self._digest else "")
        if problem:
            raise ArtifactError(problem)


def stored_problem(root: Path, entry: StoredFile) -> str | None:
    """What is wrong with the bytes of ``entry`` on disk (size, SHA-256), without reading
    what they hold: all that can be checked of an encrypted file without its identity."""
    digest, size = hashlib.sha256(), 0
    try:
        with (root / safe_member(entry.path)).open("rb") as data:
            while chunk := data.read(4 * CHUNK):
                digest.update(chunk)
                size += len(chunk)
    except OSError as exc:
        return f"{entry.path}: cannot read: {exc.strerror}"
    return _mismatch(entry, size, digest.hexdigest())


def _mismatch(entry: StoredFile, size: int, digest: str) -> str | None:
    if size != entry.size:
        return f"{entry.path}: {size} bytes on disk, the manifest says {entry.size}"
    if digest != entry.sha256:
        return (
            f"{entry.path}: SHA-256 {digest[:16]}… differs from the manifest's "
            f"{entry.sha256[:16]}… (changed since the backup)"
        )
    return None


class _Checked(io.RawIOBase):
    """Decompressed bytes; the raw size and the stored file's hash are checked at the end."""

    def __init__(self, reader, hashed: _HashingReader):
        self.reader, self.hashed = reader, hashed
        self.raw = 0
        self.done = False

    def readable(self) -> bool:
        return True

    def read(self, count: int = -1) -> bytes:
        import zstandard

        if self.done:
            return b""
        try:
            chunk = self.reader.read(CHUNK if count is None or count < 0 else count)
            if count is None or count < 0:
                parts = [chunk]
                while chunk:
                    chunk = self.reader.read(CHUNK)
                    parts.append(chunk)
                chunk = b"".join(parts)
        except zstandard.ZstdError as exc:
            raise ArtifactError(f"{self.hashed.entry.path}: damaged zstd stream: {exc}") from None
        except EncryptionError as exc:
            raise ArtifactError(str(exc)) from None
        self.raw += len(chunk)
        if not chunk or count is None or count < 0:
            self._finish()
        return chunk

    def readinto(self, buffer) -> int:
        chunk = self.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)

    def _finish(self) -> None:
        self.done = True
        self.hashed.verify()
        if self.raw != self.hashed.entry.raw_size:
            raise ArtifactError(
                f"{self.hashed.entry.path}: {self.raw} bytes once decompressed, the manifest "
                f"says {self.hashed.entry.raw_size}"
            )


def drain(data: BinaryIO, observe: Callable[[bytes], None] | None = None) -> int:
    """Read ``data`` to its end (so its checks run); ``observe`` sees each chunk."""
    total = 0
    while chunk := data.read(CHUNK):
        if observe is not None:
            observe(chunk)
        total += len(chunk)
    return total


# -- trees ------------------------------------------------------------------------------------


def pack_tree(files: dict[str, bytes]) -> bytes:
    """A tar of ``files`` (relative names): regular files only, owner and times neutral."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name in sorted(files):
            info = tarfile.TarInfo(safe_member(name))
            info.size, info.mode = len(files[name]), 0o600
            archive.addfile(info, io.BytesIO(files[name]))
    return buffer.getvalue()


class UnsafeArchive(ArtifactError):
    """An archive member that would land outside its target, or is not a plain file."""


def unpack_tree(data: bytes) -> dict[str, bytes]:
    """The files of a tar made by :func:`pack_tree`; any other kind of member is refused."""
    files: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as archive:
            for member in archive.getmembers():
                if member.isdir():
                    continue
                if not member.isfile():
                    kind = "link" if member.issym() or member.islnk() else "device or special"
                    raise UnsafeArchive(f"archive member {member.name!r} is a {kind}: refused")
                try:
                    name = safe_member(member.name)
                except ValueError as exc:
                    raise UnsafeArchive(f"{exc}: refused") from None
                extracted = archive.extractfile(member)
                files[name] = extracted.read() if extracted else b""
    except tarfile.TarError as exc:
        raise ArtifactError(f"not a valid tar archive: {exc}") from None
    return files
