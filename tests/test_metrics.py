"""inv metrics checked by a real Prometheus (Debian's): it scrapes --serve, loads the alert
rules of docs/monitoring, answers every dashboard and rule expression, and fires the
service-down alert within two evaluation intervals of a kill. promtool checks the textfile and
the rules."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time

import httpx
import pytest

from opskit.ops import backup, copies, lifecycle
from opskit.ops.drill import drill
from opskit.stack import load_stack

from .conftest import REPO, free_port, inv_process, make_sandbox_env, run_inv

MONITORING = REPO / "docs" / "monitoring"
PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")
needs_prometheus = pytest.mark.skipif(
    not (PROMETHEUS and PROMTOOL), reason="Debian's prometheus package (prometheus, promtool)"
)
SCRAPE, EVALUATION = 0.5, 2.0


def _mask_request(stack) -> None:
    front = stack.role("front").unit.address(int(stack.config.environ["FRONT_PORT"]))
    response = httpx.post(
        f"http://{front[0]}:{front[1]}/analyze",
        json={"text": "look at i-0123456789abcdef0"},
        timeout=10,
    )
    assert response.status_code == 200, response.text


def _give_kong_a_certificate(stack, folder) -> None:
    import yaml

    from .pki import make_certificate

    cert, key = make_certificate(folder, "site", "site.test", 60.5)
    kong = stack.role("kong")
    document = yaml.safe_load(kong.export_config())
    document["certificates"] = [
        {"cert": cert.read_text(), "key": key.read_text(), "snis": [{"name": "site.test"}]}
    ]
    assert kong.apply_config(yaml.safe_dump(document)).status == 201


def _query(base: str, expr: str) -> list:
    answer = httpx.get(f"{base}/api/v1/query", params={"query": expr}, timeout=5).json()
    assert answer["status"] == "success", (expr, answer)
    return answer["data"]["result"]


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _expressions() -> tuple[list[str], list[tuple[str, str]]]:
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    panel_exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    import yaml

    rules = yaml.safe_load((MONITORING / "alerts.yml").read_text())
    rule_exprs = [(r["alert"], r["expr"]) for g in rules["groups"] for r in g["rules"]]
    return panel_exprs, rule_exprs


@pytest.fixture
def started(tmp_path):
    env = make_sandbox_env(tmp_path)
    # the sandbox's copy on: its metrics (and the copy-age rule's series) exist
    env.update(OPSKIT_COPY_REPOSITORY=str(tmp_path / "copy"), OPSKIT_COPY_PASSWORD="c" * 20)
    stack = load_stack(REPO / "sandbox" / "stack.yml", environ=env)
    result = lifecycle.start(stack)
    try:
        assert result.ok, [(o.service, o.detail) for o in result.outcomes]
        yield stack, {**env, "PATH": os.environ["PATH"]}
    finally:
        lifecycle.stop(stack)


@needs_prometheus
def test_prometheus_scrapes_answers_every_expression_and_fires_service_down(started, tmp_path):
    stack, env = started
    _mask_request(stack)  # plugin keys and cnt: counters exist
    made = backup.backup(stack)  # backup metrics exist
    _give_kong_a_certificate(stack, tmp_path)  # certificate metrics exist
    assert copies.copy(stack, [made.backup_id]).ok  # and the copy's
    drill(stack)  # and drill metrics
    port, prom_port = free_port(), free_port()
    server = inv_process(env, "metrics", "--serve", str(port), "--cache-ttl", "0.25")
    config = tmp_path / "prometheus.yml"
    config.write_text(
        # Prometheus durations are whole units: 500ms, 2s
        f"global: {{scrape_interval: {int(SCRAPE * 1000)}ms, "
        f"evaluation_interval: {int(EVALUATION * 1000)}ms}}\n"
        f"rule_files: [{MONITORING / 'alerts.yml'}]\n"
        "scrape_configs:\n"
        f"  - job_name: opskit\n    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n"
    )
    prometheus = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{prom_port}"
    try:
        _wait(lambda: _ready(base), 30, "prometheus ready")
        _wait(lambda: _query(base, "opskit_masking_events_subscribed == 1"), 30, "subscribed")
        _mask_request(stack)  # an event the running subscription counts
        up = _wait(lambda: _query(base, "opskit_service_up"), 30, "opskit_service_up")
        assert {s["metric"]["service"] for s in up} == set(stack.services)

        panels, rules = _expressions()
        for expr in panels:  # printed: with -s, the proof that each panel shows data
            answer = _wait(lambda e=expr: _query(base, e), 20, f"a result for {expr!r}")
            print(f"panel query: {len(answer)} series: {expr}")
        for alert, expr in rules:  # a quiet alert's expression is empty by design:
            for name in set(re.findall(r"\bopskit_\w+", expr)):  # its series must exist
                assert _query(base, f"count({name})"), f"{alert}: no series {name}"
        loaded = httpx.get(f"{base}/api/v1/rules", timeout=5).json()["data"]["groups"]
        names = {r["name"]: r["health"] for g in loaded for r in g["rules"]}
        assert names.keys() == {alert for alert, _ in rules}
        assert set(names.values()) == {"ok"}
        events = _query(base, 'opskit_masking_events_total{result="success"}')
        assert float(events[0]["value"][1]) >= 1

        pid = stack.role("upstream").unit.status().pid
        killed_at = time.monotonic()
        os.kill(pid, signal.SIGKILL)

        def firing():
            alerts = httpx.get(f"{base}/api/v1/alerts", timeout=5).json()["data"]["alerts"]
            return [
                a
                for a in alerts
                if a["labels"]["alertname"] == "OpskitServiceDown"
                and a["labels"].get("service") == "upstream"
                and a["state"] == "firing"
            ]

        _wait(firing, 15, "OpskitServiceDown firing")
        elapsed = time.monotonic() - killed_at
        assert elapsed <= 2 * EVALUATION, f"fired {elapsed:.1f}s after the kill"
        assert len(firing()) == 1
    finally:
        prometheus.terminate()
        server.send_signal(signal.SIGTERM)
        prometheus.wait(10)
        assert server.wait(10) == 0
        output = server.stdout.read() if server.stdout else ""
        assert "serving http://127.0.0.1:" in output


@needs_prometheus
def test_textfile_passes_promtool_and_rules_pass_their_tests(started, tmp_path):
    _stack, env = started
    target = tmp_path / "collector" / "opskit.prom"
    target.parent.mkdir()
    done = run_inv(env, "metrics", "--textfile", str(target))
    assert done.returncode == 0, done.stderr
    assert oct(target.stat().st_mode & 0o777) in ("0o644", "0o600")
    assert [p.name for p in target.parent.iterdir()] == ["opskit.prom"]  # no temp left
    text = target.read_text()
    check = subprocess.run(
        [PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert 'opskit_redis_masking_keys{kind="map",service="redis"}' in text
    assert 'opskit_nginx_connections{service="front",state="active"}' in text
    assert 'opskit_kong_ready{service="kong"} 1.0' in text
    assert stack_secret_free(text, env)
    for args in (["check", "rules", "alerts.yml"], ["test", "rules", "alerts.test.yml"]):
        done = subprocess.run(  # seconds: the rule tests place old times before t=0
            [PROMTOOL, *args], cwd=MONITORING, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stdout + done.stderr

    bad = run_inv(env, "metrics", "--textfile", str(tmp_path / "opskit.txt"))
    assert bad.returncode == 2 and "only *.prom files" in bad.stderr


def stack_secret_free(text: str, env: dict) -> bool:
    return env["REDIS_PASSWORD"] not in text


def test_scrapes_within_the_ttl_share_one_health_pass(started):
    """Two scrapes 0.1 s apart with a 60 s cache: the second is served from the first pass."""
    _stack, env = started
    port = free_port()
    server = inv_process(env, "metrics", "--serve", str(port), "--cache-ttl", "60")
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        first = _wait(lambda: _scrape(url), 20, "the metrics server")
        time.sleep(0.1)
        second = _scrape(url)
        pattern = re.compile(r"^opskit_metrics_gather_duration_seconds (\S+)$", re.M)
        assert pattern.search(first).group(1) == pattern.search(second).group(1)
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(10) == 0


def _scrape(url: str) -> str | None:
    try:
        return httpx.get(url, timeout=5).text
    except httpx.HTTPError:
        return None


def _ready(base: str) -> bool:
    try:
        return httpx.get(f"{base}/-/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_a_stopped_service_is_down_but_not_wanted(started):
    stack, _env = started
    assert lifecycle.stop(stack, ["upstream"]).ok
    from opskit.ops.metrics import gather

    values = {(v.name, dict(v.labels).get("service")): v.value for v in gather(stack)}
    assert values[("service_up", "upstream")] == 0.0
    assert values[("service_wanted_up", "upstream")] == 0.0
    assert values[("service_wanted_up", "kong")] == 1.0
