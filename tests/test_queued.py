"""The queued strategy: reserve and enqueue in one script, 202 at once, rows after the worker."""

from __future__ import annotations

from datetime import timedelta

import pytest
from redis.exceptions import ResponseError

from coupon.core.rules import Outcome, utcnow
from coupon.queue import reconcile, worker
from coupon.store import stream
from strategies.coalesce import Coalesced, _Call, many
from tests.crowd import crowd, errors, tally
from tests.queueing import accept, finish, pending, worker_process
from tests.totals import database_totals

ADMIN = {"Authorization": "Bearer test-admin-token"}


@pytest.mark.slow
def test_crowd_of_1000_for_100_then_burst_worker(runtime, make_coupon):
    coupon_id = make_coupon(quantity=100)
    queued = runtime.strategies["queued"]

    results = crowd(queued.issue, [(coupon_id, user) for user in range(1, 1001)], threads=32)

    assert errors(results) == []
    assert tally(results) == {Outcome.ACCEPTED: 100, Outcome.SOLD_OUT: 900}
    assert database_totals(runtime, coupon_id) == (0, 0, 0)  # nothing written on the request path
    assert worker.backlog(runtime, coupon_id) == 100
    output = finish(worker_process(runtime, "--burst", "--coupon", str(coupon_id)))
    assert "100 rows persisted" in output
    assert database_totals(runtime, coupon_id) == (100, 100, 100)
    assert worker.backlog(runtime, coupon_id) == 0
    assert pending(runtime, coupon_id) == 0
    report = reconcile.reconcile(runtime.state, coupon_id)
    assert report.drift == [] and report.reserved == 100 and report.counter == 100


def test_refusals_match_the_synchronous_strategies(runtime, make_coupon):
    queued = runtime.strategies["queued"]
    coupon_id = make_coupon(quantity=1)
    assert queued.issue(coupon_id, 1) is Outcome.ACCEPTED
    assert queued.issue(coupon_id, 1) is Outcome.ALREADY_ISSUED
    assert queued.issue(coupon_id, 2) is Outcome.SOLD_OUT
    later = make_coupon(quantity=5, issue_start=utcnow() + timedelta(hours=1))
    assert queued.issue(later, 1) is Outcome.NOT_STARTED
    over = make_coupon(quantity=5, issue_end=utcnow() - timedelta(seconds=1))
    assert queued.issue(over, 1) is Outcome.ENDED
    assert worker.backlog(runtime, later) == worker.backlog(runtime, over) == 0


def test_http_202_then_status_follows_the_request(app, client):
    created = client.post("/coupons", json={"name": "q", "total_quantity": 2}, headers=ADMIN)
    coupon_id = created.get_json()["id"]

    answer = client.post(f"/coupons/{coupon_id}/issue?strategy=queued", json={"user_id": 7})

    assert answer.status_code == 202
    assert answer.get_json() == {"result": "accepted", "coupon_id": coupon_id, "user_id": 7}
    status = f"/coupons/{coupon_id}/issues"
    assert client.get(f"{status}/7").get_json() == {"status": "pending"}
    assert client.get(f"{status}/8").get_json() == {"status": "none"}
    again = client.post(f"/coupons/{coupon_id}/issue?strategy=queued", json={"user_id": 7})
    assert (again.status_code, again.get_json()["result"]) == (409, "already_issued")
    assert worker.drain(app.extensions["coupon"], [coupon_id], timeout=30) == 1
    assert client.get(f"{status}/7").get_json() == {"status": "issued"}
    assert client.get(f"/coupons/{coupon_id}").get_json()["issued_quantity"] == 1
    assert client.get("/coupons/999999999/issues/7").status_code == 404


def test_rebuild_keeps_requests_still_in_the_stream(runtime, make_coupon):
    coupon_id = make_coupon(quantity=5)
    accept(runtime, coupon_id, range(1, 4))
    worker.drain(runtime, [coupon_id])
    accept(runtime, coupon_id, range(4, 6))  # in the stream, not persisted

    assert runtime.state.rebuild(coupon_id, overwrite=True)

    assert runtime.strategies["queued"].enqueue(coupon_id, 6) is Outcome.SOLD_OUT
    assert worker.drain(runtime, [coupon_id]) == 2
    assert database_totals(runtime, coupon_id) == (5, 5, 5)
    assert reconcile.reconcile(runtime.state, coupon_id).drift == []


def test_reconcile_reports_and_fixes_drift(runtime, make_coupon):
    coupon_id = make_coupon(quantity=10)
    accept(runtime, coupon_id, range(1, 6))
    worker.drain(runtime, [coupon_id])
    accept(runtime, coupon_id, [6])
    client, keys = runtime.services.redis, runtime.state.keys(coupon_id)
    # Lose the stream entry of user 6 (an orphan reservation) and forget user 1 in Redis.
    client.xtrim(keys.stream, maxlen=0)
    client.srem(keys.users, 1)

    report = reconcile.reconcile(runtime.state, coupon_id)

    assert report.orphans == [6] and report.missing_in_redis == [1]
    assert len(report.drift) == 3  # orphan, missing, counter 6 != 5 reserved users
    reconcile.fix(runtime.state, report)
    assert worker.drain(runtime, [coupon_id]) == 1  # the orphan, honoured
    assert database_totals(runtime, coupon_id) == (6, 6, 6)
    assert reconcile.reconcile(runtime.state, coupon_id).drift == []
    assert stream.registered(client, runtime.config.redis_prefix).count(coupon_id) == 1


def test_reconcile_counts_the_seats_held_when_redis_misses_a_row(runtime, make_coupon):
    coupon_id = make_coupon(quantity=10)
    accept(runtime, coupon_id, range(1, 4))
    worker.drain(runtime, [coupon_id])
    runtime.services.redis.srem(runtime.state.keys(coupon_id).users, 1)  # a row Redis forgot

    report = reconcile.reconcile(runtime.state, coupon_id)

    assert report.missing_in_redis == [1]
    assert (report.counter, report.held, report.reserved) == (3, 3, 2)
    assert report.drift == [
        "1 rows whose user Redis does not hold",
        "counter stands for 3 != 2 reserved users",
    ]


def test_reconcile_and_retry_failed_commands(app, client):
    created = client.post("/coupons", json={"name": "cli", "total_quantity": 3}, headers=ADMIN)
    coupon_id = created.get_json()["id"]
    for user in (1, 2):
        client.post(f"/coupons/{coupon_id}/issue?strategy=queued", json={"user_id": user})
    runtime = app.extensions["coupon"]
    runner = app.test_cli_runner()

    clean = runner.invoke(args=["reconcile", str(coupon_id)])
    assert clean.exit_code == 0 and "backlog 2" in clean.output and "no drift" in clean.output
    runtime.services.redis.xtrim(runtime.state.keys(coupon_id).stream, maxlen=0)
    drifted = runner.invoke(args=["reconcile", str(coupon_id)])
    assert drifted.exit_code == 1
    assert "drift: 2 reservations with no row, entry or dead letter" in drifted.output
    fixed = runner.invoke(args=["reconcile", str(coupon_id), "--fix"])
    assert fixed.exit_code == 0 and fixed.output.endswith("backlog 2, dead letters 0\n")
    retried = runner.invoke(args=["retry-failed", "--coupon", str(coupon_id)])
    assert retried.output == "re-driven 0 dead letters; 0 malformed ones left in place\n"
    assert worker.drain(runtime, [coupon_id]) == 2


def test_coalesced_calls_share_round_trips_and_keep_their_own_answers(runtime, monkeypatch):
    client = runtime.services.redis
    echo = "if ARGV[1] == '13' then return redis.error_reply('unlucky') end return tonumber(ARGV[1])"
    shared = Coalesced(client, many(echo))
    pipelines = []
    real_round_trip = shared._round_trip

    def counting_round_trip(commands):
        pipelines.append(1)
        return real_round_trip(commands)

    monkeypatch.setattr(shared, "_round_trip", counting_round_trip)
    key = f"{runtime.config.redis_prefix}{{coalesce}}:k"

    results = crowd(lambda n: shared(keys=[key], args=[n]), [(n,) for n in range(400)], threads=32)

    assert [r for n, r in enumerate(results) if n != 13] == [n for n in range(400) if n != 13]
    assert isinstance(results[13], ResponseError) and "unlucky" in str(results[13])
    assert 0 < len(pipelines) < 400  # calls waiting together went in one trip


def test_a_batch_for_a_coupon_another_redis_run_stamped_answers_no_state_to_every_call(runtime, make_coupon):
    # The batch form reads the epoch once for all its calls (reserve.lua's `once`).
    coupon_id = make_coupon(quantity=10)
    queued, client = runtime.strategies["queued"], runtime.services.redis
    keys = runtime.state.keys(coupon_id)
    assert queued.issue(coupon_id, 1) is Outcome.ACCEPTED  # stamped by this run
    client.hset(keys.meta, "epoch", "a run before a restart")
    batch = [_Call(queued.script_keys(coupon_id, "stream"), [user, 0, stream.GROUP]) for user in (2, 3, 4)]
    queued._enqueue_shared._send(batch)
    assert [[int(part) for part in call.result] for call in batch] == [[5, 0]] * 3
    assert client.scard(keys.users) == 1 and client.xlen(keys.stream) == 1  # none of them ran
    assert queued.issue(coupon_id, 2) is Outcome.ACCEPTED  # restored, stamped, served
