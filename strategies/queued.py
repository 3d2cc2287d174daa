"""The queued strategy: reserve in Redis and enqueue the write; a worker persists it later."""
from __future__ import annotations

from redis.commands.core import Script

from coupon.core import rules, stream
from coupon.core.connections import Services
from coupon.core.rules import CouponNotFound, Outcome
from strategies import epoch
from strategies.coalesce import coalesce, many, replica_wait
from strategies.redis_backed import NO_STATE, RESERVE_CODES, compose
from strategies.seated import LuaScript

# Which reserve.lua answer means "reserved": the queued script answers accepted for it.
RESERVED = 0


class Queued(LuaScript):
    """One script checks, reserves and appends the request to the coupon's stream; answer 202.

    No database round trip on the request path: the worker (coupon/queue/worker.py) writes the row.
    Refusals are the reserve script's, so they are the same 409s as the other strategies'.
    """

    name = "queued"
    description = "Lua reserve + XADD to a Redis Stream in one script; 202 now, a worker writes rows."
    cross_process = True
    synchronous = False
    folds_issued = False  # the worker counts each batch it writes

    def __init__(self, services: Services) -> None:
        super().__init__(services)
        source = compose("queue")
        self._enqueue: Script = self.redis.register_script(epoch.guard(source))
        # Concurrent requests of this process share round trips, script calls and the epoch
        # check (strategies/coalesce.py).
        self._enqueue_shared = coalesce(
            self.redis, self._enqueue, many(source, epoch.BATCH_GUARD), replica_wait(services.config)
        )
        self._prefix = services.config.redis_prefix
        # Coupons this process has put in the workers' registry; once each is enough.
        self._registered: set[int] = set()

    def enqueue(self, coupon_id: int, user_id: int) -> Outcome:
        """Run the reserve-and-enqueue script, rebuilding the coupon's state if Redis lost it."""
        script_keys = self.script_keys(coupon_id, "stream")
        args = [user_id, rules.epoch_now(), stream.GROUP]
        code = int(self._enqueue_shared(keys=script_keys, args=args)[0])
        if code == NO_STATE:
            # Redis lost its data (the workers' registry with it) or went back in time:
            # merge the database's truth, stamp this run, register again.
            epoch.restore(self.state, coupon_id)
            stream.register(self.redis, self._prefix, coupon_id)
            code = int(self._enqueue_shared(keys=script_keys, args=args)[0])
        if code == RESERVED:
            return Outcome.ACCEPTED
        outcome = RESERVE_CODES[code]
        if outcome is Outcome.SOLD_OUT:
            self.soldout.mark(coupon_id)
        return outcome

    def enqueue_many(self, coupon_id: int, user_ids: list[int]) -> int:
        """Enqueue many users in one pipeline (bulk loads, benchmarks); return how many got in."""
        epoch.restore(self.state, coupon_id)  # the pipeline cannot restore midway
        stream.register(self.redis, self._prefix, coupon_id)
        keys = self.state.keys(coupon_id)
        script_keys = [*keys.reserve_keys(), keys.stream]
        now = rules.epoch_now()
        pipe = self.redis.pipeline(transaction=False)
        for user_id in user_ids:
            self._enqueue(keys=script_keys, args=[user_id, now, stream.GROUP], client=pipe)
        return sum(int(code) == RESERVED for code, _ in pipe.execute())

    def issue(self, coupon_id: int, user_id: int) -> Outcome:
        if self.soldout.active(coupon_id):
            return Outcome.SOLD_OUT
        if coupon_id in self._registered:
            return self.enqueue(coupon_id, user_id)
        # Register before the first entry, so no entry sits in a stream the workers don't know.
        stream.register(self.redis, self._prefix, coupon_id)
        try:
            outcome = self.enqueue(coupon_id, user_id)
        except CouponNotFound:
            # No such coupon, so nobody can have enqueued for it: keep the registry clean.
            stream.unregister(self.redis, self._prefix, coupon_id)
            raise
        self._registered.add(coupon_id)
        return outcome
