"""The sold-out fast path: after sell-out, refusals stop reaching Redis, for a bounded time."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from coupon.core.rules import Outcome
from coupon.runtime import Runtime
from strategies.queued import Queued
from strategies.seated import LuaScript
from strategies.soldout import SoldOut


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def commands(runtime, monkeypatch) -> list[str]:
    """Record every command this process packs for the wire (other tests share the server).

    At the packer, so that commands sent alone, in redis-py pipelines and in the coalesced
    round trips (strategies/coalesce.py, which write on their own connection) all count.
    """
    sent: list[str] = []
    for serializer in (redis.connection.HiredisRespSerializer, redis.connection.PythonRespSerializer):
        real = serializer.pack

        def counting(self: Any, *args: Any, real: Any = real) -> Any:
            name = args[0]
            sent.append(name.decode() if isinstance(name, bytes) else str(name))
            return real(self, *args)

        monkeypatch.setattr(serializer, "pack", counting)
    return sent


def test_flag_lasts_ttl_and_clears():
    clock = FakeClock()
    flag = SoldOut(ttl=1.0, clock=clock)
    assert not flag.active(7)
    flag.mark(7)
    assert flag.active(7) and not flag.active(8)
    clock.now += 0.999
    assert flag.active(7)
    clock.now += 0.002
    assert not flag.active(7)
    flag.mark(7)
    flag.clear(7)
    assert not flag.active(7)
    never = SoldOut(ttl=0.0, clock=clock)
    never.mark(7)
    assert not never.active(7)


@pytest.mark.parametrize("strategy_class", [Queued, LuaScript])
def test_after_sell_out_refusals_stop_reaching_redis(runtime, make_coupon, commands, strategy_class):
    coupon_id = make_coupon(quantity=3)
    strategy = strategy_class(runtime.services)
    clock = FakeClock()
    strategy.soldout = SoldOut(ttl=1.0, clock=clock)
    winners = [strategy.issue(coupon_id, user) for user in (1, 2, 3)]
    assert set(winners) == {Outcome.ACCEPTED if strategy_class is Queued else Outcome.ISSUED}

    commands.clear()
    assert strategy.issue(coupon_id, 4) is Outcome.SOLD_OUT  # Redis says so, once
    assert commands == ["EVALSHA"]
    commands.clear()
    refusals = [strategy.issue(coupon_id, user) for user in range(5, 505)]
    assert refusals == [Outcome.SOLD_OUT] * 500
    assert commands == []  # answered from memory

    clock.now += 1.0  # the bound: after ttl one request asks Redis again
    assert strategy.issue(coupon_id, 505) is Outcome.SOLD_OUT
    assert commands == ["EVALSHA"]


def release(runtime: Runtime, strategy: Queued, coupon_id: int, user: int) -> None:
    """Give a reservation back in Redis and clear this process's flag, as LuaScript.release does."""
    runtime.strategies["lua"].journal.release(coupon_id, user)
    strategy.soldout.clear(coupon_id)


def test_stock_given_back_is_seen_at_once_here_and_within_ttl_elsewhere(runtime, make_coupon):
    coupon_id = make_coupon(quantity=1)
    here, elsewhere = Queued(runtime.services), Queued(runtime.services)
    clock = FakeClock()
    here.soldout = SoldOut(ttl=1.0, clock=clock)
    elsewhere.soldout = SoldOut(ttl=1.0, clock=clock)
    assert here.issue(coupon_id, 1) is Outcome.ACCEPTED
    assert here.issue(coupon_id, 2) is Outcome.SOLD_OUT
    assert elsewhere.issue(coupon_id, 2) is Outcome.SOLD_OUT

    # This process gives the reservation back (as the lua strategy does when its write fails:
    # LuaScript.release, the journal's release and the flag's clear).
    keys = runtime.state.keys(coupon_id)
    runtime.services.redis.xtrim(keys.stream, maxlen=0)
    release(runtime, here, coupon_id, 1)

    assert here.issue(coupon_id, 3) is Outcome.ACCEPTED  # its own flag is gone at once
    release(runtime, here, coupon_id, 3)
    runtime.services.redis.xtrim(keys.stream, maxlen=0)
    assert elsewhere.issue(coupon_id, 4) is Outcome.SOLD_OUT  # stale, within the bound
    clock.now += 1.0
    assert elsewhere.issue(coupon_id, 4) is Outcome.ACCEPTED


def test_http_sold_out_is_409(client):
    created = client.post(
        "/coupons",
        json={"name": "s", "total_quantity": 1},
        headers={"Authorization": "Bearer test-admin-token"},
    )
    coupon_id = created.get_json()["id"]
    url = f"/coupons/{coupon_id}/issue?strategy=queued"
    assert client.post(url, json={"user_id": 1}).status_code == 202
    for user in (2, 3):
        answer = client.post(url, json={"user_id": user})
        assert (answer.status_code, answer.get_json()["result"]) == (409, "sold_out")
