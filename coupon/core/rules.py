"""The business rules of issuance, free of I/O: outcomes, the issue window, the stock."""
from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timezone


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
    return datetime.now(timezone.utc).replace(tzinfo=None)


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
    return moment.replace(tzinfo=timezone.utc).timestamp()


def parse_instant(text: str) -> datetime:
    """Parse ISO-8601 into naive UTC; a time without an offset is taken as UTC."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment


def format_instant(moment: datetime | None) -> str | None:
    """Format a naive UTC datetime as ISO-8601 with its offset."""
    if moment is None:
        return None
    return moment.replace(tzinfo=timezone.utc).isoformat()
