"""A coupon is issued by one family of strategies: why (mixing over-issues), and that it holds."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient

from coupon.core import queries
from coupon.core.queries import OverIssue
from coupon.core.rules import Outcome
from coupon.runtime import Runtime
from strategies import FAMILIES, FAMILY_OF, LAB_ONLY, REGISTRY
from strategies.reservations import RedisStrategy
from tests.conftest import MakeCoupon
from tests.totals import database_totals, redis_totals

AUTH = {"Authorization": "Bearer test-admin-token"}
# Read the count without a row lock, add to it unconditionally: exact only among themselves.
UNGUARDED = {"none": "take", "process_lock": "take", "redis_lock": "take", "fenced_lock": "take_fenced"}
# Re-check the stock in the write itself; select_for_update holds the row, so it cannot be
# interrupted from the same thread and only ever stands in as the other writer. atomic_update
# reads nothing before its write (a conditional UPDATE): the other issues just before it.
GUARDED = {"atomic_update": "add_issued_if_available", "optimistic": "take"}


def interloper(runtime: Runtime, coupon_id: int, other: str, original: Callable[..., Any]) -> Any:
    """Wrap a strategy's stock step so that another strategy issues between its read and write."""

    def take(*args: Any, **kwargs: Any) -> Any:
        assert runtime.strategies[other].issue(coupon_id, 2) is Outcome.ISSUED
        return original(*args, **kwargs)

    return take


def test_every_strategy_has_one_family() -> None:
    assert sorted(FAMILY_OF) == sorted(REGISTRY)
    assert sum(len(names) for names in FAMILIES.values()) == len(REGISTRY)
    assert LAB_ONLY == {"none", "process_lock"}


def test_across_families_a_coupon_over_issues(runtime: Runtime, make_coupon: MakeCoupon) -> None:
    # The issue's table: a coupon of 3 taken by atomic_update, then asked with lua, over-issues.
    # lua's first call on a coupon reconciles Redis with the rows once (strategies/epoch.py);
    # from then on Redis counts alone, and the rows another family writes go unseen.
    coupon_id = make_coupon(quantity=3)
    assert runtime.strategies["lua"].issue(coupon_id, 4) is Outcome.ISSUED
    for user in (1, 2):
        assert runtime.strategies["atomic_update"].issue(coupon_id, user) is Outcome.ISSUED
    for user in (5, 6):
        assert runtime.strategies["lua"].issue(coupon_id, user) is Outcome.ISSUED
    assert database_totals(runtime, coupon_id)[:2] == (5, 5)
    assert FAMILY_OF["atomic_update"] != FAMILY_OF["lua"]
    # The workers' fold (every coupon, every few seconds) must not fail on such a coupon: it
    # counts up to the total, which the CHECK admits, and leaves the rows as the evidence.
    with runtime.services.engine.begin() as conn:
        assert queries.fold_issued(conn, coupon_id) == 5
    assert database_totals(runtime, coupon_id) == (5, 5, 3)


@pytest.mark.parametrize("name", UNGUARDED)
def test_an_unguarded_writer_beside_any_other_over_issues_or_meets_the_database_guard(
    runtime: Runtime, make_coupon: MakeCoupon, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    coupon_id = make_coupon(quantity=1)
    strategy, step = runtime.strategies[name], UNGUARDED[name]
    original = getattr(strategy, step)
    monkeypatch.setattr(strategy, step, interloper(runtime, coupon_id, "atomic_update", original))
    if name in LAB_ONLY:
        # Their count stops at the total (LEAST), so the CHECK cannot see their race: the rows do.
        assert strategy.issue(coupon_id, 1) is Outcome.ISSUED
        assert database_totals(runtime, coupon_id) == (2, 2, 1)
    else:
        # They add to the count unconditionally: the CHECK refuses the count past the total and
        # the whole transaction, row included (migration 0004). Pinning keeps them from trying.
        with pytest.raises(OverIssue):
            strategy.issue(coupon_id, 1)
        assert database_totals(runtime, coupon_id) == (1, 1, 1)
    assert FAMILY_OF[name] != FAMILY_OF["atomic_update"] and FAMILIES[FAMILY_OF[name]] == (name,)


@pytest.mark.parametrize("other", FAMILIES["database"])
@pytest.mark.parametrize("name", GUARDED)
def test_within_the_database_family_a_write_rechecks_the_stock(
    runtime: Runtime, make_coupon: MakeCoupon, monkeypatch: pytest.MonkeyPatch, name: str, other: str
) -> None:
    coupon_id = make_coupon(quantity=1)
    strategy = runtime.strategies[name]
    step_of = queries if name == "atomic_update" else strategy
    original = getattr(step_of, GUARDED[name])
    calls = []

    def once(*args: Any, **kwargs: Any) -> Any:
        take = interloper(runtime, coupon_id, other, original) if not calls else original
        calls.append(1)
        return take(*args, **kwargs)

    monkeypatch.setattr(step_of, GUARDED[name], once)
    assert strategy.issue(coupon_id, 1) is Outcome.SOLD_OUT
    assert database_totals(runtime, coupon_id) == (1, 1, 1)


def create(client: FlaskClient, strategy: str | None, quantity: int = 3) -> int:
    """Create a coupon through the API, pinned to strategy (None: the default)."""
    body = {"name": "family", "total_quantity": quantity, "strategy": strategy}
    response = client.post("/coupons", json=body, headers=AUTH)
    assert response.status_code == 201, response.get_json()
    return int(response.get_json()["id"])


def post(client: FlaskClient, coupon_id: int, user: int, strategy: str | None) -> tuple[int, Any]:
    """Ask for the coupon; return the status and the JSON body."""
    query = {} if strategy is None else {"strategy": strategy}
    response = client.post(f"/coupons/{coupon_id}/issue", json={"user_id": user}, query_string=query)
    return response.status_code, response.get_json()


def test_the_pin_refuses_another_family_with_409(make_client: Any) -> None:
    client = make_client()
    runtime = client.application.extensions["coupon"]  # its own Redis key prefix
    coupon_id = create(client, "atomic_update")
    for user in (1, 2, 3):
        assert post(client, coupon_id, user, None) == (
            201,
            {"result": "issued", "coupon_id": coupon_id, "user_id": user},
        )
    for user, strategy in ((4, "lua"), (5, "queued"), (7, "redis_lock"), (8, "fenced_lock")):
        status, body = post(client, coupon_id, user, strategy)
        assert (status, body["field"], body["family"], body["strategy"]) == (
            409,
            "strategy",
            "database",
            "atomic_update",
        )
        assert "database" in body["error"] and strategy in body["error"]
    assert database_totals(runtime, coupon_id) == (3, 3, 3)
    assert redis_totals(runtime, coupon_id) == (0, 0)  # no reservation left behind either


@pytest.mark.parametrize("family", ["database", "redis"])
def test_a_request_may_pick_within_the_family(make_client: Any, family: str) -> None:
    client = make_client()
    runtime = client.application.extensions["coupon"]
    members = [name for name in FAMILIES[family] if REGISTRY[name].synchronous]
    coupon_id = create(client, members[0], quantity=len(members))
    told = [post(client, coupon_id, user, name)[0] for user, name in enumerate(members, 1)]
    assert told == [201] * len(members)
    assert post(client, coupon_id, 99, members[-1]) == (
        409,
        {"result": "sold_out", "coupon_id": coupon_id, "user_id": 99},
    )
    # Rows and users; lua leaves the issued count to the workers' fold, so it is not compared.
    assert database_totals(runtime, coupon_id)[:2] == (len(members), len(members))
    # Redis knows the users of the strategies that reserve there (redis_counter filters there).
    in_redis = sum(issubclass(REGISTRY[name], RedisStrategy) for name in members)
    assert redis_totals(runtime, coupon_id) == (in_redis, in_redis)


@pytest.mark.parametrize("name", sorted(LAB_ONLY))
def test_lab_only_strategies_are_refused_unless_the_lab_enables_them(
    runtime: Runtime, make_client: Any, make_coupon: MakeCoupon, name: str
) -> None:
    served = make_client()
    response = served.post(
        "/coupons", json={"name": "x", "total_quantity": 1, "strategy": name}, headers=AUTH
    )
    assert response.status_code == 403 and response.get_json()["field"] == "strategy"
    assert "COUPON_LAB_STRATEGIES" in response.get_json()["error"]
    coupon_id = make_coupon(quantity=1, strategy=name)  # the lab creates what it measures
    for strategy in (name, None):
        status, body = post(served, coupon_id, 1, strategy)
        assert (status, body["field"]) == (403, "strategy"), body
    assert database_totals(runtime, coupon_id) == (0, 0, 0)
    lab = make_client(lab_strategies=True)
    assert post(lab, create(lab, name, quantity=1), 1, None)[0] == 201
    assert post(lab, coupon_id, 1, name)[0] == 201


def test_a_coupon_from_before_the_pin_follows_the_default(runtime: Runtime, make_client: Any) -> None:
    with runtime.services.engine.begin() as conn:
        coupon_id = queries.create_coupon(conn, "legacy", 2, None, None)  # strategy NULL
        row = queries.get_coupon(conn, coupon_id)
    assert row is not None
    runtime.state.prepare(row)
    client = make_client(default_strategy="atomic_update")
    shown = client.get(f"/coupons/{coupon_id}").get_json()
    assert (shown["strategy"], shown["family"]) == ("atomic_update", "database")
    assert post(client, coupon_id, 1, "lua")[0] == 409
    assert post(client, coupon_id, 1, "optimistic")[0] == 201
    assert post(client, coupon_id, 2, None)[0] == 201
    assert database_totals(runtime, coupon_id) == (2, 2, 2)
