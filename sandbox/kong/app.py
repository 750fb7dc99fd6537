"""The three listeners of the Kong stand-in: proxy, admin and status."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from pathlib import Path

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.kong import declarative
from sandbox.kong.masker import (
    FAIL_SECURE_CODE,
    Masker,
    RedisUnavailable,
    StoreMissing,
    error_log_line,
    log,
    masking_event,
)

VERSION = "3.8.0"
ENTITY_ACTIONS = {
    "POST": "create",
    "PUT": "create or update",
    "PATCH": "update",
    "DELETE": "remove",
}
# K:kong/api/api_helpers.lua:236-268: what POST /config accepts (prefix match)
CONFIG_CONTENT_TYPES = (
    "application/json",
    "multipart/form-data",
    "application/x-www-form-urlencoded",
    "application/yaml",
    "text/yaml",
)


class Gateway:
    """State shared by the listeners: the loaded config, counters, the masker."""

    def __init__(self, declarative_path: str | None, masker: Masker):
        self.path = declarative_path
        self.masker = masker
        self.config = declarative.Config()
        self.total_requests = 0
        self.active = 0
        self.client = httpx.AsyncClient(timeout=httpx.Timeout(60.0, connect=5.0), trust_env=False)
        # Row 9: one reload at a time; a POST /config meanwhile gets 429 + Retry-After. The
        # stand-in can hold a reload for KONG_STANDIN_RELOAD_DELAY seconds to make that visible.
        self.loading = asyncio.Lock()
        self.reload_delay = float(os.environ.get("KONG_STANDIN_RELOAD_DELAY", "0"))
        if declarative_path:
            self.reload()

    def reload(self) -> None:
        """Re-read the declarative file (SIGHUP); a bad file keeps the old config, as Kong.
        The hash is the md5 of the file's bytes (row 15)."""
        text = Path(self.path).read_text(encoding="utf-8")
        self.config = declarative.load(declarative.parse_text(text), text)

    def route_for(self, path: str, method: str) -> dict | None:
        best = None
        for route in self.config.routes:
            if route["methods"] and method not in route["methods"]:
                continue
            for prefix in route["paths"]:
                if path.startswith(prefix) and (best is None or len(prefix) > len(best[1])):
                    best = (route, prefix)
        return (best[0] | {"matched": best[1]}) if best else None

    def plugins_for(self, route: dict) -> dict[str, dict]:
        found = {}
        for plugin in self.config.plugins:
            if not plugin["enabled"]:
                continue
            scope_route = plugin["route"] and plugin["route"]["id"] == route["id"]
            scope_service = plugin["service"] and plugin["service"]["id"] == route["service"]["id"]
            if scope_route or scope_service or (not plugin["route"] and not plugin["service"]):
                found.setdefault(plugin["name"], plugin["config"])
        return found


# -- proxy ---------------------------------------------------------------------------------------


def proxy_app(gateway: Gateway) -> Starlette:
    async def handle(request: Request) -> Response:
        gateway.total_requests += 1
        gateway.active += 1
        try:
            return await _proxy(gateway, request)
        finally:
            gateway.active -= 1

    return Starlette(
        routes=[
            Route("/{path:path}", handle, methods=[*list(ENTITY_ACTIONS), "GET", "OPTIONS", "HEAD"])
        ]
    )


async def _proxy(gateway: Gateway, request: Request) -> Response:
    route = gateway.route_for(request.url.path, request.method)
    if route is None:  # row 12 (K:kong/runloop/handler.lua:1135); Kong's own headers
        request_id = uuid.uuid4().hex
        return JSONResponse(
            {"message": "no Route matched with those values", "request_id": request_id},
            status_code=404,
            headers={
                "Server": f"kong/{VERSION}",
                "X-Kong-Response-Latency": "0",
                "X-Kong-Request-Id": request_id,
            },
        )
    service = next(s for s in gateway.config.services if s["id"] == route["service"]["id"])
    target = gateway.config.service_url(service)
    plugins = gateway.plugins_for(route)
    # nginx's own $request_id: 32 random hex, whatever the client sent (row 20). Kong returns it
    # in X-Kong-Request-Id; the client's X-Request-ID passes through to the upstream unchanged.
    request_id = uuid.uuid4().hex
    body = (await request.body()).decode("utf-8", errors="replace")
    headers = {k: v for k, v in request.headers.items() if k not in ("host", "content-length")}
    extra_response_headers: dict[str, str] = {"X-Kong-Request-Id": request_id}

    if "correlation-id" in plugins:
        options = plugins["correlation-id"]
        header = options.get("header_name", "Kong-Request-ID")
        value = request.headers.get(header) or str(uuid.uuid4())
        headers[header.lower()] = value
        if options.get("echo_downstream", False):
            extra_response_headers[header] = value

    mapping: dict[str, str] = {}
    masker_on = "aws-masker" in plugins
    # The plugin's log lines name the client's X-Request-ID, else "<now>-<conn>-<n>", which it
    # then sets on the upstream request (P:E2/handler.lua:274-283, 354, 485, 566, 607) — unlike
    # its pub/sub event, which carries nginx's own id.
    log_id = request.headers.get("x-request-id")
    if masker_on and log_id is None:
        log_id = f"{time.time():.3f}-{id(request) % 100000}-1"
        headers["x-request-id"] = log_id
    if masker_on and body:
        options = plugins["aws-masker"]
        error_log_line(
            f"[REQUEST-START] request_id={log_id} method={request.method} "
            f"uri={request.url.path} body_size={len(body)}"
        )
        began = time.perf_counter()
        try:
            result = await gateway.masker.mask(body, int(options.get("mapping_ttl", 604800)))
        except StoreMissing as exc:  # handler.lua:188-213: kong.response.exit(nil) raises
            log("MASKING-ERROR", {"request_id": log_id, "error": str(exc)})
            return JSONResponse(
                {"message": "An unexpected error occurred", "request_id": request_id},
                status_code=500,
                headers=extra_response_headers,
            )
        except RedisUnavailable as exc:  # the fixed plugin only (AWS_MASKER_FAIL_SECURE)
            log("MASKING-ERROR", {"request_id": log_id, "error": str(exc)})
            return JSONResponse(
                {
                    "error": FAIL_SECURE_CODE,
                    "message": "Service Unavailable",
                    "details": "AWS resource masking requires Redis for secure operation",
                    "request_id": request_id,
                },
                status_code=503,
                headers=extra_response_headers,
            )
        elapsed = (time.perf_counter() - began) * 1000
        mapping = result.mapping
        event = masking_event(request_id, body, result, elapsed)
        log(
            "MASKING-EVENT",
            {
                "request_id": log_id,
                "mask_count": len(mapping),
                "processing_time_ms": event["processing_time_ms"],
                "patterns_used": result.patterns,
            },
        )
        await gateway.masker.publish(event)  # every request with a body, masked or not
        body = result.text

    path = request.url.path
    if route["strip_path"]:
        path = path[len(route["matched"]) :] or "/"
    url = target + path + (f"?{request.url.query}" if request.url.query else "")
    try:
        upstream = await gateway.client.request(
            request.method, url, content=body.encode(), headers=headers
        )
    except httpx.HTTPError as exc:
        return JSONResponse(
            {"message": f"An invalid response was received from the upstream server: {exc}"},
            status_code=502,
        )
    text = upstream.text
    if masker_on:
        text, restored = await gateway.masker.unmask(text, mapping)
        log("UNMASK-EVENT", {"request_id": log_id, "unmask_count": restored})
    response_headers = {
        k: v
        for k, v in upstream.headers.items()
        if k.lower()
        not in ("content-length", "content-encoding", "transfer-encoding", "connection")
    }
    response_headers.update(extra_response_headers)
    if "response-transformer" in plugins:
        for item in (plugins["response-transformer"].get("add") or {}).get("headers") or []:
            name, _, value = str(item).partition(":")
            response_headers[name.strip()] = value.strip()
    response_headers["Via"] = f"1.1 kong/{VERSION}"
    return Response(text, status_code=upstream.status_code, headers=response_headers)


# -- admin -----------------------------------------------------------------------------------------


def status_body(gateway: Gateway) -> dict:
    return {
        "server": {
            "total_requests": gateway.total_requests,
            "connections_active": gateway.active,
            "connections_accepted": gateway.total_requests,
            "connections_handled": gateway.total_requests,
            "connections_reading": 0,
            "connections_writing": gateway.active,
            "connections_waiting": 0,
        },
        "memory": {"workers_lua_vms": [{"pid": os.getpid(), "http_allocated_gc": "0 MiB"}]},
        "configuration_hash": gateway.config.hash,
    }


def admin_app(gateway: Gateway) -> Starlette:
    async def root(_request: Request) -> JSONResponse:
        return JSONResponse(
            {
                "version": VERSION,
                "tagline": "Welcome to kong",
                "stand_in": True,
                "configuration": {
                    "database": "off",
                    "declarative_config": gateway.path,
                },
                "plugins": {
                    "available_on_server": {name: True for name in declarative.KNOWN_PLUGINS},
                    "enabled_in_cluster": sorted({p["name"] for p in gateway.config.plugins}),
                },
            }
        )

    async def status(_request: Request) -> JSONResponse:
        return JSONResponse(status_body(gateway))

    async def get_config(_request: Request) -> JSONResponse:
        return JSONResponse({"config": gateway.config.export()})

    async def post_config(request: Request) -> Response:
        """K:kong/api/routes/config.lua:112-190, in its order."""
        content_type = request.headers.get("content-type", "")
        raw = await request.body()
        if raw and not content_type.lower().startswith(CONFIG_CONTENT_TYPES):
            return Response(status_code=415)
        flatten = request.query_params.get("flatten_errors", "").lower() in ("1", "true", "on")
        try:
            document, text = declarative.read_body(content_type or "text/yaml", raw)
        except declarative.EmptyBody as exc:
            return JSONResponse({"message": str(exc)}, status_code=400)
        except declarative.InvalidConfig as exc:
            return JSONResponse(exc.body(flatten), status_code=400)
        check_hash = request.query_params.get("check_hash") == "1"  # only the literal 1
        unchanged = text is not None and declarative.raw_hash(text, document) == gateway.config.hash
        if check_hash and unchanged:  # compared on bytes, before validation
            return Response(status_code=304)
        try:
            config = declarative.load(document, text)
        except declarative.InvalidConfig as exc:
            return JSONResponse(exc.body(flatten), status_code=400)
        if gateway.loading.locked():
            return JSONResponse(
                {"message": "Currently loading previous configuration"},
                status_code=429,
                headers={"Retry-After": str(max(1, round(gateway.reload_delay)))},
            )
        async with gateway.loading:
            if gateway.reload_delay:
                await asyncio.sleep(gateway.reload_delay)
            gateway.config = config
        return JSONResponse(  # row 7: entities as maps keyed by type, then id
            {
                kind: {entity["id"]: entity for entity in getattr(config, kind)}
                for kind in ("services", "routes", "plugins")
            },
            status_code=201,
        )

    def collection(kind: str):
        async def handler(request: Request) -> JSONResponse:
            if request.method == "GET":
                return JSONResponse({"data": getattr(gateway.config, kind), "next": None})
            if request.method == "POST":
                return unsupported(kind, "create", None)
            return JSONResponse({"message": "Method not allowed"}, status_code=405)

        return handler

    def entity(kind: str):
        """Row 11 (K:kong/db/strategies/off/init.lua:392-417)."""

        async def handler(request: Request) -> Response:
            key = request.path_params["id"]
            by_name = not _is_uuid(key)
            found = next(
                (e for e in getattr(gateway.config, kind) if key in (e["id"], e.get("name"))),
                None,
            )
            field_name = "name" if by_name else None
            if request.method == "GET":
                if found is None:
                    return JSONResponse({"message": "Not found"}, status_code=404)
                return JSONResponse(found)
            if request.method == "PATCH" and found is None:
                return JSONResponse({"message": "Not found"}, status_code=404)
            if request.method == "DELETE" and found is None:
                return Response(status_code=204)
            return unsupported(kind, ENTITY_ACTIONS[request.method], field_name)

        return handler

    async def enabled(_request: Request) -> JSONResponse:
        return JSONResponse({"enabled_plugins": list(declarative.KNOWN_PLUGINS)})

    methods = ["GET", *ENTITY_ACTIONS]
    routes = [
        Route("/", root),
        Route("/status", status),
        Route("/config", get_config, methods=["GET"]),
        Route("/config", post_config, methods=["POST"]),
        Route("/plugins/enabled", enabled),
    ]
    for kind in ("services", "routes", "plugins"):
        routes.append(Route(f"/{kind}", collection(kind), methods=methods))
        routes.append(Route(f"/{kind}/{{id}}", entity(kind), methods=methods))
    return Starlette(routes=routes)


def unsupported(kind: str, action: str, by_field: str | None) -> JSONResponse:
    """405, code 12 "operation unsupported" (K:kong/db/errors.lua:489-491)."""
    by = f" by '{by_field}'" if by_field else ""
    return JSONResponse(
        {
            "code": 12,
            "name": "operation unsupported",
            "message": f"cannot {action} '{kind}' entities{by} when not using a database",
        },
        status_code=405,
    )


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def status_app(gateway: Gateway) -> Starlette:
    async def ready(_request: Request) -> JSONResponse:
        if gateway.config.empty:
            return JSONResponse(
                {"message": "no configuration available (empty configuration present)"},
                status_code=503,
            )
        return JSONResponse({"message": "ready"})

    async def status(_request: Request) -> JSONResponse:
        return JSONResponse(status_body(gateway))

    return Starlette(routes=[Route("/status/ready", ready), Route("/status", status)])
