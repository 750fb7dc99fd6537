"""AWS identifier patterns of the aws-masker plugin, as the stand-in applies them.

Order matters, as in the plugin's ``patterns.lua``: whole ARNs and URLs are masked before the
ids and account numbers inside them could be, so ``arn:aws:iam::123456789012:role/x`` becomes
one ``AWS_IAM_ROLE_001`` and not an ARN with a masked account id.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

_HEX_ID = r"[0-9a-f]{8}(?:[0-9a-f]{9})?"


@dataclass(frozen=True)
class Pattern:
    name: str  # the plugin's pattern name (events: patterns_applied)
    kind: str  # aws_masker:cnt:<kind>
    regex: re.Pattern
    replacement: str  # printf-style, e.g. AWS_EC2_%03d

    def masked(self, counter: int) -> str:
        return self.replacement % counter


def _p(name: str, kind: str, regex: str, replacement: str) -> Pattern:
    return Pattern(name, kind, re.compile(regex), replacement)


PATTERNS: tuple[Pattern, ...] = (
    _p("iam_role_arn", "iam", r"arn:aws:iam::\d{12}:role/[\w+=,.@/-]+", "AWS_IAM_ROLE_%03d"),
    _p("iam_user_arn", "iam", r"arn:aws:iam::\d{12}:user/[\w+=,.@/-]+", "AWS_IAM_USER_%03d"),
    _p(
        "lambda_arn",
        "lambda",
        r"arn:aws:lambda:[a-z0-9-]+:\d{12}:function:[\w-]+",
        "AWS_LAMBDA_ARN_%03d",
    ),
    _p("rds_arn", "rds", r"arn:aws:rds:[a-z0-9-]+:\d{12}:db:[a-z][a-z0-9-]*", "AWS_RDS_%03d"),
    _p(
        "rds_endpoint",
        "rds",
        r"\b[a-z][a-z0-9-]*\.[a-z0-9]+\.[a-z0-9-]+\.rds\.amazonaws\.com\b",
        "AWS_RDS_%03d",
    ),
    _p("s3_arn", "s3", r"arn:aws:s3:::[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", "AWS_S3_BUCKET_%03d"),
    _p(
        "s3_url",
        "s3",
        r"\b[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\.s3(?:[.-][a-z0-9-]+)?\.amazonaws\.com\b",
        "AWS_S3_BUCKET_%03d",
    ),
    _p("s3_uri", "s3", r"s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", "AWS_S3_BUCKET_%03d"),
    _p("ec2_instance", "ec2", rf"\bi-{_HEX_ID}\b", "AWS_EC2_%03d"),
    _p("ami", "ec2", rf"\bami-{_HEX_ID}\b", "AWS_AMI_%03d"),
    _p("ebs_volume", "storage", rf"\bvol-{_HEX_ID}\b", "AWS_EBS_VOL_%03d"),
    _p("snapshot", "storage", rf"\bsnap-{_HEX_ID}\b", "AWS_SNAPSHOT_%03d"),
    _p("security_group", "vpc", rf"\bsg-{_HEX_ID}\b", "AWS_SECURITY_GROUP_%03d"),
    _p("subnet", "vpc", rf"\bsubnet-{_HEX_ID}\b", "AWS_SUBNET_%03d"),
    _p("vpc", "vpc", rf"\bvpc-{_HEX_ID}\b", "AWS_VPC_%03d"),
    _p("access_key", "credentials", r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b", "AWS_ACCESS_KEY_%03d"),
    _p("account_id", "account", r"(?<![\d.])\d{12}(?![\d.])", "AWS_ACCOUNT_%03d"),
    _p("private_ip", "ip", r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])", "AWS_PRIVATE_IP_%03d"),
    _p("public_ip", "ip", r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])", "AWS_PUBLIC_IP_%03d"),
)

_RFC1918 = tuple(
    ipaddress.IPv4Network(net) for net in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
)
MASKED_TOKEN = re.compile(r"\bAWS_[A-Z0-9_]+?_\d{3,}\b")


def accepts(pattern: Pattern, text: str) -> bool:
    """Extra checks a regex cannot express: IPv4 octets, private vs public ranges."""
    if pattern.kind != "ip":
        return True
    try:
        address = ipaddress.IPv4Address(text)
    except ValueError:
        return False
    if pattern.name == "private_ip":
        return any(address in network for network in _RFC1918)
    return address.is_global
