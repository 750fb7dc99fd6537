"""Kong 3.x declarative configuration, the subset the stand-in serves.

A config is ``_format_version`` plus ``services`` (each with ``url``, nested ``routes`` and
``plugins``) and top-level ``plugins``. Entities get stable ids (uuid5 of their names), so
``GET /plugins`` looks like Kong's. ``configuration_hash`` is the md5 of the canonical JSON;
the empty config has Kong's empty hash (32 zeros), which keeps ``/status/ready`` at 503.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import yaml

EMPTY_HASH = "0" * 32
KNOWN_PLUGINS = ("aws-masker", "correlation-id", "response-transformer", "request-transformer")
_NAMESPACE = uuid.UUID("7f1c1f9e-3d1a-4f39-9d55-3c5b8f0b6a10")


class InvalidConfig(ValueError):
    """Carries Kong's flattened error list."""

    def __init__(self, errors: list[dict]):
        super().__init__("declarative config is invalid")
        self.errors = errors

    def body(self) -> dict:
        message = "; ".join(
            f"{e['entity_type']} {e.get('entity_name') or ''}: "
            + ", ".join(f"{x['field']}: {x['message']}" for x in e["errors"])
            for e in self.errors
        )
        return {
            "code": 14,
            "name": "invalid declarative configuration",
            "message": f"declarative config is invalid: {message}",
            "fields": {},
            "flattened_errors": self.errors,
        }


@dataclass
class Config:
    raw: dict = field(default_factory=dict)
    services: list[dict] = field(default_factory=list)
    routes: list[dict] = field(default_factory=list)
    plugins: list[dict] = field(default_factory=list)
    hash: str = EMPTY_HASH

    @property
    def empty(self) -> bool:
        return self.hash == EMPTY_HASH

    def export(self) -> str:
        return yaml.safe_dump({"_transform": False, **self.raw}, sort_keys=False)


def parse_text(text: str) -> dict:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidConfig([_error("config", None, "body", f"invalid YAML: {exc}")]) from None
    if isinstance(document, dict) and isinstance(document.get("config"), str):
        return parse_text(document["config"])  # {"config": "<yaml>"} as Kong accepts
    if not isinstance(document, dict):
        raise InvalidConfig([_error("config", None, "body", "expected a declarative config")])
    return document


def load(document: dict) -> Config:
    errors: list[dict] = []
    if str(document.get("_format_version", "")) not in ("3.0", "2.1", "1.1"):
        errors.append(_error("config", None, "_format_version", 'expected "3.0"'))
    config = Config(raw={k: v for k, v in document.items() if k != "_transform"})
    for service in document.get("services") or []:
        name = service.get("name") if isinstance(service, dict) else None
        if not isinstance(service, dict) or not isinstance(name, str):
            errors.append(_error("service", None, "name", "required field missing"))
            continue
        url = service.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            errors.append(_error("service", name, "url", "missing or invalid url"))
            continue
        service_id = _id("service", name)
        config.services.append({"id": service_id, "name": name, "url": url.rstrip("/")})
        for plugin in service.get("plugins") or []:
            _plugin(plugin, config, errors, service=service_id)
        for route in service.get("routes") or []:
            rname = route.get("name") if isinstance(route, dict) else None
            paths = route.get("paths") if isinstance(route, dict) else None
            if not isinstance(paths, list) or not all(
                isinstance(p, str) and p.startswith("/") for p in paths
            ):
                errors.append(_error("route", rname, "paths", "expected a list of paths"))
                continue
            route_id = _id("route", rname or f"{name}-{len(config.routes)}")
            config.routes.append(
                {
                    "id": route_id,
                    "name": rname,
                    "paths": paths,
                    "methods": route.get("methods"),
                    "strip_path": bool(route.get("strip_path", True)),
                    "service": {"id": service_id},
                }
            )
            for plugin in route.get("plugins") or []:
                _plugin(plugin, config, errors, route=route_id)
    for plugin in document.get("plugins") or []:
        _plugin(plugin, config, errors)
    if errors:
        raise InvalidConfig(errors)
    if config.services or config.plugins:
        content = {k: v for k, v in document.items() if k != "_transform"}  # export-only key
        canonical = json.dumps(content, sort_keys=True, separators=(",", ":"))
        config.hash = hashlib.md5(canonical.encode()).hexdigest()
    return config


def _plugin(plugin: Any, config: Config, errors: list, service=None, route=None) -> None:
    name = plugin.get("name") if isinstance(plugin, dict) else None
    if name not in KNOWN_PLUGINS:
        errors.append(_error("plugin", name, "name", f"plugin '{name}' not enabled"))
        return
    options = plugin.get("config") or {}
    if not isinstance(options, dict):
        errors.append(_error("plugin", name, "config", "expected a record"))
        return
    owner = route or service or "global"
    config.plugins.append(
        {
            "id": _id("plugin", f"{name}:{owner}"),
            "name": name,
            "enabled": bool(plugin.get("enabled", True)),
            "config": options,
            "service": {"id": service} if service else None,
            "route": {"id": route} if route else None,
        }
    )


def _id(kind: str, name: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{kind}:{name}"))


def _error(entity_type: str, name: str | None, field_name: str, message: str) -> dict:
    return {
        "entity_type": entity_type,
        "entity_name": name,
        "errors": [{"field": field_name, "message": message, "type": "field"}],
    }
