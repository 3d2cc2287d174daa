"""Open-loop arrivals: each request starts at its intended time, its latency counted from then.

A closed loop (a user waits for each answer before the next) slows down with the server and
hides its latency under overload (coordinated omission). Here a schedule of intended send times
is drawn up front (exponential gaps: a Poisson stream at the offered rate), each request is
started from a bounded pool at its time, a full pool counts the arrival as dropped, and a
latency is `done - intended`, so a generator or server falling behind shows up in the figures.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from hdrh.histogram import HdrHistogram

# Latencies are recorded in microseconds, 1 us .. 10 minutes, 3 significant digits.
LOWEST_US, HIGHEST_US, DIGITS = 1, 600_000_000, 3

# What a request met with: 201/202, 409, or a fault (5xx, a broken connection, a timeout).
ISSUED, REFUSED, ERROR = "issued", "refused", "error"


def intended_times(rate: float, seconds: float, seed: int) -> list[float]:
    """Draw arrival offsets in [0, seconds) at rate per second, with seeded exponential gaps."""
    rng = random.Random(seed)
    times: list[float] = []
    now = rng.expovariate(rate)
    while now < seconds:
        times.append(now)
        now += rng.expovariate(rate)
    return times


class Pool(Protocol):
    """What the scheduler needs of a gevent.pool.Pool."""

    def full(self) -> bool: ...

    def spawn(self, function: Callable[..., Any], *args: Any) -> Any: ...


def _histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, DIGITS)


@dataclass
class Window:
    """What the arrivals intended in [start, end) (seconds from the first) met with."""

    start: float
    end: float
    intended: int = 0
    dropped: int = 0
    issued: int = 0
    refused: int = 0
    errors: int = 0
    answered_inside: int = 0  # answers (not faults) that completed inside, whenever intended
    last_issued_at: float = 0.0  # when the last 201/202 came back, from the first arrival
    last_done_at: float = 0.0
    histogram: HdrHistogram = field(default_factory=_histogram, repr=False)

    def covers(self, offset: float) -> bool:
        """Tell whether an arrival intended at offset belongs to this window."""
        return self.start <= offset < self.end

    @property
    def sent(self) -> int:
        """Arrivals actually started (not dropped)."""
        return self.intended - self.dropped

    def record(self, intended: float, done: float, outcome: str) -> None:
        """Count one answer; its latency runs from its intended time, not from its sending."""
        self.histogram.record_value(min(HIGHEST_US, max(LOWEST_US, round(1e6 * (done - intended)))))
        self.last_done_at = max(self.last_done_at, done)
        if outcome == ERROR:
            self.errors += 1
        elif outcome == ISSUED:
            self.issued += 1
            self.last_issued_at = max(self.last_issued_at, done)
        else:
            self.refused += 1

    def answered(self, done: float, outcome: str) -> None:
        """Count an answer (of any arrival) toward the throughput if it completed inside."""
        self.answered_inside += outcome != ERROR and self.start <= done < self.end

    def percentile_ms(self, percentile: float) -> float:
        """Return a latency percentile in milliseconds (0 with no answers)."""
        if not self.histogram.get_total_count():
            return 0.0
        micros: int = self.histogram.get_value_at_percentile(percentile)  # hdrh has no types
        return micros / 1000

    def summary(self) -> dict[str, Any]:
        """Return the window's figures; rates are per second of the window."""
        seconds = self.end - self.start
        finite = math.isfinite(seconds) and seconds > 0
        return {
            "seconds": seconds if finite else None,
            "intended": self.intended,
            "sent": self.sent,
            "dropped": self.dropped,
            "issued": self.issued,
            "refused": self.refused,
            "errors": self.errors,
            "answered_inside": self.answered_inside,
            "intended_rps": self.intended / seconds if finite else None,
            "achieved_rps": self.answered_inside / seconds if finite else None,
            "p50_ms": self.percentile_ms(50),
            "p90_ms": self.percentile_ms(90),
            "p99_ms": self.percentile_ms(99),
            "p99.9_ms": self.percentile_ms(99.9),
            "p99.99_ms": self.percentile_ms(99.99),
            "max_ms": self.histogram.get_max_value() / 1000,
            "last_issued_at": self.last_issued_at,
            "last_done_at": self.last_done_at,
        }


@dataclass
class Scheduler:
    """Start send() at each intended time from a bounded pool; record into every window."""

    times: list[float]
    pool: Pool
    send: Callable[[], str]  # makes one request, returns ISSUED, REFUSED or ERROR
    windows: list[Window]
    clock: Callable[[], float]
    sleep: Callable[[float], Any]
    on_answer: Callable[[float, str], Any] = lambda latency, outcome: None

    def run(self) -> float:
        """Start every arrival at its time (never waiting for answers); return the start clock."""
        start = self.clock()
        for offset in self.times:
            delay = start + offset - self.clock()
            if delay > 0:
                self.sleep(delay)
            covering = [window for window in self.windows if window.covers(offset)]
            for window in covering:
                window.intended += 1
            if self.pool.full():
                for window in covering:
                    window.dropped += 1
                continue
            self.pool.spawn(self._one, start, offset, covering)
        return start

    def _one(self, start: float, offset: float, covering: list[Window]) -> None:
        outcome = self.send()
        done = self.clock() - start
        for window in covering:
            window.record(offset, done, outcome)
        for window in self.windows:
            window.answered(done, outcome)
        self.on_answer(done - offset, outcome)
