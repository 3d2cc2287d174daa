"""Sell-outs one after another under the same load: which coupon the crowd asks for now."""

from __future__ import annotations

import json
import time
from collections import Counter, OrderedDict
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from coupon.api.identity import Minter


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
        path.write_text(
            json.dumps(
                {str(k): {kind: sorted(ids) for kind, ids in v.items()} for k, v in self.users.items()}
            )
        )

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


class Tokens:
    """Bearer tokens for the crowd's users in jwt mode, minted ahead of the requests that use them.

    Signing costs the crowd about as much CPU as a request (PyJWT, HS256: ~25 us), so it is done
    a batch at a time before the ids are asked with, never per request; without a minter (body
    mode) every header is empty.
    """

    def __init__(self, minter: Minter | None, keep: int, ttl: float = 3600.0) -> None:
        self.minter = minter
        self.keep = keep  # the repeats draw from the last `keep` ids: their tokens stay
        self.ttl = ttl
        self.minted: OrderedDict[int, dict[str, str]] = OrderedDict()

    def ahead(self, user_ids: Iterable[int]) -> None:
        """Mint the tokens of user_ids now, forgetting the oldest past the bound."""
        if self.minter is None:
            return
        for user_id in user_ids:
            self.minted[user_id] = {"Authorization": f"Bearer {self.minter.mint(user_id, self.ttl)}"}
        while len(self.minted) > self.keep:
            self.minted.popitem(last=False)

    def headers(self, user_id: int) -> dict[str, str]:
        """Return the Authorization header of user_id (minted now if it was not ahead)."""
        if self.minter is None:
            return {}
        found = self.minted.get(user_id)
        if found is None:
            self.ahead([user_id])
            found = self.minted[user_id]
        return found


def minter_for(options: Any) -> Minter | None:
    """Build the crowd's minter from locust's options: None in body mode; else the secret or a
    private key file, with the issuer and audience the server expects."""
    if options.auth != "jwt":
        return None
    # Imported here: coupon.api pulls in the whole service (about 2 s), which would delay every
    # locust start, body mode's too (the chaos lab times its faults from that start).
    from coupon.api.identity import Minter
    from coupon.core.config import Config

    config = Config(
        jwt_secret=options.jwt_secret or None,
        jwt_issuer=options.jwt_issuer or None,
        jwt_audience=options.jwt_audience or None,
    )
    key = Path(options.jwt_private_key).read_bytes() if options.jwt_private_key else None
    return Minter.for_config(config, key)
