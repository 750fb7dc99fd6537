"""The http role: any service whose readiness is one HTTP GET (e.g. the Claude API stand-in).

``x-opskit.url`` names the probe URL; ``x-opskit.expect_status`` (a code or a list) narrows
what counts as ready, default any 2xx. Without a URL the service counts as ready while its
process runs, and the probe detail says so.
"""

from __future__ import annotations

from typing import ClassVar

from opskit.config import ServiceSpec, StackConfig
from opskit.errors import ConfigError
from opskit.services.base import Check, Probe, Role


class HttpRole(Role):
    name: ClassVar[str] = "http"

    @classmethod
    def check(cls, spec: ServiceSpec, config: StackConfig) -> None:
        super().check(spec, config)
        url = spec.options.get("url")
        if url is not None and not str(url).startswith(("http://", "https://")):
            raise ConfigError(
                config.source,
                f"services.{spec.name}.x-opskit.url",
                f"expected an http(s) URL, got {url!r}",
            )
        try:
            cls._expected(spec)
        except (TypeError, ValueError):
            raise ConfigError(
                config.source,
                f"services.{spec.name}.x-opskit.expect_status",
                "expected an HTTP status code or a list of them",
            ) from None

    @staticmethod
    def _expected(spec: ServiceSpec) -> tuple[int, ...]:
        raw = spec.options.get("expect_status", ())
        values = raw if isinstance(raw, list) else ([raw] if raw != () else [])
        return tuple(int(value) for value in values)

    def probe_ready(self) -> Probe:
        url = self.spec.options.get("url")
        if not url:
            return super().probe_ready()
        return self.probe_http(str(url), self._expected(self.spec))

    def health_checks(self) -> list[Check]:
        url = self.spec.options.get("url")
        if not url:
            return []
        return [self.http_check("http", str(url), self._expected(self.spec))]
