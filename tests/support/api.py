"""The admin token the test settings carry (tests/backends.py), as a request header."""

from __future__ import annotations

TOKEN = "test-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
