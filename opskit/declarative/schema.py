"""What a Kong 3.x declarative file may contain, as far as opskit checks it.

The aws-masker fields are the plugin's own schema (logi96/kong-aws-masking-mvp,
``nginx-kong-claude-enterprise2/kong/plugins/aws-masker/schema.lua``; kong-real-behaviour row
18). Keys the seeds planned but the plugin never had (``enable_event_monitoring``,
``event_sampling_rate``, ``event_batch_size`` …) are exactly what validation must refuse: Kong
would reject the whole config with "unknown field".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

FORMAT_VERSIONS = ("1.1", "2.1", "3.0")
TOP_LEVEL_KEYS = ("_format_version", "_transform", "_comment", "_workspace", "_info")

#: Entity collections of a Kong 3.x declarative file (kong/db/schema/entities).
ENTITY_TYPES = (
    "services",
    "routes",
    "plugins",
    "consumers",
    "upstreams",
    "targets",
    "certificates",
    "ca_certificates",
    "snis",
    "vaults",
    "keys",
    "key_sets",
    "consumer_groups",
    "parameters",
    "filter_chains",
)

#: Fields Kong fills in that say nothing about intent (ignored by the diff).
GENERATED_FIELDS = ("id", "created_at", "updated_at", "ws_id")

#: Kong's defaults per entity type (kong/db/schema/entities/*.lua), dropped by the diff so an
#: export (every field) and a hand-written file (only what matters) compare equal.
ENTITY_DEFAULTS: dict[str, dict[str, Any]] = {
    "services": {
        "retries": 5,
        "connect_timeout": 60000,
        "write_timeout": 60000,
        "read_timeout": 60000,
        "enabled": True,
        "tls_verify": None,
        "tls_verify_depth": None,
        "ca_certificates": None,
        "client_certificate": None,
        "tags": None,
        "path": None,
    },
    "routes": {
        "protocols": ["http", "https"],
        "regex_priority": 0,
        "strip_path": True,
        "preserve_host": False,
        "https_redirect_status_code": 426,
        "path_handling": "v0",
        "request_buffering": True,
        "response_buffering": True,
        "hosts": None,
        "headers": None,
        "snis": None,
        "sources": None,
        "destinations": None,
        "tags": None,
    },
    "plugins": {
        "enabled": True,
        "protocols": ["grpc", "grpcs", "http", "https"],
        "consumer": None,
        "consumer_group": None,
        "instance_name": None,
        "tags": None,
        "ordering": None,
    },
}


@dataclass(frozen=True)
class Field:
    type: str  # boolean | string | integer | number
    default: Any = None
    one_of: tuple[Any, ...] | None = None

    def accepts(self, value: Any) -> bool:
        if value is None:
            return True
        ok = {
            "boolean": isinstance(value, bool),
            "string": isinstance(value, str),
            "integer": isinstance(value, int) and not isinstance(value, bool),
            "number": isinstance(value, (int, float)) and not isinstance(value, bool),
        }[self.type]
        return ok and (self.one_of is None or value in self.one_of)

    def describe(self) -> str:
        allowed = f" one of {', '.join(map(str, self.one_of))}" if self.one_of else ""
        return f"{self.type}{allowed}"


AWS_MASKER = "aws-masker"

#: P:E2/schema.lua:49-250, field by field.
AWS_MASKER_FIELDS: dict[str, Field] = {
    "mask_ec2_instances": Field("boolean", True),
    "mask_s3_buckets": Field("boolean", True),
    "mask_rds_instances": Field("boolean", True),
    "mask_private_ips": Field("boolean", True),
    "preserve_structure": Field("boolean", True),
    "log_masked_requests": Field("boolean", False),
    "anthropic_api_key": Field("string"),
    "use_redis": Field("boolean", True),
    "mapping_ttl": Field("number", 604800),
    "max_entries": Field("number", 10000),
    "redis_type": Field("string", "traditional", ("traditional", "managed")),
    "redis_host": Field("string", "localhost"),
    "redis_port": Field("integer", 6379),
    "redis_password": Field("string"),
    "redis_database": Field("integer", 0),
    "redis_ssl_enabled": Field("boolean", False),
    "redis_ssl_verify": Field("boolean", False),
    "redis_auth_token": Field("string"),
    "redis_user": Field("string"),
    "redis_cluster_mode": Field("boolean", False),
    "redis_cluster_endpoint": Field("string"),
}

#: Plugins whose config opskit checks field by field (others: only that ``config`` is a map).
PLUGIN_SCHEMAS: dict[str, dict[str, Field]] = {AWS_MASKER: AWS_MASKER_FIELDS}

#: Config fields that hold secrets (warned about when written in plain text).
SECRET_FIELDS = ("anthropic_api_key", "redis_password", "redis_auth_token")
