from coupon.rules import Outcome


def test_lua_issues_once(runtime, make_coupon):
    coupon_id = make_coupon(quantity=1)
    lua = runtime.strategies["lua"]
    assert lua.issue(coupon_id, 1) is Outcome.ISSUED
    assert lua.issue(coupon_id, 1) is Outcome.ALREADY_ISSUED
    assert lua.issue(coupon_id, 2) is Outcome.SOLD_OUT
