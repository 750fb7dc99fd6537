"""The redis role's ``x-opskit`` settings, read by the role and by its backup."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opskit.vocabulary import ShutdownMode

if TYPE_CHECKING:
    import ssl

EVENTS_CHANNEL = "aws-masker:events:masking"


@dataclass(frozen=True)
class RedisTls:
    """How opskit's clients speak TLS to Redis (``x-opskit.tls``): the CA that signed the
    server's certificate, a client certificate when the server asks for one, whether to verify
    (and against which name). The server's own TLS settings (``tls-port``, ``tls-cert-file``…)
    are Redis's configuration (``x-opskit.config`` under the process runtime)."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    verify: bool = True
    server_name: str | None = None

    def context(self, default_name: str) -> tuple[ssl.SSLContext, str]:
        """An SSL context and the name to verify the server as."""
        import ssl

        context = ssl.create_default_context(cafile=self.ca_file)
        if self.cert_file:
            context.load_cert_chain(self.cert_file, self.key_file)
        if not self.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context, self.server_name or default_name


@dataclass(frozen=True)
class RedisOptions:
    username: str | None = None  # an ACL user (docs/configuration.md: the minimal ACL)
    password: str | None = None
    tls: RedisTls | None = None
    config: dict[str, Any] = field(default_factory=dict)
    shutdown: ShutdownMode = ShutdownMode.SAVE
    memory_warning_percent: float = 90.0
    save_age_warning: float = 3600.0
    rdb_path: str | None = None  # where the RDB is when CONFIG GET is renamed away
    events_channel: str = EVENTS_CHANNEL  # where the aws-masker plugin publishes its events
