"""Probe clients for the hot path: one HTTP GET, one Redis command, on the standard library.

``inv health`` runs from cron every minute and ``inv recover`` will too, so the CLI's start-up
is paid 1,440 times a day. Importing httpx costs ~110 ms and redis-py ~95 ms (its package
imports its asyncio client) — together more than the probes themselves and more than a shell
script doing the same checks with curl and redis-cli (``bench/health.py``). Readiness probes
and health checks need neither library's features: a GET with a timeout, and RESP2 commands on
one socket. So they use these two small clients; everything else (Kong config apply, the e2e
round trip, Redis SHUTDOWN and pub/sub, backups) keeps httpx and redis-py, imported when used.
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

HTTP_TIMEOUT = 2.0


if TYPE_CHECKING:
    import ssl


class ProbeError(Exception):
    """The probe got no answer: ``kind`` names the failure as httpx would (ConnectError, …)."""

    def __init__(self, kind: str, detail: str = ""):
        self.kind = kind
        super().__init__(f"{kind}: {detail}" if detail else kind)


@dataclass(frozen=True)
class HttpAnswer:
    status_code: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.body)


def http_get(url: str, timeout: float = HTTP_TIMEOUT) -> HttpAnswer:
    """GET ``url`` (http or https) with ``timeout`` for connect and each read. http.client
    (and with it ssl, ≈ 10 ms) is imported by the first probe, not by every command."""
    import http.client

    parts = urlsplit(url)
    connection_class = (
        http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    )
    connection = connection_class(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    try:
        connection.request("GET", path, headers={"User-Agent": "opskit-probe"})
        response = connection.getresponse()
        body = response.read()
        headers = {name.lower(): value for name, value in response.getheaders()}
        return HttpAnswer(response.status, headers, body)
    except ConnectionRefusedError as exc:
        raise ProbeError("ConnectError", str(exc)) from None
    except TimeoutError as exc:
        raise ProbeError("ReadTimeout", str(exc)) from None
    except (OSError, http.client.HTTPException) as exc:
        raise ProbeError(type(exc).__name__, str(exc)) from None
    finally:
        connection.close()


# -- Redis ---------------------------------------------------------------------------------------


class RedisProbeError(Exception):
    """Base: the command did not succeed."""


class RedisUnreachable(RedisProbeError):
    """No connection, or it broke or timed out."""


class RedisAuthFailed(RedisProbeError):
    """NOAUTH / WRONGPASS: waiting cannot fix a wrong password."""


class RedisLoading(RedisProbeError):
    """LOADING: the server is reading its dataset into memory."""


class RedisNoPermission(RedisProbeError):
    """NOPERM: the ACL user may not run this command, or touch this key or channel."""


class RedisReplyError(RedisProbeError):
    """Any other error reply (``-ERR unknown command``, ``-MISCONF``, …)."""


class RedisProbe:
    """One connection speaking RESP2: ``AUTH`` first when there is a password, then commands.

    Use as a context manager; every call is bounded by ``timeout``.
    """

    def __init__(
        self,
        host: str,
        port: int,
        password: str | None,
        timeout: float = 1.0,
        *,
        username: str | None = None,
        tls: tuple[ssl.SSLContext, str] | None = None,
    ):
        self.host, self.port, self.password, self.timeout = host, port, password, timeout
        self.username = username
        self.tls = tls  # a context and the name the server's certificate must have
        self._socket: socket.socket | None = None
        self._reader = None

    def __enter__(self) -> RedisProbe:
        try:
            raw = socket.create_connection((self.host, self.port), timeout=self.timeout)
        except OSError as exc:
            raise RedisUnreachable(f"Error connecting to {self.host}:{self.port}: {exc}") from None
        if self.tls is not None:
            import ssl  # only here: a plain connection does not pay its import

            context, name = self.tls
            try:
                raw = context.wrap_socket(raw, server_hostname=name)
            except (OSError, ssl.SSLError) as exc:
                raw.close()
                why = getattr(exc, "reason", None) or exc
                raise RedisUnreachable(f"TLS with {self.host}:{self.port} failed: {why}") from None
        self._socket = raw
        self._reader = self._socket.makefile("rb")
        if self.password:
            credentials = (self.username, self.password) if self.username else (self.password,)
            self.call("AUTH", *credentials)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._reader is not None:
            self._reader.close()
        if self._socket is not None:
            self._socket.close()

    def call(self, *args: str | int) -> Any:
        encoded = [str(arg).encode() for arg in args]
        frame = b"*%d\r\n" % len(encoded) + b"".join(
            b"$%d\r\n%s\r\n" % (len(item), item) for item in encoded
        )
        try:
            assert self._socket is not None
            self._socket.sendall(frame)
            return self._read()
        except (OSError, EOFError) as exc:
            if self.tls is not None and type(exc).__name__.startswith("SSL"):
                raise RedisUnreachable(
                    f"the server closed the TLS connection ({type(exc).__name__}): does it "
                    "require a client certificate (x-opskit.tls.cert_file/key_file) that it "
                    "does not accept?"
                ) from None
            raise RedisUnreachable(f"{type(exc).__name__}: {exc}") from None

    def info(self, section: str | None = None) -> dict[str, str]:
        text = self.call("INFO", *([section] if section else []))
        pairs = (line.partition(":") for line in text.decode().splitlines() if ":" in line)
        return {key: value for key, _, value in pairs if not key.startswith("#")}

    def _read(self) -> Any:
        assert self._reader is not None
        line = self._reader.readline()
        if not line.endswith(b"\r\n"):
            raise EOFError("connection closed by server")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            message = rest.decode(errors="replace")
            if message.startswith(("NOAUTH", "WRONGPASS")) or "invalid password" in message:
                code, _, text = message.partition(" ")  # as redis-py: the text, not the code
                raise RedisAuthFailed(text if code in ("NOAUTH", "WRONGPASS") else message)
            if message.startswith("LOADING"):
                raise RedisLoading(message)
            if message.startswith("NOPERM"):  # an ACL user without this command or key
                raise RedisNoPermission(
                    f"the ACL user lacks a permission (docs/configuration.md, 'Redis with its "
                    f"own user'): {message}"
                )
            raise RedisReplyError(message)
        if kind == b":":
            return int(rest)
        if kind == b"$":
            size = int(rest)
            if size < 0:
                return None
            data = self._reader.read(size + 2)
            return data[:-2]
        if kind == b"*":
            count = int(rest)
            return None if count < 0 else [self._read() for _ in range(count)]
        raise EOFError(f"unexpected reply {line[:20]!r}")
