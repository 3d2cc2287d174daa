"""The HTTP API's codes and errors, through the Flask test client, on both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from coupon.core.config import ConfigError
from coupon.core.models import coupon as coupon_table
from coupon.core.rules import Outcome
from coupon.runtime import Runtime
from strategies import FAMILY_OF, LAB_ONLY, REGISTRY
from tests.support.api import AUTH, TOKEN, assert_error, create

DEAD_REDIS = "redis://127.0.0.1:1/0"
DEAD_DATABASE = "postgresql+psycopg2://postgres@127.0.0.1:1/nowhere"
SYNC_STRATEGIES = [name for name, cls in REGISTRY.items() if cls.synchronous]
COUPON_FIELDS = {
    "id",
    "name",
    "total_quantity",
    "issued_quantity",
    "remaining",
    "issue_start",
    "issue_end",
    "sold_out",
    "strategy",
    "family",
}


def iso(delta: timedelta) -> str:
    """Format now + delta as ISO-8601 in UTC."""
    return (datetime.now(UTC) + delta).isoformat()


def issue(client: FlaskClient, coupon_id: int, user_id: Any, strategy: str | None = None) -> TestResponse:
    """Ask for a coupon for a user, with a strategy or the default."""
    query = {} if strategy is None else {"strategy": strategy}
    return client.post(f"/coupons/{coupon_id}/issue", json={"user_id": user_id}, query_string=query)


def count_coupons(runtime: Runtime) -> int:
    """Return how many coupon rows the database holds."""
    with runtime.services.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(coupon_table)).scalar_one())


def test_ping(client: FlaskClient) -> None:
    response = client.get("/ping")
    assert response.status_code == 200
    assert response.get_json() == {"ok": True}


def test_healthz(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert (response.status_code, response.get_json()) == (200, {"ok": True})  # up, nothing more
    detailed = client.get("/healthz", headers=AUTH)
    assert detailed.status_code == 200 and "redis_durability" in detailed.get_json()


@pytest.mark.parametrize(
    ("dead", "failing"),
    [("redis", ["redis"]), ("database", ["database"]), ("both", ["database", "redis"])],
)
def test_healthz_names_what_is_down(make_client: Any, dead: str, failing: list[str]) -> None:
    client = make_client(
        database_url=DEAD_DATABASE if dead in ("database", "both") else None,
        redis_url=DEAD_REDIS if dead in ("redis", "both") else None,
    )
    public = client.get("/healthz")
    assert_error(public, 503)
    assert public.get_json() == {"ok": False, "error": "unavailable"}  # down, and nothing more
    response = client.get("/healthz", headers=AUTH)
    message = assert_error(response, 503)
    assert response.get_json()["failing"] == failing
    for name in failing:
        assert name in message


@pytest.mark.parametrize("strategy", ["lua", "redis_counter", "redis_lock"])
def test_issue_without_redis_is_503(make_client: Any, client: FlaskClient, strategy: str) -> None:
    coupon_id = create(client, strategy=strategy)["id"]
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
    # No strategy named: the coupon is pinned to the configured default.
    assert (body["strategy"], body["family"]) == ("lua", "redis")
    assert client.get(f"/coupons/{body['id']}").get_json() == body
    pinned = create(client, strategy="optimistic")
    assert (pinned["strategy"], pinned["family"]) == ("optimistic", "database")


def test_the_far_ends_of_the_range_work_with_every_strategy(make_client: Any) -> None:
    # 9998-12-31T23:59:59.999999Z once went to Redis as a float and came back as year 10000.
    client = make_client(lab_strategies=True)
    for user, strategy in enumerate(SYNC_STRATEGIES, 1):
        coupon = create(
            client,
            issue_start="1001-01-01T00:00:00+23:59",
            issue_end="9998-12-31T23:59:59.999999-23:59",
            strategy=strategy,
        )
        assert coupon["issue_start"] == "1000-12-31T00:01:00+00:00"
        assert coupon["issue_end"] == "9999-01-01T23:58:59.999999+00:00"
        response = issue(client, coupon["id"], user)
        assert response.status_code == 201, (strategy, response.get_json())


@pytest.mark.parametrize("strategy", ["redis_counter", "lua"])
def test_a_bound_stored_at_the_last_microsecond_still_works(
    runtime: Runtime, make_coupon: Any, strategy: str
) -> None:
    # Such a coupon could be created before the API checked the range: its end once came back
    # from Redis through a float as year 10000, and every redis_counter issue answered 500.
    coupon_id = make_coupon(quantity=1, issue_end=datetime.max, strategy=strategy)
    assert runtime.strategies[strategy].issue(coupon_id, 1) is Outcome.ISSUED


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


ONE = {"name": "x", "total_quantity": 1}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"total_quantity": 1}, "name"),
        ({**ONE, "name": ""}, "name"),
        ({**ONE, "name": " \t\n\u3000"}, "name"),
        ({**ONE, "name": 5}, "name"),
        ({**ONE, "name": "x" * 201}, "name"),
        ({**ONE, "name": "\ud800"}, "name"),  # a lone surrogate: no database can store it
        ({**ONE, "name": "a\x00b"}, "name"),  # NUL: PostgreSQL's text refuses it
        ({"name": "x"}, "total_quantity"),
        ({**ONE, "total_quantity": 0}, "total_quantity"),
        ({**ONE, "total_quantity": -1}, "total_quantity"),
        ({**ONE, "total_quantity": "10"}, "total_quantity"),
        ({**ONE, "total_quantity": True}, "total_quantity"),
        ({**ONE, "total_quantity": 1.5}, "total_quantity"),
        ({**ONE, "total_quantity": 2**31}, "total_quantity"),
        ({**ONE, "issue_start": "yesterday"}, "issue_start"),
        ({**ONE, "issue_end": "2030-02-30T00:00:00Z"}, "issue_end"),
        ({**ONE, "issue_start": 1700000000}, "issue_start"),
        ({**ONE, "issue_start": "2026-W01-1"}, "issue_start"),  # ISO 8601, not RFC 3339
        ({**ONE, "issue_start": "2030-01-01"}, "issue_start"),
        ({**ONE, "issue_start": "2030-01-01T09:00:00"}, "issue_start"),  # no offset
        ({**ONE, "issue_start": "2030-01-01T23:59:60Z"}, "issue_start"),
        ({**ONE, "issue_start": "0001-01-01T00:00:00Z"}, "issue_start"),
        ({**ONE, "issue_start": "0001-01-01T00:00:00+01:00"}, "issue_start"),  # year 0 in UTC
        ({**ONE, "issue_end": "9999-12-31T23:59:59-01:00"}, "issue_end"),  # year 10000 in UTC
        ({**ONE, "issue_end": "9999-12-31T23:59:59.999999Z"}, "issue_end"),
        ({**ONE, "issue_end": "2030-01-01T00:00:00.0000001Z"}, "issue_end"),
        ({**ONE, "issue_start": "2030-01-02T00:00:00Z", "issue_end": "2030-01-01T00:00:00Z"}, "issue_end"),
        (
            {**ONE, "issue_start": "2030-01-01T00:00:00Z", "issue_end": "2030-01-01T01:00:00+01:00"},
            "issue_end",
        ),
        ({**ONE, "strategy": "bogus"}, "strategy"),
        ({**ONE, "strategy": ["lua"]}, "strategy"),
        (["name", "x"], "body"),
    ],
)
def test_create_coupon_refuses_bad_bodies(client: FlaskClient, body: Any, field: str) -> None:
    runtime = client.application.extensions["coupon"]
    before = count_coupons(runtime)
    assert_error(client.post("/coupons", json=body, headers=AUTH), 400, field)
    assert count_coupons(runtime) == before  # a refused request leaves no row


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


@pytest.mark.parametrize(
    "path", ["999999999", str(2**63), str(2**70), "9" * 5000, "0", "01", "+1", "-1", "%EF%BC%91", "1.0"]
)
def test_unknown_or_uncanonical_coupon_ids_are_404(client: FlaskClient, path: str) -> None:
    create(client)
    assert client.get("/coupons/1").status_code == 200  # what `01` or `１` would have named
    assert_error(client.get(f"/coupons/{path}"), 404)
    assert_error(client.post(f"/coupons/{path}/issue", json={"user_id": 1}), 404)
    assert_error(client.get(f"/coupons/{path}/issues/1"), 404)


def test_only_the_canonical_spelling_of_an_id_names_a_coupon(client: FlaskClient) -> None:
    coupon_id = create(client)["id"]
    fullwidth = "".join(chr(0xFF10 + int(digit)) for digit in str(coupon_id))
    assert client.get(f"/coupons/{coupon_id}").status_code == 200
    for spelling in (f"0{coupon_id}", fullwidth, f"{coupon_id}%20", f"%20{coupon_id}"):
        assert_error(client.get(f"/coupons/{spelling}"), 404)
        assert_error(client.post(f"/coupons/{spelling}/issue", json={"user_id": 1}), 404)
    assert client.get(f"/coupons/{coupon_id}").get_json()["issued_quantity"] == 0


@pytest.mark.parametrize("strategy", SYNC_STRATEGIES)
def test_issue_answers_each_outcome(make_client: Any, strategy: str) -> None:
    client = make_client(lab_strategies=True)
    coupon_id = create(client, quantity=1, strategy=strategy)["id"]
    response = issue(client, coupon_id, 1, strategy)
    assert response.status_code == 201
    assert response.get_json() == {"result": "issued", "coupon_id": coupon_id, "user_id": 1}
    for user, result in ((1, "already_issued"), (2, "sold_out")):
        response = issue(client, coupon_id, user, strategy)
        assert response.status_code == 409
        assert response.get_json()["result"] == result
    hour = timedelta(hours=1)
    later = create(client, issue_start=iso(hour), strategy=strategy)["id"]
    past = create(client, issue_start=iso(-2 * hour), issue_end=iso(-hour), strategy=strategy)["id"]
    for coupon, result in ((later, "not_started"), (past, "ended")):
        response = issue(client, coupon, 1, strategy)
        assert response.status_code == 409
        assert response.get_json()["result"] == result


@pytest.mark.parametrize("user_id", [None, True, "5", 0, -1, 1.5, 2**63, 10**30, 1e300, [1]])
def test_issue_refuses_bad_user_ids(client: FlaskClient, user_id: Any) -> None:
    coupon_id = create(client)["id"]
    assert_error(issue(client, coupon_id, user_id), 400, "user_id")


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ('{"user_id": %s}' % ("9" * 5000), "user_id"),  # past Python's 4,300-digit int limit
        ('{"user_id": -%s}' % ("9" * 5000), "user_id"),
        ('{"user_id": 1, "x": %s}' % ("[" * 5000 + "]" * 5000), "body"),  # RecursionError once
        ('{"user_id": 1, "x": %s}' % ("[" * 33 + "]" * 33), "body"),
        ('{"user_id": 1, "x": %s}' % ('{"a":' * 40 + "1" + "}" * 40), "body"),
        ('{"user_id": NaN}', "body"),
        ('{"user_id": Infinity}', "body"),
        ('\ufeff{"user_id": 1}', "body"),
    ],
)
def test_issue_refuses_hostile_bodies_naming_the_field(client: FlaskClient, data: str, field: str) -> None:
    coupon_id = create(client)["id"]
    url = f"/coupons/{coupon_id}/issue"
    response = client.post(url, data=data.encode(), content_type="application/json")
    assert_error(response, 400, field)
    shallow = '{"user_id": 1, "x": %s}' % ("[" * 31 + "]" * 31)  # 32 levels with the body
    assert client.post(url, data=shallow, content_type="application/json").status_code == 201


def test_issue_refuses_bad_bodies(client: FlaskClient) -> None:
    coupon_id = create(client)["id"]
    url = f"/coupons/{coupon_id}/issue"
    assert_error(client.post(url), 400, "body")
    assert_error(client.post(url, data="user_id=1", content_type="text/plain"), 400, "body")
    assert_error(client.post(url, data=b"\xff\xfe", content_type="application/json"), 400, "body")
    assert_error(client.post(url, json=[1]), 400, "body")
    assert_error(client.post(url, json={}), 400, "user_id")
    assert client.get(f"/coupons/{coupon_id}").get_json()["issued_quantity"] == 0


def test_unknown_strategy_lists_the_known_ones(client: FlaskClient) -> None:
    coupon_id = create(client)["id"]
    message = assert_error(issue(client, coupon_id, 1, "bogus"), 400, "strategy")
    assert "bogus" in message
    for name in REGISTRY:
        assert name in message


@pytest.mark.parametrize("default", ["lua", "atomic_update"])
def test_default_strategy_pins_new_coupons(make_client: Any, default: str) -> None:
    client = make_client(default_strategy=default)
    runtime = client.application.extensions["coupon"]
    coupon_id = create(client)["id"]
    assert issue(client, coupon_id, 1).status_code == 201
    # Only the Lua strategy reserves in Redis: the counter tells which one ran.
    counter = runtime.services.redis.get(runtime.state.keys(coupon_id).count)
    assert int(counter) == (1 if default == "lua" else 0)
    assert client.get("/strategies").get_json()["default"] == default
    assert client.get(f"/coupons/{coupon_id}").get_json()["strategy"] == default


@pytest.mark.parametrize("default", ["nonesuch", "none", "process_lock"])
def test_a_default_the_service_may_not_use_refuses_to_start(make_client: Any, default: str) -> None:
    with pytest.raises(ConfigError, match=default):
        make_client(default_strategy=default)
    make_client(default_strategy=default if default in REGISTRY else "lua", lab_strategies=True)


@pytest.mark.parametrize("lab", [False, True])
def test_strategies(make_client: Any, lab: bool) -> None:
    body = make_client(lab_strategies=lab).get("/strategies").get_json()
    listed = {entry["name"]: entry for entry in body["strategies"]}
    assert list(listed) == list(REGISTRY)
    for name, entry in listed.items():
        assert isinstance(entry["description"], str) and entry["description"]
        assert isinstance(entry["cross_process"], bool)
        assert entry["family"] == FAMILY_OF[name]
        assert entry["lab_only"] is (name in LAB_ONLY)
        assert entry["enabled"] is (lab or name not in LAB_ONLY)
    assert listed["process_lock"]["cross_process"] is False
    assert listed["lua"]["cross_process"] is True


def test_other_http_errors_are_json(client: FlaskClient) -> None:
    assert_error(client.get("/nowhere"), 404)
    response = client.get("/coupons/1/issue")
    assert_error(response, 405)
    assert set(response.headers["Allow"].split(", ")) == {"POST", "OPTIONS"}
    response = client.delete("/coupons")
    assert_error(response, 405)
    assert set(response.headers["Allow"].split(", ")) == {"POST", "OPTIONS"}
    big = '{"name": "%s", "total_quantity": 1}' % ("x" * 100_000)
    response = client.post("/coupons", data=big, headers=AUTH, content_type="application/json")
    assert_error(response, 413)
    assert client.post("/coupons", json=ONE).headers["WWW-Authenticate"] == "Bearer"


def test_no_redirect_is_built_from_the_host_header(client: FlaskClient) -> None:
    create(client)
    for path in ("//coupons//1", "//coupons/1", "/coupons//1", "/coupons/1/", "//ping"):
        response = client.get(path, headers={"Host": "evil.example"})
        assert_error(response, 404)
        assert "Location" not in response.headers


@pytest.mark.parametrize("user", ["0", "01", "-1", "abc", "\uff11", str(2**63), "9" * 5000])
def test_issue_status_refuses_bad_user_ids_naming_the_field(client: FlaskClient, user: str) -> None:
    coupon_id = create(client)["id"]
    assert_error(client.get(f"/coupons/{coupon_id}/issues/{user}"), 400, "user_id")
    assert client.get(f"/coupons/{coupon_id}/issues/1").get_json() == {"status": "none"}
