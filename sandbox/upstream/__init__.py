"""A stand-in for the Anthropic Messages API (``POST /v1/messages``) that echoes the user text.

It exists so the masking round trip can be checked with no API key and no cost: whatever text
reaches it comes back in the Anthropic response shape, so a test can see both what the
upstream *received* (``GET /_standin/requests``: masked ids, if masking works) and what the
client got back (the unmasked original).

It is not the Claude API: no model, no streaming, no rate limits. Any non-empty ``x-api-key``
is accepted; a missing one gets the API's 401 shape. A request header ``x-standin-delay-ms``
delays the answer, so tests can keep a request in flight.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import time

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

RECENT_LIMIT = 50
_ids = itertools.count(1)


def _error(status: int, kind: str, message: str) -> JSONResponse:
    return JSONResponse(
        {"type": "error", "error": {"type": kind, "message": message}}, status_code=status
    )


def _user_text(messages: list) -> str | None:
    """Text of the last user message: a string, or the text blocks of a content list."""
    for message in reversed(messages):
        if not isinstance(message, dict) or message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            return "".join(
                block.get("text", "")
                for block in content
                if isinstance(block, dict) and block.get("type") == "text"
            )
    return None


def create_app() -> Starlette:
    received: collections.deque = collections.deque(maxlen=RECENT_LIMIT)

    async def messages(request: Request) -> JSONResponse:
        if not request.headers.get("x-api-key"):
            return _error(401, "authentication_error", "x-api-key header is required")
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "invalid_request_error", "request body is not valid JSON")
        if not isinstance(body, dict):
            return _error(400, "invalid_request_error", "request body must be a JSON object")
        max_tokens = body.get("max_tokens")
        if not isinstance(body.get("model"), str):
            return _error(400, "invalid_request_error", "model: field required")
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            return _error(400, "invalid_request_error", "max_tokens: must be a positive integer")
        messages_field = body.get("messages")
        text = _user_text(messages_field) if isinstance(messages_field, list) else None
        if text is None:
            return _error(400, "invalid_request_error", "messages: a user message is required")
        delay = request.headers.get("x-standin-delay-ms")
        if delay:  # lets tests hold a request in flight (drain on SIGQUIT)
            await asyncio.sleep(min(int(delay), 30_000) / 1000)
        received.append(
            {
                "at": time.time(),
                "request_id": request.headers.get("x-request-id"),
                "text": text,
            }
        )
        words = len(text.split())
        return JSONResponse(
            {
                "id": f"msg_standin_{next(_ids):08d}",
                "type": "message",
                "role": "assistant",
                "model": body["model"],
                "content": [{"type": "text", "text": text}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": {"input_tokens": words, "output_tokens": words},
            }
        )

    async def health(_request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "stand_in": "anthropic-messages"})

    async def recent(_request: Request) -> JSONResponse:
        return JSONResponse({"requests": list(received)})

    return Starlette(
        routes=[
            Route("/v1/messages", messages, methods=["POST"]),
            Route("/health", health),
            Route("/_standin/requests", recent),
        ]
    )


app = create_app()
