"""The request names the locustfile reports under, shared with the lab that reads its stats."""

from __future__ import annotations

# Issued and refused answers get names of their own, so that locust's stats count what the
# callers were told (201/202 versus 409) without any custom bookkeeping.
ISSUED = "issue: issued"
REFUSED = "issue: refused"
FAILED = "issue: error"
PING = "/ping"
