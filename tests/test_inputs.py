"""The request inputs as pure functions (no Flask): what a WSGI fast path will reuse."""

from __future__ import annotations

import gc
import json
import sys
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient

from coupon.api import inputs
from coupon.api.inputs import MAX_DEPTH, MAX_ID, InputError

JSON = "application/json"


@pytest.mark.parametrize(
    ("raw", "content_type", "expected"),
    [
        (b'{"user_id": 1}', JSON, 1),
        (b'{"user_id": 9223372036854775807}', "application/json; charset=utf-8", MAX_ID),
        (b' {"user_id": 7, "user_id": 8} ', "Application/JSON", 8),  # the last key wins
        (b'{"user_id": 5, "extra": {"a": [1, 2]}}', "application/problem+json", 5),
    ],
)
def test_issue_user_id_accepts(raw: bytes, content_type: str, expected: int) -> None:
    assert inputs.issue_user_id(raw, content_type) == expected


@pytest.mark.parametrize(
    ("raw", "content_type", "field"),
    [
        (b'{"user_id": 1}', None, "body"),
        (b'{"user_id": 1}', "text/plain", "body"),
        (b"", JSON, "body"),
        (b"\xff\xfe{}", JSON, "body"),
        (b'\xef\xbb\xbf{"user_id": 1}', JSON, "body"),  # a BOM is not JSON text
        (b"[1]", JSON, "body"),
        (b'"user_id"', JSON, "body"),
        (b'{"user_id": NaN}', JSON, "body"),
        (b'{"user_id": 1, "x": ' + b"[" * 5000 + b"]" * 5000 + b"}", JSON, "body"),
        (b'{"user_id": 1, "x": ' + b"[" * MAX_DEPTH + b"]" * MAX_DEPTH + b"}", JSON, "body"),
        (b'{"user_id": ' + b"9" * 5000 + b"}", JSON, "user_id"),
        (b'{"user_id": 9223372036854775808}', JSON, "user_id"),
        (b'{"user_id": 0}', JSON, "user_id"),
        (b'{"user_id": 1.0}', JSON, "user_id"),
        (b'{"user_id": true}', JSON, "user_id"),
        (b'{"user_id": "1"}', JSON, "user_id"),
        (b'{"user": 1}', JSON, "user_id"),
    ],
)
def test_issue_user_id_refuses_naming_the_field(raw: bytes, content_type: str | None, field: str) -> None:
    with pytest.raises(InputError) as refused:
        inputs.issue_user_id(raw, content_type)
    assert refused.value.status == 400
    assert refused.value.body() == {"error": refused.value.message, "field": field}


def test_the_depth_bound_is_exact() -> None:
    inner = MAX_DEPTH - 1  # the body object itself is the first level
    body = b'{"user_id": 3, "x": ' + b"[" * inner + b"]" * inner + b"}"
    assert inputs.issue_user_id(body, JSON) == 3
    body = b'{"user_id": 3, "x": "' + b"[" * 10_000 + b'"}'  # brackets in a string do not nest
    assert inputs.issue_user_id(body, JSON) == 3


def python_steps(work: Callable[[], object]) -> int:
    """Count the Python lines and calls work runs (C code, the parser's included, counts nothing)."""
    steps = 0

    def trace(_frame: object, _event: str, _arg: object) -> Any:
        nonlocal steps
        steps += 1
        return trace

    gc.collect()  # finalizers of earlier tests' garbage would run, and count, inside work
    gc.disable()
    sys.settrace(trace)
    try:
        work()
    finally:
        sys.settrace(None)
        gc.enable()
    return steps


def test_a_hostile_64_kib_body_costs_little() -> None:
    # The cost is counted, not timed: the parser and the bracket scan run in C, so refusing a
    # 64 KiB body runs some 70 Python lines; a walk in Python per character or per bracket runs
    # over 100,000 (tried: a plain loop in place of _too_deep).
    bodies = [
        b'{"x": ' + b"[" * 32_000 + b"]" * 32_000 + b"}",
        b'{"x": [' + b"[]," * 21_000 + b"[]]}",  # wide, not deep: walked, then accepted
        b'{"x": "' + b'\\"' * 32_000 + b'"}',
    ]
    for body in bodies:

        def refuse(body: bytes = body) -> None:
            with pytest.raises(InputError):
                inputs.issue_user_id(body, JSON)

        assert python_steps(refuse) < 1000, body[:20]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1", 1),
        ("42", 42),
        (str(MAX_ID), MAX_ID),
        ("0", None),
        ("01", None),
        ("+1", None),
        ("-1", None),
        (" 1", None),
        ("1 ", None),
        ("\uff11", None),
        ("\u0661", None),
        ("1.0", None),
        (str(MAX_ID + 1), None),
        ("9" * 5000, None),
        ("", None),
    ],
)
def test_canonical_id(text: str, expected: int | None) -> None:
    assert inputs.canonical_id(text) == expected


def test_the_views_answer_with_the_same_bodies(client: FlaskClient) -> None:
    raw = b'{"user_id": ' + b"9" * 5000 + b"}"
    with pytest.raises(InputError) as refused:
        inputs.issue_user_id(raw, JSON)
    response = client.post("/coupons/1/issue", data=raw, content_type=JSON)
    assert response.status_code == refused.value.status
    assert json.loads(response.data) == refused.value.body()
