"""Prometheus and Grafana in the compose stack scrape what exists and chart what the app exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from coupon.core.config import PROJECT_ROOT
from tests.conftest import MakeCoupon
from tests.support.compose import compose

DEPLOY = PROJECT_ROOT / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "coupon.json"
PROMETHEUS = DEPLOY / "prometheus.yml"
# What issue 14 asks the dashboard to show, as the sample names the app exports.
CHARTED = {
    "coupon_issues_total",
    "coupon_issue_seconds_bucket",
    "coupon_stream_backlog",
    "coupon_stream_pending",
    "coupon_worker_rows_total",
    "coupon_soldout_fast_path_hits_total",
}
PROMQL_WORDS = {"sum", "max", "min", "avg", "rate", "increase", "histogram_quantile", "by"}


def metric_names(expr: str) -> set[str]:
    """Return the metric names a PromQL expression reads."""
    expr = re.sub(r'"[^"]*"', "", expr)  # label values
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", expr)  # label matchers, ranges
    expr = re.sub(r"\b(by|without)\s*\([^)]*\)", "", expr)  # grouping labels
    return set(re.findall(r"[A-Za-z_:][\w:]*", expr)) - PROMQL_WORDS


def expressions() -> list[str]:
    """Return every PromQL expression of every panel of the dashboard."""
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [target["expr"] for panel in panels for target in panel["targets"]]


def mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Map a service's bind-mounted container paths to the repository paths mounted there."""
    binds = (volume.split(":") for volume in service.get("volumes", []))
    return {bind[1]: PROJECT_ROOT / bind[0] for bind in binds if bind[0].startswith("./")}


def test_metric_names_are_read_from_promql() -> None:
    expr = 'histogram_quantile(0.9, sum by (le, strategy) (rate(a_bucket{x="b_c"}[5m]))) / b'
    assert metric_names(expr) == {"a_bucket", "b"}


def test_prometheus_scrapes_services_on_the_ports_they_serve_metrics_on() -> None:
    services = compose()["services"]
    assert mounts(services["prometheus"])["/etc/prometheus/prometheus.yml"] == PROMETHEUS
    scrape_configs = yaml.safe_load(PROMETHEUS.read_text())["scrape_configs"]
    jobs = {job["job_name"]: job for job in scrape_configs}
    assert set(jobs) == {"app", "worker"}
    for job in jobs.values():
        (discovery,) = job["dns_sd_configs"]
        for name in discovery["names"]:
            assert str(discovery["port"]) in services[name]["expose"], name
    # The app's /metrics wants the admin token: the file the compose command writes it to.
    token_file = jobs["app"]["authorization"]["credentials_file"]
    prometheus = services["prometheus"]
    assert f'printf %s "$$COUPON_ADMIN_TOKEN" > {token_file} ' in prometheus["command"][0]
    assert "COUPON_ADMIN_TOKEN" in prometheus["environment"]
    app_port = jobs["app"]["dns_sd_configs"][0]["port"]
    assert services["app"]["environment"]["COUPON_BIND"] == f"0.0.0.0:{app_port}"
    worker_port = jobs["worker"]["dns_sd_configs"][0]["port"]
    assert services["worker"]["environment"]["COUPON_METRICS_PORT"] == str(worker_port)


def test_grafana_provisions_the_prometheus_datasource_and_the_dashboard() -> None:
    services = compose()["services"]
    grafana = mounts(services["grafana"])
    provisioning = grafana["/etc/grafana/provisioning"]
    (source,) = yaml.safe_load(next((provisioning / "datasources").glob("*.yml")).read_text())["datasources"]
    url = urlsplit(source["url"])
    assert url.hostname == "prometheus"
    assert f"127.0.0.1:{url.port}:{url.port}" in services["prometheus"]["ports"]  # the host's loopback only
    (provider,) = yaml.safe_load(next((provisioning / "dashboards").glob("*.yml")).read_text())["providers"]
    assert grafana[provider["options"]["path"]] / DASHBOARD.name == DASHBOARD
    home = Path(services["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"])
    assert grafana[str(home.parent)] / home.name == DASHBOARD
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        assert panel["targets"], panel["title"]
        uids = {panel["datasource"]["uid"]} | {t["datasource"]["uid"] for t in panel["targets"]}
        assert uids == {source["uid"]}, panel["title"]


@pytest.mark.parametrize("backend", ["mysql"], indirect=True)
def test_every_panel_charts_a_metric_the_app_exports(client: FlaskClient, make_coupon: MakeCoupon) -> None:
    for strategy in ("lua", "queued"):  # queued registers a stream: the backlog gauges appear
        coupon_id = make_coupon(quantity=5)
        answer = client.post(f"/coupons/{coupon_id}/issue?strategy={strategy}", json={"user_id": 1})
        assert answer.status_code in (201, 202), answer.json
    auth = {"Authorization": "Bearer test-admin-token"}
    scraped = client.get("/metrics", headers=auth).get_data(as_text=True)
    exported = {
        sample.name for family in text_string_to_metric_families(scraped) for sample in family.samples
    }
    charted = set().union(*map(metric_names, expressions()))
    assert charted <= exported, charted - exported
    assert CHARTED <= charted, CHARTED - charted


# promtool comes with Debian's prometheus package (about 100 MB): used where present, not
# installed by CI.
@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_promtool_accepts_the_config_and_every_panel_query(tmp_path: Path) -> None:
    # promtool wants the token file to exist: the same config, pointed at a stand-in.
    config = yaml.safe_load(PROMETHEUS.read_text())
    for job in config["scrape_configs"]:
        if "authorization" in job:
            (tmp_path / "token").write_text("stand-in")
            job["authorization"]["credentials_file"] = str(tmp_path / "token")
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    checked = subprocess.run(
        ["promtool", "check", "config", str(tmp_path / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # Grafana's $__rate_interval is no PromQL: stand in a range, then check each as a rule.
    rules = [
        {"record": f"dashboard:query{index}", "expr": expr.replace("$__rate_interval", "1m")}
        for index, expr in enumerate(expressions())
    ]
    (tmp_path / "rules.yml").write_text(yaml.safe_dump({"groups": [{"name": "d", "rules": rules}]}))
    checked = subprocess.run(
        ["promtool", "check", "rules", str(tmp_path / "rules.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
