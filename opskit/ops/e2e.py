"""The end-to-end masking check: proof that masking happened, not only that text came back.

An echo round trip passes with the plugin switched off, so this check asks the masking store:
a unique synthetic EC2 id goes in through the stack's entry point (nginx) to the masking
gateway (Kong) and on to the Claude API; the client must get the original back with no
``AWS_*_NNN`` token, **and** ``aws_masker:rev:<b64(id)>`` → M and ``aws_masker:map:M`` → id
(with a TTL) must exist — only masking writes those. The masking event on
``aws-masker:events:masking`` is checked too, found by its *content* (our synthetic id, or its
masked token): the real plugin's event carries nginx's own ``$request_id``, never the client's
X-Request-ID (kong-real-behaviour.md row 20).

The three parts are found by capability (:mod:`opskit.services.capabilities`): EntryPoint,
MaskingGateway, MaskingStore — never by role name.

:func:`fail_secure_drill` (opt-in) interrupts the store, sends an AWS-bearing request, and
always brings the store back through :func:`engine.ensure_ready` — in a ``finally``, so Ctrl-C
or an exception cannot leave it down. It changes state, so it runs as a mutation under the
stack lock, after health's observation. It classifies what the gateway did (row 21): refused
with 503 ``AWS_MASKER_1001`` (fail-secure: OK); answered 200 with the id masked but the mapping
never stored (WARNING); let the raw id reach the upstream (CRITICAL: a leak); failed with 500
(CRITICAL).

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
from opskit.incidents import record_incident
from opskit.ops.engine import capable, deadline_in, ensure_ready, mutation
from opskit.report import CheckResult
from opskit.services.capabilities import (
    EntryPoint,
    MaskingGateway,
    MaskingStore,
    UpstreamRecorder,
)
from opskit.services.probes import RedisProbeError
from opskit.stack import Stack
from opskit.vocabulary import CheckStatus, SecurityIncident

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


def e2e_cost(stack: Stack) -> str | None:
    """Why the masking check cannot run here for free (a missing part of the chain, or an
    upstream that bills API tokens); None when it can — recovery runs it only then."""
    chain = _Chain(stack)
    if chain.missing:
        return f"stack has no {', '.join(chain.missing)}"
    costly = chain.gateway.costly_upstream()
    return f"Kong forwards to {costly}" if costly else None


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

        reached = status is CheckStatus.OK  # the gateway answered: the text went upstream
        step = time.perf_counter()
        status, detail, token = _masked_in_store(chain, original)
        steps.add("masked_in_redis", step, status, detail)
        if reached and token is None and status is CheckStatus.CRITICAL:
            record_incident(stack.state_dir, SecurityIncident.UNMASKED)

        step = time.perf_counter()
        wait = min(event_wait, max(0.0, deadline - time.monotonic()))
        status, detail = events.find(original, token, wait)
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

    def find(self, original: str, token: str | None, wait: float) -> tuple[CheckStatus, str]:
        """The event that carries our synthetic id (or its token), whatever its request id."""
        if self.problem:
            return CheckStatus.CRITICAL, self.problem
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            message = self.pubsub.get_message(timeout=max(0.0, deadline - time.monotonic()))
            if not message or message.get("type") != "message":
                continue
            try:
                event = json.loads(message["data"])
                demo = event.get("demo_data") or {}
                original_text = str(demo.get("original_text", ""))
                masked_text = str(demo.get("masked_text", ""))
            except (ValueError, TypeError, AttributeError):
                continue
            if original not in original_text and not (token and token in masked_text):
                continue
            if original in masked_text:
                return CheckStatus.CRITICAL, "the masking event's masked_text holds the raw id"
            return CheckStatus.OK, (
                f"masking event {event.get('event_id')} for our synthetic id "
                f"(gateway request id {event.get('request_id')})"
            )
        return CheckStatus.WARNING, f"no masking event for our synthetic id within {wait:g}s"


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


def _masked_in_store(chain: _Chain, original: str) -> tuple[CheckStatus, str, str | None]:
    try:
        masked, stored, ttl = chain.store.masked_token_for(original)
    except RedisProbeError as exc:
        return (
            CheckStatus.CRITICAL,
            f"{chain.store_name} is not reachable ({exc}): the masking maps cannot be read, and "
            "the plugin can neither store nor look up masks",
            None,
        )
    if masked is None:
        detail = "no aws_masker:rev key for the synthetic id: it was NOT masked"
        return CheckStatus.CRITICAL, detail, None
    if stored != original:
        detail = f"aws_masker:map:{masked} does not map back to the synthetic id"
        return CheckStatus.CRITICAL, detail, masked
    if ttl is None or ttl <= 0:
        return (
            CheckStatus.WARNING,
            f"masked as {masked}, but the mapping has no TTL ({ttl})",
            masked,
        )
    return CheckStatus.OK, f"masked as {masked} (map and rev keys present, TTL {ttl}s)", masked


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
    original = synthetic_instance_id()
    answer: tuple[int, str] | None = None
    problem = "the drill was interrupted"
    try:
        answer, problem = _send_during_outage(chain.url, stack, original, timeout)
    finally:  # also on Ctrl-C and unexpected exceptions: never leave the store down
        restored = ensure_ready(stack, chain.store_name)
    verdict = (
        _classify(stack, chain, original, *answer) if answer else (CheckStatus.CRITICAL, problem)
    )
    if answer and answer[0] == 200:  # the gateway let an AWS-bearing request through
        leaked = verdict[0] is CheckStatus.CRITICAL
        incident = SecurityIncident.LEAK if leaked else SecurityIncident.FAIL_OPEN
        record_incident(stack.state_dir, incident)
    if not restored.ok:
        return result(
            CheckStatus.CRITICAL,
            f"{verdict[1]}; {chain.store_name} did NOT become ready again: {restored.detail}",
        )
    return result(*verdict)


def _send_during_outage(
    url: str, stack: Stack, original: str, timeout: float
) -> tuple[tuple[int, str] | None, str]:
    import httpx

    api_key = stack.config.environ.get("ANTHROPIC_API_KEY") or "opskit-e2e-check"
    request_id = f"opskit-failsecure-{uuid.uuid4().hex}"
    try:
        response = _send(url, api_key, request_id, original, timeout)
    except httpx.HTTPError as exc:
        return None, f"with Redis down the request failed: {type(exc).__name__}"
    return (response.status_code, response.text), ""


def _classify(
    stack: Stack, chain: _Chain, original: str, status: int, text: str
) -> tuple[CheckStatus, str]:
    """One plain sentence for what the gateway did with an AWS-bearing request, Redis down."""
    if status == 503 and FAIL_SECURE_CODE in text:
        return CheckStatus.OK, (
            "with Redis down the gateway refused the AWS-bearing request "
            f"(503 {FAIL_SECURE_CODE}): fail-secure"
        )
    if status == 500:
        return CheckStatus.CRITICAL, (
            "with Redis down the gateway failed with HTTP 500 instead of refusing with 503 "
            f"{FAIL_SECURE_CODE}: clients get errors (the real aws-masker plugin on a worker "
            "that has no Redis store yet)"
        )
    if status != 200:
        return CheckStatus.CRITICAL, (
            f"with Redis down the gateway answered HTTP {status}, not 503 {FAIL_SECURE_CODE}"
        )
    received = _upstream_received(stack)
    if received is not None and any(original in item for item in received):
        return CheckStatus.CRITICAL, (
            "with Redis down the raw AWS id reached the upstream unmasked: a LEAK (HTTP 200)"
        )
    try:
        stored, _, _ = chain.store.masked_token_for(original)
    except RedisProbeError:
        stored = None
    if stored is not None:
        return CheckStatus.WARNING, (
            "with Redis down the gateway answered 200 instead of refusing, yet the mapping exists"
        )
    unchecked = "" if received is not None else " (no upstream recorder: a leak is not ruled out)"
    return CheckStatus.WARNING, (
        "with Redis down the gateway masked the id but never recorded the mapping in Redis and "
        "answered 200 instead of refusing: its counter-0 tokens (AWS_EC2_000) collide across ids "
        f"and the mapping is lost{unchecked}"
    )


def _upstream_received(stack: Stack) -> list[str] | None:
    for name in capable(stack, UpstreamRecorder):
        texts = stack.role(name).received_texts()
        if texts is not None:
            return texts
    return None
