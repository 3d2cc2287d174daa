"""The hot path answers issues without Flask, and hands what it cannot read to Flask.

Its promise is one contract: whatever it answers, the Flask view would have answered alike, and
whatever it hands on reaches the view with its body unread.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from hypothesis import given
from hypothesis import strategies as st

from coupon.api import hotpath, inputs
from coupon.api.hotpath import HotPath, coupon_id_of, strategy_of
from coupon.api.inputs import quick_user_id
from tests.support.api import AUTH
from tests.support.identity import JWT, REFUSED, hs

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


def exchange(
    app: Flask, hot: bool, path: str, body: bytes, content_type: str, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    """POST raw bytes through the app with or without its hot path; return (status, JSON)."""
    wrapped = app.wsgi_app
    if not hot:
        app.wsgi_app = wrapped.app  # type: ignore[attr-defined]
    try:
        response = app.test_client().post(path, data=body, content_type=content_type, headers=headers)
    finally:
        app.wsgi_app = wrapped
    return response.status_code, response.get_json()


def new_coupon(app: Flask, quantity: int) -> int:
    response = app.test_client().post(
        "/coupons", json={"name": "hot", "total_quantity": quantity, "strategy": "lua"}, headers=AUTH
    )
    return int(response.get_json()["id"])


def test_a_well_formed_issue_never_reaches_flask(app: Flask, flask_calls: list[str]) -> None:
    coupon_id = new_coupon(app, 1)
    client = app.test_client()
    first = client.post(f"/coupons/{coupon_id}/issue?strategy=lua", json={"user_id": 7})
    second = client.post(f"/coupons/{coupon_id}/issue", json={"user_id": 8})
    assert (first.status_code, first.get_json()) == (
        201,
        {"result": "issued", "coupon_id": coupon_id, "user_id": 7},
    )
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
    ("/coupons/{id}/issue", b'{"user_id": 1, "x": NaN}', "application/json"),
    ("/coupons/{id}/issue", b'{"user_id": 1, "x": ' + b"[" * 40 + b"]" * 40 + b"}", "application/json"),
    ("/coupons/{id}/issue?strategy=atomic_update", b'{"user_id": 1}', "application/json"),
    ("/coupons/{id}/issue?strategy=none", b'{"user_id": 1}', "application/json"),
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


JWT_CASES = [
    *[(REFUSED[case], b'{"user_id": 41}') for case in ("no token", "expired", "wrong aud", "alg none")],
    (lambda: {"Authorization": f"Bearer {hs(sub='41')}"}, b'{"user_id": 7}'),  # another user: 403
    (lambda: {"Authorization": f"Bearer {hs(sub='41')}"}, b'{"user_id": 0}'),  # malformed: 400
    (lambda: {"Authorization": f"Bearer {hs(sub='41')}"}, b"{"),
]


@pytest.mark.parametrize(("headers", "body"), JWT_CASES)
def test_in_jwt_mode_the_hot_path_refuses_as_flask_alone_does(
    make_client: Callable[..., Any], headers: Callable[[], dict[str, str]], body: bytes
) -> None:
    app = make_client(**JWT).application
    target = f"/coupons/{new_coupon(app, 5)}/issue"
    with_hot = exchange(app, True, target, body, "application/json", headers())
    without = exchange(app, False, target, body, "application/json", headers())
    assert with_hot == without
    assert 400 <= with_hot[0] < 500 and isinstance(with_hot[1]["error"], str)


def test_in_jwt_mode_a_token_issue_never_reaches_flask(make_client: Callable[..., Any]) -> None:
    app = make_client(**JWT).application
    coupon_id = new_coupon(app, 5)
    calls: list[str] = []
    inner = app.wsgi_app.app  # type: ignore[attr-defined]
    app.wsgi_app.app = lambda environ, start: calls.append(environ["PATH_INFO"]) or inner(environ, start)  # type: ignore[attr-defined]
    status, body = exchange(
        app,
        True,
        f"/coupons/{coupon_id}/issue",
        b"{}",
        "application/json",
        {"Authorization": f"Bearer {hs(sub='41')}"},
    )
    assert (status, body["user_id"], calls) == (201, 41, [])


def test_refusals_are_the_hot_paths_own_and_odd_queries_go_to_flask(
    app: Flask, flask_calls: list[str]
) -> None:
    coupon_id = new_coupon(app, 5)
    client = app.test_client()
    refused = client.post(f"/coupons/{coupon_id}/issue", json={"user_id": 0})
    assert (refused.status_code, refused.get_json()["field"]) == (400, "user_id")
    assert flask_calls == ["/coupons"]
    # A query it does not read at a glance: Flask gets the request, body unread, and issues.
    odd_query = client.post(f"/coupons/{coupon_id}/issue?strategy=lua&x=1", json={"user_id": 3})
    assert odd_query.status_code == 201
    assert flask_calls == ["/coupons", f"/coupons/{coupon_id}/issue"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=12,
)


@pytest.mark.slow
@given(
    body=st.one_of(
        st.dictionaries(st.sampled_from(["user_id", "x"]), json_values, max_size=2).map(json.dumps),
        json_values.map(json.dumps),
        st.text(max_size=30),
    ).map(str.encode)
    | st.binary(max_size=40),
    content_type=st.sampled_from(["application/json", "application/json; charset=utf-8", "text/plain"]),
)
def test_the_quick_check_accepts_only_what_inputs_accepts(body: bytes, content_type: str) -> None:
    quick = quick_user_id(body, content_type)
    if quick is not None:
        assert inputs.issue_user_id(body, content_type) == quick


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/coupons/12/issue", 12),
        ("/coupons/01/issue", None),
        ("/coupons/０１/issue", None),
        ("/coupons//issue", None),
        ("/coupons/1/issues", None),
        ("/coupons/1/2/issue", None),
        ("/coupons/99999999999999999999/issue", None),
    ],
)
def test_only_canonical_ids_take_the_hot_path(path: str, expected: int | None) -> None:
    assert coupon_id_of(path) == expected


def test_queries_and_bodies_it_reads_at_a_glance() -> None:
    assert strategy_of("") == (True, None)
    assert strategy_of("strategy=lua") == (True, "lua")
    assert strategy_of("strategy=l%75a") == (False, None)
    assert strategy_of("strategy=lua&x=1") == (False, None)
    assert quick_user_id(b'{"user_id": 5}', "application/json") == 5
    assert quick_user_id(b'{"user_id": -5}', "application/json") is None
    assert quick_user_id(b'{"user_id": 5}', "text/plain") is None
    assert quick_user_id(b"[" * 5000, "application/json") is None


def test_a_taken_issue_yields_once_its_body_is_written_and_a_refusal_does_not(
    app: Flask, monkeypatch
) -> None:
    coupon_id = new_coupon(app, 1)
    slept: list[float] = []
    monkeypatch.setattr(hotpath.time, "sleep", slept.append)

    def ask(user: int) -> tuple[str, list[float]]:
        body = json.dumps({"user_id": user}).encode()
        environ = {
            "REQUEST_METHOD": "POST",
            "PATH_INFO": f"/coupons/{coupon_id}/issue",
            "QUERY_STRING": "",
            "CONTENT_LENGTH": str(len(body)),
            "CONTENT_TYPE": "application/json",
            "wsgi.input": io.BytesIO(body),
        }
        statuses: list[str] = []
        answer = app.wsgi_app(environ, lambda status, headers: statuses.append(status))
        before = len(slept)
        getattr(answer, "close", lambda: None)()  # as gunicorn does once the body is written
        return statuses[0], slept[before:]

    assert ask(1) == ("201 CREATED", [0])  # one turn of the loop, after the answer
    assert ask(2) == ("409 CONFLICT", [])  # sold out: no yield
