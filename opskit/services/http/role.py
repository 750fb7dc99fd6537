"""The http role: any service whose readiness is one HTTP GET (e.g. the Claude API stand-in).

``x-opskit.url`` names the probe URL; ``x-opskit.expect_status`` (a code or a list) narrows
what counts as ready, default any 2xx. Without a URL the service counts as ready while its
process runs, and the probe detail says so. ``x-opskit.received_url`` (an UpstreamRecorder)
names where an upstream stand-in lists what it received: the fail-secure drill uses it to tell
a masked request from a leak.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from opskit.config import ServiceSpec, StackConfig
from opskit.options import OptionReader
from opskit.services.base import Check, Probe, Role
from opskit.services.probes import ProbeError


@dataclass(frozen=True)
class HttpOptions:
    url: str | None = None
    expect_status: tuple[int, ...] = ()
    received_url: str | None = None


class HttpRole(Role):
    name: ClassVar[str] = "http"
    options: HttpOptions

    @classmethod
    def read_options(
        cls, reader: OptionReader, spec: ServiceSpec, config: StackConfig
    ) -> HttpOptions:
        return HttpOptions(
            url=reader.url("url"),
            expect_status=reader.status_codes("expect_status"),
            received_url=reader.url("received_url"),
        )

    def probe_ready(self) -> Probe:
        if not self.options.url:
            return super().probe_ready()
        return self.probe_http(self.options.url, self.options.expect_status)

    def health_checks(self) -> list[Check]:
        if not self.options.url:
            return []
        return [self.http_check("http", self.options.url, self.options.expect_status)]

    def received_texts(self) -> list[str] | None:
        """The texts the upstream stand-in received (``GET received_url``), newest last."""
        if not self.options.received_url:
            return None
        try:
            answer = self.get(self.options.received_url)
            return [str(item.get("text", "")) for item in answer.json().get("requests", [])]
        except (ProbeError, ValueError, AttributeError):
            return None
