"""The http role: any service whose readiness is one HTTP GET (e.g. the Claude API stand-in).

``x-opskit.url`` names the probe URL; ``x-opskit.expect_status`` (a code or a list) narrows
what counts as ready, default any 2xx. Without a URL the service counts as ready while its
process runs, and the probe detail says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from opskit.config import ServiceSpec, StackConfig
from opskit.options import OptionReader
from opskit.services.base import Check, Probe, Role


@dataclass(frozen=True)
class HttpOptions:
    url: str | None = None
    expect_status: tuple[int, ...] = ()


class HttpRole(Role):
    name: ClassVar[str] = "http"
    options: HttpOptions

    @classmethod
    def read_options(
        cls, reader: OptionReader, spec: ServiceSpec, config: StackConfig
    ) -> HttpOptions:
        return HttpOptions(
            url=reader.url("url"), expect_status=reader.status_codes("expect_status")
        )

    def probe_ready(self) -> Probe:
        if not self.options.url:
            return super().probe_ready()
        return self.probe_http(self.options.url, self.options.expect_status)

    def health_checks(self) -> list[Check]:
        if not self.options.url:
            return []
        return [self.http_check("http", self.options.url, self.options.expect_status)]
