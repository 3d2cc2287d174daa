"""The capacity search as pure functions: a step's pass or fail, the next rate, the capacity."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

# A step fails above these shares of its requests (errors, dropped) or below this share of the
# offered rate achieved; the p99 objective comes from the command line.
MAX_ERROR_SHARE = 0.01
MAX_DROPPED_SHARE = 0.01
MIN_ACHIEVED_SHARE = 0.9
# Bisection stops once the first failing rate is within this factor of the last passing one.
PRECISION = 1.2
# Below the start rate, halve down to start / this before giving up.
FLOOR_DIVISOR = 8
# A capacity at or above this share of the /ping ceiling measures the generator, not the server.
GENERATOR_SHARE = 0.7


@dataclass(frozen=True)
class Point:
    """One step of the curve: what was offered, what came back, and whether the count stayed exact."""

    offered_rps: float  # the rate asked of the scheduler
    achieved_rps: float  # answers (not faults) completed per measured second
    p50_ms: float  # latency from the intended send time
    p99_ms: float
    errors: int  # 5xx, broken connections, timeouts, answers still missing at the end
    dropped: int  # arrivals that found the scheduler's pool full
    intended: int  # arrivals drawn inside the measured seconds (Poisson around offered x seconds)
    seconds: float  # measured seconds
    refused: int = 0  # 409s: would mean the step measured refusals, not issues
    exact: bool = True
    verdict: str = "-"
    spectrum: tuple[tuple[str, float], ...] = ()  # (p50 .. p99.99, max) in ms, from the HdrHistogram

    @property
    def intended_rps(self) -> float:
        """The rate actually drawn in the measured seconds (the schedule is random)."""
        return self.intended / self.seconds if self.seconds else 0.0

    def failures(self, slo_p99_ms: float) -> list[str]:
        """Name every reason the step fails; an empty list is a pass."""
        sent = max(1, self.intended - self.dropped)
        reasons = []
        if self.p99_ms > slo_p99_ms:
            reasons.append(f"p99 {self.p99_ms:.0f} ms > {slo_p99_ms:g}")
        if self.errors > MAX_ERROR_SHARE * sent:
            reasons.append(f"errors {100 * self.errors / sent:.1f}%")
        if self.achieved_rps < MIN_ACHIEVED_SHARE * self.intended_rps:
            reasons.append(f"achieved {100 * self.achieved_rps / max(self.intended_rps, 1e-9):.0f}%")
        if self.dropped > MAX_DROPPED_SHARE * max(1, self.intended):
            reasons.append(f"dropped {100 * self.dropped / max(1, self.intended):.1f}%")
        if not self.exact:
            reasons.append(self.verdict)
        return reasons

    def as_dict(self, slo_p99_ms: float) -> dict[str, Any]:
        """Return every figure, with the step's pass or fail and why."""
        reasons = self.failures(slo_p99_ms)
        return {**asdict(self), "spectrum": dict(self.spectrum), "passed": not reasons, "failures": reasons}


def next_rate(
    tried: dict[float, bool], start: float, max_rps: float, precision: float = PRECISION
) -> float | None:
    """Return the next offered rate to try, or None when the search is done.

    Double from start until a step fails (or max_rps passes); then bisect between the highest
    pass below the lowest failure and that failure. If even start fails, halve down to
    start / FLOOR_DIVISOR.
    """
    if not tried:
        return start
    passes = [rate for rate, passed in tried.items() if passed]
    fails = [rate for rate, passed in tried.items() if not passed]
    if not fails:
        top = max(passes)
        return None if top >= max_rps else min(2 * top, max_rps)
    lowest_fail = min(fails)
    below = [rate for rate in passes if rate < lowest_fail]
    if not below:
        lower = lowest_fail / 2
        return lower if lower >= start / FLOOR_DIVISOR else None
    best = max(below)
    if lowest_fail <= best * precision:
        return None
    return float(round((best + lowest_fail) / 2))


def capacity_of(tried: dict[float, bool]) -> float | None:
    """Return the highest passing rate below the lowest failing one (None if nothing passed)."""
    fails = [rate for rate, passed in tried.items() if not passed]
    ceiling = min(fails, default=float("inf"))
    return max((rate for rate, passed in tried.items() if passed and rate < ceiling), default=None)


def beyond(points: list[Point], capacity: float | None) -> Point | None:
    """Return the lowest step above the capacity: does throughput hold there, or collapse?"""
    above = [p for p in points if capacity is None or p.offered_rps > capacity]
    return min(above, key=lambda p: p.offered_rps, default=None)


def bounded_by_generator(capacity: float | None, ceiling: float | None) -> bool:
    """Tell whether a capacity is too close to the generator's /ping ceiling to be the server's."""
    return bool(capacity and ceiling and capacity >= GENERATOR_SHARE * ceiling)


def describe(capacity: float | None, ceiling: float | None, max_rps: float) -> str:
    """Say the capacity as the report should: a figure, a lower bound, or none."""
    if capacity is None:
        return "none (the lowest step failed)"
    if capacity >= max_rps:
        return f"at least {capacity:.0f} (every step passed, up to --max-rps)"
    if bounded_by_generator(capacity, ceiling):
        return f"at least {capacity:.0f}, bounded by the load generator"
    return f"{capacity:.0f}"
