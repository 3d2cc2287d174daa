"""Dead letters: requests the worker cannot persist, kept in failed_issue and a stream."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial

import redis

from coupon.core import metrics, queries
from coupon.store.keys import CouponKeys
from coupon.store.state import load_script
from coupon.store.stream import GROUP, Entry, Malformed

log = logging.getLogger(__name__)

# Runs a unit of database work in one transaction, waiting out outages (Writer.transact).
Transact = Callable[..., object]


class DeadLetters:
    """Record a coupon's failed entries in failed_issue, then move them to the dead stream."""

    def __init__(self, client: redis.Redis, transact: Transact) -> None:
        self._transact = transact
        self._bury = load_script(client, "dead_letter")

    def bury(self, coupon_id: int, keys: CouponKeys, failures: list[tuple[Entry, str]]) -> None:
        """Record failures in the database first, then take them out of the live stream."""
        rows = [
            {
                "coupon_id": coupon_id,
                "user_id": _user_or_none(entry),
                "entry_id": entry.id,
                "payload": entry.payload(),
                "reason": reason,
            }
            for entry, reason in failures
        ]
        ids = [entry.id for entry, _ in failures]
        self._transact(keys, ids, partial(queries.record_failures, failures=rows))
        metrics.WORKER_FAILURES.inc(len(rows))
        for entry, reason in failures:
            fields = [part for pair in entry.fields.items() for part in pair]
            self._bury(keys=[keys.stream, keys.dead], args=[GROUP, entry.id, reason, *fields])
            log.warning("dead-lettered entry %s of coupon %s: %s", entry.id, coupon_id, reason)


def _user_or_none(entry: Entry) -> int | None:
    try:
        return entry.user_id()
    except Malformed:
        return None
