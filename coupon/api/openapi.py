"""The API's OpenAPI 3 document (coupon/api/openapi.json), served at GET /openapi.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, jsonify

DOCUMENT = Path(__file__).with_name("openapi.json")

bp = Blueprint("openapi", __name__)


def load() -> dict[str, Any]:
    """Read the document (tests/test_openapi.py keeps it true to the routes)."""
    # openapi.json holds one JSON object.
    document: dict[str, Any] = json.loads(DOCUMENT.read_text(encoding="utf-8"))
    return document


@bp.get("/openapi.json")
def openapi() -> Response:
    return jsonify(load())
