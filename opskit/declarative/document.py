"""One declarative config: parsed, validated, normalised for a diff, edited in a copy.

Validation names every problem by its path in the file (``services[0].routes[0].plugins[0]
(aws-masker).config.event_sampling_rate: unknown field; aws-masker has: …``) so an operator
can go straight to the line. It checks what Kong would reject before ``POST /config`` makes Kong
reject it: the format version, the entity collections, names and references, and the fields of
plugins whose schema opskit knows. What Kong alone can judge (a route's regex, a certificate)
is left to Kong, whose 400 is read back.

The diff compares *meaning*: both sides are flattened (nested routes and plugins moved to their
collections), references turned into names, ids/timestamps/nulls and Kong's defaults dropped, and
lists sorted — an export from ``GET /config`` (every field, ids everywhere) and the hand-written
file it came from compare equal, and a one-field change is a one-line diff.
"""

from __future__ import annotations

import difflib
import hashlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from opskit.declarative.schema import (
    ENTITY_DEFAULTS,
    ENTITY_TYPES,
    FORMAT_VERSIONS,
    GENERATED_FIELDS,
    PLUGIN_SCHEMAS,
    SECRET_FIELDS,
    TOP_LEVEL_KEYS,
)
from opskit.errors import OpskitError
from opskit.yamltext import load_yaml

_DEFAULT_PORTS = {"http": 80, "https": 443, "grpc": 80, "grpcs": 443, "ws": 80, "wss": 443}


class DeclarativeError(OpskitError):
    """A declarative file that cannot be read as one (bad YAML, not a mapping, bad edit)."""


@dataclass(frozen=True)
class Declarative:
    """The raw text (what Kong hashes) and what it parses to."""

    text: str
    data: dict[str, Any]
    source: str

    @property
    def md5(self) -> str:
        """Kong's ``configuration_hash`` for these exact bytes (row 2)."""
        return md5_of(self.text)


def md5_of(text: str | bytes) -> str:
    raw = text.encode() if isinstance(text, str) else text
    return hashlib.md5(raw).hexdigest()


def parse(text: str, source: str) -> Declarative:
    try:
        data = load_yaml(text)
    except ValueError as exc:
        raise DeclarativeError(f"{source}: {exc}") from None
    if not isinstance(data, dict):
        raise DeclarativeError(f"{source}: expected a declarative config (a mapping)")
    return Declarative(text, data, source)


# -- validation ------------------------------------------------------------------------------


@dataclass
class Findings:
    problems: list[str]  # Kong would reject the config
    warnings: list[str]  # it would load, but someone should look (plain-text secrets)
    parsed_by: str = ""  # what else judged it ("kong config parse: parse successful")

    @property
    def ok(self) -> bool:
        return not self.problems


def validate(doc: Declarative) -> Findings:
    found = Findings([], [])
    data = doc.data
    version = data.get("_format_version")
    if version is None:
        found.problems.append('_format_version: missing (expected "3.0")')
    elif not isinstance(version, str):
        found.problems.append(
            f'_format_version: expected a string like "3.0" (quote it), got {version!r}'
        )
    elif version not in FORMAT_VERSIONS:
        found.problems.append(
            f"_format_version: expected one of {', '.join(FORMAT_VERSIONS)}, got {version!r}"
        )
    for key in data:
        if key not in TOP_LEVEL_KEYS and key not in ENTITY_TYPES:
            close = difflib.get_close_matches(str(key), ENTITY_TYPES, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            found.problems.append(f"{key}: unknown entity collection{hint}")
    for kind in ENTITY_TYPES:
        value = data.get(kind)
        if value is not None and not isinstance(value, list):
            found.problems.append(f"{kind}: expected a list of {kind}")
    services = _entities(data, "services")
    service_names = _check_names(services, "services", found)
    routes = _entities(data, "routes")
    route_names = _check_names(routes, "routes", found)
    for index, service in services:
        where = f"services[{index}]"
        if not (service.get("url") or service.get("host")):
            found.problems.append(f"{where} ({service.get('name', '?')}): needs url or host")
        for r_index, route in enumerate(service.get("routes") or []):
            r_where = f"{where}.routes[{r_index}]"
            if isinstance(route, dict):
                if route.get("name"):
                    route_names.add(route["name"])
                _check_route(route, r_where, found)
                _check_plugins(route.get("plugins"), r_where, found)
        _check_plugins(service.get("plugins"), where, found)
    ids = {s.get("id") for _, s in services} | service_names
    for index, route in routes:
        where = f"routes[{index}]"
        _check_route(route, where, found)
        reference = _reference(route.get("service"))
        if reference is not None and reference not in ids:
            found.problems.append(f"{where}.service: no service {reference!r} in this file")
        _check_plugins(route.get("plugins"), where, found)
    _check_plugins(data.get("plugins"), "", found)
    return found


def _entities(data: dict, kind: str) -> list[tuple[int, dict]]:
    items = data.get(kind)
    return (
        [(i, e) for i, e in enumerate(items) if isinstance(e, dict)]
        if isinstance(items, list)
        else []
    )


def _check_names(entities: list[tuple[int, dict]], kind: str, found: Findings) -> set[str]:
    seen: set[str] = set()
    for index, entity in entities:
        name = entity.get("name")
        if name is None:
            continue
        if name in seen:
            found.problems.append(f"{kind}[{index}].name: {name!r} is used twice")
        seen.add(name)
    return seen


def _check_route(route: dict, where: str, found: Findings) -> None:
    if not any(route.get(key) for key in ("paths", "hosts", "methods", "headers", "snis")):
        found.problems.append(
            f"{where} ({route.get('name', '?')}): needs at least one of paths, hosts, methods, "
            "headers, snis"
        )


def _check_plugins(plugins: Any, where: str, found: Findings) -> None:
    if plugins is None:
        return
    prefix = f"{where}.plugins" if where else "plugins"
    if not isinstance(plugins, list):
        found.problems.append(f"{prefix}: expected a list of plugins")
        return
    for index, plugin in enumerate(plugins):
        at = f"{prefix}[{index}]"
        if not isinstance(plugin, dict) or not plugin.get("name"):
            found.problems.append(f"{at}: a plugin needs a name")
            continue
        name = plugin["name"]
        config = plugin.get("config")
        if config is None:
            continue
        if not isinstance(config, dict):
            found.problems.append(f"{at} ({name}).config: expected a mapping")
            continue
        found.problems.extend(check_settings(name, config, f"{at} ({name}).config"))
        for key in SECRET_FIELDS:
            if isinstance(config.get(key), str) and config[key]:
                found.warnings.append(
                    f"{at} ({name}).config.{key}: a secret in plain text in the declarative file "
                    "(keep the file 0600, or let the plugin read it from the environment)"
                )


def check_settings(plugin: str, settings: dict[str, Any], where: str) -> list[str]:
    """Unknown fields and wrong types for a plugin whose schema opskit knows."""
    schema = PLUGIN_SCHEMAS.get(plugin)
    if schema is None:
        return []
    problems = []
    known = ", ".join(schema)
    for key, value in settings.items():
        field = schema.get(key)
        if field is None:
            close = difflib.get_close_matches(str(key), list(schema), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            problems.append(f"{where}.{key}: unknown field{hint}; {plugin} has: {known}")
        elif not field.accepts(value):
            problems.append(f"{where}.{key}: expected {field.describe()}, got {value!r}")
    return problems


def _reference(value: Any) -> str | None:
    if isinstance(value, dict):
        return value.get("name") or value.get("id")
    return value if isinstance(value, str) else None


# -- normalising and comparing -------------------------------------------------------------------


def normalised(data: dict[str, Any]) -> dict[str, list[dict]]:
    """Flat collections, references by name, no generated fields, nulls or defaults, sorted."""
    flat: dict[str, list[dict]] = {kind: [] for kind in ("services", "routes", "plugins")}
    service_names: dict[str, str] = {}
    route_names: dict[str, str] = {}
    for _, service in _entities(data, "services"):
        service = dict(service)
        nested_routes = service.pop("routes", None) or []
        nested_plugins = service.pop("plugins", None) or []
        service_names[service.get("id") or service.get("name")] = service.get("name")
        flat["services"].append(service)
        for route in nested_routes:
            route = dict(route)
            route_plugins = route.pop("plugins", None) or []
            route["service"] = service.get("name")
            route_names[route.get("id") or route.get("name")] = route.get("name")
            flat["routes"].append(route)
            for plugin in route_plugins:
                flat["plugins"].append({**plugin, "route": route.get("name")})
        for plugin in nested_plugins:
            flat["plugins"].append({**plugin, "service": service.get("name")})
    for _, route in _entities(data, "routes"):
        route = dict(route)
        route_plugins = route.pop("plugins", None) or []
        route_names[route.get("id") or route.get("name")] = route.get("name")
        flat["routes"].append(route)
        for plugin in route_plugins:
            flat["plugins"].append({**plugin, "route": route.get("name")})
    for _, plugin in _entities(data, "plugins"):
        flat["plugins"].append(dict(plugin))
    for route in flat["routes"]:
        reference = _reference(route.get("service"))
        route["service"] = service_names.get(reference, reference)
    for plugin in flat["plugins"]:
        for key, names in (("service", service_names), ("route", route_names)):
            reference = _reference(plugin.get(key))
            plugin[key] = names.get(reference, reference)
    result: dict[str, list[dict]] = {}
    for kind, entities in flat.items():
        cleaned = [_clean(kind, entity) for entity in entities]
        result[kind] = sorted(cleaned, key=_sort_key)
    for kind in ENTITY_TYPES:  # collections opskit does not model: compared as they are
        if kind not in result and data.get(kind):
            result[kind] = sorted(
                (_clean(kind, dict(e)) for _, e in _entities(data, kind)), key=_sort_key
            )
    return {kind: entities for kind, entities in result.items() if entities}


def _clean(kind: str, entity: dict) -> dict:
    entity = dict(entity)
    if kind == "services" and entity.get("url"):
        parts = urlsplit(entity.pop("url"))
        entity.setdefault("protocol", parts.scheme)
        entity.setdefault("host", parts.hostname)
        entity.setdefault("port", parts.port or _DEFAULT_PORTS.get(parts.scheme))
        if parts.path:
            entity.setdefault("path", parts.path)
    if kind == "plugins" and isinstance(entity.get("config"), dict):
        schema = PLUGIN_SCHEMAS.get(entity.get("name"), {})
        entity["config"] = {
            key: value
            for key, value in sorted(entity["config"].items())
            if value is not None and not (key in schema and schema[key].default == value)
        }
    defaults = ENTITY_DEFAULTS.get(kind, {})
    return {
        key: value
        for key, value in sorted(entity.items())
        if key not in GENERATED_FIELDS
        and value is not None
        and value != []
        and not (key in defaults and defaults[key] == value)
    }


def _sort_key(entity: dict) -> tuple:
    return tuple(str(entity.get(key) or "") for key in ("name", "service", "route", "paths"))


def diff(old: dict[str, Any], new: dict[str, Any], old_label: str, new_label: str) -> list[str]:
    """A unified diff of the normalised configs; empty when they mean the same."""
    import yaml

    def lines(data: dict) -> list[str]:
        return yaml.safe_dump(
            normalised(data), sort_keys=False, default_flow_style=False
        ).splitlines()

    return list(difflib.unified_diff(lines(old), lines(new), old_label, new_label, lineterm=""))


# -- editing a copy ------------------------------------------------------------------------------


def with_plugin_settings(doc: Declarative, plugin: str, settings: dict[str, Any]) -> str:
    """The config with ``settings`` merged into every instance of ``plugin`` (a new text;
    comments are not kept). Unknown fields are refused with the schema's fields."""
    import copy

    import yaml

    problems = check_settings(plugin, settings, f"--set ({plugin})")
    if problems:
        raise DeclarativeError("; ".join(problems))
    data = copy.deepcopy(doc.data)
    instances = [p for p in _all_plugins(data) if p.get("name") == plugin]
    if not instances:
        raise DeclarativeError(f"{doc.source}: no {plugin} plugin in this config to change")
    for instance in instances:
        instance["config"] = {**(instance.get("config") or {}), **settings}
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False)


def _all_plugins(data: dict) -> list[dict]:
    found = [p for p in data.get("plugins") or [] if isinstance(p, dict)]
    for service in data.get("services") or []:
        if not isinstance(service, dict):
            continue
        found += [p for p in service.get("plugins") or [] if isinstance(p, dict)]
        for route in service.get("routes") or []:
            if isinstance(route, dict):
                found += [p for p in route.get("plugins") or [] if isinstance(p, dict)]
    for route in data.get("routes") or []:
        if isinstance(route, dict):
            found += [p for p in route.get("plugins") or [] if isinstance(p, dict)]
    return found
