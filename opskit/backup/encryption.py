"""Backups encrypted at rest with age: to public keys (recipients) while they are written, read
back only where an identity (the private key) is given.

Every artifact is zstd first, then age (``<name>.zst.age``), streamed: pyrage's encryptor runs
on a thread that reads what zstd writes through a pipe, and its decryptor feeds the reader the
same way, so a gigabyte RDB never sits in memory. Each file is a standard age file: ``age -d -i
KEYFILE redis/dump.rdb.zst.age | zstd -d`` gets it back without opskit (docs/backups.md). The
host that takes backups needs only the recipients; ``restore``, ``validate --deep``, drills and
``inspect`` read the identity from ``OPSKIT_BACKUP_IDENTITY`` (its text) or
``OPSKIT_BACKUP_IDENTITY_FILE`` (a file as ``age-keygen`` writes it), never from argv or a log.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, BinaryIO

from opskit.errors import OpskitError, UsageError

SUFFIX = ".age"
IDENTITY_VARIABLE = "OPSKIT_BACKUP_IDENTITY"
IDENTITY_FILE_VARIABLE = "OPSKIT_BACKUP_IDENTITY_FILE"
RECIPIENT = re.compile(r"^age1[02-9ac-hj-np-z]{58}$")  # bech32, as age-keygen prints it
_IDENTITY_LINE = re.compile(r"^AGE-SECRET-KEY-1[02-9AC-HJ-NP-Z]{58}$")


class EncryptionError(OpskitError):
    """An artifact cannot be encrypted or decrypted (wrong identity, damaged file)."""


def identities(environ: Mapping[str, str]) -> list[Any] | None:
    """The age identities the stack's environment gives, or None when it gives none. A bad
    value is one line naming the variable, never its content."""
    text, where = environ.get(IDENTITY_VARIABLE, ""), IDENTITY_VARIABLE
    path = environ.get(IDENTITY_FILE_VARIABLE, "")
    if not text and path:
        where = f"{IDENTITY_FILE_VARIABLE} ({path})"
        try:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
        except OSError as exc:
            raise UsageError(f"{where}: cannot read it: {exc.strerror or exc}") from None
    if not text:
        return None
    lines = [line.strip() for line in text.splitlines()]
    keys = [line for line in lines if line and not line.startswith("#")]
    if not keys or not all(_IDENTITY_LINE.match(key) for key in keys):
        raise UsageError(
            f"{where}: expected age identities (AGE-SECRET-KEY-1… lines, as age-keygen writes)"
        )
    from pyrage import x25519

    return [x25519.Identity.from_str(key) for key in keys]


def _recipients(values: Sequence[str]) -> list[Any]:
    from pyrage import x25519

    return [x25519.Recipient.from_str(value) for value in values]


class EncryptingSink:
    """A file-like object to write plaintext into; what reaches ``target`` is its age
    encryption to ``recipients``. :meth:`close` ends the stream and waits for the encryptor."""

    def __init__(self, target: Any, recipients: Sequence[str]):
        import pyrage

        read_fd, write_fd = os.pipe()
        self._reader = os.fdopen(read_fd, "rb")
        self._writer = os.fdopen(write_fd, "wb")
        self._failure: list[BaseException] = []

        def encrypt() -> None:
            try:
                pyrage.encrypt_io(self._reader, target, _recipients(recipients))
            except BaseException as exc:  # re-raised by close(); a thread must not die silently
                self._failure.append(exc)
            finally:
                self._reader.close()

        self._thread = threading.Thread(target=encrypt, name="opskit-age-encrypt", daemon=True)
        self._thread.start()

    def write(self, data: bytes) -> int:
        try:
            return self._writer.write(data)
        except BrokenPipeError:
            self._thread.join()
            raise self._error() from None

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        with contextlib.suppress(BrokenPipeError):
            self._writer.close()
        self._thread.join()
        if self._failure:
            raise self._error()

    def _error(self) -> BaseException:
        failure = self._failure[0] if self._failure else None
        if failure is not None and not isinstance(failure, Exception):
            return failure  # an Interrupted from the target: pass it on as it is
        if isinstance(failure, OpskitError):
            return failure
        return EncryptionError(f"age encryption failed: {failure}")


@contextlib.contextmanager
def decrypted(source: BinaryIO, keys: Sequence[Any], path: str) -> Iterator[BinaryIO]:
    """The plaintext of the age stream ``source``, read as it is decrypted. A wrong identity
    or a damaged file raises EncryptionError naming ``path`` when the reader gets there."""
    import pyrage

    read_fd, write_fd = os.pipe()
    reader, writer = os.fdopen(read_fd, "rb"), os.fdopen(write_fd, "wb")
    failure: list[BaseException] = []

    def decrypt() -> None:
        try:
            pyrage.decrypt_io(source, writer, list(keys))
        except BrokenPipeError:
            pass  # the reader stopped early: nothing is wrong with the file
        except BaseException as exc:
            failure.append(exc)
        finally:
            with contextlib.suppress(BrokenPipeError):
                writer.close()

    thread = threading.Thread(target=decrypt, name="opskit-age-decrypt", daemon=True)
    thread.start()
    checked = _Failing(reader, thread, failure, path)
    try:
        yield checked
    finally:
        reader.close()  # an early stop: the decryptor's next write fails and it ends
        thread.join()


class _Failing:
    """The decrypted pipe; at its end the decryptor's verdict is raised, if it failed."""

    def __init__(self, reader: BinaryIO, thread: threading.Thread, failure: list, path: str):
        self.reader, self.thread, self.failure, self.path = reader, thread, failure, path

    def read(self, count: int = -1) -> bytes:
        chunk = self.reader.read(count)
        if not chunk:
            self.thread.join()
            if self.failure:
                raise EncryptionError(
                    f"{self.path}: cannot decrypt it: {self.failure[0]} (is "
                    f"{IDENTITY_VARIABLE} / {IDENTITY_FILE_VARIABLE} the identity of one of "
                    "its recipients?)"
                )
        return chunk
