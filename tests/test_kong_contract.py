"""Contract tests: the Kong stand-in answers as Kong 3.x DB-less does.

Each behaviour encodes Kong's documented API (facts and sources in
shared/reference/anchors.md §3):

- ``GET /status``: server connection counters, memory, and ``configuration_hash`` in DB-less
  mode — kong/api/routes/health.lua:15-66.
- ``GET /status/ready`` on the status listener: 200 ``{"message": "ready"}`` once a non-empty
  config is loaded, 503 otherwise — kong/status/ready.lua:28-51, 104-128;
  developer.konghq.com gateway/traffic-control/health-check-probes.md.
- ``GET /config`` → ``{"config": "<yaml>"}``; ``POST /config``: 201 with the entities,
  ``?check_hash=1`` → 304 when unchanged, 400 with flattened errors on an invalid config —
  kong/api/routes/config.lua:87-190; kong/db/declarative/export.lua:142-145.
- Entity writes in DB-less mode → 405 "cannot <action> '<entities>' entities when not using a
  database" — kong/db/strategies/off/init.lua:391-417; developer.konghq.com
  gateway/db-less-mode.md:191-202.
- List endpoints answer ``{"data": [...], "next": null}`` — Kong Admin API reference.
"""

from __future__ import annotations

import json

import httpx
import pytest
import yaml


@pytest.fixture(scope="module")
def kong(running_sandbox):
    return running_sandbox.role("kong")


@pytest.fixture(scope="module")
def admin(kong):
    with httpx.Client(base_url=kong.admin_url, timeout=5, trust_env=False) as client:
        yield client


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
    response = httpx.get(f"{kong.status_url}/status/ready", trust_env=False)
    assert (response.status_code, response.json()) == (200, {"message": "ready"})


def test_get_config_exports_the_declarative_yaml(admin):
    exported = yaml.safe_load(admin.get("/config").json()["config"])
    assert exported["_format_version"] == "3.0"
    assert exported["services"][0]["routes"][0]["paths"] == ["/v1"]


def test_post_config_check_hash_unchanged_is_304(admin):
    current = admin.get("/config").json()["config"]
    before = admin.get("/status").json()["configuration_hash"]
    response = admin.post("/config", params={"check_hash": 1}, content=current)
    assert response.status_code == 304
    assert admin.get("/status").json()["configuration_hash"] == before


def test_post_config_invalid_is_400_with_flattened_errors(admin):
    before = admin.get("/status").json()["configuration_hash"]
    bad = {"_format_version": "3.0", "services": [{"name": "x", "url": "not-a-url"}]}
    response = admin.post("/config", json=bad)
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == 14 and body["name"] == "invalid declarative configuration"
    assert body["message"].startswith("declarative config is invalid")
    [entity] = body["flattened_errors"]
    assert entity["entity_type"] == "service" and entity["entity_name"] == "x"
    assert entity["errors"][0]["field"] == "url"
    assert admin.get("/status").json()["configuration_hash"] == before  # old config kept


def test_post_config_success_is_201_and_changes_the_hash(admin):
    original = admin.get("/config").json()["config"]
    before = admin.get("/status").json()["configuration_hash"]
    changed = yaml.safe_load(original)
    changed["services"][0]["routes"][0]["paths"] = ["/v1", "/v2"]
    try:
        response = admin.post("/config", content=json.dumps({"config": yaml.safe_dump(changed)}))
        assert response.status_code == 201
        assert {route["name"] for route in response.json()["routes"]} == {"claude-proxy-route"}
        assert admin.get("/status").json()["configuration_hash"] != before
    finally:
        assert admin.post("/config", content=original).status_code == 201
    assert admin.get("/status").json()["configuration_hash"] == before


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
    ("method", "path", "action"),
    [
        ("POST", "/plugins", "create"),
        ("PATCH", "/plugins/some-id", "update"),
        ("PUT", "/services/some-id", "update"),
        ("DELETE", "/routes/some-id", "delete"),
    ],
)
def test_entity_writes_are_405_in_dbless_mode(admin, method, path, action):
    response = admin.request(method, path, json={"name": "aws-masker", "enabled": False})
    assert response.status_code == 405
    kind = path.split("/")[1]
    expected = f"cannot {action} '{kind}' entities when not using a database"
    assert response.json()["message"] == expected


def test_proxy_unmatched_route_is_404(running_sandbox):
    kong = running_sandbox.role("kong")
    host, port = kong.unit.address(int(running_sandbox.config.environ["KONG_PROXY_PORT"]))
    response = httpx.get(f"http://{host}:{port}/nope", trust_env=False)
    assert response.status_code == 404
    assert response.json() == {"message": "no Route matched with those values"}
