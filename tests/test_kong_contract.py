"""Contract tests: the Kong stand-in answers as Kong 3.x DB-less does.

Each test cites its row of shared/reference/kong-real-behaviour.md and the Kong source (K =
Kong/kong 3.8, paths as there). They run against the stand-in; with
``OPSKIT_REAL_KONG=http://admin-host:8001`` (and ``OPSKIT_REAL_KONG_STATUS`` for the status
listener) the read-only ones run against a real Kong an operator has, unchanged.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time

import httpx
import pytest
import yaml

REAL_KONG = os.environ.get("OPSKIT_REAL_KONG")
stand_in_only = pytest.mark.skipif(
    bool(REAL_KONG), reason="changes the configuration: runs against the stand-in only"
)


@pytest.fixture(scope="module")
def kong(request):
    if REAL_KONG:
        return None
    return request.getfixturevalue("running_sandbox").role("kong")


@pytest.fixture(scope="module")
def admin(kong):
    base = REAL_KONG or kong.admin_url
    with httpx.Client(base_url=base, timeout=5, trust_env=False) as client:
        yield client


def test_real_kong_mode_is_opt_in():
    """Documents the switch: skipped here, where no real Kong can be installed."""
    if not REAL_KONG:
        pytest.skip("no real Kong here: set OPSKIT_REAL_KONG=http://host:8001 to run against one")
    assert httpx.get(REAL_KONG, trust_env=False).json()["version"].startswith("3.")


def test_root_reports_version_3_and_dbless(admin):
    body = admin.get("/").json()
    assert body["version"].startswith("3.")
    assert body["configuration"]["database"] == "off"
    assert "aws-masker" in body["plugins"]["enabled_in_cluster"]


def test_status_has_counters_and_configuration_hash(admin):
    body = admin.get("/status").json()
    server = body["server"]
    for key in (
        "total_requests",
        "connections_active",
        "connections_accepted",
        "connections_handled",
        "connections_reading",
        "connections_writing",
        "connections_waiting",
    ):
        assert isinstance(server[key], int), key
    assert "memory" in body
    assert len(body["configuration_hash"]) == 32 and body["configuration_hash"] != "0" * 32
    assert "database" not in body


def test_status_listener_ready(kong):
    """Row 4: 200 {"message": "ready"} (K:kong/status/ready.lua:104-114)."""
    base = os.environ.get("OPSKIT_REAL_KONG_STATUS") if REAL_KONG else kong.status_url
    if not base:
        pytest.skip("set OPSKIT_REAL_KONG_STATUS for the status listener")
    response = httpx.get(f"{base}/status/ready", trust_env=False)
    assert (response.status_code, response.json()) == (200, {"message": "ready"})


def test_get_config_exports_flat_lists_with_ids_and_defaults(admin):
    """Row 10 (K:kong/db/declarative/export.lua:98-231): flat lists, ids, defaults, foreign
    keys as ids, services as protocol/host/port/path — no url."""
    exported = yaml.safe_load(admin.get("/config").json()["config"])
    assert exported["_format_version"] == "3.0" and exported["_transform"] is False
    service_ids = {service["id"] for service in exported["services"]}
    assert all(
        "url" not in service and {"protocol", "host", "port"} <= set(service)
        for service in exported["services"]
    )
    route = next(r for r in exported["routes"] if "/v1" in r["paths"])
    assert route["service"] in service_ids  # a foreign key is an id
    masker = next(p for p in exported["plugins"] if p["name"] == "aws-masker")
    assert masker["route"] == route["id"]
    assert masker["config"]["preserve_structure"] is True  # a default, exported (row 18)


@stand_in_only
def test_an_export_loads_back_and_is_a_full_reload_not_304(admin):
    """Row 6 (K:kong/api/routes/config.lua:121-134): check_hash compares the md5 of the raw
    text with the current hash before validation, so re-posting an export (other bytes than
    the file Kong loaded) is a full reload, 201 — and posting the same bytes again is 304."""
    exported = admin.get("/config").json()["config"]
    headers = {"Content-Type": "text/yaml"}
    first = admin.post("/config", params={"check_hash": 1}, content=exported, headers=headers)
    assert first.status_code == 201
    again = admin.post("/config", params={"check_hash": 1}, content=exported, headers=headers)
    assert again.status_code == 304
    literal = admin.post(
        "/config", params={"check_hash": "true"}, content=exported, headers=headers
    )
    assert literal.status_code == 201  # only the literal 1 checks the hash


@stand_in_only
def test_the_hash_is_the_md5_of_the_raw_text(admin):
    """Row 2 (K:kong/db/declarative/init.lua:92-103): any byte changes it."""
    import hashlib

    exported = admin.get("/config").json()["config"]
    for text in (exported, exported + "\n# a comment\n"):
        response = admin.post("/config", content=text, headers={"Content-Type": "text/yaml"})
        assert response.status_code == 201
        expected = hashlib.md5(text.encode()).hexdigest()
        assert admin.get("/status").json()["configuration_hash"] == expected


@stand_in_only
def test_post_config_needs_a_supported_content_type_and_a_body(admin):
    """Row 5 (K:kong/api/api_helpers.lua:236-268; config.lua:60-67)."""
    exported = admin.get("/config").json()["config"]
    assert (
        admin.post("/config", content=exported, headers={"Content-Type": "text/plain"}).status_code
        == 415
    )
    empty = admin.post("/config", content=b"", headers={"Content-Type": "text/yaml"})
    assert (empty.status_code, empty.json()) == (
        400,
        {"message": "expected a declarative configuration"},
    )


@stand_in_only
def test_post_config_invalid_is_400_nested_and_flattened_only_on_request(admin):
    """Row 8 (K:config.lua:139-149; kong/db/errors.lua:495-497,1170-1186)."""
    before = admin.get("/status").json()["configuration_hash"]
    bad = {"_format_version": "3.0", "services": [{"name": "x", "url": "not-a-url"}]}
    response = admin.post("/config", json=bad)
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == 14 and body["name"] == "invalid declarative configuration"
    assert body["message"].startswith("declarative config is invalid")
    assert body["fields"]["services"]["0"]["url"] and "flattened_errors" not in body
    flat = admin.post("/config", params={"flatten_errors": 1}, json=bad).json()
    [entity] = flat["flattened_errors"]
    assert entity["entity_type"] == "service" and entity["entity_name"] == "x"
    assert entity["errors"][0]["field"] == "url"
    assert admin.get("/status").json()["configuration_hash"] == before  # old config kept


@stand_in_only
def test_unknown_aws_masker_fields_are_rejected_as_kong_does(admin):
    """Row 18 (P:E2/schema.lua:49-250): the seeds' enable_event_monitoring does not exist."""
    document = yaml.safe_load(admin.get("/config").json()["config"])
    masker = next(p for p in document["plugins"] if p["name"] == "aws-masker")
    masker["config"]["enable_event_monitoring"] = True
    response = admin.post(
        "/config", params={"flatten_errors": 1}, json={"config": yaml.safe_dump(document)}
    )
    assert response.status_code == 400
    [entity] = response.json()["flattened_errors"]
    assert entity["errors"] == [
        {"field": "config.enable_event_monitoring", "message": "unknown field", "type": "field"}
    ]


@stand_in_only
def test_post_config_success_is_201_keyed_by_id_and_changes_the_hash(admin):
    """Row 7 (K:config.lua:188-189): entities as maps keyed by type, then id."""
    original = admin.get("/config").json()["config"]
    before = admin.get("/status").json()["configuration_hash"]
    changed = yaml.safe_load(original)
    next(r for r in changed["routes"] if "/v1" in r["paths"])["paths"] = ["/v1", "/v2"]
    try:
        response = admin.post(
            "/config",
            content=json.dumps({"config": yaml.safe_dump(changed)}),
            headers={"Content-Type": "application/json"},
        )
        assert response.status_code == 201
        routes = response.json()["routes"]
        assert all(key == route["id"] for key, route in routes.items())
        assert admin.get("/status").json()["configuration_hash"] != before
    finally:
        restored = admin.post("/config", content=original, headers={"Content-Type": "text/yaml"})
        assert restored.status_code == 201


@pytest.mark.parametrize("kind", ["services", "routes", "plugins"])
def test_lists_have_kongs_shape(admin, kind):
    body = admin.get(f"/{kind}").json()
    assert set(body) == {"data", "next"} and body["next"] is None
    assert body["data"] and all("id" in entity for entity in body["data"])


def test_aws_masker_is_attached_to_the_v1_route(admin):
    routes = {r["id"]: r for r in admin.get("/routes").json()["data"]}
    masker = [p for p in admin.get("/plugins").json()["data"] if p["name"] == "aws-masker"]
    assert len(masker) == 1 and masker[0]["route"]["id"] in routes
    assert "/v1" in routes[masker[0]["route"]["id"]]["paths"]
    assert "aws-masker" in admin.get("/plugins/enabled").json()["enabled_plugins"]


@pytest.mark.parametrize(
    ("method", "path", "status", "message"),
    [
        ("POST", "/plugins", 405, "cannot create 'plugins' entities when not using a database"),
        (
            "PATCH",
            "/services/claude-api-service",
            405,
            "cannot update 'services' entities by 'name' when not using a database",
        ),
        (
            "PUT",
            "/services/claude-api-service",
            405,
            "cannot create or update 'services' entities by 'name' when not using a database",
        ),
        (
            "DELETE",
            "/routes/claude-proxy-route",
            405,
            "cannot remove 'routes' entities by 'name' when not using a database",
        ),
        ("PATCH", "/plugins/00000000-0000-4000-8000-000000000000", 404, "Not found"),
        ("DELETE", "/plugins/00000000-0000-4000-8000-000000000000", 204, None),
        ("DELETE", "/plugins", 405, "Method not allowed"),
    ],
)
def test_entity_writes_in_dbless_mode(admin, method, path, status, message):
    """Row 11 (K:kong/db/strategies/off/init.lua:392-417; kong/api/endpoints.lua:37,108)."""
    response = admin.request(method, path, json={"enabled": False})
    assert response.status_code == status
    if message is None:
        assert not response.content
    else:
        assert response.json()["message"] == message
    if status == 405 and message.startswith("cannot"):
        assert (response.json()["code"], response.json()["name"]) == (12, "operation unsupported")


@stand_in_only
def test_proxy_unmatched_route_is_404_with_a_request_id(running_sandbox):
    """Row 12 (K:kong/runloop/handler.lua:1135)."""
    kong = running_sandbox.role("kong")
    host, port = kong.unit.address(int(running_sandbox.config.environ["KONG_PROXY_PORT"]))
    response = httpx.get(f"http://{host}:{port}/nope", trust_env=False)
    assert response.status_code == 404
    body = response.json()
    assert body["message"] == "no Route matched with those values"
    assert re.fullmatch("[0-9a-f]{32}", body["request_id"])


@stand_in_only
def test_a_reload_in_progress_answers_429_and_apply_config_waits_for_it(sandbox_env, stacks):
    """Row 9 (K:config.lua:151-160): 429 + Retry-After while another reload holds the lock;
    opskit's apply honours Retry-After with a bounded retry."""
    from opskit.ops import lifecycle
    from opskit.stack import load_stack

    from .conftest import REPO

    env = dict(sandbox_env, KONG_STANDIN_RELOAD_DELAY="1.5")
    stack = load_stack(REPO / "sandbox" / "stack.yml", environ=env)
    stacks.append(stack)
    assert lifecycle.start(stack, ["kong"]).ok
    kong = stack.role("kong")
    exported = kong.export_config()
    slow = threading.Thread(target=kong.apply_config, args=(exported + "\n# slow\n",))
    slow.start()
    try:
        time.sleep(0.4)  # the slow reload now holds the lock for ~1.1 s more
        with httpx.Client(base_url=kong.admin_url, timeout=5, trust_env=False) as client:
            busy = client.post(
                "/config", content=exported + "\n#b\n", headers={"Content-Type": "text/yaml"}
            )
        assert busy.status_code == 429, busy.text
        assert busy.json() == {"message": "Currently loading previous configuration"}
        assert 1 <= int(busy.headers["Retry-After"]) <= 10
        began = time.monotonic()
        applied = kong.apply_config(exported + "\n# after the busy one\n")  # 429, then retried
        assert applied.status == 201, applied
        assert time.monotonic() - began >= 1.0  # it waited as Retry-After said
    finally:
        slow.join()
