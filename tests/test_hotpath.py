"""The hot path answers well-formed issues without Flask, and hands everything else to Flask.

Its promise is one contract: whatever it answers, the Flask view would have answered alike, and
whatever it cannot read at a glance reaches the view with its body intact.
"""
from __future__ import annotations

from typing import Any, Callable

import pytest
from flask import Flask

from coupon.api.hotpath import HotPath, coupon_id_of, strategy_of, user_id_of
from tests.test_api import AUTH

Exchange = Callable[..., tuple[int, Any]]


@pytest.fixture()
def flask_calls(app: Flask) -> list[str]:
    """Record every request the hot path hands on to Flask."""
    hot = app.wsgi_app
    assert isinstance(hot, HotPath)
    calls: list[str] = []
    inner = hot.app

    def recording(environ: dict[str, Any], start_response: Any) -> Any:
        calls.append(environ["PATH_INFO"])
        return inner(environ, start_response)

    hot.app = recording
    return calls


def exchange(app: Flask, hot: bool, path: str, body: bytes, content_type: str) -> tuple[int, Any]:
    """POST raw bytes through the app with or without its hot path; return (status, JSON)."""
    wrapped = app.wsgi_app
    if not hot:
        app.wsgi_app = wrapped.app  # type: ignore[attr-defined]
    try:
        response = app.test_client().post(path, data=body, content_type=content_type)
    finally:
        app.wsgi_app = wrapped
    return response.status_code, response.get_json()


def new_coupon(app: Flask, quantity: int) -> int:
    response = app.test_client().post(
        "/coupons", json={"name": "hot", "total_quantity": quantity}, headers=AUTH
    )
    return int(response.get_json()["id"])


def test_a_well_formed_issue_never_reaches_flask(app: Flask, flask_calls: list[str]) -> None:
    coupon_id = new_coupon(app, 1)
    client = app.test_client()
    first = client.post(f"/coupons/{coupon_id}/issue?strategy=lua", json={"user_id": 7})
    second = client.post(f"/coupons/{coupon_id}/issue", json={"user_id": 8})
    assert (first.status_code, first.get_json()) == (
        201, {"result": "issued", "coupon_id": coupon_id, "user_id": 7},
    )  # fmt: skip
    assert (second.status_code, second.get_json()["result"]) == (409, "sold_out")
    assert first.headers["Content-Type"] == "application/json"
    assert flask_calls == ["/coupons"]  # only the admin's create went through Flask


ODD = [
    ("/coupons/{id}/issue", b'{"user_id": 0}', "application/json"),
    ("/coupons/{id}/issue", b'{"user_id": true}', "application/json"),
    ("/coupons/{id}/issue", b'{"user_id": 1.5}', "application/json"),
    ("/coupons/{id}/issue", b'{"user_id": "1"}', "application/json"),
    ("/coupons/{id}/issue", b'{"user_id": 9223372036854775808}', "application/json"),
    ("/coupons/{id}/issue", b"[1]", "application/json"),
    ("/coupons/{id}/issue", b"{", "application/json"),
    ("/coupons/{id}/issue", b'{"user_id": 1}', "text/plain"),
    ("/coupons/{id}/issue?strategy=nope", b'{"user_id": 1}', "application/json"),
    ("/coupons/{id}/issue?strategy=nope", b"{", "application/json"),
    ("/coupons/{id}/issue?strategy=", b'{"user_id": 1}', "application/json"),
    ("/coupons/99999999999/issue", b'{"user_id": 1}', "application/json"),
    ("/coupons/99999999999999999999/issue", b'{"user_id": 1}', "application/json"),
    ("/coupons/{id}/issue", b'{"user_id": 1}' + b" " * 70_000, "application/json"),
]


@pytest.mark.parametrize(("path", "body", "content_type"), ODD)
def test_what_the_hot_path_answers_or_hands_on_matches_flask_alone(
    app: Flask, path: str, body: bytes, content_type: str
) -> None:
    target = path.replace("{id}", str(new_coupon(app, 5)))
    with_hot = exchange(app, True, target, body, content_type)
    without = exchange(app, False, target, body, content_type)
    assert with_hot == without
    assert 400 <= with_hot[0] < 500 and isinstance(with_hot[1]["error"], str)


def test_a_handed_on_body_arrives_whole(app: Flask, flask_calls: list[str]) -> None:
    coupon_id = new_coupon(app, 5)
    # NaN is not JSON: the hot path reads the body, declines it and hands it on; Flask's
    # parser is laxer and issues, which it can only do if it got every byte.
    response = app.test_client().post(
        f"/coupons/{coupon_id}/issue", data=b'{"user_id": 3, "x": NaN}', content_type="application/json"
    )
    assert response.status_code == 201, response.get_json()
    assert flask_calls == ["/coupons", f"/coupons/{coupon_id}/issue"]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/coupons/12/issue", 12), ("/coupons/01/issue", None), ("/coupons/０１/issue", None),
        ("/coupons//issue", None), ("/coupons/1/issues", None), ("/coupons/1/2/issue", None),
        ("/coupons/99999999999999999999/issue", None),
    ],
)  # fmt: skip
def test_only_canonical_ids_take_the_hot_path(path: str, expected: int | None) -> None:
    assert coupon_id_of(path) == expected


def test_queries_and_bodies_it_reads_at_a_glance() -> None:
    assert strategy_of("") == (True, None)
    assert strategy_of("strategy=lua") == (True, "lua")
    assert strategy_of("strategy=l%75a") == (False, None)
    assert strategy_of("strategy=lua&x=1") == (False, None)
    assert user_id_of(b'{"user_id": 5}') == 5
    assert user_id_of(b'{"user_id": -5}') is None
    assert user_id_of(b"[" * 5000) is None
