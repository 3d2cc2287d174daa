"""coupon/api/openapi.json is valid OpenAPI 3, names every route, and real answers match it."""

from __future__ import annotations

import re
from typing import Any

import jsonschema_rs
import pytest
import schemathesis
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from coupon.api import inputs, openapi
from coupon.core import rules
from strategies import FAMILIES, REGISTRY

METHODS = {"get", "post", "put", "patch", "delete"}
TOKEN = {"Authorization": "Bearer test-admin-token"}
DOC = openapi.load()


def deref(node: Any) -> Any:
    """Follow a local `$ref` to the node it names."""
    while isinstance(node, dict) and "$ref" in node:
        found: Any = DOC
        for part in node["$ref"].removeprefix("#/").split("/"):
            found = found[part]
        node = found
    return node


def flask_routes(app: Flask) -> set[tuple[str, str]]:
    """Return (OpenAPI path, method) for every route of the app."""
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        methods = {method.lower() for method in rule.methods or ()} & METHODS
        routes |= {(path, method) for method in methods}
    return routes


def json_schema(schema: Any) -> Any:
    """Turn OpenAPI 3.0's `nullable` into JSON Schema's null type, everywhere in schema."""
    if isinstance(schema, list):
        return [json_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    converted = {key: json_schema(value) for key, value in schema.items() if key != "nullable"}
    if schema.get("nullable") and "type" in schema:
        converted["type"] = [schema["type"], "null"]
    return converted


def check(response: TestResponse, path: str, method: str) -> None:
    """Assert the response's status, media type and body are the ones the document gives."""
    documented = DOC["paths"][path][method]["responses"]
    assert str(response.status_code) in documented, (path, method, response.status_code)
    answer = deref(documented[str(response.status_code)])
    for name, header in answer.get("headers", {}).items():
        assert not header.get("required") or name in response.headers, (path, method, name)
    content = answer["content"]
    media_type = response.mimetype
    assert media_type in content, (path, method, media_type)
    if media_type == "application/json":
        schema = {**content[media_type]["schema"], "components": DOC["components"]}
        validator = jsonschema_rs.validator_for(json_schema(schema))
        assert [e.message for e in validator.iter_errors(response.get_json())] == [], response.json


def test_the_document_is_valid_openapi_3() -> None:
    assert DOC["openapi"].startswith("3.")
    schemathesis.openapi.from_dict(DOC).validate()
    with pytest.raises(jsonschema_rs.ValidationError):
        schemathesis.openapi.from_dict({**DOC, "paths": {"/x": {"get": {}}}}).validate()


def test_every_route_is_documented_and_every_documented_path_exists(app: Flask) -> None:
    documented = {(path, method) for path, item in DOC["paths"].items() for method in item}
    assert flask_routes(app) == documented
    for path, method in documented:
        parameters = [deref(p) for p in DOC["paths"][path][method].get("parameters", [])]
        declared = {p["name"] for p in parameters if p["in"] == "path"}
        assert declared == set(re.findall(r"{(\w+)}", path)), path


def test_served_document_is_the_file(client: FlaskClient) -> None:
    response = client.get("/openapi.json")
    check(response, "/openapi.json", "get")
    assert response.get_json() == DOC


def test_real_answers_match_the_document(client: FlaskClient) -> None:
    check(client.get("/ping"), "/ping", "get")
    check(client.get("/healthz"), "/healthz", "get")
    check(client.get("/strategies"), "/strategies", "get")
    check(client.get("/metrics", headers=TOKEN), "/metrics", "get")
    check(client.get("/metrics"), "/metrics", "get")
    created = client.post("/coupons", json={"name": "contract", "total_quantity": 1}, headers=TOKEN)
    check(created, "/coupons", "post")
    assert created.status_code == 201
    check(client.post("/coupons", json={"name": "x", "total_quantity": 1}), "/coupons", "post")
    check(client.post("/coupons", json={"name": ""}, headers=TOKEN), "/coupons", "post")
    lab_only = {"name": "x", "total_quantity": 1, "strategy": "none"}
    check(client.post("/coupons", json=lab_only, headers=TOKEN), "/coupons", "post")
    coupon_id = created.get_json()["id"]
    check(client.get(f"/coupons/{coupon_id}"), "/coupons/{coupon_id}", "get")
    check(client.get("/coupons/999999999"), "/coupons/{coupon_id}", "get")

    issue = "/coupons/{coupon_id}/issue"
    url = f"/coupons/{coupon_id}/issue?strategy=lua"
    for user_id, status in ((1, 201), (1, 409), (2, 409)):
        answer = client.post(url, json={"user_id": user_id})
        assert answer.status_code == status
        check(answer, issue, "post")
    check(client.post(url, json={"user_id": "one"}), issue, "post")
    for strategy, status in (("nope", 400), ("process_lock", 403), ("atomic_update", 409)):
        answer = client.post(f"{issue.format(coupon_id=coupon_id)}?strategy={strategy}", json={"user_id": 3})
        assert answer.status_code == status
        check(answer, issue, "post")
    check(client.post("/coupons/999999999/issue", json={"user_id": 3}), issue, "post")

    status = "/coupons/{coupon_id}/issues/{user_id}"
    for user_id in (1, 2, 0):
        check(client.get(f"/coupons/{coupon_id}/issues/{user_id}"), status, "get")
    check(client.get("/coupons/999999999/issues/1"), status, "get")


def test_every_method_a_path_lacks_is_a_documented_405(client: FlaskClient) -> None:
    for path, item in DOC["paths"].items():
        concrete = path.format(coupon_id=1, user_id=1)
        for method in sorted(METHODS - set(item)):
            answer = client.open(concrete, method=method.upper(), headers=TOKEN)
            assert answer.status_code == 405, (path, method)
            for documented in item:
                check(answer, path, documented)
            allowed = {name.strip().lower() for name in answer.headers["Allow"].split(",")}
            assert allowed - {"head", "options"} == set(item), (path, allowed)


def test_the_document_states_the_rules_the_server_enforces() -> None:
    schemas = DOC["components"]["schemas"]
    new = schemas["NewCoupon"]["properties"]
    assert new["name"]["pattern"] == inputs.NAME_PATTERN and new["name"]["maxLength"] == inputs.MAX_NAME
    assert new["issue_start"]["pattern"] == new["issue_end"]["pattern"] == rules.INSTANT_PATTERN
    assert new["total_quantity"]["maximum"] == inputs.MAX_QUANTITY
    assert new["strategy"]["enum"] == [*REGISTRY, None]
    assert schemas["IssueRequest"]["properties"]["user_id"]["minimum"] == 1
    assert schemas["IssueRequest"]["properties"]["user_id"]["maximum"] == inputs.MAX_ID
    issue = DOC["paths"]["/coupons/{coupon_id}/issue"]["post"]
    strategy = next(p for p in issue["parameters"] if deref(p)["name"] == "strategy")
    assert strategy["schema"]["enum"] == list(REGISTRY)
    assert schemas["Coupon"]["properties"]["family"]["enum"] == list(FAMILIES)
    coupon_id = deref({"$ref": "#/components/parameters/CouponId"})["schema"]
    assert (coupon_id["minimum"], coupon_id["maximum"]) == (1, inputs.MAX_ID)
    assert DOC["paths"]["/metrics"]["get"]["security"] == [{"adminToken": []}]


# Regressions that schemathesis once found (its crash cache is no longer kept in the repository):
# each is named after what it found.


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}])
def test_schemathesis_metrics_without_the_token_is_401(client: FlaskClient, headers: dict[str, str]) -> None:
    answer = client.get("/metrics", headers=headers)  # was 200 to anyone
    assert answer.status_code == 401 and answer.headers["WWW-Authenticate"] == "Bearer"
    assert answer.get_json() == {"error": "missing or wrong admin token"}


def test_schemathesis_a_refused_token_says_how_to_authenticate(client: FlaskClient) -> None:
    answer = client.post("/coupons", json={"name": "x", "total_quantity": 1})  # lacked the header
    assert answer.status_code == 401 and answer.headers["WWW-Authenticate"] == "Bearer"


def test_schemathesis_trace_on_every_path_is_a_json_405(client: FlaskClient) -> None:
    for path in DOC["paths"]:
        answer = client.open(path.format(coupon_id=1, user_id=1), method="TRACE", headers=TOKEN)
        assert answer.status_code == 405, path  # was reported for every path
        assert answer.is_json and "error" in answer.get_json(), path


def test_schemathesis_coupons_and_strategies_carry_their_pinned_fields(client: FlaskClient) -> None:
    created = client.post("/coupons", json={"name": "0", "total_quantity": 1}, headers=TOKEN)
    assert {"strategy", "family"} <= created.get_json().keys()  # were missing from both
    assert {"strategy", "family"} <= client.get(f"/coupons/{created.get_json()['id']}").get_json().keys()
    assert all("family" in strategy for strategy in client.get("/strategies").get_json()["strategies"])


def test_the_document_states_who_may_call_the_user_operations() -> None:
    schemes = DOC["components"]["securitySchemes"]
    assert schemes["userToken"] == {
        **schemes["userToken"],
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
    }
    issue = DOC["paths"]["/coupons/{coupon_id}/issue"]["post"]
    status = DOC["paths"]["/coupons/{coupon_id}/issues/{user_id}"]["get"]
    assert issue["security"] == [{"userToken": []}]
    assert status["security"] == [{"userToken": []}, {"adminToken": []}]
    assert {"401", "403", "429"} <= set(issue["responses"]) and {"401", "403"} <= set(status["responses"])
