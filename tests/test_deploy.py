"""The compose stack and the Dockerfile are valid and run what CI runs; nothing runs open."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import jsonschema_rs
import pytest

from coupon import create_app
from coupon.core.config import PROJECT_ROOT, Config, ConfigError
from coupon.lab.drive import edge
from tests.backends import Backend
from tests.backends import test_config as config_for
from tests.support.compose import COMPOSE, compose

SCHEMA = Path(__file__).parent / "data" / "compose_spec.json"
SERVICES = {
    "mysql",
    "redis",
    "migrate",
    "app",
    "nginx",
    "worker",
    "prometheus",
    "grafana",
    "locust-master",
    "locust-worker",
}
# Started only with `--profile sentinel` (docs/failover.md).
SENTINEL_PROFILE = {"redis-replica", "sentinel1", "sentinel2", "sentinel3"}
# Started only when asked for: the dashboards (monitoring) and the load generator (load).
OPT_IN = {"prometheus", "grafana", "locust-master", "locust-worker"}


def make_recipe(target: str) -> list[str]:
    """Return the commands of a Makefile target, with $(BIN) spelled as the venv's bin."""
    makefile = (PROJECT_ROOT / "Makefile").read_text()
    match = re.search(rf"^{re.escape(target)}:.*\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert match, f"no target {target} in the Makefile"
    lines = [line.strip() for line in match.group(1).splitlines()]
    return [line.replace("$(BIN)", ".venv/bin").replace("$(VENV)", ".venv") for line in lines]


def dockerfile_cmd() -> list[str]:
    match = re.search(r"^CMD (\[.*\])$", (PROJECT_ROOT / "Dockerfile").read_text(), re.MULTILINE)
    assert match, "the Dockerfile has no exec-form CMD"
    return json.loads(match.group(1))


def test_compose_file_matches_the_compose_specification() -> None:
    validator = jsonschema_rs.validator_for(json.loads(SCHEMA.read_text()))
    problems = [error.message for error in validator.iter_errors(compose())]
    assert problems == []
    broken = compose()
    broken["services"]["app"]["depends_on"] = {"migrate": {"condition": "when_ready"}}
    assert not validator.is_valid(broken)  # the schema does check what we rely on


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose not installed")
@pytest.mark.slow
def test_docker_compose_accepts_the_file_and_demands_a_token() -> None:
    env = {**os.environ, "COUPON_ADMIN_TOKEN": "compose-test-token", "COUPON_JWT_SECRET": "s" * 40}
    command = ["docker-compose", "-f", str(COMPOSE), "config", "-q"]
    checked = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stderr
    secretless = {name: value for name, value in env.items() if name != "COUPON_JWT_SECRET"}
    refused = subprocess.run(command, env=secretless, capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0 and "COUPON_JWT_SECRET" in refused.stderr
    env.pop("COUPON_ADMIN_TOKEN")
    refused = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0 and "COUPON_ADMIN_TOKEN" in refused.stderr


def test_services_wait_for_healthy_dependencies() -> None:
    services = compose()["services"]
    assert set(services) == SERVICES | SENTINEL_PROFILE
    assert {
        name for name, service in services.items() if service.get("profiles")
    } == SENTINEL_PROFILE | OPT_IN
    for name, service in services.items():
        for needed, rule in (service.get("depends_on") or {}).items():
            if isinstance(rule, dict) and rule["condition"] == "service_healthy":
                assert "healthcheck" in services[needed], f"{name} waits on {needed}'s health"
    for name in ("app", "worker"):
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    assert services["nginx"]["depends_on"]["app"] == {"condition": "service_healthy"}
    assert services["locust-master"]["depends_on"]["nginx"] == {"condition": "service_healthy"}
    # Scalable services name no container and bind no fixed host port; the app is reached
    # through nginx only.
    assert "container_name" not in services["locust-worker"]
    for name in ("locust-worker", "worker", "app"):
        assert "ports" not in services[name], name
    assert services["app"]["environment"]["COUPON_WORKERS"]


def test_only_the_edge_is_published_and_the_rest_binds_to_loopback_or_waits_for_a_profile() -> None:
    services = compose()["services"]
    published = {name: service["ports"] for name, service in services.items() if "ports" in service}
    for name, ports in published.items():
        if name != "nginx":
            assert all(port.startswith("127.0.0.1:") for port in ports), (name, ports)
    assert set(published) == {"nginx", "prometheus", "grafana", "locust-master"}
    for name in ("prometheus", "grafana"):
        assert services[name]["profiles"] == ["monitoring"]
    for name in ("locust-master", "locust-worker"):
        assert services[name]["profiles"] == ["load"]


def test_grafana_refuses_to_start_with_the_default_password() -> None:
    grafana = compose()["services"]["grafana"]
    assert grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD"] == "${GRAFANA_ADMIN_PASSWORD:-}"
    script = " ".join(grafana["command"]).replace("$$", "$")
    for password, refused in (("", True), ("admin", True), ("a-real-password", False)):
        shell = script.replace("exec /run.sh", "exit 0")
        done = subprocess.run(
            ["sh", "-c", shell],
            env={"GF_SECURITY_ADMIN_PASSWORD": password},
            capture_output=True,
            text=True,
            timeout=10,
        )
        assert (done.returncode != 0) == refused, (password, done.stderr)


def test_the_stack_runs_in_jwt_mode() -> None:
    env = compose()["services"]["app"]["environment"]
    assert env["COUPON_AUTH"] == "jwt" and env["COUPON_JWT_SECRET"].startswith("${COUPON_JWT_SECRET:?")


def test_nginx_gets_its_template_filled_and_proxies_to_the_app() -> None:
    services = compose()["services"]
    nginx = services["nginx"]
    mount = "./deploy/nginx.conf.template:/etc/nginx/templates/nginx.conf.template:ro"
    assert mount in nginx["volumes"]
    env = nginx["environment"]
    assert env["NGINX_ENVSUBST_OUTPUT_DIR"] == "/etc/nginx"  # it replaces the image's config
    assert "COUPON_EDGE_".startswith(env["NGINX_ENVSUBST_FILTER"])
    rendered = edge.render({k: v for k, v in env.items() if k.startswith("COUPON_EDGE_")})
    assert f"server {env['COUPON_EDGE_UPSTREAM']};" in rendered
    assert env["COUPON_EDGE_UPSTREAM"] == f"app:{services['app']['expose'][0]}"
    assert nginx["ports"] == [f"8000:{env['COUPON_EDGE_LISTEN']}"]
    assert "$remote_addr" in rendered  # nginx's own variables are left alone


def test_images_run_what_ci_and_the_makefile_run() -> None:
    services = compose()["services"]
    dockerfile = (PROJECT_ROOT / "Dockerfile").read_text()
    # The image installs the service's pins alone through the Makefile; CI's `make test` installs
    # them too, with the lab's and development's (requirements.txt includes every file).
    assert re.search(r"^RUN make \$INSTALL\b", dockerfile, re.MULTILINE)
    assert re.search(r"^ARG INSTALL=install-service$", dockerfile, re.MULTILINE)
    assert "pip install --quiet -r requirements/service.txt" in " ".join(make_recipe("install-service"))
    assert "pip install --quiet -r requirements.txt" in " ".join(make_recipe("$(STAMP)"))
    assert "-r requirements/service.txt" in (PROJECT_ROOT / "requirements.txt").read_text().splitlines()
    for service in ("locust-master", "locust-worker"):
        assert services[service]["build"]["args"]["INSTALL"] == "install-load"
    assert re.search(r"^make test\b", (PROJECT_ROOT / ".ci" / "run").read_text(), re.MULTILINE)
    serve = shlex.split(make_recipe("serve")[0])
    assert dockerfile_cmd() == services["app"]["command"] == serve
    assert services["migrate"]["command"] == shlex.split(make_recipe("migrate")[0])
    assert "gunicorn.conf.py" in serve


def test_compose_commands_exist(backend: Backend, redis_server: str) -> None:
    app = create_app(config_for(backend.url, redis_server))
    try:
        for service in ("migrate", "worker"):
            command = compose()["services"][service]["command"]
            assert command[:3] == [".venv/bin/flask", "--app", "app"]
            found = app.cli.commands.get(command[3])
            assert found is not None, f"{service} runs an unknown command {command[3]}"
            if service == "migrate":
                assert command[4] in found.commands  # type: ignore[attr-defined]
    finally:
        app.extensions["coupon"].close()


@pytest.mark.parametrize(
    "urls",
    [
        {"database_url": "mysql+pymysql://u@db/x", "redis_url": "redis://r:6379/0"},
        {"database_url": "mysql+pymysql://u@db/x"},  # Redis embedded: still a real server
        {"redis_url": "redis://r:6379/0"},
    ],
)
def test_a_missing_admin_token_refuses_to_start(urls: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="COUPON_ADMIN_TOKEN"):
        create_app(Config(admin_token=None, **urls))


def test_admin_token_is_compared_in_constant_time(
    backend: Backend, redis_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from coupon.api import auth

    compared: list[tuple[bytes, bytes]] = []
    real = auth.hmac.compare_digest

    def spy(given: bytes, expected: bytes) -> bool:
        compared.append((given, expected))
        return real(given, expected)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    app = create_app(config_for(backend.url, redis_server))
    try:
        body = {"name": "c", "total_quantity": 1}
        wrong = {"Authorization": "Bearer test-admin-tokeX"}
        right = {"Authorization": "Bearer test-admin-token"}
        assert app.test_client().post("/coupons", json=body, headers=wrong).status_code == 401
        assert app.test_client().post("/coupons", json=body).status_code == 401
        assert app.test_client().post("/coupons", json=body, headers=right).status_code == 201
    finally:
        app.extensions["coupon"].close()
    assert compared[0] == (b"test-admin-tokeX", b"test-admin-token")
    assert len(compared) == 3
