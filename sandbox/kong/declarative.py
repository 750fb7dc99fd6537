"""Kong 3.x declarative configuration, the subset the stand-in serves, as Kong handles it.

Rows of shared/reference/kong-real-behaviour.md this module reproduces (K = Kong 3.8):

- row 2: ``configuration_hash`` is the **md5 of the raw text** (the file at start/HUP, the POSTed
  body or its ``config`` string); a JSON-object body hashes its JSON encoding; a config with no
  entities has the empty hash, 32 zeros (K:kong/db/declarative/init.lua:92-103).
- row 6: ``?check_hash=1`` compares that md5 with the current one *before* validation; a
  JSON-object body has no raw text and never gets 304 (K:kong/api/routes/config.lua:76,121-134).
- row 8: an invalid config is 400 ``{code: 14, name, message, fields}`` with nested ``fields``;
  ``flattened_errors`` only with ``?flatten_errors=1`` (K:config.lua:139-149; errors.lua:495).
- row 10: ``GET /config`` exports ``_format_version: "3.0"``, ``_transform: false`` and **flat**
  lists per entity type with every field (ids, defaults, nulls), foreign keys as ids, services
  as protocol/host/port/path (no ``url``) — and such an export loads back
  (K:kong/db/declarative/export.lua:98-231).
- row 18: the aws-masker plugin's real schema (P:E2/schema.lua:49-250): its fields, their types
  and defaults; an unknown field is rejected as Kong rejects it ("unknown field").
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

EMPTY_HASH = "0" * 32
KNOWN_PLUGINS = ("aws-masker", "correlation-id", "response-transformer", "request-transformer")
_NAMESPACE = uuid.UUID("7f1c1f9e-3d1a-4f39-9d55-3c5b8f0b6a10")
_CREATED_AT = 1_700_000_000

# P:E2/schema.lua: field -> (type, default, allowed values)
AWS_MASKER_SCHEMA: dict[str, tuple[str, Any, tuple | None]] = {
    "mask_ec2_instances": ("boolean", True, None),
    "mask_s3_buckets": ("boolean", True, None),
    "mask_rds_instances": ("boolean", True, None),
    "mask_private_ips": ("boolean", True, None),
    "preserve_structure": ("boolean", True, None),
    "log_masked_requests": ("boolean", False, None),
    "anthropic_api_key": ("string", None, None),
    "use_redis": ("boolean", True, None),
    "mapping_ttl": ("number", 604800, None),
    "max_entries": ("number", 10000, None),
    "redis_type": ("string", "traditional", ("traditional", "managed")),
    "redis_host": ("string", "localhost", None),
    "redis_port": ("integer", 6379, None),
    "redis_password": ("string", None, None),
    "redis_database": ("integer", 0, None),
    "redis_ssl_enabled": ("boolean", False, None),
    "redis_ssl_verify": ("boolean", False, None),
    "redis_auth_token": ("string", None, None),
    "redis_user": ("string", None, None),
    "redis_cluster_mode": ("boolean", False, None),
    "redis_cluster_endpoint": ("string", None, None),
}
_TYPES = {
    "boolean": lambda v: isinstance(v, bool),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
}
_DEFAULT_PORTS = {"http": 80, "https": 443}


class InvalidConfig(ValueError):
    """An invalid declarative config: Kong's nested ``fields`` and its flattened errors."""

    def __init__(self, errors: list[dict], fields: dict | None = None):
        super().__init__("declarative config is invalid")
        self.errors = errors
        self.fields = fields or {}

    def body(self, flatten: bool) -> dict:
        body = {
            "code": 14,
            "name": "invalid declarative configuration",
            "message": f"declarative config is invalid: {json.dumps(self.fields, sort_keys=True)}",
            "fields": self.fields,
        }
        if flatten:
            body["flattened_errors"] = self.errors
        return body


class EmptyBody(ValueError):
    """No declarative configuration in the request: 400 (K:config.lua:60-67)."""


@dataclass
class Config:
    services: list[dict] = field(default_factory=list)
    routes: list[dict] = field(default_factory=list)
    plugins: list[dict] = field(default_factory=list)
    certificates: list[dict] = field(default_factory=list)
    snis: list[dict] = field(default_factory=list)
    hash: str = EMPTY_HASH

    @property
    def empty(self) -> bool:
        return self.hash == EMPTY_HASH

    def export(self) -> str:
        """Kong's export: flat, every field, foreign keys as ids (row 10)."""
        document = {
            "_format_version": "3.0",
            "_transform": False,
            "services": [dict(service) for service in self.services],
            "routes": [{**route, "service": route["service"]["id"]} for route in self.routes],
            "plugins": [
                {
                    **plugin,
                    "service": plugin["service"]["id"] if plugin["service"] else None,
                    "route": plugin["route"]["id"] if plugin["route"] else None,
                }
                for plugin in self.plugins
            ],
        }
        if self.certificates:  # flat too: each SNI names its certificate by id
            document["certificates"] = [dict(c) for c in self.certificates]
            document["snis"] = [dict(sni) for sni in self.snis]
        return yaml.safe_dump(document, sort_keys=False)

    def service_url(self, service: dict) -> str:
        port = service["port"]
        default = _DEFAULT_PORTS.get(service["protocol"])
        netloc = service["host"] if port == default else f"{service['host']}:{port}"
        return f"{service['protocol']}://{netloc}{(service['path'] or '').rstrip('/')}"


# -- reading a request or a file -------------------------------------------------------------


def read_body(content_type: str, raw: bytes) -> tuple[dict, str | None]:
    """(document, raw text whose md5 is the new hash, or None for a JSON object)."""
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind == "application/json":
        try:
            value = json.loads(raw or b"{}")
        except ValueError:
            raise InvalidConfig([_error("config", None, "body", "invalid JSON")]) from None
        if isinstance(value, dict) and "_format_version" in value:
            return value, None  # a table: no raw text, never 304 (config.lua:52-54)
        text = value.get("config") if isinstance(value, dict) else None
    elif kind == "application/x-www-form-urlencoded":
        text = (parse_qs(raw.decode("utf-8", "replace")).get("config") or [None])[0]
    else:  # text/yaml, application/yaml: the raw body is the config
        text = raw.decode("utf-8", errors="replace") if raw else None
    if not text:
        raise EmptyBody("expected a declarative configuration")
    return parse_text(text), text


def parse_text(text: str) -> dict:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidConfig([_error("config", None, "body", f"invalid YAML: {exc}")]) from None
    if not isinstance(document, dict):
        raise InvalidConfig([_error("config", None, "body", "expected a declarative config")])
    return document


def raw_hash(text: str | None, document: dict) -> str:
    source = text if text is not None else json.dumps(document, separators=(",", ":"))
    return hashlib.md5(source.encode()).hexdigest()


# -- loading ------------------------------------------------------------------------------------


def load(document: dict, text: str | None = None) -> Config:
    """Validate and build; nested (services with routes/plugins) and flat (an export) alike."""
    builder = _Builder()
    if str(document.get("_format_version", "")) not in ("3.0", "2.1", "1.1"):
        builder.fail("config", None, "_format_version", 'expected "3.0"', ["_format_version"])
    for index, service in enumerate(document.get("services") or []):
        builder.service(service, ["services", index])
    for index, route in enumerate(document.get("routes") or []):
        builder.route(route, None, ["routes", index])
    for index, plugin in enumerate(document.get("plugins") or []):
        builder.plugin(plugin, None, None, ["plugins", index])
    for index, certificate in enumerate(document.get("certificates") or []):
        builder.certificate(certificate, ["certificates", index])
    if builder.errors:
        raise InvalidConfig(builder.errors, builder.fields)
    config = builder.config
    if config.services or config.plugins or config.routes or config.certificates:
        config.hash = raw_hash(text, document)
    return config


class _Builder:
    def __init__(self) -> None:
        self.config = Config()
        self.errors: list[dict] = []
        self.fields: dict = {}

    def fail(self, kind: str, name: str | None, field_name: str, message: str, path: list):
        self.errors.append(_error(kind, name, field_name, message))
        node = self.fields
        for step in path[:-1]:
            node = node.setdefault(str(step), {})
        node[str(path[-1])] = message

    def certificate(self, certificate: Any, path: list) -> None:
        """A certificate with its nested SNIs (K:kong/db/schema/entities/certificates.lua:
        ``cert`` and ``key`` required); stored flat, as an export gives them back."""
        if not isinstance(certificate, dict) or not certificate.get("cert"):
            self.fail("certificate", None, "cert", "required field missing", [*path, "cert"])
            return
        if not certificate.get("key"):
            self.fail("certificate", None, "key", "required field missing", [*path, "key"])
            return
        index = len(self.config.certificates)
        certificate_id = certificate.get("id") or _id("certificate", str(index))
        self.config.certificates.append(
            {"id": certificate_id, "cert": certificate["cert"], "key": certificate["key"]}
        )
        for sni in certificate.get("snis") or []:
            name = sni.get("name") if isinstance(sni, dict) else sni
            self.config.snis.append(
                {"id": _id("sni", str(name)), "name": name, "certificate": certificate_id}
            )

    def service(self, service: Any, path: list) -> None:
        name = service.get("name") if isinstance(service, dict) else None
        if not isinstance(service, dict):
            self.fail("service", None, "name", "expected a record", path)
            return
        parts = self._target(service)
        if parts is None:
            self.fail("service", name, "url", "missing or invalid url", [*path, "url"])
            return
        protocol, host, port, target_path = parts
        service_id = service.get("id") or _id("service", name or str(len(self.config.services)))
        self.config.services.append(
            {
                "id": service_id,
                "name": name,
                "protocol": protocol,
                "host": host,
                "port": port,
                "path": target_path,
                "retries": service.get("retries", 5),
                "connect_timeout": service.get("connect_timeout", 60000),
                "write_timeout": service.get("write_timeout", 60000),
                "read_timeout": service.get("read_timeout", 60000),
                "enabled": service.get("enabled", True),
                "tags": service.get("tags"),
                "created_at": service.get("created_at", _CREATED_AT),
                "updated_at": service.get("updated_at", _CREATED_AT),
            }
        )
        for index, plugin in enumerate(service.get("plugins") or []):
            self.plugin(plugin, service_id, None, [*path, "plugins", index])
        for index, route in enumerate(service.get("routes") or []):
            self.route(route, service_id, [*path, "routes", index])

    @staticmethod
    def _target(service: dict) -> tuple[str, str, int, str | None] | None:
        url = service.get("url")
        if url is not None:
            if not isinstance(url, str) or not url.startswith(("http://", "https://")):
                return None
            parts = urlsplit(url)
            port = parts.port or _DEFAULT_PORTS[parts.scheme]
            return parts.scheme, parts.hostname or "", port, parts.path or None
        host = service.get("host")
        protocol = service.get("protocol", "http")
        if not isinstance(host, str) or protocol not in _DEFAULT_PORTS:
            return None
        return protocol, host, int(service.get("port") or 80), service.get("path")

    def route(self, route: Any, service_id: str | None, path: list) -> None:
        name = route.get("name") if isinstance(route, dict) else None
        paths = route.get("paths") if isinstance(route, dict) else None
        if not isinstance(paths, list) or not all(
            isinstance(p, str) and p.startswith("/") for p in paths
        ):
            self.fail("route", name, "paths", "expected a list of paths", [*path, "paths"])
            return
        if service_id is None:  # flat form: service by id (an export) or name
            reference = route.get("service")
            reference = reference.get("id") if isinstance(reference, dict) else reference
            service_id = self._service_id(reference)
            if service_id is None:
                self.fail("route", name, "service", "unknown service", [*path, "service"])
                return
        route_id = route.get("id") or _id(
            "route", name or f"{service_id}-{len(self.config.routes)}"
        )
        self.config.routes.append(
            {
                "id": route_id,
                "name": name,
                "paths": paths,
                "methods": route.get("methods"),
                "hosts": route.get("hosts"),
                "protocols": route.get("protocols", ["http", "https"]),
                "strip_path": bool(route.get("strip_path", True)),
                "preserve_host": bool(route.get("preserve_host", False)),
                "regex_priority": route.get("regex_priority", 0),
                "https_redirect_status_code": route.get("https_redirect_status_code", 426),
                "tags": route.get("tags"),
                "created_at": route.get("created_at", _CREATED_AT),
                "updated_at": route.get("updated_at", _CREATED_AT),
                "service": {"id": service_id},
            }
        )
        for index, plugin in enumerate(route.get("plugins") or []):
            self.plugin(plugin, None, route_id, [*path, "plugins", index])

    def _service_id(self, reference: Any) -> str | None:
        for service in self.config.services:
            if reference in (service["id"], service["name"]):
                return service["id"]
        return None

    def plugin(self, plugin: Any, service: str | None, route: str | None, path: list) -> None:
        name = plugin.get("name") if isinstance(plugin, dict) else None
        if name not in KNOWN_PLUGINS:
            self.fail("plugin", name, "name", f"plugin '{name}' not enabled", [*path, "name"])
            return
        options = plugin.get("config") or {}
        if not isinstance(options, dict):
            self.fail("plugin", name, "config", "expected a record", [*path, "config"])
            return
        if service is None and route is None:  # flat form: foreign keys as ids
            service = _reference(plugin.get("service"))
            route = _reference(plugin.get("route"))
        if name == "aws-masker":
            options = self._masker_config(options, [*path, "config"])
            if options is None:
                return
        owner = route or service or "global"
        self.config.plugins.append(
            {
                "id": plugin.get("id") or _id("plugin", f"{name}:{owner}"),
                "name": name,
                "enabled": bool(plugin.get("enabled", True)),
                "config": options,
                "protocols": plugin.get("protocols", ["grpc", "grpcs", "http", "https"]),
                "tags": plugin.get("tags"),
                "created_at": plugin.get("created_at", _CREATED_AT),
                "updated_at": plugin.get("updated_at", _CREATED_AT),
                "service": {"id": service} if service else None,
                "route": {"id": route} if route else None,
                "consumer": None,
            }
        )

    def _masker_config(self, options: dict, path: list) -> dict | None:
        """The schema's fields with defaults; unknown fields and bad types are errors."""
        valid = True
        result = {}
        for key, value in options.items():
            spec = AWS_MASKER_SCHEMA.get(key)
            if spec is None:
                self.fail("plugin", "aws-masker", f"config.{key}", "unknown field", [*path, key])
                valid = False
                continue
            kind, _default, allowed = spec
            if value is not None and not _TYPES[kind](value):
                message = f"expected a{'n' if kind == 'integer' else ''} {kind}"
                self.fail("plugin", "aws-masker", f"config.{key}", message, [*path, key])
                valid = False
            elif allowed and value not in allowed:
                message = f"expected one of: {', '.join(allowed)}"
                self.fail("plugin", "aws-masker", f"config.{key}", message, [*path, key])
                valid = False
            result[key] = value
        for key, (_kind, default, _allowed) in AWS_MASKER_SCHEMA.items():
            result.setdefault(key, default)
        return result if valid else None


def _reference(value: Any) -> str | None:
    if isinstance(value, dict):
        return value.get("id")
    return value if isinstance(value, str) else None


def _id(kind: str, name: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{kind}:{name}"))


def _error(entity_type: str, name: str | None, field_name: str, message: str) -> dict:
    return {
        "entity_type": entity_type,
        "entity_name": name,
        "errors": [{"field": field_name, "message": message, "type": "field"}],
    }
