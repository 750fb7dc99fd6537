"""Roles: what each piece of software needs (probes, graceful stop, reload, backup).

A role never touches docker or psutil; it asks its runtime unit. Role classes are imported
lazily so that ``inv --list`` stays fast. The names are the closed vocabulary
:class:`~opskit.vocabulary.RoleKind`; this module maps each to its code.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from opskit.vocabulary import RoleKind

if TYPE_CHECKING:
    from opskit.services.base import Role

_ROLE_MODULES = {
    RoleKind.REDIS: ("opskit.services.redis.role", "RedisRole"),
    RoleKind.KONG: ("opskit.services.kong.role", "KongRole"),
    RoleKind.NGINX: ("opskit.services.nginx.role", "NginxRole"),
    RoleKind.BACKEND: ("opskit.services.backend.role", "BackendRole"),
    RoleKind.HTTP: ("opskit.services.http.role", "HttpRole"),
}
ROLE_NAMES = tuple(kind.value for kind in _ROLE_MODULES)


def role_class(kind: RoleKind | str) -> type[Role]:
    module_name, class_name = _ROLE_MODULES[RoleKind(kind)]
    return getattr(importlib.import_module(module_name), class_name)
