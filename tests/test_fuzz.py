"""Hostile input against the real server: schemathesis from the OpenAPI document, then by hand."""

from __future__ import annotations

import dataclasses
import http.client
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from coupon.core.config import PROJECT_ROOT, SuiteSettings
from coupon.lab.drive.serve import Server
from coupon.runtime import Runtime
from tests.conftest import MakeCoupon
from tests.slow import BIG_HEADER, LONG_REQUEST_LINE, NOT_HTTP, raw_exchange
from tests.totals import database_totals

TOKEN = {"Authorization": "Bearer test-admin-token"}
# Bounded for CI: examples per operation and mode in the fuzzing phase (the coverage phase
# sends every boundary case the schema defines, the stateful phase follows the links).
MAX_EXAMPLES = 25
RUN_TIMEOUT_SECONDS = 100
HOOKS = PROJECT_ROOT / "tests" / "schemathesis_hooks.py"
FUZZ_SECRET = "the-fuzz-run-signs-its-user-tokens-with-this-secret-0123456789"

# Input handling is the same on either database; the schemathesis run and the names go to both.
mysql_only = pytest.mark.parametrize("backend", ["mysql"], indirect=True)


@pytest.fixture(scope="module")
def server(runtime: Runtime, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One gunicorn worker over the test database, configured as a deployment (no lab setting)."""
    assert not runtime.config.lab_strategies
    with Server(
        runtime.config, workers=1, log_path=tmp_path_factory.mktemp("fuzz") / "gunicorn.log"
    ) as running:
        yield running


def assert_json_error(response: Any, field: str | None = None) -> None:
    """Assert an error answer carries a JSON body with an error message (naming field, if given)."""
    if response.status_code >= 400:
        assert response.headers.get("Content-Type", "").startswith("application/json"), response.text
        body = json.loads(response.content)
        # A refused issue (409) answers with its result, as the document says; faults say why.
        refusal = response.status_code == 409 and "result" in body
        assert refusal or isinstance(body.get("error"), str), (response.status_code, response.text)
        assert field is None or body.get("field") == field, body


@pytest.fixture(scope="module")
def jwt_server(runtime: Runtime) -> Iterator[Server]:
    """One gunicorn worker as a deployment runs it: jwt mode (the fuzz's user tokens: hooks)."""
    config = dataclasses.replace(runtime.config, auth="jwt", jwt_secret=FUZZ_SECRET)
    with Server(config, workers=1) as running:
        yield running


def runtime_token(server: Server) -> str:
    return server.env["COUPON_ADMIN_TOKEN"]


@pytest.mark.slow
def test_schemathesis_all_checks_and_the_stateful_phase_pass(jwt_server: Server, tmp_path: Path) -> None:
    """`st run --checks all` over every phase (examples, coverage, fuzzing, stateful), in jwt mode."""
    server = jwt_server
    seed = SuiteSettings.from_env().fuzz_seed or str(int.from_bytes(os.urandom(4), "big"))
    command = [
        sys.executable,
        "-c",
        "from schemathesis.cli import schemathesis; schemathesis()",
        "run",
        str(PROJECT_ROOT / "coupon/api/openapi.json"),
        "--url",
        server.url,
        "--checks",
        "all",
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        seed,
        "--request-timeout",
        "10",
        "--workers",
        "1",
        "--report",
        "junit",
        "--report-dir",
        str(tmp_path),
        "--no-color",
    ]
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": str(HOOKS),
        "PYTHONPATH": str(PROJECT_ROOT),
        "FUZZ_JWT_SECRET": FUZZ_SECRET,
        "FUZZ_ADMIN_TOKEN": runtime_token(server),
    }
    done = subprocess.run(
        command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=RUN_TIMEOUT_SECONDS
    )
    summary = done.stdout[-6000:]
    assert done.returncode == 0, f"seed {seed} (COUPON_FUZZ_SEED={seed} replays it)\n{summary}"
    assert "Stateful" in done.stdout and "No issues found" in done.stdout, summary


@mysql_only
@pytest.mark.parametrize(
    "body",
    [
        {"user_id": 2**64},
        {"user_id": 2**63},
        {"user_id": -1},
        {"user_id": 0},
        {"user_id": "12"},
        {"user_id": 1.5},
        {"user_id": True},
        {"user_id": None},
        {"user_id": [1]},
        {},
        [1, 2],
        "user_id=1",
    ],
    ids=repr,
)
def test_bad_user_ids_are_400(server: Server, make_coupon: MakeCoupon, body: object) -> None:
    coupon_id = make_coupon(quantity=5)
    response = requests.post(f"{server.url}/coupons/{coupon_id}/issue", json=body, timeout=30)
    assert response.status_code == 400
    assert_json_error(response)


@mysql_only
@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        ("not json", "text/plain"),
        ("{broken", "application/json"),
        ("", "application/json"),
        ("\xff\xfe", "application/json"),
    ],
)
def test_non_json_bodies_are_400(
    server: Server, make_coupon: MakeCoupon, data: str, content_type: str
) -> None:
    coupon_id = make_coupon(quantity=5)
    response = requests.post(
        f"{server.url}/coupons/{coupon_id}/issue",
        data=data.encode("latin-1"),
        headers={"Content-Type": content_type},
        timeout=30,
    )
    assert response.status_code == 400
    assert_json_error(response)


@mysql_only
def test_unknown_fields_are_ignored(server: Server, make_coupon: MakeCoupon) -> None:
    coupon_id = make_coupon(quantity=1)
    body = {"user_id": 9, "admin": True, "total_quantity": 10**6, "strategy": "none"}
    response = requests.post(f"{server.url}/coupons/{coupon_id}/issue", json=body, timeout=30)
    assert (response.status_code, response.json()["result"]) == (201, "issued")
    coupon = requests.get(f"{server.url}/coupons/{coupon_id}", timeout=30).json()
    assert (coupon["total_quantity"], coupon["issued_quantity"]) == (1, 1)


@mysql_only
@pytest.mark.parametrize("path", ["/coupons", "/coupons/1/issue"])
def test_a_one_megabyte_body_is_413(server: Server, path: str) -> None:
    body = json.dumps({"user_id": 1, "padding": "x" * 2**20})
    response = requests.post(
        f"{server.url}{path}",
        data=body,
        headers={"Content-Type": "application/json", **TOKEN},
        timeout=30,
    )
    assert response.status_code == 413
    assert_json_error(response)


@mysql_only
@pytest.mark.parametrize(
    "name",
    [
        "lua'; DROP TABLE coupon; --",
        "redis.call('FLUSHALL')",
        "1 OR 1=1",
        "../strategies/base",
        "__class__",
        "x" * 3000,  # longer request lines meet gunicorn's own limit (414) first
    ],
)
def test_hostile_strategy_names_are_400_and_harmless(
    server: Server, make_coupon: MakeCoupon, name: str
) -> None:
    coupon_id = make_coupon(quantity=1)
    response = requests.post(
        f"{server.url}/coupons/{coupon_id}/issue",
        params={"strategy": name},
        json={"user_id": 1},
        timeout=30,
    )
    assert response.status_code == 400
    assert_json_error(response)
    assert "known: " in response.json()["error"] and len(response.text) < 1000
    url = f"{server.url}/coupons/{coupon_id}/issue?strategy=lua"
    after = requests.post(url, json={"user_id": 1}, timeout=30)
    assert after.json()["result"] == "issued"  # the table and the Redis state are intact


@pytest.mark.parametrize("name", ["限定クーポン", "🎟️ coupon 🎉", "Ærøskøbing – «prix»", "e\u0301"])
def test_unicode_coupon_names_round_trip(server: Server, name: str) -> None:
    created = requests.post(
        f"{server.url}/coupons", json={"name": name, "total_quantity": 3}, headers=TOKEN, timeout=30
    )
    assert created.status_code == 201, created.text
    fetched = requests.get(f"{server.url}/coupons/{created.json()['id']}", timeout=30)
    assert fetched.json()["name"] == name


def create(server: Server, **fields: Any) -> requests.Response:
    """POST /coupons with the admin token."""
    body = {"name": "fuzz", "total_quantity": 3, **fields}
    return requests.post(f"{server.url}/coupons", json=body, headers=TOKEN, timeout=30)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"name": "\ud800"}, "name"),  # a lone surrogate: was 500
        ({"name": "a\x00b"}, "name"),  # NUL: was 500 on PostgreSQL
        ({"issue_start": "0001-01-01T00:00:00+01:00"}, "issue_start"),  # year 0 in UTC: was 500
        ({"issue_end": "9999-12-31T23:59:59-01:00"}, "issue_end"),  # year 10000 in UTC: was 500
        ({"issue_end": "9999-12-31T23:59:59.999999"}, "issue_end"),  # was 201, then 500 on issue
        ({"issue_start": "2026-W01-1"}, "issue_start"),  # ISO 8601 week date, not RFC 3339
        ({"issue_start": "0001-01-01T00:00:00Z"}, "issue_start"),
        ({"strategy": "none"}, "strategy"),  # lab-only: 403 below
    ],
)
def test_what_was_a_500_is_a_4xx_naming_the_field(
    runtime: Runtime, server: Server, fields: dict[str, Any], field: str
) -> None:
    response = create(server, **fields)
    assert response.status_code == (403 if field == "strategy" else 400), response.text
    assert_json_error(response, field)


def test_the_far_end_of_the_range_works_with_redis_counter(server: Server) -> None:
    created = create(server, issue_end="9998-12-31T23:59:59.999999Z", strategy="redis_counter")
    assert created.status_code == 201, created.text
    coupon_id = created.json()["id"]
    for user, result in ((1, "issued"), (1, "already_issued")):
        answer = requests.post(f"{server.url}/coupons/{coupon_id}/issue", json={"user_id": user}, timeout=30)
        assert answer.json()["result"] == result, answer.text


@pytest.mark.parametrize("path", ["/coupons", "/coupons/1/issue"])
@pytest.mark.parametrize(
    ("data", "field"),
    [
        ('{"user_id": 1, "x": %s}' % ("[" * 5000 + "]" * 5000), "body"),  # was RecursionError
        ('{"user_id": %s}' % ("7" * 5000), "user_id"),  # was "body must be a JSON object"
    ],
)
def test_deep_or_huge_json_is_400_naming_the_field(
    server: Server, make_coupon: MakeCoupon, path: str, data: str, field: str
) -> None:
    make_coupon()  # coupon 1 exists
    headers = {"Content-Type": "application/json", **TOKEN}
    response = requests.post(f"{server.url}{path}", data=data, headers=headers, timeout=30)
    assert response.status_code == 400, response.text
    expected = "name" if path == "/coupons" and field == "user_id" else field
    assert_json_error(response, expected)


def test_strategies_are_not_the_callers_to_abuse(
    runtime: Runtime, server: Server, make_coupon: MakeCoupon
) -> None:
    # Sold out with atomic_update, then asked with lua: was 6 rows for 3.
    coupon_id = make_coupon(quantity=3, strategy="atomic_update")
    url = f"{server.url}/coupons/{coupon_id}/issue"
    for user in (1, 2, 3):
        assert requests.post(url, json={"user_id": user}, timeout=30).status_code == 201
    for user in (4, 5, 6):
        answer = requests.post(url, params={"strategy": "lua"}, json={"user_id": user}, timeout=30)
        assert answer.status_code == 409 and answer.json()["family"] == "database", answer.text
    assert database_totals(runtime, coupon_id) == (3, 3, 3)
    # strategy=none on a coupon of 20: was 21 rows; a deployment refuses the lab's strategies.
    racy = make_coupon(quantity=20)
    with requests.Session() as session:
        told = {
            session.post(
                f"{server.url}/coupons/{racy}/issue",
                params={"strategy": "none"},
                json={"user_id": user},
                timeout=30,
            ).status_code
            for user in range(1, 41)
        }
    assert told == {403}
    assert database_totals(runtime, racy) == (0, 0, 0)


@mysql_only
@pytest.mark.parametrize("path", ["/coupons/%EF%BC%91", "/coupons/01", "/coupons/+1", "/coupons/1%00"])
def test_only_canonical_ids_name_a_coupon(server: Server, make_coupon: MakeCoupon, path: str) -> None:
    make_coupon()
    assert requests.get(f"{server.url}/coupons/1", timeout=30).status_code == 200
    response = requests.get(f"{server.url}{path}", timeout=30)
    assert response.status_code == 404
    assert_json_error(response)


@mysql_only
@pytest.mark.parametrize("path", ["//coupons//1", "//coupons/1", "/coupons//1/issue", "//ping"])
def test_no_redirect_is_built_from_a_forged_host(server: Server, path: str) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request("GET", path, headers={"Host": "evil.example"})
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    assert response.getheader("Location") is None and not 300 <= response.status < 400
    assert response.getheader("Content-Type", "").startswith("application/json")
    # Werkzeug matches with the leading slashes stripped (//ping is /ping); a slash doubled
    # inside the path no longer matches anything (it was merged and redirected).
    if "//" in path.lstrip("/"):
        assert (response.status, isinstance(json.loads(body)["error"], str)) == (404, True)


@mysql_only
def test_a_chunked_ten_megabyte_body_is_413(server: Server, make_coupon: MakeCoupon) -> None:
    make_coupon()  # coupon 1 exists

    def chunks() -> Iterator[bytes]:
        yield b'{"user_id": 1, "padding": "'
        for _ in range(10 * 16):
            yield b"x" * 65536
        yield b'"}'

    try:
        response = requests.post(
            f"{server.url}/coupons/1/issue",
            data=chunks(),
            headers={"Content-Type": "application/json"},
            timeout=30,
        )
    except requests.ConnectionError as exc:  # the server may close before the client is done
        pytest.fail(f"no answer to a chunked 10 MB body: {exc}")
    assert response.status_code == 413, response.text
    assert_json_error(response)
    small = iter([b'{"user_id"', b": 77}"])  # a chunked body within the limit still works
    response = requests.post(
        f"{server.url}/coupons/1/issue", data=small, headers={"Content-Type": "application/json"}, timeout=30
    )
    assert response.status_code in (201, 409) and response.json()["user_id"] == 77, response.text


@mysql_only
@pytest.mark.parametrize(
    ("request_bytes", "status", "error"),
    [
        (NOT_HTTP, 400, "bad request"),
        (LONG_REQUEST_LINE, 414, "request line too long"),
        (BIG_HEADER, 431, "request header too large"),
    ],
)
def test_requests_gunicorn_cannot_parse_answer_in_the_apps_json_shape(
    server: Server, request_bytes: bytes, status: int, error: str
) -> None:
    # gunicorn refuses these before the app sees them (coupon/api/server_errors.py).
    answered, body = raw_exchange(server.port, request_bytes)
    answer = json.loads(body)
    assert (answered, answer["error"]) == (status, error) and 0 < len(answer["detail"]) <= 200


CHUNKED = b"POST /coupons/1/issue HTTP/1.1\r\nHost: e\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"


@mysql_only
@pytest.mark.parametrize(
    "chunks",
    [
        b"zz\r\n{}\r\n0\r\n\r\n",  # a chunk size that is no hex number
        b"2\r\n{}\r\n0\r\nContent-Length: 5\r\n\r\n",  # a Content-Length trailer
        b"2\r\n{}XX0\r\n\r\n",  # chunk data without its CRLF
    ],
    ids=["bad size", "content-length trailer", "no crlf"],
)
def test_a_malformed_chunked_body_is_400_json_without_a_traceback(server: Server, chunks: bytes) -> None:
    log_before = server.log_path.read_text() if server.log_path and server.log_path.exists() else ""
    answered, body = raw_exchange(server.port, CHUNKED + chunks)
    answer = json.loads(body)
    assert (answered, answer["error"]) == (400, "malformed request body"), answer
    if server.log_path:
        assert "Traceback" not in server.log_path.read_text()[len(log_before) :]
