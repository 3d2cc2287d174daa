"""One-line logs: JSON fields, and no secret in any line."""

from __future__ import annotations

import json
import logging

from coupon.core.logs import JsonFormatter, SecretFilter


def record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord("coupon.test", logging.WARNING, __file__, 1, message, args, None)
    made.__dict__.update(extra)
    return made


def test_secrets_are_masked_in_the_message() -> None:
    line = record("cannot reach %s with token %s", "mysql+pymysql://coupon:hunter2@db/x", "tok-123456")
    assert SecretFilter(["tok-123456"]).filter(line)
    assert line.getMessage() == "cannot reach mysql+pymysql://coupon:***@db/x with token ***"


def test_a_json_line_carries_the_issue_fields() -> None:
    line = record("issue", strategy="lua", coupon_id=7, result="issued", latency_ms=1.5)
    parsed = json.loads(JsonFormatter().format(line))
    assert "\n" not in JsonFormatter().format(line)
    assert {key: parsed[key] for key in ("strategy", "coupon_id", "result", "latency_ms")} == {
        "strategy": "lua",
        "coupon_id": 7,
        "result": "issued",
        "latency_ms": 1.5,
    }
    assert (parsed["level"], parsed["logger"], parsed["message"]) == ("WARNING", "coupon.test", "issue")
