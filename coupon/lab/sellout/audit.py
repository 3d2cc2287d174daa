"""The lab's audit: what the database and Redis hold, set against what the callers were told."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from coupon.core import queries
from coupon.runtime import Runtime


@dataclass(frozen=True)
class Audit:
    """The ground truth of one coupon after a run, and every way it can be wrong."""

    quantity: int
    rows: int  # issue rows in the database
    users: int  # distinct users among those rows
    counter: int  # the coupon's issued_quantity column
    reserved: int  # the units Redis holds (RedisState.held; 0 for strategies that keep none)
    told_issued: int  # callers answered 201 or 202
    errors: int  # callers answered 5xx or nothing at all
    backlog: int = 0  # accepted requests the queued worker has not persisted

    @property
    def over_issue(self) -> int:
        """Rows above the quantity: the failure this project exists to prevent."""
        return max(0, self.rows - self.quantity)

    @property
    def duplicates(self) -> int:
        """Rows beyond one per user."""
        return self.rows - self.users

    @property
    def phantom(self) -> int:
        """Callers told issued without a row behind the answer."""
        return max(0, self.told_issued - self.rows)

    @property
    def lost(self) -> int:
        """Rows whose caller was told something other than issued."""
        return max(0, self.rows - self.told_issued)

    @property
    def stranded(self) -> int:
        """Redis reservations with no row: stock that can no longer be sold."""
        return max(0, self.reserved - self.rows)

    def problems(self) -> list[str]:
        """Name every inconsistency found; an empty list means the run was exact."""
        checks = [
            (self.over_issue, "over-issued +{}"),
            (self.duplicates, "{} duplicate rows"),
            (self.phantom, "{} phantom successes"),
            (self.lost, "{} lost successes"),
            (self.stranded, "{} stranded reservations"),
            (abs(self.counter - self.rows), "counter off by {}"),
            (self.backlog, "{} still queued"),
        ]
        return [template.format(count) for count, template in checks if count]

    @property
    def exact(self) -> bool:
        """Tell whether the database, Redis and the callers all agree, within the quantity."""
        return not self.problems()

    @property
    def verdict(self) -> str:
        """Return 'exact' or the list of problems, for the table.

        A run that never sold out proves little (over-issue happens at the last unit): say so.
        """
        if not self.exact:
            return ", ".join(self.problems())
        return "exact" if self.rows >= self.quantity else "exact, not sold out"

    def as_dict(self) -> dict[str, Any]:
        """Return every figure, the derived ones included."""
        derived = {
            "over_issue": self.over_issue,
            "duplicates": self.duplicates,
            "phantom": self.phantom,
            "lost": self.lost,
            "stranded": self.stranded,
            "exact": self.exact,
            "verdict": self.verdict,
        }
        return {**asdict(self), **derived}


def read(
    runtime: Runtime, coupon_id: int, told_issued: int, errors: int, backlog: int = 0, fold: bool = False
) -> Audit:
    """Audit a coupon straight from the database and Redis.

    With fold, first set the issued count from the rows, as the workers do for a strategy that
    does not count as it writes (lua): the lab runs no worker beside it.
    """
    if fold:
        with runtime.services.engine.begin() as conn:
            queries.fold_issued(conn, coupon_id)
    with runtime.services.engine.connect() as conn:
        coupon = queries.get_coupon(conn, coupon_id)
        rows, users = queries.count_issues(conn, coupon_id)
    if coupon is None:
        raise LookupError(f"coupon {coupon_id} vanished")
    reserved = runtime.state.held(coupon_id)
    return Audit(
        quantity=coupon.total_quantity,
        rows=rows,
        users=users,
        counter=coupon.issued_quantity,
        reserved=reserved,
        told_issued=told_issued,
        errors=errors,
        backlog=backlog,
    )
