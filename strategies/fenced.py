"""The Redis lock made safe by a fencing token the database checks (Kleppmann's fix).

A lease-based lock cannot promise mutual exclusion: a holder that stalls past its lease (GC,
a paused VM) wakes up still believing it holds the lock while another holder runs. The fix
is a fencing token: a number that grows with every acquisition, which the storage checks so
that a holder whose token has been superseded can no longer write.

Here the token comes from INCR on the coupon's ``fence`` key at acquire. It is recorded on
the coupon row (``claim_fence``) before the read, and the write takes the stock only while
the row still carries that same token. Checking ``fence_token < token`` at write time alone
would not do: two stalled holders that both read before either wrote would both pass it in
turn. Claiming first means any newer holder's claim either precedes this holder's write
(which then finds a newer token and is refused) or waits for it on the row lock and reads
after it.
"""

from __future__ import annotations

from functools import partial

from sqlalchemy import Connection

from coupon.core import queries
from coupon.core.rules import Busy, CouponNotFound, CouponRow, Outcome
from strategies.base import issue_in_db, with_retries
from strategies.redis_backed import RedisLock


class FencedOut(Busy):
    """Raised when a newer lock holder's token reached the database first (answer 503, retry)."""


class FencedLock(RedisLock):
    """Hold the Redis lock as redis_lock does, and let the database refuse a superseded holder."""

    name = "fenced_lock"
    description = "Redis lock + fencing token (INCR) checked by the database write; stale holders refused."
    cross_process = True

    def issue(self, coupon_id: int, user_id: int) -> Outcome:
        engine = self.services.engine
        with self.held(coupon_id):
            token = self.next_token(coupon_id)
            if not self.claim(coupon_id, token):
                # The row has seen this token already: a newer holder claimed it, or the
                # counter came back behind the row (a restore, a lagging replica). Move the
                # counter past the row's token and claim once more, instead of burning one
                # token per request until it catches up.
                token = self.next_token(coupon_id, past_row=True)
                if not self.claim(coupon_id, token):
                    raise FencedOut(f"token {token} of coupon {coupon_id} superseded at claim")
            take = partial(self.take_fenced, token)
            attempt = partial(issue_in_db, engine, coupon_id, user_id, take)
            return with_retries(attempt, self.services.config.retry_deadline)

    def claim(self, coupon_id: int, token: int) -> bool:
        """Record token as the coupon's newest fence; False when the row has seen it."""
        with self.services.engine.begin() as conn:
            return queries.claim_fence(conn, coupon_id, token)

    def next_token(self, coupon_id: int, *, past_row: bool = False) -> int:
        """Take the next fencing token from Redis, above any the row has already seen."""
        fence = self.keys(coupon_id).fence
        token = int(self.redis.incr(fence))
        if token == 1 or past_row:
            # A fresh counter: a new coupon, or Redis lost the key. Jump past the row's token,
            # or every holder from now on would be fenced out by the row's older history.
            with self.services.engine.connect() as conn:
                row = queries.describe_coupon(conn, coupon_id)
            if row is None:
                raise CouponNotFound(coupon_id)
            behind = int(row["fence_token"]) - token + 1
            if behind > 0:
                token = int(self.redis.incrby(fence, behind))
        return token

    def take_fenced(self, token: int, conn: Connection, coupon: CouponRow) -> bool:
        """Count the issue only while token is still the coupon's newest fence."""
        self.stall.once()
        if not queries.add_issued_if_fenced(conn, coupon.id, token):
            raise FencedOut(f"token {token} of coupon {coupon.id} superseded at write")
        return True
