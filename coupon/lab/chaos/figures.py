"""One chaos row's columns, from what the database and Redis hold and what callers heard.

Per coupon, with the users' answers known one by one (locust --users-out): lost = told yes
(201/202), no row; phantom = a row whose user only ever heard a refusal (a 409 other than
already_issued: "no" while holding a coupon); stranded = seats Redis holds with no row, once
the recovery bound has passed; over-issued = rows above the quantity.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

# The promises a row is checked against, each by the figure that breaks it.
PROMISES = (
    ("no over-issue", "over_issued"),
    ("no lost yes", "lost"),
    ("no phantom", "phantom"),
    ("no stranded seat", "stranded"),
)


@dataclass(frozen=True)
class CouponFacts:
    """The ground truth of one coupon after a chaos row, and what its callers heard."""

    quantity: int
    rows: int  # issue rows in the database
    row_users: frozenset[int]  # users holding those rows
    held: int  # seats Redis holds for it (0 where the strategy keeps no Redis state)
    told: Mapping[str, frozenset[int]] = field(default_factory=dict)  # yes/no/already/error -> users
    errors: int = 0  # answers 5xx or none at all

    def heard(self, kind: str) -> frozenset[int]:
        """Return the users who heard kind at least once."""
        return frozenset(self.told.get(kind, ()))


@dataclass(frozen=True)
class Figures:
    """The columns of a chaos row, summed over its coupons."""

    quantity: int = 0
    told_yes: int = 0
    rows: int = 0
    lost: int = 0
    stranded: int = 0
    over_issued: int = 0
    phantom: int = 0
    errors: int = 0
    coupons: int = 0
    sold_out: int = 0

    def broken(self) -> list[str]:
        """Name the promises this row broke (empty: it kept them all)."""
        return [name for name, figure in PROMISES if getattr(self, figure)]

    @property
    def verdict(self) -> str:
        """Return 'kept' or the broken promises with their figures, for the table."""
        if not self.broken():
            return "kept"
        named = {
            "over_issued": "over-issued +{}",
            "lost": "{} lost",
            "phantom": "{} phantom",
            "stranded": "{} stranded",
        }
        return ", ".join(
            named[figure].format(getattr(self, figure)) for _, figure in PROMISES if getattr(self, figure)
        )

    def as_dict(self) -> dict[str, Any]:
        """Return every figure, the verdict included."""
        return {**asdict(self), "verdict": self.verdict, "broken": self.broken()}


def of_coupon(facts: CouponFacts) -> Figures:
    """Compute one coupon's columns."""
    yes = facts.heard("yes")
    refused_only = facts.heard("no") - yes - facts.heard("already") - facts.heard("error")
    return Figures(
        quantity=facts.quantity,
        told_yes=len(yes),
        rows=facts.rows,
        lost=len(yes - facts.row_users),
        stranded=max(0, facts.held - facts.rows),
        over_issued=max(0, facts.rows - facts.quantity),
        phantom=len(refused_only & facts.row_users),
        errors=facts.errors,
        coupons=1,
        sold_out=int(facts.rows >= facts.quantity),
    )


def total(coupons: Iterable[CouponFacts]) -> Figures:
    """Sum the columns of every coupon of a row."""
    summed: dict[str, int] = {}
    for figures in map(of_coupon, coupons):
        for name, value in asdict(figures).items():
            summed[name] = summed.get(name, 0) + value
    return Figures(**summed)
