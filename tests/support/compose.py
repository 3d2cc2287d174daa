"""The compose stack's file, parsed."""

from __future__ import annotations

from typing import Any

import yaml

from coupon.core.config import PROJECT_ROOT

COMPOSE = PROJECT_ROOT / "docker-compose.yml"


def compose() -> dict[str, Any]:
    """Return docker-compose.yml as a dict."""
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded
