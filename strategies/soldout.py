"""The sold-out fast path: a per-process memory that a coupon's stock reached zero.

Once the reserve script answers sold out, this process answers 409 sold_out for that coupon
without asking Redis, for at most ``ttl`` seconds; then one request asks Redis again, and the
answer renews or ends the flag. Stock can come back only when a reservation is given back (a
failed database write, ``reconcile --fix``, ``rebuild-redis``): the process that gives it back
clears its own flag at once, and every other process learns within ``ttl``. That is the bound
on staleness: no process refuses for more than ``ttl`` seconds while stock remains.

While the flag is up, every caller hears sold_out, including a user who already holds the
coupon (the script would have said already_issued): the rules' order is kept only by Redis.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from coupon.core import metrics

# Flags of coupons not asked about for a while are swept once the map grows past this.
SWEEP_ABOVE = 10_000


class SoldOut:
    """Remember, per coupon, that Redis answered sold out, for at most ttl seconds."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._until: dict[int, float] = {}

    def active(self, coupon_id: int) -> bool:
        """Tell whether this process may answer sold out without asking Redis."""
        until = self._until.get(coupon_id)
        if until is None:
            return False
        if self._clock() < until:
            metrics.SOLDOUT_HITS.inc()
            return True
        self._until.pop(coupon_id, None)
        return False

    def mark(self, coupon_id: int) -> None:
        """Record that Redis just answered sold out for this coupon."""
        if self.ttl <= 0:
            return
        now = self._clock()
        if len(self._until) >= SWEEP_ABOVE:
            self._until = {key: until for key, until in self._until.items() if until > now}
        self._until[coupon_id] = now + self.ttl

    def clear(self, coupon_id: int) -> None:
        """Forget the flag (this process gave stock back)."""
        self._until.pop(coupon_id, None)
