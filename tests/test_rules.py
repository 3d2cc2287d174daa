"""The business rules without I/O: the window, the stock, one per user, instants."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from coupon.core import rules
from coupon.core.rules import CouponRow, Outcome

START = datetime(2030, 1, 1, 9, 0, 0)
END = datetime(2030, 1, 1, 10, 0, 0)
TICK = timedelta(microseconds=1)


def coupon(total: int = 10, issued: int = 0) -> CouponRow:
    """Build a coupon open over [START, END) with the given stock."""
    return CouponRow(
        id=1,
        total_quantity=total,
        issued_quantity=issued,
        issue_start=START,
        issue_end=END,
        version=0,
    )


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (START - TICK, Outcome.NOT_STARTED),
        (START, None),  # exactly at start: open
        (START + TICK, None),
        (END - TICK, None),
        (END, Outcome.ENDED),  # exactly at end: ended (half-open window)
        (END + TICK, Outcome.ENDED),
    ],
)
def test_window_is_half_open(now: datetime, expected: Outcome | None) -> None:
    assert rules.window_refusal(START, END, now) is expected


def test_window_without_bounds_is_always_open() -> None:
    assert rules.window_refusal(None, None, datetime(1970, 1, 1)) is None
    assert rules.window_refusal(None, END, END - TICK) is None
    assert rules.window_refusal(None, END, END) is Outcome.ENDED
    assert rules.window_refusal(START, None, START) is None
    assert rules.window_refusal(START, None, START - TICK) is Outcome.NOT_STARTED


@pytest.mark.parametrize(
    ("issued", "expected"),
    [(0, None), (9, None), (10, Outcome.SOLD_OUT), (11, Outcome.SOLD_OUT)],
)
def test_stock(issued: int, expected: Outcome | None) -> None:
    assert rules.check(coupon(total=10, issued=issued), False, START) is expected


def test_window_is_checked_before_the_user_and_the_stock() -> None:
    sold_out = coupon(total=1, issued=1)
    assert rules.check(sold_out, True, START - TICK) is Outcome.NOT_STARTED
    assert rules.check(sold_out, True, END) is Outcome.ENDED


def test_duplicate_user_is_checked_before_the_stock() -> None:
    assert rules.check(coupon(total=1, issued=1), True, START) is Outcome.ALREADY_ISSUED
    assert rules.check(coupon(total=1, issued=0), True, START) is Outcome.ALREADY_ISSUED
    assert rules.check(coupon(total=1, issued=0), False, START) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2030-01-01T09:00:00", START),  # no offset: taken as UTC
        ("2030-01-01T09:00:00Z", START),
        ("2030-01-01T09:00:00+00:00", START),
        ("2030-01-01T11:00:00+02:00", START),
        ("2030-01-01T04:30:00-04:30", START),
        ("2030-01-01T09:00:00.000001", START + TICK),
        ("2030-01-01", datetime(2030, 1, 1)),
    ],
)
def test_parse_instant_gives_naive_utc(text: str, expected: datetime) -> None:
    parsed = rules.parse_instant(text)
    assert parsed == expected
    assert parsed.tzinfo is None


@pytest.mark.parametrize("text", ["", "tomorrow", "2030-13-01T00:00:00", "2030-01-01T25:00:00"])
def test_parse_instant_refuses_garbage(text: str) -> None:
    with pytest.raises(ValueError):
        rules.parse_instant(text)


def test_format_instant_names_utc_and_round_trips() -> None:
    assert rules.format_instant(START) == "2030-01-01T09:00:00+00:00"
    assert rules.format_instant(None) is None
    assert rules.parse_instant(rules.format_instant(START + TICK) or "") == START + TICK


def test_epoch_conversion() -> None:
    assert rules.to_epoch(datetime(1970, 1, 1, 0, 0, 1)) == 1.0
    assert rules.to_epoch(None) is None


def test_utcnow_is_naive_and_close_to_utc() -> None:
    now = rules.utcnow()
    assert now.tzinfo is None
    assert abs(datetime.now(timezone.utc).replace(tzinfo=None) - now) < timedelta(seconds=5)
