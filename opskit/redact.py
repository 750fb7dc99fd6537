"""Secret redaction: nothing opskit prints, logs or writes may contain a secret value.

Secrets are found by name (``*PASSWORD*``, ``*SECRET*``, ``*TOKEN*``, ``*API_KEY*``,
``*WEBHOOK*``, ``*_KEY``) in the stack's variables and service environments, plus role options
named ``password`` and every notifier URL (:meth:`opskit.config.StackConfig.secret_values`
gathers them; this module owns the naming rule and the masking). Every text that leaves
opskit — log tails, error lines, reports — goes through :class:`Redactor` first.

Logs opskit collects from services may also hold secrets opskit was never told about: another
client's Anthropic key, an AWS access key in a stack trace, an ``Authorization`` header, a
password in a URL. ``Redactor(patterns=True)`` masks those by shape (:data:`SECRET_PATTERNS`),
and ``mask_aws=True`` masks AWS resource ids too (:data:`AWS_ID_PATTERNS`, the kinds the
aws-masker plugin masks), for bundles that leave the company. Each replacement is counted by
kind, so a manifest can say what was removed without saying what it was.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Iterable

SECRET_NAME = re.compile(
    r"PASSWORD|PASSWD|SECRET|TOKEN|API_KEY|WEBHOOK|IDENTITY$|_KEY$|^KEY$", re.I
)
MASK = "***"
# Shorter values are too likely to be ordinary words or numbers ("0", "yes") to replace blindly.
MIN_SECRET_LENGTH = 4

# (kind, regex, replacement): a replacement keeps what names the value (the header, the key,
# the URL's user) and masks only the value.
_SECRET_SHAPES: tuple[tuple[str, str, str], ...] = (
    ("anthropic_key", r"sk-ant-[A-Za-z0-9_-]{8,}", "sk-ant-" + MASK),
    ("age_identity", r"AGE-SECRET-KEY-1[0-9A-Z]{20,}", "AGE-SECRET-KEY-" + MASK),
    (
        "aws_access_key",
        r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}\b",
        MASK,
    ),
    (
        "aws_secret_key",
        r"(?i)(aws_secret_access_key[\"']?\s*[=:]\s*[\"']?)[A-Za-z0-9/+=]{40}",
        r"\g<1>" + MASK,
    ),
    (
        "authorization",
        (
            r"(?i)(\b(?:proxy-)?authorization[\"']?\s*[:=]\s*[\"']?)"
            r"((?:Bearer|Basic|Token|Digest)\s+)?[^\s\"',;]+"
        ),
        r"\g<1>\g<2>" + MASK,
    ),
    (
        "api_key_header",
        r"(?i)(\b(?:x-api-key|api[-_]key|apikey)[\"']?\s*[:=]\s*[\"']?)[^\s\"',;&]+",
        r"\g<1>" + MASK,
    ),
    (
        "url_password",
        r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@\"']*:)[^@\s/\"']+@",
        r"\g<1>" + MASK + "@",
    ),
    (
        "password_field",
        (
            r"(?i)(\b(?:password|passwd|requirepass|masterauth|secret)[\"']?\s*[:=]\s*[\"']?)"
            r"[^\s\"',;&]+"
        ),
        r"\g<1>" + MASK,
    ),
    # redis.conf and redis-cli: `requirepass <pw>`, `masterauth <pw>`, `AUTH [user] <pw>`
    ("redis_auth", r"(?i)(\b(?:requirepass|masterauth)\s+)\S+", r"\g<1>" + MASK),
)

_HEX_ID = r"[0-9a-f]{8}(?:[0-9a-f]{9})?"
_AWS_ID_SHAPES: tuple[tuple[str, str, str], ...] = (
    (
        "aws_arn",
        r"\barn:aws[a-z-]*:[a-z0-9-]+:[a-z0-9-]*:\d{0,12}:[^\s\"',]+",
        "[aws:arn]",
    ),
    (
        "aws_s3",
        (
            r"\bs3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]"
            r"|\b[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\.s3(?:[.-][a-z0-9-]+)?\.amazonaws\.com\b"
        ),
        "[aws:s3]",
    ),
    (
        "aws_rds",
        r"\b[a-z][a-z0-9-]*\.[a-z0-9]+\.[a-z0-9-]+\.rds\.amazonaws\.com\b",
        "[aws:rds]",
    ),
    (
        "aws_resource_id",
        (rf"\b(?:i|ami|vol|snap|sg|subnet|vpc|eni|igw|nat|rtb|acl|eipalloc|lt|fs)-{_HEX_ID}\b"),
        "[aws:id]",
    ),
    (
        "private_ip",
        (
            r"\b(?:10(?:\.\d{1,3}){3}|192\.168(?:\.\d{1,3}){2}|172\.(?:1[6-9]|2\d|3[01])(?:\.\d{1,3}){2})\b"
        ),
        "[aws:ip]",
    ),
)


@functools.cache
def _compiled(
    shapes: tuple[tuple[str, str, str], ...],
) -> tuple[tuple[str, re.Pattern[str], str], ...]:
    """A shape table compiled once, on first use: ``inv status`` redacts no shapes and should
    not pay for compiling them (≈ 10 ms)."""
    return tuple((kind, re.compile(pattern), replacement) for kind, pattern, replacement in shapes)


def is_secret_name(name: str) -> bool:
    return bool(SECRET_NAME.search(name))


class Redactor:
    """Replaces known secret values with ``***``, longest first so prefixes never leak; with
    ``patterns`` also secrets recognised by shape, with ``mask_aws`` AWS resource ids.

    ``counts`` says how many replacements of each kind were made (``secret_value`` for the
    known values), for manifests; it never holds the values themselves.
    """

    def __init__(
        self, secrets: Iterable[str] = (), *, patterns: bool = False, mask_aws: bool = False
    ):
        unique = sorted({s for s in secrets if len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, unique))) if unique else None
        self._shapes = [
            *(_compiled(_SECRET_SHAPES) if patterns else ()),
            *(_compiled(_AWS_ID_SHAPES) if mask_aws else ()),
        ]
        self.counts: Counter[str] = Counter()

    def __call__(self, text: str) -> str:
        if not text:
            return text
        if self._pattern is not None:
            text, count = self._pattern.subn(MASK, text)
            if count:
                self.counts["secret_value"] += count
        for kind, pattern, replacement in self._shapes:
            text, count = pattern.subn(replacement, text)
            if count:
                self.counts[kind] += count
        return text

    def lines(self, lines: Iterable[str]) -> list[str]:
        return [self(line) for line in lines]
