"""A row's verdict from many sell-outs: how many were exact, how many over-issued and by how much."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from coupon.lab.sellout.audit import Audit

# Every other way a sell-out can be wrong, with the figure that counts it on one audit.
OTHER_PROBLEMS: tuple[tuple[str, Callable[[Audit], int]], ...] = (
    ("duplicate rows", lambda a: a.duplicates),
    ("phantom successes", lambda a: a.phantom),
    ("lost successes", lambda a: a.lost),
    ("stranded reservations", lambda a: a.stranded),
    ("counter off", lambda a: abs(a.counter - a.rows)),
    ("still queued", lambda a: a.backlog),
)


@dataclass(frozen=True)
class SellOuts:
    """The audits of one row's coupons, each sold out by the same crowd, in order."""

    audits: tuple[Audit, ...]

    @property
    def count(self) -> int:
        """How many coupons the row had."""
        return len(self.audits)

    @property
    def sold_out(self) -> int:
        """How many coupons were sold out (rows reached the quantity)."""
        return sum(audit.rows >= audit.quantity for audit in self.audits)

    @property
    def over_issues(self) -> list[int]:
        """Over-issue of each coupon that over-issued, in order."""
        return [audit.over_issue for audit in self.audits if audit.over_issue]

    @property
    def exact(self) -> bool:
        """Tell whether every sell-out was exact."""
        return all(audit.exact for audit in self.audits)

    # Totals over the coupons, named as on one Audit so that the table and charts read either.
    @property
    def quantity(self) -> int:
        return self._total("quantity")

    @property
    def rows(self) -> int:
        return self._total("rows")

    @property
    def users(self) -> int:
        return self._total("users")

    @property
    def told_issued(self) -> int:
        return self._total("told_issued")

    def _total(self, figure: str) -> int:
        return sum(getattr(audit, figure) for audit in self.audits)

    def _others(self) -> list[str]:
        found = []
        for name, figure in OTHER_PROBLEMS:
            hit = [value for value in map(figure, self.audits) if value]
            if hit:
                found.append(f"{sum(hit)} {name} in {len(hit)}/{self.count}")
        return found

    @property
    def verdict(self) -> str:
        """Return e.g. 'exact in 10/10 sell-outs' or 'over-issued in 7/10 (+1 .. +3)'."""
        n = self.count
        unsold = n - self.sold_out
        tail = f" ({unsold} not sold out)" if unsold else ""
        if self.exact:
            return f"exact in {n - unsold}/{n} sell-outs{tail}"
        parts = []
        over = self.over_issues
        if over:
            spread = f"+{min(over)}" if min(over) == max(over) else f"+{min(over)} .. +{max(over)}"
            parts.append(f"over-issued in {len(over)}/{n} ({spread})")
        return ", ".join(parts + self._others()) + tail

    def as_dict(self) -> dict[str, Any]:
        """Return the totals, the verdict and every coupon's audit."""
        return {
            "sellouts": self.count,
            "sold_out": self.sold_out,
            "over_issued_sellouts": len(self.over_issues),
            "over_issue_total": sum(self.over_issues),
            "quantity": self.quantity,
            "rows": self.rows,
            "users": self.users,
            "told_issued": self.told_issued,
            "exact": self.exact,
            "verdict": self.verdict,
            "coupons": [audit.as_dict() for audit in self.audits],
        }
