"""The HTTP API's codes and errors, through the Flask test client, on both backends."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from coupon import create_app
from strategies import REGISTRY
from tests import backends
from tests.backends import Backend

TOKEN = "test-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
DEAD_REDIS = "redis://127.0.0.1:1/0"
DEAD_DATABASE = "postgresql+psycopg2://postgres@127.0.0.1:1/nowhere"
SYNC_STRATEGIES = [name for name, cls in REGISTRY.items() if cls.synchronous]
COUPON_FIELDS = {
    "id", "name", "total_quantity", "issued_quantity", "remaining", "issue_start", "issue_end",
    "sold_out",
}  # fmt: skip


def assert_error(response: TestResponse, status: int) -> str:
    """Check an error answer: the status, a JSON body with an error, no traceback."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.is_json
    body = response.get_json()
    assert isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"]
    assert "Traceback" not in response.get_data(as_text=True)
    return body["error"]


def iso(delta: timedelta) -> str:
    """Format now + delta as ISO-8601 in UTC."""
    return (datetime.now(timezone.utc) + delta).isoformat()


def create(client: FlaskClient, quantity: int = 10, **fields: Any) -> dict[str, Any]:
    """Create a coupon through the API and return its JSON."""
    body = {"name": "api coupon", "total_quantity": quantity, **fields}
    response = client.post("/coupons", json=body, headers=AUTH)
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()


def issue(
    client: FlaskClient, coupon_id: int, user_id: Any, strategy: str | None = None
) -> TestResponse:
    """Ask for a coupon for a user, with a strategy or the default."""
    query = {} if strategy is None else {"strategy": strategy}
    return client.post(f"/coupons/{coupon_id}/issue", json={"user_id": user_id}, query_string=query)


@pytest.fixture()
def make_client(backend: Backend, redis_server: str) -> Iterator[Any]:
    """Build test clients of apps with their own settings (dead servers, another default)."""
    apps: list[Flask] = []

    def make(
        database_url: str | None = None, redis_url: str | None = None, **overrides: Any
    ) -> FlaskClient:
        database, redis = database_url or backend.url, redis_url or redis_server
        config = backends.test_config(database, redis, **overrides)
        apps.append(create_app(config))
        return apps[-1].test_client()

    yield make
    for app in apps:
        app.extensions["coupon"].close()


def test_ping(client: FlaskClient) -> None:
    response = client.get("/ping")
    assert response.status_code == 200
    assert response.get_json() == {"ok": True}


def test_healthz(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json()["ok"] is True


@pytest.mark.parametrize(
    ("dead", "failing"),
    [("redis", ["redis"]), ("database", ["database"]), ("both", ["database", "redis"])],
)
def test_healthz_names_what_is_down(make_client: Any, dead: str, failing: list[str]) -> None:
    client = make_client(
        database_url=DEAD_DATABASE if dead in ("database", "both") else None,
        redis_url=DEAD_REDIS if dead in ("redis", "both") else None,
    )
    response = client.get("/healthz")
    message = assert_error(response, 503)
    assert response.get_json()["failing"] == failing
    for name in failing:
        assert name in message


@pytest.mark.parametrize("strategy", ["lua", "redis_counter", "redis_lock"])
def test_issue_without_redis_is_503(make_client: Any, client: FlaskClient, strategy: str) -> None:
    coupon_id = create(client)["id"]
    dead = make_client(redis_url=DEAD_REDIS)
    assert "redis" in assert_error(issue(dead, coupon_id, 1, strategy), 503)


@pytest.mark.parametrize("strategy", ["lua", "atomic_update"])
def test_issue_without_database_is_503(make_client: Any, strategy: str) -> None:
    dead = make_client(database_url=DEAD_DATABASE)
    assert "database" in assert_error(issue(dead, 1, 1, strategy), 503)


def test_create_coupon(client: FlaskClient) -> None:
    start, end = "2030-01-01T11:00:00+02:00", "2030-01-02T09:00:00Z"
    body = create(client, quantity=3, issue_start=start, issue_end=end)
    assert set(body) == COUPON_FIELDS
    assert body["name"] == "api coupon" and body["total_quantity"] == 3
    assert body["issued_quantity"] == 0 and body["remaining"] == 3 and body["sold_out"] is False
    assert body["issue_start"] == "2030-01-01T09:00:00+00:00"
    assert body["issue_end"] == "2030-01-02T09:00:00+00:00"
    assert client.get(f"/coupons/{body['id']}").get_json() == body


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": TOKEN},
        {"Authorization": f"Basic {TOKEN}"},
    ],
)
def test_create_coupon_needs_the_token(client: FlaskClient, headers: dict[str, str]) -> None:
    response = client.post("/coupons", json={"name": "x", "total_quantity": 1}, headers=headers)
    assert_error(response, 401)


@pytest.mark.parametrize(
    "body",
    [
        {"total_quantity": 1},
        {"name": "", "total_quantity": 1},
        {"name": 5, "total_quantity": 1},
        {"name": "x" * 201, "total_quantity": 1},
        {"name": "x"},
        {"name": "x", "total_quantity": 0},
        {"name": "x", "total_quantity": -1},
        {"name": "x", "total_quantity": "10"},
        {"name": "x", "total_quantity": True},
        {"name": "x", "total_quantity": 1.5},
        {"name": "x", "total_quantity": 2**31},
        {"name": "x", "total_quantity": 1, "issue_start": "yesterday"},
        {"name": "x", "total_quantity": 1, "issue_end": "2030-02-30T00:00:00"},
        {"name": "x", "total_quantity": 1, "issue_start": 1700000000},
        {"name": "x", "total_quantity": 1, "issue_start": "2030-01-02", "issue_end": "2030-01-01"},
        {"name": "x", "total_quantity": 1, "issue_start": "2030-01-01", "issue_end": "2030-01-01"},
        ["name", "x"],
    ],
)
def test_create_coupon_refuses_bad_bodies(client: FlaskClient, body: Any) -> None:
    assert_error(client.post("/coupons", json=body, headers=AUTH), 400)


def test_create_coupon_refuses_non_json(client: FlaskClient) -> None:
    response = client.post("/coupons", data="name=x", headers=AUTH, content_type="text/plain")
    assert_error(response, 400)
    response = client.post("/coupons", data="{", headers=AUTH, content_type="application/json")
    assert_error(response, 400)


def test_get_coupon_reflects_issues(client: FlaskClient) -> None:
    coupon_id = create(client, quantity=1)["id"]
    assert issue(client, coupon_id, 1).status_code == 201
    body = client.get(f"/coupons/{coupon_id}").get_json()
    assert (body["issued_quantity"], body["remaining"], body["sold_out"]) == (1, 0, True)


@pytest.mark.parametrize("coupon_id", [999999999, 2**63, 2**70])
def test_unknown_coupon_is_404(client: FlaskClient, coupon_id: int) -> None:
    assert_error(client.get(f"/coupons/{coupon_id}"), 404)
    assert_error(issue(client, coupon_id, 1), 404)


@pytest.mark.parametrize("strategy", SYNC_STRATEGIES)
def test_issue_answers_each_outcome(client: FlaskClient, strategy: str) -> None:
    coupon_id = create(client, quantity=1)["id"]
    response = issue(client, coupon_id, 1, strategy)
    assert response.status_code == 201
    assert response.get_json() == {"result": "issued", "coupon_id": coupon_id, "user_id": 1}
    for user, result in ((1, "already_issued"), (2, "sold_out")):
        response = issue(client, coupon_id, user, strategy)
        assert response.status_code == 409
        assert response.get_json()["result"] == result
    hour = timedelta(hours=1)
    later = create(client, issue_start=iso(hour))["id"]
    past = create(client, issue_start=iso(-2 * hour), issue_end=iso(-hour))["id"]
    for coupon, result in ((later, "not_started"), (past, "ended")):
        response = issue(client, coupon, 1, strategy)
        assert response.status_code == 409
        assert response.get_json()["result"] == result


@pytest.mark.parametrize("user_id", [None, True, "5", 0, -1, 1.5, 2**63, [1]])
def test_issue_refuses_bad_user_ids(client: FlaskClient, user_id: Any) -> None:
    coupon_id = create(client)["id"]
    assert_error(issue(client, coupon_id, user_id), 400)


def test_issue_refuses_bad_bodies(client: FlaskClient) -> None:
    coupon_id = create(client)["id"]
    url = f"/coupons/{coupon_id}/issue"
    assert_error(client.post(url), 400)
    assert_error(client.post(url, data="user_id=1", content_type="text/plain"), 400)
    assert_error(client.post(url, json=[1]), 400)
    assert_error(client.post(url, json={}), 400)
    assert client.get(f"/coupons/{coupon_id}").get_json()["issued_quantity"] == 0


def test_unknown_strategy_lists_the_known_ones(client: FlaskClient) -> None:
    coupon_id = create(client)["id"]
    message = assert_error(issue(client, coupon_id, 1, "bogus"), 400)
    assert "bogus" in message
    for name in REGISTRY:
        assert name in message


@pytest.mark.parametrize("default", ["lua", "atomic_update"])
def test_default_strategy_is_used(make_client: Any, default: str) -> None:
    client = make_client(default_strategy=default)
    runtime = client.application.extensions["coupon"]
    coupon_id = create(client)["id"]
    assert issue(client, coupon_id, 1).status_code == 201
    # Only the Lua strategy reserves in Redis: the counter tells which one ran.
    counter = runtime.services.redis.get(runtime.state.keys(coupon_id).count)
    assert int(counter) == (1 if default == "lua" else 0)
    assert client.get("/strategies").get_json()["default"] == default


def test_bad_default_strategy_is_a_400_naming_it(make_client: Any) -> None:
    client = make_client(default_strategy="nonesuch")
    assert "nonesuch" in assert_error(issue(client, 1, 1), 400)


def test_strategies(client: FlaskClient) -> None:
    body = client.get("/strategies").get_json()
    listed = {entry["name"]: entry for entry in body["strategies"]}
    assert list(listed) == list(REGISTRY)
    for entry in listed.values():
        assert isinstance(entry["description"], str) and entry["description"]
        assert isinstance(entry["cross_process"], bool)
    assert listed["process_lock"]["cross_process"] is False
    assert listed["lua"]["cross_process"] is True


def test_other_http_errors_are_json(client: FlaskClient) -> None:
    assert_error(client.get("/nowhere"), 404)
    assert_error(client.get("/coupons/1/issue"), 405)
    big = '{"name": "%s", "total_quantity": 1}' % ("x" * 100_000)
    response = client.post("/coupons", data=big, headers=AUTH, content_type="application/json")
    assert_error(response, 413)
