"""The per-user limit on issue requests: 429 with Retry-After, counted in Redis across processes."""

from __future__ import annotations

from collections.abc import Callable

from flask.testing import FlaskClient

from tests.support.api import assert_error, create
from tests.support.identity import JWT, bearer, hs


def test_a_user_past_its_limit_is_429_with_retry_after(make_client: Callable[..., FlaskClient]) -> None:
    client = make_client(**JWT, user_rate_limit="3/minute")
    coupon_id = create(client, 100, strategy="lua")["id"]
    headers = bearer(hs(sub="41"))
    answers = [
        client.post(f"/coupons/{coupon_id}/issue", json={}, headers=headers).status_code for _ in range(3)
    ]
    assert answers == [201, 409, 409]
    refused = client.post(f"/coupons/{coupon_id}/issue", json={}, headers=headers)
    assert_error(refused, 429)
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.get_json()["retry_after"] == int(refused.headers["Retry-After"])
    # Another user is not held back by the first one's count.
    other = client.post(f"/coupons/{coupon_id}/issue", json={}, headers=bearer(hs(sub="42")))
    assert other.status_code == 201


def test_the_count_is_shared_by_every_process(make_client: Callable[..., FlaskClient]) -> None:
    # Two apps on one Redis prefix stand for two workers: each lets a user's first request
    # through uncounted and counts it with the second, so together they admit the limit.
    first = make_client(**JWT, user_rate_limit="4/minute")
    prefix = first.application.extensions["coupon"].config.redis_prefix
    second = make_client(**JWT, user_rate_limit="4/minute", redis_prefix=prefix)
    coupon_id = create(first, 100, strategy="lua")["id"]
    headers = bearer(hs(sub="43"))
    statuses = [
        client.post(f"/coupons/{coupon_id}/issue", json={}, headers=headers).status_code
        for _ in range(4)
        for client in (first, second)
    ]
    assert [status == 429 for status in statuses] == [False] * 4 + [True] * 4


def test_body_mode_limits_the_bodys_user(make_client: Callable[..., FlaskClient]) -> None:
    client = make_client(user_rate_limit="2/minute")
    coupon_id = create(client, 100, strategy="lua")["id"]
    statuses = [client.post(f"/coupons/{coupon_id}/issue", json={"user_id": 5}).status_code for _ in range(3)]
    assert statuses == [201, 409, 429]


def test_a_miss_on_an_unknown_coupon_is_remembered_briefly(
    make_client: Callable[..., FlaskClient], monkeypatch
) -> None:
    from coupon.runtime import queries

    client = make_client()
    runtime = client.application.extensions["coupon"]
    looked_up: list[int] = []
    real = queries.describe_coupon
    monkeypatch.setattr(
        queries,
        "describe_coupon",
        lambda conn, coupon_id: looked_up.append(coupon_id) or real(conn, coupon_id),
    )
    for _ in range(3):
        assert_error(client.post("/coupons/987654321/issue", json={"user_id": 1}), 404)
    assert looked_up == [987654321]
    runtime.misses[987654321] = 0.0  # past its time: asked again
    assert_error(client.post("/coupons/987654321/issue", json={"user_id": 1}), 404)
    assert looked_up == [987654321, 987654321]


def test_the_remembered_misses_are_bounded(make_client: Callable[..., FlaskClient]) -> None:
    from coupon import runtime as runtime_module

    client = make_client()
    runtime = client.application.extensions["coupon"]
    for coupon_id in range(10**12, 10**12 + runtime_module.MAX_MISSES + 5):
        runtime._miss(coupon_id)
    assert len(runtime.misses) <= runtime_module.MAX_MISSES
