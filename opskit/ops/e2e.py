"""The end-to-end masking check: proof that masking happened, not only that text came back.

An echo round trip passes with the plugin switched off, so this check asks the masking store:
a unique synthetic EC2 id goes in through the stack's entry point (nginx) to the masking
gateway (Kong) and on to the Claude API; the client must get the original back with no
``AWS_*_NNN`` token, **and** ``aws_masker:rev:<b64(id)>`` → M and ``aws_masker:map:M`` → id
(with a TTL) must exist — only masking writes those. The masking event with our request id on
``aws-masker:events:masking`` is checked too.

The three parts are found by capability (:mod:`opskit.services.capabilities`): EntryPoint,
MaskingGateway, MaskingStore — never by role name.

:func:`fail_secure_drill` (opt-in) interrupts the store, sends an AWS-bearing request, and
always brings the store back through :func:`engine.ensure_ready` — in a ``finally``, so Ctrl-C
or an exception cannot leave it down. It changes state, so it runs as a mutation under the
stack lock, after health's observation.

Against the real Claude API this costs tokens: it runs only with ``allow_cost`` and asks for
at most 16 output tokens.
"""

from __future__ import annotations

import json
import re
import secrets
import time
import uuid
from typing import Any

from opskit.errors import LockBusyError
from opskit.ops.engine import capable, deadline_in, ensure_ready, mutation
from opskit.report import CheckResult
from opskit.services.capabilities import EntryPoint, MaskingGateway, MaskingStore
from opskit.services.probes import RedisProbeError
from opskit.stack import Stack
from opskit.vocabulary import CheckStatus

SERVICE = "e2e"
MAX_TOKENS = 16
MASKED_TOKEN = re.compile(r"AWS_[A-Z0-9_]+?_\d{3,}")
FAIL_SECURE_CODE = "AWS_MASKER_1001"


def synthetic_instance_id() -> str:
    """A random, well-formed EC2 instance id Redis cannot already hold a mapping for."""
    return "i-" + secrets.token_hex(9)[:17]


class _Steps:
    """Collects one CheckResult per step, timing each."""

    def __init__(self) -> None:
        self.results: list[CheckResult] = []

    def add(self, name: str, began: float, status: CheckStatus, detail: str) -> None:
        elapsed = (time.perf_counter() - began) * 1000
        self.results.append(CheckResult(name, SERVICE, status, detail, round(elapsed, 1)))


class _Chain:
    """The stack's entry point, masking gateway and masking store, found by capability."""

    def __init__(self, stack: Stack):
        found = {
            kind: next(iter(capable(stack, capability)), None)
            for kind, capability in (
                ("entry point (nginx)", EntryPoint),
                ("masking gateway (kong)", MaskingGateway),
                ("masking store (redis)", MaskingStore),
            )
        }
        self.missing = [kind for kind, name in found.items() if name is None]
        names = list(found.values())
        self.entry_name, self.gateway_name, self.store_name = names
        self.entry: Any = stack.role(names[0]) if names[0] else None
        self.gateway: Any = stack.role(names[1]) if names[1] else None
        self.store: Any = stack.role(names[2]) if names[2] else None

    @property
    def url(self) -> str:
        return self.entry.entry_url(self.gateway.masked_path)


def masking_checks(
    stack: Stack,
    *,
    allow_cost: bool = False,
    timeout: float = 15.0,
    event_wait: float = 2.0,
) -> list[CheckResult]:
    """Round trip, masking maps, masking event: one CheckResult each."""
    steps = _Steps()
    began = time.perf_counter()
    chain = _Chain(stack)
    if chain.missing:
        steps.add("masking", began, CheckStatus.UNKNOWN, f"stack has no {', '.join(chain.missing)}")
        return steps.results
    costly = chain.gateway.costly_upstream()
    if costly and not allow_cost:
        detail = f"Kong forwards to {costly}: the check costs API tokens; pass --allow-cost"
        steps.add("masking", began, CheckStatus.UNKNOWN, detail)
        return steps.results

    api_key = stack.config.environ.get("ANTHROPIC_API_KEY") or "opskit-e2e-check"
    original = synthetic_instance_id()
    request_id = f"opskit-e2e-{uuid.uuid4().hex}"
    deadline = deadline_in(timeout)
    with _Subscription(chain) as events:
        step = time.perf_counter()
        status, detail = _round_trip(chain.url, api_key, request_id, original, deadline)
        steps.add("round_trip", step, status, detail)

        step = time.perf_counter()
        status, detail = _masked_in_store(chain, original)
        steps.add("masked_in_redis", step, status, detail)

        step = time.perf_counter()
        wait = min(event_wait, max(0.0, deadline - time.monotonic()))
        status, detail = events.find(request_id, original, wait)
        steps.add("masking_event", step, status, detail)
    return steps.results


class _Subscription:
    """The store's event subscription, or the plain reason there is none."""

    def __init__(self, chain: _Chain):
        self.chain = chain
        self.context: Any = None
        self.pubsub: Any = None
        self.problem: str | None = None

    def __enter__(self) -> _Subscription:
        try:
            self.context = self.chain.store.events()
            self.pubsub = self.context.__enter__()
        except Exception as exc:  # redis-py's errors; the verdict is the same for all
            self.context = None
            self.problem = (
                f"{self.chain.store_name} is not reachable ({type(exc).__name__}): no masking "
                "event can be observed"
            )
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.context is not None:
            self.context.__exit__(None, None, None)

    def find(self, request_id: str, original: str, wait: float) -> tuple[CheckStatus, str]:
        if self.problem:
            return CheckStatus.CRITICAL, self.problem
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            message = self.pubsub.get_message(timeout=max(0.0, deadline - time.monotonic()))
            if not message or message.get("type") != "message":
                continue
            try:
                event = json.loads(message["data"])
            except (ValueError, TypeError):
                continue
            if event.get("request_id") == request_id:
                masked_text = (event.get("demo_data") or {}).get("masked_text", "")
                if original in masked_text:
                    return CheckStatus.CRITICAL, "the masking event's masked_text holds the id"
                return CheckStatus.OK, f"masking event {event.get('event_id')} with our request id"
        return CheckStatus.WARNING, f"no masking event with our request id within {wait:g}s"


def _send(url: str, api_key: str, request_id: str, text: str, timeout: float):
    import httpx

    return httpx.post(
        url,
        headers={
            "x-api-key": api_key,
            "anthropic-version": "2023-06-01",
            "x-request-id": request_id,
        },
        json={
            "model": "claude-3-5-haiku-latest",
            "max_tokens": MAX_TOKENS,
            "messages": [{"role": "user", "content": f"Repeat exactly: {text}"}],
        },
        timeout=httpx.Timeout(max(timeout, 0.1), connect=min(2.0, max(timeout, 0.1))),
        trust_env=False,
    )


def _round_trip(
    url: str, api_key: str, request_id: str, original: str, deadline: float
) -> tuple[CheckStatus, str]:
    import httpx

    try:
        response = _send(url, api_key, request_id, original, deadline - time.monotonic())
    except httpx.TimeoutException:
        return CheckStatus.CRITICAL, f"POST {url}: no answer in time (a frozen or stuck hop)"
    except httpx.HTTPError as exc:
        return CheckStatus.CRITICAL, f"POST {url}: {type(exc).__name__}"
    if response.status_code == 503 and FAIL_SECURE_CODE in response.text:
        return CheckStatus.CRITICAL, (
            f"the gateway refused the request (503 {FAIL_SECURE_CODE}): it cannot reach its "
            "masking store, so every request carrying AWS ids fails"
        )
    if response.status_code != 200:
        return (
            CheckStatus.CRITICAL,
            f"POST {url}: HTTP {response.status_code} {response.text[:200]}",
        )
    try:
        content = response.json()["content"]
        text = "".join(b.get("text", "") for b in content if b.get("type") == "text")
    except (ValueError, KeyError, TypeError, AttributeError):
        return CheckStatus.CRITICAL, "response is not an Anthropic message"
    leaked = MASKED_TOKEN.findall(text)
    if leaked:
        return (
            CheckStatus.CRITICAL,
            f"masked token {leaked[0]} reached the client: unmasking failed",
        )
    if original not in text:
        return CheckStatus.CRITICAL, "the synthetic id did not come back in the response"
    return CheckStatus.OK, "synthetic id came back unmasked, no AWS_* token in the response"


def _masked_in_store(chain: _Chain, original: str) -> tuple[CheckStatus, str]:
    try:
        masked, stored, ttl = chain.store.masked_token_for(original)
    except RedisProbeError as exc:
        return CheckStatus.CRITICAL, (
            f"{chain.store_name} is not reachable ({exc}): the masking maps cannot be read, and "
            "the plugin can neither store nor look up masks"
        )
    if masked is None:
        return CheckStatus.CRITICAL, "no aws_masker:rev key for the synthetic id: it was NOT masked"
    if stored != original:
        return (
            CheckStatus.CRITICAL,
            f"aws_masker:map:{masked} does not map back to the synthetic id",
        )
    if ttl is None or ttl <= 0:
        return CheckStatus.WARNING, f"masked as {masked}, but the mapping has no TTL ({ttl})"
    return CheckStatus.OK, f"masked as {masked} (map and rev keys present, TTL {ttl}s)"


# -- the fail-secure drill ---------------------------------------------------------------------


def fail_secure_drill(
    stack: Stack, *, timeout: float = 15.0, lock_wait: float = 10.0
) -> CheckResult:
    """Interrupt the masking store, expect 503 AWS_MASKER_1001, bring the store back.

    A mutation: it holds the stack lock, so no other opskit run acts on the stack meanwhile;
    when another run holds it, the drill does not happen and says who holds the lock.
    """
    began = time.perf_counter()

    def result(status: CheckStatus, detail: str) -> CheckResult:
        elapsed = round((time.perf_counter() - began) * 1000, 1)
        return CheckResult("fail_secure", SERVICE, status, detail, elapsed)

    chain = _Chain(stack)
    if chain.missing:
        return result(CheckStatus.UNKNOWN, f"stack has no {', '.join(chain.missing)}")
    try:
        with mutation(stack, "fail-secure drill", wait=lock_wait):
            return _drill(stack, chain, timeout, result)
    except LockBusyError as exc:
        return result(CheckStatus.UNKNOWN, f"drill not run: {exc}")


def _drill(stack: Stack, chain: _Chain, timeout: float, result) -> CheckResult:
    stopped = chain.store.interrupt()
    if not stopped.was_running:
        return result(CheckStatus.UNKNOWN, "redis was not running; fail-secure probe skipped")
    verdict = (CheckStatus.UNKNOWN, "the drill was interrupted")
    try:
        verdict = _probe_fail_secure(chain.url, stack, timeout)
    finally:  # also on Ctrl-C and unexpected exceptions: never leave the store down
        restored = ensure_ready(stack, chain.store_name)
    if not restored.ok:
        return result(
            CheckStatus.CRITICAL,
            f"{verdict[1]}; {chain.store_name} did NOT become ready again: {restored.detail}",
        )
    return result(*verdict)


def _probe_fail_secure(url: str, stack: Stack, timeout: float) -> tuple[CheckStatus, str]:
    import httpx

    api_key = stack.config.environ.get("ANTHROPIC_API_KEY") or "opskit-e2e-check"
    request_id = f"opskit-failsecure-{uuid.uuid4().hex}"
    try:
        response = _send(url, api_key, request_id, synthetic_instance_id(), timeout)
    except httpx.HTTPError as exc:
        return CheckStatus.CRITICAL, f"fail-secure request failed: {type(exc).__name__}"
    if response.status_code == 503 and FAIL_SECURE_CODE in response.text:
        return (
            CheckStatus.OK,
            f"with Redis down, AWS-bearing request refused: 503 {FAIL_SECURE_CODE}",
        )
    return CheckStatus.CRITICAL, (
        f"with Redis down the gateway answered {response.status_code}, not 503 "
        f"{FAIL_SECURE_CODE}: AWS ids may leave unmasked"
    )
