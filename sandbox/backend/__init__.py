"""A stand-in for the stack's Node backend: ``/health``, ``/health/ready``, ``POST /analyze``.

``/health/ready`` is 200 only while nginx answers its ``/health`` (the backend cannot serve
without its proxy). ``POST /analyze {"text": "..."}`` sends the text to the Claude Messages API
through nginx (``$NGINX_URL/v1/messages``), passing ``X-Request-ID`` on, and returns the
assistant's text. The API key comes from ``$ANTHROPIC_API_KEY`` and is never logged.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import uuid

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

MODEL = "claude-3-5-haiku-latest"


def create_app(nginx_url: str | None = None) -> Starlette:
    base = (nginx_url or os.environ.get("NGINX_URL", "http://127.0.0.1:8082")).rstrip("/")
    client = httpx.AsyncClient(timeout=httpx.Timeout(60.0, connect=2.0), trust_env=False)

    async def health(_request: Request) -> JSONResponse:
        return JSONResponse({"status": "healthy"})

    async def ready(_request: Request) -> JSONResponse:
        try:
            response = await client.get(f"{base}/health", timeout=1.0)
        except httpx.HTTPError as exc:
            reason = f"nginx unreachable: {type(exc).__name__}"
            return JSONResponse({"status": "not ready", "reason": reason}, status_code=503)
        if response.status_code != 200:
            reason = f"nginx /health answered {response.status_code}"
            return JSONResponse({"status": "not ready", "reason": reason}, status_code=503)
        return JSONResponse({"status": "ready"})

    async def analyze(request: Request) -> JSONResponse:
        request_id = request.headers.get("x-request-id") or str(uuid.uuid4())
        began = time.perf_counter()
        response = await _analyze(request, request_id)
        # One line per request naming its id: what lets `inv logs.trace` find the backend hop
        # (uvicorn's access log has no request id).
        ms = (time.perf_counter() - began) * 1000
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        print(
            f"{stamp} analyze request_id={request_id} status={response.status_code} ms={ms:.1f}",
            file=sys.stderr,
            flush=True,
        )
        return response

    async def _analyze(request: Request, request_id: str) -> JSONResponse:
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("text"), str):
            return JSONResponse(
                {"error": 'expected JSON {"text": "..."}', "request_id": request_id},
                status_code=400,
            )
        payload = {
            "model": body.get("model", MODEL),
            "max_tokens": int(body.get("max_tokens", 256)),
            "messages": [{"role": "user", "content": body["text"]}],
        }
        headers = {
            "x-api-key": os.environ.get("ANTHROPIC_API_KEY", ""),
            "anthropic-version": "2023-06-01",
            "x-request-id": request_id,
        }
        try:
            response = await client.post(f"{base}/v1/messages", json=payload, headers=headers)
        except httpx.HTTPError as exc:
            return JSONResponse(
                {"error": f"proxy unreachable: {type(exc).__name__}", "request_id": request_id},
                status_code=502,
            )
        if response.status_code != 200:
            return JSONResponse(
                {
                    "error": "upstream error",
                    "upstream_status": response.status_code,
                    "request_id": request_id,
                },
                status_code=502,
            )
        data = response.json()
        text = "".join(
            block.get("text", "")
            for block in data.get("content", [])
            if block.get("type") == "text"
        )
        return JSONResponse({"request_id": request_id, "analysis": text})

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette):
        yield
        await client.aclose()

    return Starlette(
        routes=[
            Route("/health", health),
            Route("/health/ready", ready),
            Route("/analyze", analyze, methods=["POST"]),
        ],
        lifespan=lifespan,
    )
