"""Backing up and restoring Kong's configuration: the running one (``GET /config``, Kong's own
export) and the declarative file it loads, each parsed before it is kept; a restore sends back
the one that ran and proves it by ``configuration_hash`` (md5 of the raw text)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from opskit.errors import OpskitError
from opskit.services.capabilities import Drilled, RestorePlan, Verdict

if TYPE_CHECKING:
    from opskit.backup.artifacts import ArtifactReader, ServiceArtifacts
    from opskit.config import ServiceSpec
    from opskit.runtime.base import Unit
    from opskit.services.kong.admin import ConfigApplied

EXPORT_ARTIFACT = "export.yml"
DECLARATIVE_ARTIFACT = "declarative.yml"


class KongService(Protocol):
    """What a backup needs of the kong role. The role hands itself in; this module never
    imports it (no circle)."""

    spec: ServiceSpec
    unit: Unit

    def export_config(self) -> str: ...

    def apply_config(self, declarative: str) -> ConfigApplied: ...

    def running_hash(self) -> str | None: ...

    def declarative_path(self) -> str | None: ...

    def declarative_file_hash(self) -> str | None: ...

    def persist_declarative(self, text: str) -> Verdict: ...


class KongBackup:
    """The kong role's backup and restore, one instance per operation."""

    def __init__(self, role: KongService):
        self.role = role

    def back_up(self, artifacts: ServiceArtifacts) -> dict[str, Any]:
        """The running configuration (``GET /config``, Kong's own export) and the declarative
        file, both parsed before they are kept; ``configuration_hash`` says which one runs."""
        import hashlib

        try:
            exported = self.role.export_config()
        except Exception as exc:  # httpx errors: Kong down, admin API refused
            raise OpskitError(f"{self.role.spec.name}: GET /config failed: {exc}") from None
        config_hash = self.role.running_hash()
        _parse_declarative(exported, "GET /config export")
        artifacts.add_bytes(EXPORT_ARTIFACT, exported.encode())
        metadata: dict[str, Any] = {
            "configuration_hash": config_hash,
            "export_md5": hashlib.md5(exported.encode()).hexdigest(),
            "entities": _entity_counts(exported),
        }
        path = self.role.declarative_path()
        if path:
            with self.role.unit.open_file(path) as data:
                declarative = data.read()
            _parse_declarative(declarative.decode("utf-8", errors="replace"), path)
            artifacts.add_bytes(DECLARATIVE_ARTIFACT, declarative)
            metadata["declarative_path"] = path
            metadata["declarative_md5"] = hashlib.md5(declarative).hexdigest()
        return metadata

    def check(self, artifacts: ArtifactReader, metadata: dict, deep: bool) -> list[str]:
        problems = []
        for name in (EXPORT_ARTIFACT, DECLARATIVE_ARTIFACT):
            if name == DECLARATIVE_ARTIFACT and not artifacts.has(name):
                continue
            try:
                _parse_declarative(artifacts.read_bytes(name).decode("utf-8"), name)
            except (OpskitError, UnicodeDecodeError) as exc:  # ArtifactError is an OpskitError
                problems.append(f"{artifacts.entry(name).path}: {exc}")
        return problems

    def plan(self, artifacts: ArtifactReader, metadata: dict) -> RestorePlan:
        source = self._restore_source(metadata)
        return RestorePlan(False, f"POST /config with the {source}, verify configuration_hash")

    def apply(self, artifacts: ArtifactReader, metadata: dict, plan: RestorePlan) -> Verdict:
        """``POST /config`` the configuration that ran, then verify Kong's hash of it (md5 of
        the raw text, row 2). The declarative file is sent when it is what ran (its md5 is the
        recorded hash), so the hash comes back exactly; otherwise the export."""
        import hashlib

        source = self._restore_source(metadata)
        name = DECLARATIVE_ARTIFACT if source == "declarative file" else EXPORT_ARTIFACT
        text = artifacts.read_bytes(name).decode("utf-8")
        applied = self.role.apply_config(text)
        if applied.status not in (201, 304):
            return Verdict(False, f"POST /config: HTTP {applied.status}: {applied.detail}")
        expected = hashlib.md5(text.encode()).hexdigest()
        if applied.configuration_hash != expected:
            return Verdict(
                False,
                f"after POST /config Kong reports configuration_hash "
                f"{str(applied.configuration_hash)[:12]}, expected {expected[:12]}",
            )
        if self.role.declarative_file_hash() == expected:
            kept = "the declarative file already holds it"
        else:
            persisted = self.role.persist_declarative(text)
            kept = (
                persisted.detail if persisted.ok else f"NOT kept for restarts: {persisted.detail}"
            )
        return Verdict(
            True,
            f"{source} applied ({applied.detail}), configuration_hash {expected[:12]}; {kept}",
            applied.changed,
        )

    def drill(self, artifacts: ArtifactReader, metadata: dict) -> Drilled:
        """Each stored config checked as ``inv kong.validate`` checks a file (format,
        entities, references, aws-masker's real fields); the one a restore would send must pass.
        Nothing is sent to Kong."""
        from opskit.declarative.document import DeclarativeError, parse, validate

        problems, figures = [], {}
        sent = (
            DECLARATIVE_ARTIFACT if self._restore_source(metadata) == "declarative file" else None
        )
        for name in (EXPORT_ARTIFACT, DECLARATIVE_ARTIFACT):
            if not artifacts.has(name):
                continue
            where = artifacts.entry(name).path
            try:
                doc = parse(artifacts.read_bytes(name).decode("utf-8"), where)
            except (DeclarativeError, UnicodeDecodeError) as exc:
                problems.append(f"{where}: {exc}")
                continue
            findings = validate(doc)
            if name == sent:
                problems += [f"{where}: {problem}" for problem in findings.problems]
            figures[name] = {"md5": doc.md5, "entities": _entity_counts(doc.text)}
        return Drilled(problems, figures)

    @staticmethod
    def _restore_source(metadata: dict) -> str:
        ran_file = metadata.get("declarative_md5") and metadata.get(
            "declarative_md5"
        ) == metadata.get("configuration_hash")
        return "declarative file" if ran_file else "GET /config export"


def _parse_declarative(text: str, where: str) -> dict:
    """A Kong declarative config must be a YAML/JSON mapping with ``_format_version``."""
    import yaml

    try:
        document = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        raise OpskitError(f"{where}: not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(document, dict) or "_format_version" not in document:
        raise OpskitError(f"{where}: not a Kong declarative config (no _format_version)")
    return document


def _entity_counts(text: str) -> dict[str, int]:
    document = _parse_declarative(text, "export")
    return {
        name: len(value)
        for name, value in sorted(document.items())
        if isinstance(value, list) and not name.startswith("_")
    }
