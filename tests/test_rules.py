"""The business rules without I/O: the window, the stock, one per user, instants."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

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
        ("2030-01-01T09:00:00Z", START),
        ("2030-01-01t09:00:00z", START),  # RFC 3339 letters are case-insensitive
        ("2030-01-01T09:00:00+00:00", START),
        ("2030-01-01T09:00:00-00:00", START),
        ("2030-01-01T11:00:00+02:00", START),
        ("2030-01-01T04:30:00-04:30", START),
        ("2030-01-01T09:00:00.000001Z", START + TICK),
        ("2030-01-01T09:00:00.5Z", START + 500_000 * TICK),
        ("1001-01-01T00:00:00+23:59", datetime(1000, 12, 31, 0, 1)),
        ("9998-12-31T23:59:59.999999-23:59", datetime(9999, 1, 1, 23, 58, 59, 999999)),
        ("2028-02-29T00:00:00Z", datetime(2028, 2, 29)),
    ],
)
def test_parse_instant_gives_naive_utc(text: str, expected: datetime) -> None:
    parsed = rules.parse_instant(text)
    assert parsed == expected
    assert parsed.tzinfo is None


@pytest.mark.parametrize(
    "text",
    [
        "",
        "tomorrow",
        "2030-13-01T00:00:00Z",
        "2030-01-01T25:00:00Z",
        "2030-02-30T00:00:00Z",
        "2029-02-29T00:00:00Z",
        "2030-01-01T23:59:60Z",  # no leap second: a datetime cannot hold it
        "2030-01-01T09:00:00",  # RFC 3339 requires the offset
        "2030-01-01",
        "2026-W01-1",
        "2026-001",
        "20300101T090000Z",
        "2030-01-01 09:00:00Z",
        "2030-01-01T09:00Z",
        "2030-01-01T09:00:00+0200",
        "2030-01-01T09:00:00+24:00",
        "2030-01-01T09:00:00.1234567Z",  # finer than the microsecond every store keeps
        "0001-01-01T00:00:00+01:00",
        "1000-01-01T00:00:00Z",
        "9999-12-31T23:59:59-01:00",
        "9999-01-01T00:00:00Z",
        "+12030-01-01T00:00:00Z",
        "\uff12030-01-01T00:00:00Z",
        "2030-01-01T09:00:00Z\n",
    ],
)
def test_parse_instant_refuses_what_is_not_rfc_3339_within_range(text: str) -> None:
    with pytest.raises(ValueError):
        rules.parse_instant(text)


def test_format_instant_names_utc_and_round_trips() -> None:
    assert rules.format_instant(START) == "2030-01-01T09:00:00+00:00"
    assert rules.format_instant(None) is None
    assert rules.parse_instant(rules.format_instant(START + TICK) or "") == START + TICK


def test_epoch_conversion() -> None:
    assert rules.to_epoch(datetime(1970, 1, 1, 0, 0, 1)) == 1.0
    assert rules.to_epoch(None) is None


@pytest.mark.parametrize(
    ("moment", "text"),
    [
        (datetime(1970, 1, 1, 0, 0, 1), "1.000000"),
        (datetime(1969, 12, 31, 23, 59, 59, 999999), "-0.000001"),
        (datetime(9999, 12, 31, 23, 59, 59, 999999), "253402300799.999999"),
        (datetime(1, 1, 1), "-62135596800.000000"),
        (None, ""),
    ],
)
def test_epoch_text_is_exact_to_the_microsecond(moment: datetime | None, text: str) -> None:
    assert rules.epoch_text(moment) == text
    assert rules.from_epoch_text(text) == moment
    assert rules.from_epoch_text(text.encode()) == moment


def test_epoch_text_reads_the_older_float_encoding() -> None:
    assert rules.from_epoch_text(repr(1893488400.000001)) == START + TICK
    # Once written for 9999-12-31T23:59:59.999999: a float rounds it up to year 10000.
    assert rules.from_epoch_text(repr(253402300799.999999)) == datetime.max


def test_utcnow_is_naive_and_close_to_utc() -> None:
    now = rules.utcnow()
    assert now.tzinfo is None
    assert abs(datetime.now(UTC).replace(tzinfo=None) - now) < timedelta(seconds=5)
