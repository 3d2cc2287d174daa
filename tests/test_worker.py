"""The worker: nothing lost, nothing doubled, whatever dies or fails on the way."""

from __future__ import annotations

import signal
import threading

import pytest

from coupon.lab.chaos.proxy import Proxy
from coupon.queue import reconcile, worker
from coupon.queue.worker import Settings, Worker
from coupon.runtime import Runtime
from coupon.store import stream
from tests.backends import test_config as config_for
from tests.queueing import accept, failures, finish, pending, wait_for, worker_process
from tests.totals import database_totals

# Claim as soon as an entry is idle (the killed worker is known dead), in a batch that mixes
# the stale entries with new ones.
QUICK_CLAIM = Settings(batch=50, claim_idle=0.0)


@pytest.mark.slow
@pytest.mark.parametrize("pause_at", ["read", "commit"])
def test_worker_killed_mid_batch_then_another_loses_and_doubles_nothing(runtime, make_coupon, pause_at):
    coupon_id = make_coupon(quantity=50)
    accept(runtime, coupon_id, range(1, 51))
    victim = worker_process(
        runtime,
        "--batch",
        "20",
        "--pause",
        "60",
        "--pause-at",
        pause_at,
        "--coupon",
        str(coupon_id),
    )
    try:
        # Killed holding a batch: before its transaction, or after its commit and before its ack.
        wait_for(lambda: pending(runtime, coupon_id) == 20, "the victim to take a batch")
        if pause_at == "commit":
            wait_for(lambda: database_totals(runtime, coupon_id)[0] == 20, "the victim's commit")
        else:
            assert database_totals(runtime, coupon_id)[0] == 0
    finally:
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)

    Worker(runtime, settings=QUICK_CLAIM, coupon_ids=[coupon_id]).run(burst=True, timeout=60)

    assert database_totals(runtime, coupon_id) == (50, 50, 50)
    assert worker.backlog(runtime, coupon_id) == pending(runtime, coupon_id) == 0
    assert failures(runtime, coupon_id) == 0
    assert reconcile.reconcile(runtime.state, coupon_id).drift == []


def test_two_workers_draining_concurrently(runtime, make_coupon):
    coupon_id = make_coupon(quantity=300)
    accept(runtime, coupon_id, range(1, 301))
    # Each batch takes a while, so both workers are sure to hold batches at the same time.
    settings = Settings(batch=25, pause=0.05)
    workers = [Worker(runtime, consumer=f"w{n}", settings=settings, coupon_ids=[coupon_id]) for n in (1, 2)]
    start = threading.Barrier(2)

    def run(one: Worker) -> None:
        start.wait(timeout=10)
        one.run(burst=True, timeout=60)

    threads = [threading.Thread(target=run, args=(one,)) for one in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)

    assert [one.persisted > 0 for one in workers] == [True, True]
    assert sum(one.persisted for one in workers) == 300
    assert database_totals(runtime, coupon_id) == (300, 300, 300)
    assert worker.backlog(runtime, coupon_id) == pending(runtime, coupon_id) == 0


def test_malformed_entries_are_dead_lettered_and_the_rest_persisted(runtime, make_coupon):
    coupon_id = make_coupon(quantity=20)
    keys = runtime.state.keys(coupon_id)
    client = runtime.services.redis
    accept(runtime, coupon_id, range(1, 11))
    client.xadd(keys.stream, {"at": "1"})
    client.xadd(keys.stream, {"user": "DROP TABLE coupon"})
    accept(runtime, coupon_id, range(11, 21))

    assert worker.drain(runtime, [coupon_id]) == 20

    assert database_totals(runtime, coupon_id) == (20, 20, 20)
    dead = list(stream.entries(client, keys.dead))
    assert sorted(entry.fields["reason"] for entry in dead) == [
        "malformed entry: no 'user' field",
        "malformed entry: user 'DROP TABLE coupon' is not a positive 64-bit integer",
    ]
    assert failures(runtime, coupon_id) == 2
    assert worker.backlog(runtime, coupon_id) == 0
    assert reconcile.retry_failed(runtime.state, [coupon_id]) == (0, 2)  # malformed stay


def test_entry_delivered_too_often_is_dead_lettered_then_retried(runtime, make_coupon):
    coupon_id = make_coupon(quantity=5)
    accept(runtime, coupon_id, [1, 2])
    redis, keys = runtime.services.redis, runtime.state.keys(coupon_id)
    # Two consumers that each took the first entry and died: it has been delivered 3 times.
    first = redis.xreadgroup(stream.GROUP, "dead-1", {keys.stream: ">"}, count=1)
    entry_id = (first[keys.stream] if isinstance(first, dict) else first[0][1])[0][0]
    for name in ("dead-2", "dead-3"):
        redis.xclaim(keys.stream, stream.GROUP, name, 0, [entry_id])

    settings = Settings(claim_idle=0.0, max_deliveries=3)
    Worker(runtime, settings=settings, coupon_ids=[coupon_id]).run(burst=True, timeout=30)

    assert database_totals(runtime, coupon_id)[0] == 1
    assert failures(runtime, coupon_id) == 1
    (dead,) = stream.entries(redis, keys.dead)
    assert dead.fields["reason"] == "not persisted after 3 deliveries"
    assert reconcile.reconcile(runtime.state, coupon_id).drift == []  # a dead letter holds its seat
    assert reconcile.retry_failed(runtime.state, [coupon_id]) == (1, 0)
    assert worker.drain(runtime, [coupon_id]) == 1
    assert database_totals(runtime, coupon_id) == (2, 2, 2) and failures(runtime, coupon_id) == 0


def test_database_unreachable_keeps_entries_pending_until_it_is_back(backend, runtime, make_coupon):
    coupon_id = make_coupon(quantity=30)
    accept(runtime, coupon_id, range(1, 31))
    with Proxy(backend.url) as proxy:
        redis_url, prefix = runtime.config.redis_url, runtime.config.redis_prefix
        config = config_for(proxy.url, redis_url, redis_prefix=prefix)
        cut_off = Runtime.open(config)
        proxy.cut()
        one = Worker(cut_off, settings=Settings(batch=10, backoff_max=0.2), coupon_ids=[coupon_id])
        thread = threading.Thread(target=one.run, kwargs={"burst": True, "timeout": 60})
        thread.start()
        try:
            wait_for(lambda: one.outages >= 3, "the worker to meet the outage")
            assert pending(runtime, coupon_id) == 10  # held, not acknowledged
            assert worker.backlog(runtime, coupon_id) == 30
            assert database_totals(runtime, coupon_id) == (0, 0, 0)
            proxy.restore()
            thread.join(timeout=60)
        finally:
            one.stop()
            thread.join(timeout=10)
            cut_off.close()
    assert database_totals(runtime, coupon_id) == (30, 30, 30)
    assert worker.backlog(runtime, coupon_id) == pending(runtime, coupon_id) == 0


@pytest.mark.slow
def test_sigterm_finishes_the_batch_in_hand_and_exits(runtime, make_coupon):
    coupon_id = make_coupon(quantity=30)
    accept(runtime, coupon_id, range(1, 31))
    process = worker_process(runtime, "--batch", "10", "--pause", "1", "--coupon", str(coupon_id))
    wait_for(lambda: pending(runtime, coupon_id) == 10, "the worker to take a batch")
    process.send_signal(signal.SIGTERM)

    output = finish(process, timeout=30)

    assert "10 rows persisted" in output
    assert database_totals(runtime, coupon_id) == (10, 10, 10)
    assert worker.backlog(runtime, coupon_id) == 20 and pending(runtime, coupon_id) == 0


def test_a_stream_missing_from_the_registry_is_found_and_drained(runtime, make_coupon):
    coupon_id = make_coupon(quantity=5)
    accept(runtime, coupon_id, [1, 2])
    client, prefix = runtime.services.redis, runtime.config.redis_prefix
    # As if the process that enqueued had died before registering the coupon.
    stream.unregister(client, prefix, coupon_id)

    worker.drain(runtime, timeout=60)  # every coupon: the registry, then a SCAN

    assert database_totals(runtime, coupon_id) == (2, 2, 2)
    assert coupon_id in stream.registered(client, prefix)


def test_a_stream_nobody_registered_becomes_rows_within_the_recovery_bound(runtime, make_coupon):
    # Found by the nemesis (seed 21 of report 20261207-141602): the first accept of a coupon ran
    # its script, its reply was lost, so no process registered the stream, and its 202s waited
    # for the workers' discovery, then every 30 s, past the recovery bound.
    running = Worker(runtime, settings=Settings(recovery=1.0))
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    try:
        seen = make_coupon(quantity=5)
        accept(runtime, seen, [1])
        wait_for(lambda: database_totals(runtime, seen)[0] == 1, "the worker to poll the registry")
        coupon_id = make_coupon(quantity=5)
        accept(runtime, coupon_id, [1, 2])
        stream.unregister(runtime.services.redis, runtime.config.redis_prefix, coupon_id)
        # Within the bound and the sweep's period (1.3 s here), with room for a slow machine.
        wait_for(lambda: database_totals(runtime, coupon_id) == (2, 2, 2), "the unregistered rows", 10.0)
    finally:
        running.stop()
        thread.join(timeout=30)
    assert not thread.is_alive()
