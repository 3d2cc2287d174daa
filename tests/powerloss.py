"""Load on a private Redis that a test crashes (the power cut itself: coupon/lab/chaos)."""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field

from coupon.core.rules import Outcome
from strategies.base import Strategy

GRANTED = (Outcome.ISSUED, Outcome.ACCEPTED)


@dataclass
class Load:
    """Threads issuing to one coupon, each user once, remembering what every caller was told."""

    strategy: Strategy
    coupon_id: int
    threads: int = 8
    told_yes: set[int] = field(default_factory=set)
    told_error: set[int] = field(default_factory=set)
    sold_out_seen: threading.Event = field(default_factory=threading.Event)
    stopping: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._users = itertools.count(1)
        self._lock = threading.Lock()
        self._workers = [threading.Thread(target=self._run, daemon=True) for _ in range(self.threads)]

    def start(self) -> Load:
        """Start the issuing threads."""
        for thread in self._workers:
            thread.start()
        return self

    def _run(self) -> None:
        while not self.stopping.is_set():
            user = next(self._users)
            try:
                outcome = self.strategy.issue(self.coupon_id, user)
            except Exception:  # Redis down: the caller got a 503
                with self._lock:
                    self.told_error.add(user)
                time.sleep(0.005)  # pace the retries against a dead server (not a sync)
                continue
            with self._lock:
                if outcome in GRANTED:
                    self.told_yes.add(user)
            if outcome is Outcome.SOLD_OUT:
                self.sold_out_seen.set()

    def stop(self) -> None:
        """Stop the threads and wait for them."""
        self.stopping.set()
        for thread in self._workers:
            thread.join(timeout=60)

    def yes(self) -> int:
        """Count the callers told yes so far."""
        with self._lock:
            return len(self.told_yes)
