"""One failover under load: a crowd issues through the app while Sentinel promotes a replica.

The app runs in this process (Flask's test client, one thread per caller) over a Sentinel
group (coupon/lab/chaos/sentinel.py); the queued strategy's worker runs in a thread with
connections of its own, as another process would. What every caller was told is recorded and
checked against the database's rows once the worker has drained: lost (told 201/202, no row),
over-issued, phantom (a row for a user told no), every status that is not a grant, a refusal
or a 503 JSON, and the longest time without a grant from the fault on.
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from coupon import create_app
from coupon.core import queries
from coupon.core.config import Config
from coupon.lab.chaos.sentinel import SentinelGroup, wait_until
from coupon.lab.check.history import Recorder
from coupon.queue.worker import Settings, Worker
from coupon.runtime import Runtime

GRANTED = {"lua": 201, "queued": 202, "redis_counter": 201}
THREADS = 8
# A second coupon, three quarters sold before the fault and sold out after the switch: the new
# primary must hand out exactly the rest (its state merged from the rows, not replicated).
SMALL = 40
PACE_SECONDS = 0.002  # between one caller's requests: the crowd leaves the machine some CPU
# The replication modes: a Sentinel group's server settings, and COUPON_REDIS_WAIT_REPLICAS.
MODES: dict[str, tuple[dict[str, str], int]] = {
    "async": ({}, 0),
    "wait1": ({"min-replicas-to-write": "1", "min-replicas-max-lag": "2"}, 1),
}


@dataclass
class Crowd:
    """Callers issuing to one coupon through the app, each user once, every answer recorded."""

    app: Any
    coupon_id: int
    strategy: str
    recorder: Recorder | None = None  # every answer, for the lab's checker
    granted: dict[int, float] = field(default_factory=dict)  # user -> when the grant came
    refused: set[int] = field(default_factory=set)  # 409: sold out (a user is asked once)
    unavailable: set[int] = field(default_factory=set)  # 503 JSON: outcome unknown
    wrong: list[tuple[int, str]] = field(default_factory=list)  # anything else
    sold_out: threading.Event = field(default_factory=threading.Event)
    stopping: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._users = itertools.count(1)
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(THREADS)]

    def start(self) -> Crowd:
        """Start the callers."""
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        """Stop the callers and wait for them."""
        self.stopping.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def _run(self) -> None:
        client = self.app.test_client()
        while not self.stopping.is_set():
            user = next(self._users)
            response = issue(client, self.coupon_id, self.strategy, user, self.recorder, "crowd")
            self._record(user, response.status_code, response.get_json(silent=True))
            time.sleep(PACE_SECONDS)  # pacing, not synchronisation

    def _record(self, user: int, status: int, body: Any) -> None:
        with self._lock:
            if status == GRANTED[self.strategy]:
                self.granted[user] = time.monotonic()
            elif status == 409 and isinstance(body, dict) and body.get("result") == "sold_out":
                self.refused.add(user)
                self.sold_out.set()
            elif status == 503 and isinstance(body, dict) and "error" in body:
                self.unavailable.add(user)
            else:
                self.wrong.append((status, str(body)[:200]))

    def grants_since(self, moment: float) -> int:
        """Count the grants that came after a moment."""
        with self._lock:
            return sum(1 for at in self.granted.values() if at > moment)

    def longest_gap(self, since: float) -> float:
        """Return the longest time without a grant from a moment to the last grant."""
        with self._lock:
            times = sorted([since, *(at for at in self.granted.values() if at > since)])
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0)


def sentinel_config(config: Config, group: SentinelGroup, wait_replicas: int = 0) -> Config:
    """Settings that reach Redis through the group's Sentinels (WAIT mode if wait_replicas)."""
    return dataclasses.replace(
        config,
        redis_url=None,
        redis_sentinels=tuple(("127.0.0.1", sentinel.port) for sentinel in group.sentinels),
        redis_service="coupon",
        redis_wait_replicas=wait_replicas,
        retry_deadline=3.0,  # a request during the switch answers 503 within seconds
    )


def run_failover(
    config: Config,
    group: SentinelGroup,
    strategy: str,
    kind: str,
    quantity: int,
    before: int = 50,
    recorder: Recorder | None = None,
) -> dict[str, Any]:
    """Issue through one failover of the given kind; return the figures (see the module doc).

    With a recorder, every answer and the fault's start and end go into it (the lab's history).
    """
    app = create_app(config)
    runtime: Runtime = app.extensions["coupon"]
    worker_runtime = Runtime.open(config)
    worker = Worker(worker_runtime, settings=Settings(claim_idle=1.0, batch=100, recovery=2.0))
    worker_thread = threading.Thread(target=worker.run, daemon=True)
    crowd = None
    try:
        coupon_id = runtime.create_coupon(f"failover-{kind}", quantity, None, None, strategy)
        small = runtime.create_coupon(f"failover-{kind}-small", SMALL, None, None, strategy)
        worker_thread.start()
        before_fault = sell(app, small, strategy, range(1, SMALL * 3 // 4 + 1), recorder)
        crowd = Crowd(app, coupon_id, strategy, recorder).start()
        wait_until(lambda: len(crowd.granted) >= before, "grants before the fault", 60)
        old_run = group.run_id(group.primary())
        started = time.monotonic()
        _event(recorder, f"failover-{kind}", "start")
        old, _ = group.fail(kind)
        switched = time.monotonic()
        _event(recorder, f"failover-{kind}", "stop")
        wait_until(
            lambda: crowd.grants_since(switched) >= 20 or crowd.sold_out.is_set(),
            "grants after the switch",
            30,
        )
        crowd.stop()
        after_fault = sell(app, small, strategy, range(SMALL + 1, SMALL * 10), recorder)
        drained = time.monotonic()
        # Every 202 persisted, every unknown outcome swept (its row found or its seat given back).
        wait_until(
            lambda: all(worker.backlog(c) == 0 and not _journaled(runtime, c) for c in (coupon_id, small)),
            "the drain",
            60,
        )
        drain_s = round(time.monotonic() - drained, 2)
        with runtime.services.engine.connect() as conn:
            small_rows, small_users = queries.count_issues(conn, small)
        figures = _figures(runtime, crowd, coupon_id, quantity, started)
        holder = next(iter(crowd.granted), 1)
        new_run, stamps = _served_stamps(app, group, strategy, {coupon_id: holder, small: 1})
        return figures | {
            "small_rows": small_rows,
            "small_users": small_users,
            "small_granted": before_fault + after_fault,
            "small_stamp": stamps[small],
            "kind": kind,
            "strategy": strategy,
            "wait_replicas": config.redis_wait_replicas,
            "old_run": old_run,
            "new_run": new_run,
            "stamp": stamps[coupon_id],
            "writes_on_old_after_resume": group.writes_after_resume.get(old.port, 0),
            "coupon_ids": [coupon_id, small],
            "drain_s": drain_s,
        }
    finally:
        if crowd is not None:
            crowd.stop()
        worker.stop()
        worker_thread.join(timeout=30)
        worker_runtime.close()
        runtime.close()


def issue(client: Any, coupon_id: int, strategy: str, user: int, recorder: Recorder | None, who: str) -> Any:
    """Ask once for a user through the app's test client; record the answer when recording."""
    invoked = time.monotonic()
    response = client.post(f"/coupons/{coupon_id}/issue?strategy={strategy}", json={"user_id": user})
    if recorder is not None:
        text = response.get_data(as_text=True)
        recorder.record(who, coupon_id, user, strategy, invoked, response.status_code, text)
    return response


def sell(app: Any, coupon_id: int, strategy: str, users: range, recorder: Recorder | None = None) -> int:
    """Issue to each user in turn (a 503 is asked again) until sold out; return the grants."""
    client, granted = app.test_client(), 0
    for user in users:
        for _ in range(100):
            response = issue(client, coupon_id, strategy, user, recorder, "seller")
            if response.status_code != 503:
                break
            time.sleep(0.05)  # pacing a client's retries, not synchronisation
        if response.status_code == 409:
            return granted
        granted += response.status_code == GRANTED[strategy]
    return granted


def _served_stamps(
    app: Any, group: SentinelGroup, strategy: str, holders: dict[int, int]
) -> tuple[str, dict[int, tuple[str, str]]]:
    """Ask once more for each coupon (as a user who holds it); return (primary run, stamps).

    A coupon is reconciled lazily, by the first request a new primary serves. Sentinel may
    switch again after the crowd's last request, so the stamps are read after one request
    each under the primary serving now, and read again if the primary changed meanwhile.
    """
    client = app.test_client()
    runtime: Runtime = app.extensions["coupon"]
    for _ in range(5):
        run = group.run_id(group.primary())
        for coupon_id, user in holders.items():
            for _ in range(600):
                if issue(client, coupon_id, strategy, user, None, "holder").status_code != 503:
                    break
                time.sleep(0.05)  # pacing a client's retries, not synchronisation
        stamps = {coupon_id: runtime.state.stamp(coupon_id) for coupon_id in holders}
        if group.run_id(group.primary()) == run:
            return run, stamps
    raise TimeoutError("Sentinel kept switching primaries")


def _figures(runtime: Runtime, crowd: Crowd, coupon_id: int, quantity: int, started: float) -> dict[str, Any]:
    with runtime.services.engine.connect() as conn:
        holders = queries.holders(conn, coupon_id)
    users = set(holders)
    seats = [seat for seat in holders.values() if seat]
    told_yes = set(crowd.granted)
    known = set(runtime.services.redis.smembers(runtime.state.keys(coupon_id).users))
    return {
        "quantity": quantity,
        "accepted": len(told_yes),
        "rows": len(holders),
        "lost": len(told_yes - users),
        "over_issued": max(0, len(holders) - quantity),
        "seats_twice": len(seats) - len(set(seats)),
        "phantom": len(users & crowd.refused) + len(users - told_yes - crowd.unavailable - crowd.refused),
        "unavailable": len(crowd.unavailable),
        "wrong": crowd.wrong[:5],
        "wrong_count": len(crowd.wrong),
        "holders_unknown_to_redis": len({str(user) for user in users} - known),
        "recover_s": round(crowd.longest_gap(started), 2),
    }


def _journaled(runtime: Runtime, coupon_id: int) -> int:
    """Count a coupon's reservations of unknown outcome, not yet swept."""
    return int(runtime.services.redis.zcard(runtime.state.keys(coupon_id).journal))


def _event(recorder: Recorder | None, name: str, phase: str) -> None:
    if recorder is not None:
        recorder.event(name, phase)
