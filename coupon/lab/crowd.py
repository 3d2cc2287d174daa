"""Sell-outs one after another under the same load: which coupon the crowd asks for now."""
from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path


class Cursor:
    """The coupons of one locust process, in order; the crowd moves on when one sells out.

    Over-issue happens at the last unit, so every sell-out is done by the whole crowd at once:
    side by side, each coupon would see only a share of the concurrency at its last unit.
    """

    def __init__(self, coupon_ids: list[int]) -> None:
        if not coupon_ids:
            raise ValueError("no coupon to ask for")
        self.coupon_ids = coupon_ids
        self.index = 0
        self.tally = {coupon_id: {"issued": 0, "errors": 0} for coupon_id in coupon_ids}
        # Who was told what, per coupon (the chaos lab's lost and phantom): kind -> user ids.
        self.users: dict[int, dict[str, set[int]]] = {coupon_id: {} for coupon_id in coupon_ids}
        # What was heard in each wall-clock second (the chaos lab's load timeline): kind -> count.
        self.seconds: dict[int, Counter[str]] = {}

    @property
    def current(self) -> int:
        """Return the coupon to ask for now."""
        return self.coupon_ids[self.index]

    def sold_out(self, coupon_id: int) -> None:
        """Move on past coupon_id (late answers about an earlier coupon change nothing)."""
        if coupon_id == self.current and self.index + 1 < len(self.coupon_ids):
            self.index += 1

    def count(self, coupon_id: int, key: str) -> None:
        """Count what a caller of coupon_id was told: 'issued' (201/202) or 'errors'."""
        self.tally[coupon_id][key] += 1

    def heard(self, coupon_id: int, user_id: int, kind: str) -> None:
        """Remember that user_id heard kind: 'yes' (201/202), 'no' (a 409 other than
        already_issued), 'already' (409 already_issued) or 'error' (5xx or no answer)."""
        self.users[coupon_id].setdefault(kind, set()).add(user_id)
        self.seconds.setdefault(int(time.time()), Counter())[kind] += 1

    def write_users(self, path: Path) -> None:
        """Write who was told what, per coupon, as JSON lists."""
        path.write_text(json.dumps({
            str(k): {kind: sorted(ids) for kind, ids in v.items()} for k, v in self.users.items()
        }))

    def write_seconds(self, path: Path) -> None:
        """Write what was heard per wall-clock second (unix seconds as keys), as JSON."""
        path.write_text(json.dumps({str(k): dict(v) for k, v in sorted(self.seconds.items())}))

    def write(self, path: Path) -> None:
        """Write the per-coupon tally as JSON (keys are coupon ids)."""
        path.write_text(json.dumps({str(k): v for k, v in self.tally.items()}))


def read_tally(path: Path) -> dict[int, dict[str, int]]:
    """Read a tally written by Cursor.write."""
    return {int(k): v for k, v in json.loads(path.read_text()).items()}


def read_users(path: Path) -> dict[int, dict[str, set[int]]]:
    """Read who was told what, written by Cursor.write_users."""
    return {
        int(k): {kind: set(ids) for kind, ids in v.items()} for k, v in json.loads(path.read_text()).items()
    }
