"""nginx (deploy/nginx.conf.template) in front of a real gunicorn absorbs slow and idle clients."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from coupon.lab.drive.edge import Nginx, nginx_binary
from coupon.lab.drive.serve import Server, free_port
from tests import backends
from tests.backends import Backend, unavailable
from tests.slow import (
    BIG_HEADER,
    IDLE_KEEPALIVE,
    LONG_REQUEST_LINE,
    NOT_HTTP,
    SLOW_BODY,
    SLOW_HEADER,
    open_files,
    raw_exchange,
    readable,
    slow_sockets,
    source,
    wait_readable,
)

pytestmark = pytest.mark.slow
# What is under test is the edge, the same on either database.
ON_MYSQL = pytest.mark.parametrize("backend", ["mysql"], indirect=True)

SLOW = 2100  # past the 2 x 1000 gevent slots that such sockets used to fill
TRICKLE, PROBES = 100, 25  # the trickle, and its 25 probes from the same address
RATE_BURST = 200  # limit_req's burst in the template
TRICKLE_ADDRESS, RATE_ADDRESS = 1000, 1010  # source() indexes no other test uses
BODY_TIMEOUT = 10.0  # client_body_timeout in the template
ANSWER_WITHIN = 1.0  # seconds a step of a probe may take (connect, send, each read)


@pytest.fixture(scope="module")
def nginx(backend: Backend, redis_server: str) -> Iterator[Nginx]:
    """nginx with the repository's config in front of a two-worker gunicorn."""
    if nginx_binary() is None:
        unavailable("nginx", FileNotFoundError("no nginx binary (apt-get install nginx)"))
    config = backends.test_config(backend.url, redis_server, db_pool_size=5, db_max_overflow=5)
    with open_files(SLOW * 2 + 512), Server(config, workers=2) as app:
        with Nginx(f"127.0.0.1:{app.port}") as edge:
            yield edge


def call(
    port: int,
    method: str,
    path: str,
    body: Any = None,
    address: str = "127.0.0.1",
    timeout: float = 5.0,
    **headers: str,
) -> tuple[int, Any]:
    """Send one JSON request on a fresh connection; return status and decoded body.

    Each step (connect, send, each read) that takes longer than timeout fails the call.
    """
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout, source_address=(address, 0))
    try:
        payload = None if body is None else json.dumps(body)
        conn.request(method, path, payload, {"Content-Type": "application/json", **headers})
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


@pytest.fixture()
def coupon_id(nginx: Nginx) -> int:
    """A coupon of 10, created through the admin API, through nginx."""
    body = {"name": "edge coupon", "total_quantity": 10}
    auth = "Bearer test-admin-token"
    status, answer = call(nginx.port, "POST", "/coupons", body, Authorization=auth)
    assert status == 201, answer
    return int(answer["id"])


def assert_service_answers(port: int, coupon_id: int, user_id: int) -> None:
    """Check /ping and one issue each answer correctly within a second."""
    status, answer = call(port, "GET", "/ping", timeout=ANSWER_WITHIN)
    assert (status, answer) == (200, {"ok": True})
    path = f"/coupons/{coupon_id}/issue"
    status, answer = call(port, "POST", path, {"user_id": user_id}, timeout=ANSWER_WITHIN)
    assert (status, answer["result"]) == (201, "issued"), answer


@ON_MYSQL
def test_slow_bodies_from_many_addresses_leave_the_service_answering(nginx: Nginx, coupon_id: int) -> None:
    # 25 sockets per address: under the per-address limit, as in a distributed attack.
    with slow_sockets(nginx.port, SLOW, SLOW_BODY, addresses=SLOW // 25) as held:
        assert_service_answers(nginx.port, coupon_id, user_id=1)
        assert readable(held) == [], "nginx answered or dropped a slow socket: nothing was held"
        # client_body_timeout then closes every one of them.
        deadline = time.monotonic() + BODY_TIMEOUT + 10
        assert len(wait_readable(held, SLOW, deadline)) == SLOW


@ON_MYSQL
def test_slow_headers_and_idle_keepalives_leave_the_service_answering(nginx: Nginx, coupon_id: int) -> None:
    half = SLOW // 2
    # Each idle connection made one request: spread over addresses, under the per-address rate.
    with (
        slow_sockets(nginx.port, half, SLOW_HEADER, addresses=1) as headers,
        slow_sockets(nginx.port, half, IDLE_KEEPALIVE, addresses=half // (RATE_BURST // 2)) as idle,
    ):
        assert_service_answers(nginx.port, coupon_id, user_id=2)
        assert readable(headers + idle) == []


@ON_MYSQL
def test_a_trickle_of_bodies_from_one_address_locks_none_of_its_neighbours_out(
    nginx: Nginx, coupon_id: int
) -> None:
    # The trickle: 100 bodies that never finish, from the address a carrier NAT shares.
    # An address of its own: the per-address rate counts what the other tests sent.
    with slow_sockets(nginx.port, TRICKLE, SLOW_BODY, addresses=1, first=TRICKLE_ADDRESS) as held:
        probes = [call(nginx.port, "GET", "/ping", address=source(TRICKLE_ADDRESS)) for _ in range(PROBES)]
        assert probes == [(200, {"ok": True})] * PROBES
        assert readable(held) == []  # every trickled body is still held, unanswered
        assert_service_answers(nginx.port, coupon_id, user_id=3)


@ON_MYSQL
def test_one_address_past_its_request_rate_is_429_with_retry_after(nginx: Nginx) -> None:
    conn = http.client.HTTPConnection(
        "127.0.0.1", nginx.port, timeout=5, source_address=(source(RATE_ADDRESS), 0)
    )
    answers: list[int] = []
    try:
        for _ in range(RATE_BURST * 2):
            conn.request("GET", "/ping")
            response = conn.getresponse()
            body = json.loads(response.read())
            answers.append(response.status)
            if response.status == 429:
                assert body == {"error": "too many requests from this address"}
                assert response.headers["Retry-After"] == "1"
                break
    finally:
        conn.close()
    # The burst passes whole (and what the rate refilled meanwhile); the next is refused.
    assert answers[-1] == 429 and len(answers) > RATE_BURST and set(answers[:-1]) == {200}
    status, _ = call(nginx.port, "GET", "/ping", address=source(RATE_ADDRESS + 1))  # another: served
    assert status == 200


@ON_MYSQL
@pytest.mark.parametrize(
    ("request_bytes", "status", "error"),
    [
        (NOT_HTTP, 400, "bad request"),
        (b"GET /metrics HTTP/1.1\r\nHost: e\r\n\r\n", 404, "not found"),
        (
            b"POST /coupons/1/issue HTTP/1.1\r\nHost: e\r\nContent-Length: 70000\r\n\r\n",
            413,
            "request body too large",
        ),
        (LONG_REQUEST_LINE, 414, "request line too long"),
        (BIG_HEADER, 400, "request header too large"),
        (b"TRACE / HTTP/1.1\r\nHost: e\r\n\r\n", 405, "method not allowed"),
        (
            b"POST /coupons/1/issue HTTP/1.1\r\nHost: e\r\nTransfer-Encoding: gzip\r\n\r\n",
            501,
            "not implemented",
        ),
        (b"GET /ping HTTP/2.0\r\nHost: e\r\n\r\n", 505, "HTTP version not supported"),
    ],
)
def test_nginx_errors_answer_in_the_apps_json_shape(
    nginx: Nginx, request_bytes: bytes, status: int, error: str
) -> None:
    answered, body = raw_exchange(nginx.port, request_bytes)
    assert (answered, json.loads(body)) == (status, {"error": error})


def test_a_down_upstream_answers_502_in_json() -> None:
    if nginx_binary() is None:
        unavailable("nginx", FileNotFoundError("no nginx binary (apt-get install nginx)"))
    with Nginx(f"127.0.0.1:{free_port()}") as edge:
        status, answer = call(edge.port, "GET", "/ping")
    assert (status, answer) == (502, {"error": "service unavailable"})


@ON_MYSQL
def test_a_method_nginx_refuses_itself_is_405_with_allow(nginx: Nginx) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", nginx.port, timeout=5)
    try:
        conn.request("TRACE", "/coupons")
        response = conn.getresponse()
        assert (response.status, json.loads(response.read())) == (405, {"error": "method not allowed"})
        assert response.headers["Allow"] == "GET, HEAD, POST"
    finally:
        conn.close()
