"""Roles: what each piece of software needs (probes, graceful stop, reload, backup).

A role never touches docker or psutil; it asks its runtime unit. Role classes are imported
lazily so that ``inv --list`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opskit.services.base import Role

_ROLE_MODULES = {
    "redis": ("opskit.services.redis", "RedisRole"),
    "kong": ("opskit.services.kong", "KongRole"),
    "nginx": ("opskit.services.nginx", "NginxRole"),
    "backend": ("opskit.services.backend", "BackendRole"),
    "http": ("opskit.services.http", "HttpRole"),
}
ROLE_NAMES = tuple(_ROLE_MODULES)


def infer_role(image: str | None) -> str:
    """Role for a service without ``x-opskit.role``: from its image name, else ``http``."""
    if image:
        base = image.rsplit("/", 1)[-1].split(":", 1)[0].split("@", 1)[0]
        for role in ("redis", "kong", "nginx"):
            if base.startswith(role):
                return role
    return "http"


def role_class(name: str) -> type[Role]:
    module_name, class_name = _ROLE_MODULES[name]
    return getattr(importlib.import_module(module_name), class_name)
