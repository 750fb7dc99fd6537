"""TLS certificates a service depends on, judged before they expire (as monit's and Kong's own
checks do): days left, and whether the certificate names the host it is served for.

Roles find their certificates — nginx the ``ssl_certificate`` files of the configuration it
loads (``nginx -T``), Kong the ``certificates`` of its configuration and the TLS endpoints its
services point at — and hand them here as PEM bytes or a host and port. The verdict:
WARNING under :data:`WARNING_DAYS` days, CRITICAL under :data:`CRITICAL_DAYS`, expired, or
not matching its hostname. A certificate is parsed with ``cryptography`` (the standard
library reads X.509 only inside a handshake); an endpoint's is fetched without verification —
an expired or mismatched certificate is what must be reported, not a reason to see nothing.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import ssl
import time
from collections.abc import Iterable
from dataclasses import dataclass

from opskit.services.capabilities import MetricValue
from opskit.vocabulary import CheckStatus

WARNING_DAYS = 21
CRITICAL_DAYS = 7
_PEM = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)


@dataclass(frozen=True)
class CertificateInfo:
    where: str  # a file path, "certificates[0]", "https://host:port"
    subject: str  # the common name, or the first name it holds
    not_after: float  # epoch seconds
    names: tuple[str, ...] = ()  # DNS names and IP addresses it is valid for
    host: str | None = None  # the name it is served for, when known
    problem: str = ""  # why it could not be read (then the rest means nothing)

    def days_left(self, now: float | None = None) -> float:
        return (self.not_after - (time.time() if now is None else now)) / 86400

    @property
    def host_ok(self) -> bool:
        return self.host is None or hostname_matches(self.host, self.names)

    def verdict(self, now: float | None = None) -> tuple[CheckStatus, str]:
        if self.problem:
            return CheckStatus.CRITICAL, f"{self.where}: {self.problem}"
        days = self.days_left(now)
        when = time.strftime("%Y-%m-%d", time.gmtime(self.not_after))
        if days < 0:
            return CheckStatus.CRITICAL, f"{self.where}: EXPIRED on {when} ({self.subject})"
        if not self.host_ok:
            return CheckStatus.CRITICAL, (
                f"{self.where}: does not name {self.host} (it names {', '.join(self.names)})"
            )
        text = f"{self.where}: {days:.0f} days left (until {when}, {self.subject})"
        if days < CRITICAL_DAYS:
            return CheckStatus.CRITICAL, text
        return (CheckStatus.WARNING if days < WARNING_DAYS else CheckStatus.OK), text


def from_pem(where: str, data: bytes, host: str | None = None) -> CertificateInfo:
    """The first certificate in ``data`` (a chain's leaf comes first)."""
    from cryptography import x509

    found = _PEM.search(data)
    if found is None:
        return CertificateInfo(where, "", 0.0, host=host, problem="no PEM certificate in it")
    try:
        return _info(where, x509.load_pem_x509_certificate(found.group(0)), host)
    except ValueError as exc:
        return CertificateInfo(where, "", 0.0, host=host, problem=f"unreadable: {exc}")


def from_endpoint(host: str, port: int, timeout: float = 3.0) -> CertificateInfo:
    """The certificate ``host:port`` serves for ``host`` (SNI), fetched without verifying it."""
    from cryptography import x509

    where = f"https://{host}:{port}"
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with (
            socket.create_connection((host, port), timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname=host) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError) as exc:
        return CertificateInfo(where, "", 0.0, host=host, problem=f"no TLS answer: {exc}")
    if not der:
        return CertificateInfo(where, "", 0.0, host=host, problem="no certificate served")
    return _info(where, x509.load_der_x509_certificate(der), host)


def _info(where: str, certificate, host: str | None) -> CertificateInfo:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    names: list[str] = []
    try:
        alternative = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        names += alternative.value.get_values_for_type(x509.DNSName)
        names += [str(ip) for ip in alternative.value.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        pass
    common = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    subject = str(common[0].value) if common else (names[0] if names else "no subject")
    if not names and common:
        names = [subject]  # no SAN: clients of old fell back on the CN; so does this check
    return CertificateInfo(
        where, subject, certificate.not_valid_after_utc.timestamp(), tuple(names), host
    )


def hostname_matches(host: str, names: Iterable[str]) -> bool:
    """RFC 6125: an exact name, or a wildcard for the leftmost label only (``*.example.com``
    matches ``api.example.com``, not ``example.com`` nor ``a.b.example.com``); IPs exactly."""
    host = host.rstrip(".").lower()
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    for name in names:
        name = name.rstrip(".").lower()
        if address is not None:
            try:
                if ipaddress.ip_address(name) == address:
                    return True
            except ValueError:
                continue
        elif name == host:
            return True
        elif name.startswith("*.") and "." in host:
            label, rest = host.split(".", 1)
            if label and rest == name[2:]:
                return True
    return False


def judge(certificates: list[CertificateInfo]) -> tuple[CheckStatus, str]:
    """The worst verdict, and every certificate that is not OK (else the soonest to expire)."""
    if not certificates:
        return CheckStatus.OK, "no TLS certificate to watch"
    verdicts = [c.verdict() for c in certificates]
    worst = max(verdicts, key=lambda v: _RANK[v[0]])
    troubled = [detail for status, detail in verdicts if status is not CheckStatus.OK]
    if troubled:
        return worst[0], "; ".join(troubled)
    soonest = min(certificates, key=lambda c: c.not_after)
    return CheckStatus.OK, f"{len(certificates)} certificate(s); soonest: {soonest.verdict()[1]}"


_RANK = {CheckStatus.OK: 0, CheckStatus.WARNING: 1, CheckStatus.UNKNOWN: 2, CheckStatus.CRITICAL: 3}


def metric_values(certificates: list[CertificateInfo]) -> list[MetricValue]:
    values = []
    for certificate in certificates:
        if certificate.problem:
            continue
        labels = (("certificate", certificate.where), ("host", certificate.host or ""))
        values.append(
            MetricValue(
                "certificate_expiry_timestamp_seconds",
                "When a TLS certificate the service depends on expires (epoch seconds).",
                certificate.not_after,
                labels=labels,
            )
        )
        values.append(
            MetricValue(
                "certificate_hostname_ok",
                "1 when the certificate names the host it is served for.",
                float(certificate.host_ok),
                labels=labels,
            )
        )
    return values


# -- nginx's configuration -------------------------------------------------------------------------

_TOKEN = re.compile(r"""#[^\n]*|"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|[{};]|[^\s{};#"']+""")


def nginx_certificates(files: dict[str, str]) -> list[tuple[str, str | None]]:
    """``ssl_certificate`` paths of an ``nginx -T`` dump (:func:`split_dump`'s files), each with
    the first ``server_name`` of its server block (None: none, ``_``, or a regex)."""
    found: list[tuple[str, str | None]] = []
    for text in files.values():
        stack: list[str] = []  # block names
        words: list[str] = []
        servers: list[dict] = []
        for token in _TOKEN.findall(text):
            if token.startswith("#"):
                continue
            if token == "{":
                stack.append(words[0] if words else "")
                if stack[-1] == "server":
                    servers.append({"names": [], "certs": []})
                words = []
            elif token == "}":
                if stack and stack.pop() == "server" and servers:
                    block = servers.pop()
                    host = next(  # a catch-all, a regex or a wildcard names no one host
                        (
                            n
                            for n in block["names"]
                            if n not in ("_", "") and not set(n) & set("~*")
                        ),
                        None,
                    )
                    found += [(path, host) for path in block["certs"]]
                words = []
            elif token == ";":
                if words and servers and stack and stack[-1] == "server":
                    if words[0] == "server_name":
                        servers[-1]["names"] += [w.strip("\"'") for w in words[1:]]
                    elif words[0] == "ssl_certificate" and len(words) > 1:
                        servers[-1]["certs"].append(words[1].strip("\"'"))
                elif words and words[0] == "ssl_certificate" and len(words) > 1:
                    found.append((words[1].strip("\"'"), None))  # in http {}: every server's
                words = []
            else:
                words.append(token)
    return [
        (path, host) for path, host in found if "$" not in path and not path.startswith("data:")
    ]
