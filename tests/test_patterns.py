"""aws-masker patterns of the Kong stand-in: positives and near misses, no Redis needed.

Pattern shapes follow the plugin's patterns.lua as described in
shared/reference/original-scripts.md §c.2 (``AWS_EC2_001``, ``AWS_S3_BUCKET_001``, …).
"""

from __future__ import annotations

import pytest

from sandbox.kong.masker import Masker

# (pattern name, text that must match exactly, near misses this pattern must not match)
CASES = [
    (
        "ec2_instance",
        "i-0123456789abcdef0",
        ["i-0123456789abcdefg", "i-123", "xi-0123456789abcdef0"],
    ),
    ("ec2_instance", "i-01234567", ["i-0123456"]),
    ("ami", "ami-0abcdef1234567890", ["ami-xyz", "ami-0abcdef12345678901234"]),
    ("ebs_volume", "vol-0abcdef1234567890", ["vol-12"]),
    ("snapshot", "snap-0abcdef1234567890", ["snap-shot"]),
    ("security_group", "sg-0123456789abcdef0", ["sg-12345"]),
    ("vpc", "vpc-0abc12345678def90", ["vpc-ABCDEF12"]),
    ("subnet", "subnet-0abc12345678def90", ["subnet-mask"]),
    ("s3_arn", "arn:aws:s3:::my-data-bucket", ["arn:aws:s3:::A"]),
    ("s3_url", "my-data-bucket.s3.amazonaws.com", ["my-data-bucket.s3.example.com"]),
    ("s3_url", "logs.s3.ap-northeast-2.amazonaws.com", []),
    ("s3_uri", "s3://my-data-bucket", ["s3://x"]),
    ("rds_arn", "arn:aws:rds:us-east-1:123456789012:db:prod-db", ["arn:aws:rds:us-east-1:12:db:x"]),
    ("rds_endpoint", "prod-db.abc123xyz.us-east-1.rds.amazonaws.com", ["prod-db.rds.example.com"]),
    ("iam_role_arn", "arn:aws:iam::123456789012:role/Admin", ["arn:aws:iam::1234:role/Admin"]),
    ("iam_user_arn", "arn:aws:iam::123456789012:user/deploy", []),
    (
        "lambda_arn",
        "arn:aws:lambda:us-east-1:123456789012:function:resize-images",
        ["arn:aws:lambda:us-east-1:123456789012:layer:x"],
    ),
    ("access_key", "AKIAIOSFODNN7EXAMPLE", ["AKIAIOSFODNN7EXAMPL", "akiaiosfodnn7example"]),
    ("account_id", "123456789012", ["1234567890123", "12345678901"]),
    ("private_ip", "10.0.1.50", ["10.0.1.256", "127.0.0.1", "10.0.1"]),
    ("private_ip", "172.16.5.4", ["172.32.5.4", "0.0.0.0"]),
    ("private_ip", "192.168.0.10", []),
    ("public_ip", "54.239.28.85", ["999.1.1.1", "0.0.0.0"]),
]


@pytest.mark.parametrize(("name", "text", "misses"), CASES)
def test_pattern_matches_and_near_misses_do_not(name, text, misses):
    found = Masker.find(f"see {text} now")
    assert [(original, pattern.name) for original, pattern in found] == [(text, name)]
    for miss in misses:
        assert name not in {p.name for _, p in Masker.find(f"see {miss} now")}, miss


def test_arns_are_masked_whole_not_their_account_ids():
    found = Masker.find("role arn:aws:iam::123456789012:role/Admin and 210987654321")
    assert [(o, p.name) for o, p in found] == [
        ("arn:aws:iam::123456789012:role/Admin", "iam_role_arn"),
        ("210987654321", "account_id"),
    ]


def test_each_original_is_reported_once():
    found = Masker.find("i-0123456789abcdef0 and again i-0123456789abcdef0")
    assert len(found) == 1
