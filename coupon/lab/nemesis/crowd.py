"""The nemesis's clients: threads asking for coupons, each answer written to the history.

Each sale is a strategy's run of coupons, sold out one after another; a client asks for the
coupon its sale is on (now and then for an earlier one, so a sold-out answer is tried again),
naming any member of the coupon's family. A client that hears `info` (no answer, a timeout, a
5xx) asks again as the same user, as a real client does, up to RETRIES times.
"""

from __future__ import annotations

import http.client
import json
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from coupon.lab.check.history import Recorder

log = logging.getLogger(__name__)

RETRIES = 5
TIMEOUT_SECONDS = 5.0  # longer than the servers' retry deadline (3 s in the lab's stack)
EARLIER_SHARE = 0.15  # requests for a coupon already sold out (false sold-outs show there)
REPEAT_SHARE = 0.1  # requests repeating a user of this client
THINK_SECONDS = 0.02  # a client's mean pause between operations, drawn from 0..2x


@dataclass
class Sale:
    """One pinned strategy's coupons, the members its requests may name, and where it is.

    A new coupon is made when the current one sells out, so that sales last the whole load
    whatever its rate (while Redis is down none can be made: the sale stays where it is).
    """

    strategy: str
    members: tuple[str, ...]
    make: Callable[[], int]
    coupon_ids: list[int] = field(default_factory=list)
    guard: threading.Lock = field(default_factory=threading.Lock)

    @property
    def current(self) -> int:
        """Return the coupon the sale is on."""
        return self.coupon_ids[-1]

    def sold_out(self, coupon_id: int) -> None:
        """Move on past coupon_id to a new coupon, if the sale is on it."""
        with self.guard:
            if self.current != coupon_id:
                return
            try:
                self.coupon_ids.append(self.make())
            except Exception as exc:  # a fault is on: the next sold-out tries again
                log.info("no new coupon for %s now: %s", self.strategy, exc)


class Client(threading.Thread):
    """One client: a keep-alive connection, its own seeded choices, its own users."""

    def __init__(
        self, number: int, url: str, sales: list[Sale], recorder: Recorder, seed: int, stop: threading.Event
    ) -> None:
        super().__init__(daemon=True, name=f"client-{number}")
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.sales, self.recorder, self.stopping = sales, recorder, stop
        self.rng = random.Random(seed * 1_000 + number)
        self.users = iter(range((number + 1) * 10**12, (number + 2) * 10**12))
        self.recent: deque[int] = deque(maxlen=100)
        self.conn: http.client.HTTPConnection | None = None

    def _post(self, path: str, user: int) -> tuple[int, str]:
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=TIMEOUT_SECONDS)
        try:
            self.conn.request(
                "POST", path, json.dumps({"user_id": user}), {"Content-Type": "application/json"}
            )
            response = self.conn.getresponse()
            return response.status, response.read().decode(errors="replace")
        except (OSError, http.client.HTTPException) as exc:
            self.conn.close()
            self.conn = None
            return 0, repr(exc)

    def _pick(self) -> tuple[Sale, int, int, str]:
        sale = self.rng.choice(self.sales)
        coupon = sale.current
        if self.rng.random() < EARLIER_SHARE:
            coupon = self.rng.choice(sale.coupon_ids)
        if self.recent and self.rng.random() < REPEAT_SHARE:
            user = self.rng.choice(self.recent)
        else:
            user = next(self.users)
            self.recent.append(user)
        return sale, coupon, user, self.rng.choice(sale.members)

    def run(self) -> None:
        while not self.stopping.is_set():
            sale, coupon, user, strategy = self._pick()
            for attempt in range(RETRIES):
                invoked = time.monotonic()
                status, text = self._post(f"/coupons/{coupon}/issue?strategy={strategy}", user)
                kind = self.recorder.record(self.name, coupon, user, strategy, invoked, status, text)
                if kind != "info" or self.stopping.wait(0.1 * (attempt + 1)):
                    break
            if '"sold_out"' in text:
                sale.sold_out(coupon)
            self.stopping.wait(self.rng.uniform(0, 2 * THINK_SECONDS))  # the client's pace
        if self.conn is not None:
            self.conn.close()
