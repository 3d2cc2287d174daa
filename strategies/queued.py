"""The queued strategy: reserve in Redis and enqueue the write; a worker persists it later."""

from __future__ import annotations

from redis.commands.core import Script

from coupon.core import rules
from coupon.core.connections import Services
from coupon.core.rules import Outcome
from coupon.store import stream
from coupon.store.state import script_source
from strategies import epoch
from strategies.coalesce import alone, coalesce, many, replica_wait
from strategies.epoch import NO_STATE
from strategies.reservations import RESERVE_CODES, Reserving
from strategies.soldout import SoldOut

# Which reserve.lua answer means "reserved": the queued script answers accepted for it.
RESERVED = 0


class Queued(Reserving):
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
        source = script_source("reserve")
        self._enqueue: Script = self.redis.register_script(alone(source))
        # Concurrent requests of this process share round trips, script calls and the epoch
        # check (strategies/coalesce.py).
        self._enqueue_shared = coalesce(
            self.redis, self._enqueue, many(source), replica_wait(services.config)
        )
        # The sold-out fast path (strategies/soldout.py): per process, bounded by soldout_ttl.
        self.soldout = SoldOut(services.config.soldout_ttl)

    def enqueue(self, coupon_id: int, user_id: int) -> Outcome:
        """Run the reserve-and-enqueue script, rebuilding the coupon's state if Redis lost it.

        Only an accepted request that created the stream registers it for the workers' poll,
        after its entry: a process that dies in between leaves the stream to the workers'
        discovery (coupon/queue/worker.py, once per recovery bound), and a refusal registers
        nothing, so the poll list holds only coupons with requests to persist.
        """
        script_keys = self.script_keys(coupon_id, "stream")
        args: list[str | int | float] = [user_id, rules.epoch_now(), stream.GROUP]
        answer = self._enqueue_shared(keys=script_keys, args=args)
        if int(answer[0]) == NO_STATE:
            # Redis lost its data (the workers' registry with it) or went back in time: merge
            # the database's truth, stamp this run, register what the streams still hold.
            epoch.restore(self.state, coupon_id)
            if stream.backlog(self.redis, self.keys(coupon_id)):
                stream.register(self.redis, self.prefix, coupon_id)
            answer = self._enqueue_shared(keys=script_keys, args=args)
        code = int(answer[0])
        if code == RESERVED:
            if len(answer) > 2 and int(answer[2]):
                stream.register(self.redis, self.prefix, coupon_id)
            return Outcome.ACCEPTED
        outcome = RESERVE_CODES[code]
        if outcome is Outcome.SOLD_OUT:
            self.soldout.mark(coupon_id)
        return outcome

    def enqueue_many(self, coupon_id: int, user_ids: list[int]) -> int:
        """Enqueue many users in one pipeline (bulk loads, benchmarks); return how many got in."""
        epoch.restore(self.state, coupon_id)  # the pipeline cannot restore midway
        stream.register(self.redis, self.prefix, coupon_id)
        keys = self.keys(coupon_id)
        script_keys = [*keys.reserve_keys(), keys.stream]
        now = rules.epoch_now()
        pipe = self.redis.pipeline(transaction=False)
        for user_id in user_ids:
            self._enqueue(keys=script_keys, args=[user_id, now, stream.GROUP], client=pipe)
        return sum(int(answer[0]) == RESERVED for answer in pipe.execute())

    def issue(self, coupon_id: int, user_id: int) -> Outcome:
        if self.soldout.active(coupon_id):
            return Outcome.SOLD_OUT
        return self.enqueue(coupon_id, user_id)
