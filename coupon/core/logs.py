"""One-line logs, JSON when COUPON_LOG_JSON=1, with secrets masked."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime

# Fields a record may carry through `extra=` that the JSON line keeps as its own keys.
FIELDS = ("strategy", "coupon_id", "result", "latency_ms", "status")
# user:password@ in a URL (a database or Redis URL in an error message).
_URL_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^@\s]+@")
_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


class SecretFilter(logging.Filter):
    """Mask URL passwords and the admin token in every message before it is written."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = [secret for secret in secrets if len(secret) >= 4]

    def filter(self, record: logging.LogRecord) -> bool:
        message = _URL_PASSWORD.sub(r"\1***@", record.getMessage())
        for secret in self.secrets:
            message = message.replace(secret, "***")
        record.msg, record.args = message, None
        return True


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON object on one line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            if hasattr(record, name):
                line[name] = getattr(record, name)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure(secrets: list[str] | None = None, as_json: bool = False, level: str = "INFO") -> None:
    """Send the service's logs to stderr, one line each (once per process)."""
    root = logging.getLogger()
    if any(getattr(handler, "coupon_lab", False) for handler in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.coupon_lab = True  # type: ignore[attr-defined]
    handler.setFormatter(JsonFormatter() if as_json else logging.Formatter(_TEXT_FORMAT))
    handler.addFilter(SecretFilter(secrets or []))
    root.addHandler(handler)
    logging.getLogger("coupon").setLevel(level)
    logging.getLogger("strategies").setLevel(level)
