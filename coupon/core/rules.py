"""The business rules of issuance, free of I/O: outcomes, the issue window, the stock."""

from __future__ import annotations

import enum
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal


class Outcome(str, enum.Enum):
    """What an issue attempt ended as; every strategy answers with one of these."""

    ISSUED = "issued"
    ACCEPTED = "accepted"  # reserved in Redis; the worker writes the row later (queued)
    SOLD_OUT = "sold_out"
    ALREADY_ISSUED = "already_issued"
    NOT_STARTED = "not_started"
    ENDED = "ended"


class CouponNotFound(LookupError):
    """Raised when an issue names a coupon that does not exist."""


class Busy(RuntimeError):
    """Raised when an issue could not finish within its retry deadline (answer 503, retry)."""


@dataclass(frozen=True)
class CouponRow:
    """The fields of a coupon that issuance decides on."""

    id: int
    total_quantity: int
    issued_quantity: int
    issue_start: datetime | None
    issue_end: datetime | None
    version: int


def utcnow() -> datetime:
    """Return the current time as a naive UTC datetime, the form the database stores."""
    return datetime.now(UTC).replace(tzinfo=None)


def epoch_now() -> float:
    """Return the current time as epoch seconds (the form Redis keeps): to_epoch(utcnow()), cheaply."""
    return time.time()


def window_refusal(start: datetime | None, end: datetime | None, now: datetime) -> Outcome | None:
    """Refuse outside the half-open window [start, end); None means the window is open."""
    if start is not None and now < start:
        return Outcome.NOT_STARTED
    if end is not None and now >= end:
        return Outcome.ENDED
    return None


def check(coupon: CouponRow, already_issued: bool, now: datetime) -> Outcome | None:
    """Apply the rules in their one order: window, one per user, stock; None means issue."""
    refusal = window_refusal(coupon.issue_start, coupon.issue_end, now)
    if refusal is not None:
        return refusal
    if already_issued:
        return Outcome.ALREADY_ISSUED
    if coupon.issued_quantity >= coupon.total_quantity:
        return Outcome.SOLD_OUT
    return None


def to_epoch(moment: datetime | None) -> float | None:
    """Convert a naive UTC datetime to epoch seconds (for Redis), keeping None."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC).timestamp()


EPOCH = datetime(1970, 1, 1)
MICROSECOND = timedelta(microseconds=1)


def epoch_text(moment: datetime | None) -> str:
    """Write a naive UTC datetime as exact epoch seconds, '<s>.<6 digits>' ('' for None).

    Integer arithmetic only: a float cannot hold a far instant to the microsecond, and one
    read back through a float may land past year 9999.
    """
    if moment is None:
        return ""
    micros = (moment - EPOCH) // MICROSECOND
    sign = "-" if micros < 0 else ""
    seconds, fraction = divmod(abs(micros), 1_000_000)
    return f"{sign}{seconds}.{fraction:06d}"


def from_epoch_text(text: str | bytes | None) -> datetime | None:
    """Read epoch seconds back exactly ('' means open-ended); any decimal form is accepted.

    An instant past what a datetime holds (written by an older float encoding) is clamped
    to the first or last representable one, which decides every window the same way.
    """
    if not text:
        return None
    if isinstance(text, bytes):
        text = text.decode()
    micros = int((Decimal(text) * 1_000_000).to_integral_value(ROUND_HALF_EVEN))
    try:
        return EPOCH + micros * MICROSECOND
    except OverflowError:
        return datetime.max if micros > 0 else datetime.min


# RFC 3339 date-times whose year (1001 to 9998) keeps them, under any offset, within what every
# store holds: MySQL's DATETIME (years 1000-9999), PostgreSQL, Python's datetime. The offset is
# required; a leap second (:60) and fractions finer than a microsecond are not accepted. The
# OpenAPI document states the same pattern (tests/test_openapi.py keeps them equal).
INSTANT_PATTERN = (
    r"^(100[1-9]|10[1-9][0-9]|1[1-9][0-9]{2}|[2-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])"
    r"-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[Tt]([01][0-9]|2[0-3]):([0-5][0-9]):([0-5][0-9])"
    r"(\.[0-9]{1,6})?([Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])$"
)
_INSTANT = re.compile(INSTANT_PATTERN)


def parse_instant(text: str) -> datetime:
    """Parse an RFC 3339 date-time into naive UTC; raise ValueError for anything else."""
    match = _INSTANT.fullmatch(text)
    if match is None:
        raise ValueError(f"not an RFC 3339 date-time in years 1001-9998: {text[:40]!r}")
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    micros = int((fraction or ".")[1:].ljust(6, "0"))
    # A day the month does not have (2030-02-30) raises ValueError here.
    moment = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), micros)
    if offset not in ("Z", "z"):
        shift = timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6]))
        moment = moment - shift if offset[0] == "+" else moment + shift
    return moment


def format_instant(moment: datetime | None) -> str | None:
    """Format a naive UTC datetime as RFC 3339 with its offset."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC).isoformat()
