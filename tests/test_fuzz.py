"""Hostile input against the real server: schemathesis from the OpenAPI document, then by hand."""
from __future__ import annotations

import json
from typing import Any, Iterator

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import APIOperation, GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from coupon.api import openapi
from coupon.lab.serve import Server
from coupon.runtime import Runtime
from tests.conftest import MakeCoupon

MAX_EXAMPLES = 50  # per operation and generation mode: bounded for CI
TOKEN = {"Authorization": "Bearer test-admin-token"}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]  # fmt: skip

# The contract is the same on either database; the unicode round trip runs on both below.
mysql_only = pytest.mark.parametrize("backend", ["mysql"], indirect=True)


@pytest.fixture(scope="module")
def server(runtime: Runtime) -> Iterator[Server]:
    """One gunicorn worker over the test database."""
    with Server(runtime.config, workers=1) as running:
        yield running


def assert_json_error(response: Any) -> None:
    """Assert an error answer carries a JSON body with an error message."""
    if response.status_code >= 400:
        # requests gives one string per header, schemathesis a list per lower-cased name.
        headers = {name.lower(): value for name, value in response.headers.items()}
        content_type = headers.get("content-type", "")
        content_type = content_type if isinstance(content_type, str) else content_type[0]
        assert content_type.startswith("application/json"), response.text
        body = json.loads(response.content)
        # A refused issue (409) answers with its result, as the document says; faults say why.
        refusal = response.status_code == 409 and "result" in body
        assert refusal or isinstance(body.get("error"), str), (response.status_code, response.text)


def fuzz(operation: APIOperation, base_url: str, coupon_id: int, mode: GenerationMode) -> int:
    """Send generated requests for one operation, each answer keeping the contract; count them."""
    cases = [operation.as_strategy(generation_mode=mode)]
    if "{coupon_id}" in operation.path:  # also aim at a coupon that exists
        cases.append(operation.as_strategy(mode, path_parameters={"coupon_id": coupon_id}))

    statuses: list[int] = []

    @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(case=st.one_of(cases))
    def run(case: schemathesis.Case) -> None:
        response = case.call(base_url=base_url, headers=TOKEN, timeout=30)
        statuses.append(response.status_code)
        assert_json_error(response)
        checks = CHECKS if mode is GenerationMode.POSITIVE else [not_a_server_error]
        case.validate_response(response, checks=checks)

    run()
    return len(statuses)


@mysql_only
@pytest.mark.parametrize("mode", list(GenerationMode), ids=lambda mode: mode.value)
def test_schemathesis_finds_no_broken_contract(
    server: Server, make_coupon: MakeCoupon, mode: GenerationMode
) -> None:
    coupon_id = make_coupon(quantity=1000)
    schema = schemathesis.openapi.from_dict(openapi.load())
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == sum(len(item) for item in openapi.load()["paths"].values())
    sent: dict[str, int] = {}
    for operation in operations:
        inputs = operation.definition.raw.keys() & {"parameters", "requestBody"}
        if mode is GenerationMode.NEGATIVE and not inputs:
            continue  # nothing to send wrong
        sent[operation.label] = fuzz(operation, server.url, coupon_id, mode)
    # Operations with inputs get many distinct requests, not one or two.
    assert all(count >= MAX_EXAMPLES // 2 for label, count in sent.items() if "{" in label), sent


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
    [("not json", "text/plain"), ("{broken", "application/json"), ("", "application/json"),
     ("\xff\xfe", "application/json")],  # fmt: skip
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
