"""Kong's Admin API, as opskit uses it in DB-less mode: the hash of what runs, the running
configuration (``GET /config``) and loading a new one (``POST /config?check_hash=1``, 429
retried as Kong asks). One object per role; nothing here knows where Kong runs."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx

    from opskit.services.probes import HttpAnswer

APPLY_ATTEMPTS = 3
RETRY_AFTER_CAP = 10.0


@dataclass(frozen=True)
class ConfigApplied:
    """Outcome of ``POST /config``: HTTP status, and the hash Kong reports afterwards."""

    status: int
    changed: bool
    configuration_hash: str | None
    detail: str = ""


class KongAdmin:
    """The Admin API at ``url``; ``get`` is the role's probe GET (short timeouts, no
    redirects), for the calls a health check makes too."""

    def __init__(self, url: str, get: Callable[[str], HttpAnswer]):
        self.url = url
        self._get = get

    def client(self) -> httpx.Client:
        """httpx for the calls that are not probes (export, apply)."""
        import httpx

        return httpx.Client(timeout=httpx.Timeout(10.0, connect=2.0), trust_env=False)

    def configuration_hash(self) -> str | None:
        response = self._get(f"{self.url}/status")
        return response.json().get("configuration_hash") if response.status_code == 200 else None

    def export(self) -> str:
        """The running declarative config (``GET /config``), a native backup primitive."""
        with self.client() as client:
            response = client.get(f"{self.url}/config")
            response.raise_for_status()
            return response.json()["config"]

    def apply(self, declarative: str, *, deadline: float = 30.0) -> ConfigApplied:
        """``POST /config?check_hash=1``; 304 means Kong already runs exactly these bytes.

        429 (another reload holds Kong's lock, row 9) is retried after its ``Retry-After``
        (capped at 10 s), at most :data:`APPLY_ATTEMPTS` times and within ``deadline`` seconds.
        """
        give_up = time.monotonic() + deadline
        for attempt in range(1, APPLY_ATTEMPTS + 1):
            with self.client() as client:
                response = client.post(
                    f"{self.url}/config",
                    params={"check_hash": "1"},
                    content=declarative.encode(),
                    headers={"Content-Type": "text/yaml"},
                )
            if response.status_code != 429:
                break
            wait = min(_retry_after(response.headers.get("Retry-After")), RETRY_AFTER_CAP)
            if attempt == APPLY_ATTEMPTS or time.monotonic() + wait > give_up:
                break
            time.sleep(wait)
        if response.status_code == 304:
            return ConfigApplied(304, False, self.configuration_hash(), "unchanged")
        if response.status_code == 201:
            return ConfigApplied(201, True, self.configuration_hash(), "applied")
        try:
            detail = response.json().get("message", response.text)
        except ValueError:  # nginx's HTML 413 above its body limit, an empty 415 …
            detail = response.text or response.reason_phrase
        if response.status_code == 429:
            detail = f"Kong stayed busy loading another configuration: {detail}"
        return ConfigApplied(response.status_code, False, None, str(detail)[:500])


def _retry_after(value: str | None) -> float:
    try:
        return max(float(value or 1), 0.1)
    except ValueError:
        return 1.0
