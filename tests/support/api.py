"""The admin token the test settings carry (tests/backends.py), and the API calls tests share."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient
from werkzeug.test import TestResponse

TOKEN = "test-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def assert_error(response: TestResponse, status: int, field: str | None = None) -> str:
    """Check an error answer: the status, a JSON body with an error, no traceback.

    With field, the body must also name that field (`"field": ...`).
    """
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.is_json
    body = response.get_json()
    assert isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"]
    assert "Traceback" not in response.get_data(as_text=True)
    if field is not None:
        assert body.get("field") == field, body
    return body["error"]


def create(client: FlaskClient, quantity: int = 10, **fields: Any) -> dict[str, Any]:
    """Create a coupon through the API (fields: issue_start, strategy, ...); return its JSON."""
    body = {"name": "api coupon", "total_quantity": quantity, **fields}
    response = client.post("/coupons", json=body, headers=AUTH)
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()
