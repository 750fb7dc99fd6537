"""The declarative file a DB-less Kong loads at start: kept holding what runs.

``POST /config`` changes only Kong's memory (kong-real-behaviour.md row 15): the next start or
HUP loads the *file* again. So a config applied by ``kong.apply``, ``kong.rollout`` or
``kong.rollback`` would silently vanish at the next restart — by an operator, by ``inv
recover``, by the runtime. After a successful apply the applied bytes are made the file's
(:func:`persist`), in the one way each kind of file allows:

- **rendered by opskit** from ``x-opskit.declarative_template``: the applied text is *pinned*
  (``<state>/kong/<service>/pinned.yml``) and rendered instead of the template at every start,
  until the template's own rendering changes (the operator edited it or its variables: the
  template wins again, and the drift check says so);
- **a host file** (the process runtime's path, or a bind mount of the container): replaced
  atomically (temp file, fsync, rename), or in place for a file bind-mounted on its own, whose
  container keeps the old inode after a rename;
- **inside a container only** (baked into the image, rendered by the container's command):
  nothing opskit writes there outlives the container, so it says so instead.

Byte-identical, so Kong's ``configuration_hash`` (md5 of the file) after a restart is the one
verified at apply time.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from opskit.files import atomic_write, atomic_write_json, fsync_dir, private_dir, read_json
from opskit.services.capabilities import Verdict

if TYPE_CHECKING:
    from opskit.config import ServiceSpec
    from opskit.runtime.base import HostFile, Unit


class KongFileOwner(Protocol):
    """What :func:`persist` needs of the kong role (no import of it: no circle)."""

    spec: ServiceSpec
    unit: Unit
    rendered_config: Path

    @property
    def renders_on_host(self) -> bool: ...

    @property
    def pin(self) -> TemplatePin: ...

    def render_template_text(self) -> str: ...

    def declarative_path(self) -> str | None: ...


def _md5(text: str) -> str:
    from opskit.declarative.document import md5_of

    return md5_of(text)


class TemplatePin:
    """The applied text that replaces the template's rendering, valid while the template
    renders to what it rendered when the pin was made."""

    def __init__(self, folder: Path):
        self.text_path = folder / "pinned.yml"
        self.meta_path = folder / "pinned.json"

    def text_for(self, rendered: str) -> str | None:
        """The pinned text, or None (no pin, or the template's rendering changed since)."""
        meta = read_json(self.meta_path)
        if not isinstance(meta, dict) or meta.get("template_md5") != _md5(rendered):
            return None
        try:
            return self.text_path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return None

    def pin(self, text: str, rendered: str) -> None:
        private_dir(self.text_path.parent)
        atomic_write(self.text_path, text)
        atomic_write_json(self.meta_path, {"template_md5": _md5(rendered), "md5": _md5(text)})

    def drop(self) -> None:
        for path in (self.meta_path, self.text_path):
            path.unlink(missing_ok=True)


def persist(role: KongFileOwner, text: str) -> Verdict:
    """Make the file ``role``'s Kong loads at start hold ``text``; say where, or why not."""
    if role.renders_on_host:
        rendered = role.render_template_text()
        if _md5(rendered) == _md5(text):
            role.pin.drop()  # the template itself renders these bytes
        else:
            role.pin.pin(text, rendered)
        atomic_write(role.rendered_config, text)
        return Verdict(
            True,
            f"{role.rendered_config} holds it: rendered instead of the template at every start "
            "until the template's own rendering changes",
        )
    path = role.declarative_path()
    if not path:
        return Verdict(
            False,
            f"{role.spec.name} has no declarative file (KONG_DECLARATIVE_CONFIG): its next "
            "start loads no config at all",
            changed=False,
        )
    target = role.unit.host_file(path)
    if target is None:
        return Verdict(
            False,
            f"{role.spec.name} loads {path} from inside its container, which opskit cannot "
            "change for good: its next restart runs that file again, not this config. Put the "
            "file on a bind mount (Compose volumes:) or change it where it comes from",
            changed=False,
        )
    try:
        write_host_file(target, text)
    except OSError as exc:
        return Verdict(
            False,
            f"cannot write {target.path} (the file {role.spec.name} loads at start): "
            f"{exc.strerror or exc}; its next restart runs the old file again",
            changed=False,
        )
    how = " (in place: it is bind-mounted on its own)" if target.in_place else ""
    return Verdict(True, f"{target.path} holds it{how}")


def write_host_file(target: HostFile, text: str) -> None:
    """``text`` into the host file, its mode kept: atomically (temp file, fsync, rename), or —
    for a file bind-mounted on its own — over the same inode, fsynced (Kong reads it only at
    start and on HUP, so a torn read needs one during that write)."""
    data = text.encode("utf-8")
    path = target.path
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    if target.in_place:
        with path.open("r+b") as handle:
            handle.write(data)
            handle.truncate()
            handle.flush()
            os.fsync(handle.fileno())
        return
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
