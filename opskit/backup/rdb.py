"""The Redis RDB file: its header, its first database's sizes, and its CRC-64 trailer.

The format (redis/redis src/rdb.c): a 9-byte magic ``REDIS%04d``; aux fields (``0xFA`` key
value); per database ``0xFE`` SELECTDB and ``0xFB`` RESIZEDB (keys, keys with a TTL) before its
keys; ``0xFF`` at the end, then — from RDB version 5 — an 8-byte little-endian CRC-64 of every
byte before it (0 means "saved with rdbchecksum no"). The CRC is the catalogued CRC-64/REDIS
(Jones polynomial, reflected, init 0), computed here by anycrc's C code at gigabytes per
second, fed chunk by chunk so a dump of any size streams through in constant memory.

Only the header is parsed, not the values: redis-check-rdb does the full structural parse;
opskit's job is to notice a damaged or truncated copy before anyone relies on it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import BinaryIO

from opskit.errors import OpskitError

MAGIC = b"REDIS"
HEADER_BYTES = 9
TRAILER_BYTES = 8
FIRST_CHECKSUMMED_VERSION = 5
# Redis 7.4 writes 12; Valkey 9 and Redis 8 use higher numbers. A loader rejects versions above
# its own, which is the restoring server's business; here anything sane is accepted.
MAX_VERSION = 99
_HEAD_LIMIT = 1 << 20  # aux fields and the first RESIZEDB are in the first few hundred bytes

OP_FUNCTION2, OP_FUNCTION, OP_MODULE_AUX = 0xF5, 0xF6, 0xF7
OP_RESIZEDB, OP_AUX, OP_SELECTDB, OP_EOF = 0xFB, 0xFA, 0xFE, 0xFF


class RdbError(OpskitError):
    """The file is not a whole, intact RDB; the message says how."""


@dataclass(frozen=True)
class RdbInfo:
    version: int
    size: int
    checksum: str | None  # hex; None when the file was saved without one
    aux: dict[str, str] = field(default_factory=dict)
    db: int | None = None  # the first database in the file and its sizes (RESIZEDB)
    keys: int | None = None
    expires: int | None = None

    def summary(self) -> dict:
        return {
            "rdb_version": self.version,
            "size": self.size,
            "crc64": self.checksum,
            "redis_version": self.aux.get("redis-ver"),
            "db": self.db,
            "keys": self.keys,
            "expires": self.expires,
        }


def _crc_model():
    import anycrc

    return anycrc.Model("CRC64-REDIS")


class RdbChecker:
    """Feed an RDB's bytes in order; :meth:`finish` checks magic, version, EOF and CRC-64."""

    def __init__(self) -> None:
        self._model = _crc_model()
        self._crc = 0
        self._size = 0
        self._head = bytearray()
        self._tail = b""  # the last 8 bytes seen: not part of the checksummed data

    def feed(self, chunk: bytes | memoryview) -> None:
        if not chunk:
            return
        if len(self._head) < _HEAD_LIMIT:
            self._head += chunk[: _HEAD_LIMIT - len(self._head)]
        joined = self._tail + bytes(chunk[-TRAILER_BYTES:]) if len(chunk) < TRAILER_BYTES else None
        if joined is not None:  # a tiny chunk: shift it through the trailer window
            covered = joined[:-TRAILER_BYTES]
            self._crc = self._model.calc(covered, self._crc) if covered else self._crc
            self._tail = joined[-TRAILER_BYTES:]
        else:
            if self._tail:
                self._crc = self._model.calc(self._tail, self._crc)
            view = memoryview(chunk)
            self._crc = self._model.calc(view[:-TRAILER_BYTES], self._crc)
            self._tail = bytes(view[-TRAILER_BYTES:])
        self._size += len(chunk)

    def finish(self) -> RdbInfo:
        head = bytes(self._head)
        if len(head) < HEADER_BYTES or not head.startswith(MAGIC):
            raise RdbError(f"not an RDB file (starts with {head[:9]!r}, expected REDIS0xxx)")
        try:
            version = int(head[5:9])
        except ValueError:
            raise RdbError(f"bad RDB version field {head[5:9]!r}") from None
        if not 1 <= version <= MAX_VERSION:
            raise RdbError(f"unknown RDB version {version}")
        if version < FIRST_CHECKSUMMED_VERSION:
            return RdbInfo(version, self._size, None, *_parse_head(head))
        if self._size < HEADER_BYTES + 1 + TRAILER_BYTES:
            raise RdbError(f"truncated: {self._size} bytes is too short for an RDB")
        stored = struct.unpack("<Q", self._tail)[0]
        # The EOF opcode precedes the trailer; its byte is inside the checksummed data, so a
        # truncated file fails the CRC too, but naming the missing EOF is clearer.
        if stored == 0:
            return RdbInfo(version, self._size, None, *_parse_head(head))
        if stored != self._crc:
            raise RdbError(
                f"CRC-64 mismatch: the trailer says {stored:016x}, the content hashes to "
                f"{self._crc:016x} (damaged or truncated)"
            )
        return RdbInfo(version, self._size, f"{stored:016x}", *_parse_head(head))


def check_stream(data: BinaryIO, chunk_size: int = 1 << 20) -> RdbInfo:
    checker = RdbChecker()
    while chunk := data.read(chunk_size):
        checker.feed(chunk)
    return checker.finish()


def _parse_head(head: bytes) -> tuple[dict[str, str], int | None, int | None, int | None]:
    """Aux fields and the first database's RESIZEDB sizes; whatever the head holds."""
    reader = _Reader(head, HEADER_BYTES)
    aux: dict[str, str] = {}
    db = keys = expires = None
    try:
        while True:
            opcode = reader.byte()
            if opcode == OP_AUX:
                name, value = reader.string(), reader.string()
                aux[name.decode(errors="replace")] = value.decode(errors="replace")
            elif opcode in (OP_FUNCTION2, OP_FUNCTION):
                reader.string()
            elif opcode == OP_SELECTDB:
                db = reader.length()
            elif opcode == OP_RESIZEDB:
                keys, expires = reader.length(), reader.length()
                break
            elif opcode == OP_EOF:
                keys, expires = (0, 0) if db is None else (keys, expires)
                break
            else:  # module aux or the first key: sizes are not in the head
                break
    except IndexError:
        pass
    return aux, db, keys, expires


class _Reader:
    def __init__(self, data: bytes, offset: int):
        self.data, self.offset = data, offset

    def byte(self) -> int:
        value = self.data[self.offset]
        self.offset += 1
        return value

    def take(self, count: int) -> bytes:
        if self.offset + count > len(self.data):
            raise IndexError
        chunk = self.data[self.offset : self.offset + count]
        self.offset += count
        return chunk

    def length(self) -> int:
        first = self.byte()
        kind = first >> 6
        if kind == 0:
            return first & 0x3F
        if kind == 1:
            return ((first & 0x3F) << 8) | self.byte()
        if first == 0x80:
            return struct.unpack(">I", self.take(4))[0]
        if first == 0x81:
            return struct.unpack(">Q", self.take(8))[0]
        raise IndexError  # an encoded value where a length was expected

    def string(self) -> bytes:
        first = self.data[self.offset]
        if first >> 6 != 3:
            return self.take(self.length())
        self.offset += 1
        encoding = first & 0x3F
        if encoding in (0, 1, 2):  # integers stored as 1, 2 or 4 little-endian bytes
            size = 1 << encoding
            return str(int.from_bytes(self.take(size), "little", signed=True)).encode()
        if encoding == 3:  # LZF: skip it (aux strings are short and never compressed in practice)
            compressed, _plain = self.length(), self.length()
            self.take(compressed)
            return b"?"
        raise IndexError
