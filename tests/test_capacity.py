"""The capacity scenario: arrival scheduler on a fake clock, stop rule, bisection, report, one real run."""

from __future__ import annotations

import heapq
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from coupon.lab.capacity import capacity_chart, capacity_report, scaling, stepping, usl
from coupon.lab.capacity.stepping import Point, capacity_of, next_rate
from coupon.lab.capacity.sweep import Row
from coupon.lab.drive.arrivals import (
    ERROR,
    ISSUED,
    REFUSED,
    Scheduler,
    Window,
    intended_times,
)
from coupon.lab.plan import Run, Settings, Steps

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class FakeClock:
    """Time that moves only when slept; sleeps may overshoot by a quantum, like a busy loop's."""

    def __init__(self, quantum: float = 0.0) -> None:
        self.now = 0.0
        self.quantum = quantum

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += math.ceil(seconds / self.quantum) * self.quantum if self.quantum else seconds


class FakePool:
    """A pool of size slots whose every task holds its slot for service seconds of fake time.

    A task runs at once (its answer is recorded when spawned); only its slot outlives it.
    """

    def __init__(self, clock: FakeClock, size: int, service: float) -> None:
        self.clock, self.size, self.service = clock, size, service
        self.busy_until: list[float] = []

    def full(self) -> bool:
        while self.busy_until and self.busy_until[0] <= self.clock.now:
            heapq.heappop(self.busy_until)
        return len(self.busy_until) >= self.size

    def spawn(self, function: Callable[..., Any], *args: Any) -> None:
        heapq.heappush(self.busy_until, self.clock.now + self.service)
        function(*args)


def schedule(
    rate: float,
    seconds: float,
    pool_size: int = 10**6,
    service: float = 0.0,
    quantum: float = 0.0,
    outcome: str = ISSUED,
    window: Window | None = None,
) -> list[Window]:
    clock = FakeClock(quantum)
    windows = [Window(0.0, float("inf"))] + ([window] if window else [])
    answers: list[float] = []
    Scheduler(
        intended_times(rate, seconds, seed=7),
        FakePool(clock, pool_size, service),
        lambda: outcome,
        windows,
        clock,
        clock.sleep,
        lambda latency, _: answers.append(latency),
    ).run()
    assert len(answers) == windows[0].sent  # every answer is fired into locust's stats
    return windows


def test_arrivals_come_at_the_rate_and_are_reproducible_by_seed():
    times = intended_times(1000, 20, seed=3)
    assert times == intended_times(1000, 20, seed=3) and times != intended_times(1000, 20, seed=4)
    # Poisson: 20000 expected, standard deviation about 141.
    assert abs(len(times) - 20_000) < 4 * math.sqrt(20_000)
    assert times == sorted(times) and 0 < times[0] and times[-1] < 20
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert sum(gaps) / len(gaps) == pytest.approx(1 / 1000, rel=0.03)
    # Exponential gaps: their standard deviation equals their mean (a fixed rate would have none).
    mean = sum(gaps) / len(gaps)
    assert math.sqrt(sum((g - mean) ** 2 for g in gaps) / len(gaps)) == pytest.approx(mean, rel=0.05)


def test_a_pool_that_keeps_up_sends_everything_on_time():
    (everything,) = schedule(rate=500, seconds=10)
    assert everything.intended == len(intended_times(500, 10, seed=7))
    assert everything.dropped == 0 and everything.sent == everything.intended == everything.issued
    assert everything.percentile_ms(99) <= 0.002  # the fake clock answers at once


def test_latency_counts_from_the_intended_time_when_the_sender_lags():
    # Every sleep overshoots to the next 5 ms boundary: requests leave late, and that lateness
    # is latency, as the callers of an overloaded generator or server would feel it.
    (everything,) = schedule(rate=1000, seconds=5, quantum=0.005)
    assert everything.dropped == 0
    assert 4.0 <= everything.percentile_ms(99) <= 5.01
    assert everything.percentile_ms(50) > 1.0


def test_a_full_pool_drops_the_arrival_at_the_erlang_b_rate():
    # 1000 arrivals/s holding a slot 10 ms each is 10 erlangs on 5 slots: Erlang B says a share
    # (10**5/5!) / sum(10**k/k!, k=0..5) = 0.564 of arrivals find the pool full, whatever the
    # service time's distribution.
    offered, slots = 10.0, 5
    expected = (offered**slots / math.factorial(slots)) / sum(
        offered**k / math.factorial(k) for k in range(slots + 1)
    )
    (everything,) = schedule(rate=1000, seconds=20, pool_size=slots, service=0.010)
    assert everything.dropped / everything.intended == pytest.approx(expected, abs=0.02)
    assert everything.sent + everything.dropped == everything.intended


def test_a_window_counts_only_its_own_arrivals_and_answers():
    measured = Window(1.0, 3.0)
    everything, measured = schedule(rate=1000, seconds=4, window=measured)
    inside = [t for t in intended_times(1000, 4, seed=7) if 1.0 <= t < 3.0]
    assert measured.intended == len(inside) < everything.intended
    assert measured.answered_inside == measured.issued == len(inside)
    assert measured.summary()["achieved_rps"] == pytest.approx(len(inside) / 2)

    (errors,) = schedule(rate=100, seconds=2, outcome=ERROR)
    assert errors.errors == errors.sent and errors.answered_inside == 0 and errors.issued == 0
    (refused,) = schedule(rate=100, seconds=2, outcome=REFUSED)
    assert refused.refused == refused.answered_inside == refused.sent


def point(**changes: Any) -> Point:
    """A passing step at 100 req/s over 3 s, with the given figures changed."""
    figures: dict[str, Any] = dict(
        offered_rps=100, achieved_rps=99, p50_ms=5, p99_ms=40, errors=0, dropped=0, intended=300, seconds=3
    )
    figures.update(changes)
    return Point(**figures)


def test_the_stop_rule_names_every_reason_a_step_fails():
    assert point().failures(100) == []
    assert point(p99_ms=100).failures(100) == []
    assert point(p99_ms=101).failures(100) == ["p99 101 ms > 100"]
    assert point(errors=3).failures(100) == [] and point(errors=4).failures(100) == ["errors 1.3%"]
    assert point(achieved_rps=90).failures(100) == [] and point(achieved_rps=89).failures(100) == [
        "achieved 89%"
    ]
    assert point(dropped=3).failures(100) == []
    assert point(dropped=4, achieved_rps=98).failures(100) == ["dropped 1.3%"]
    assert point(exact=False, verdict="over-issued in 1/1 (+2)").failures(100) == ["over-issued in 1/1 (+2)"]
    assert point(p99_ms=900, errors=30, achieved_rps=20).failures(100) == [
        "p99 900 ms > 100",
        "errors 10.0%",
        "achieved 20%",
    ]


def search(limit: float, start: float = 100, max_rps: float = 12800) -> list[float]:
    """The rates tried against a server that passes every step at or below limit."""
    tried: dict[float, bool] = {}
    while (rate := next_rate(tried, start, max_rps)) is not None:
        assert rate not in tried
        tried[rate] = rate <= limit
    return list(tried)


def test_steps_double_until_a_failure_then_bisect():
    assert search(330) == [100, 200, 400, 300, 350]
    assert capacity_of({rate: rate <= 330 for rate in search(330)}) == 300
    # 1200 fails, 1000 passes: within 1.2 of each other, so the search stops there.
    assert search(1000) == [100, 200, 400, 800, 1600, 1200, 1000]
    assert capacity_of({rate: rate <= 1000 for rate in search(1000)}) == 1000


def test_a_failing_first_step_halves_and_an_unbreakable_server_stops_at_the_cap():
    assert search(30) == [100, 50, 25, 38, 32, 28]
    assert search(1) == [100, 50, 25, 12.5]
    assert capacity_of({rate: False for rate in search(1)}) is None
    assert search(10**9, max_rps=800) == [100, 200, 400, 800]
    assert stepping.describe(800, None, 800).startswith("at least 800")


def test_capacity_is_the_highest_pass_below_the_lowest_failure():
    # A noisy pass above a failure does not count: the server already broke below it.
    assert capacity_of({100: True, 200: True, 400: False, 300: False, 250: True, 350: True}) == 250
    assert stepping.beyond([point(offered_rps=r) for r in (100, 200, 400, 300)], 200).offered_rps == 300


def test_a_capacity_near_the_generator_ceiling_is_a_lower_bound():
    assert stepping.bounded_by_generator(700, 1000) and not stepping.bounded_by_generator(690, 1000)
    assert stepping.describe(700, 1000, 12800) == "at least 700, bounded by the load generator"
    assert stepping.describe(300, 1000, 12800) == "300"
    assert stepping.describe(None, 1000, 12800).startswith("none")


def test_report_json_carries_capacity_and_the_curve(tmp_path: Path):
    settings = Settings(scenario="capacity", steps=Steps(slo_p99_ms=100))
    ping = Row(
        Run("/ping", None, 2),
        [point(offered_rps=r, achieved_rps=r * 0.99) for r in (100, 200)]
        + [point(offered_rps=400, p99_ms=300)],
        200,
    )
    lua = Row(
        Run("lua", "lua", 2),
        [point(offered_rps=100), point(offered_rps=200, p99_ms=500, achieved_rps=50)],
        100,
    )
    facts = {
        "backend": {"database": "postgresql", "embedded": True, "redis_version": "7"},
        "machine": {"cores": 2},
        "versions": {},
    }
    chart = capacity_chart.draw([ping, lua], 100, tmp_path / "capacity.png")
    capacity_report.write(tmp_path, [ping, lua], settings, facts, [chart])

    document = json.loads((tmp_path / "report.json").read_text())
    assert document["generator_ceiling_rps"] == 200
    rows = {row["label"]: row for row in document["results"]}
    assert rows["lua"]["capacity_rps"] == 100 and rows["lua"]["bounded_by_generator"] is False
    assert rows["lua"]["capacity"] == "100"
    curve = rows["lua"]["curve"]
    assert [p["offered_rps"] for p in curve] == [100, 200]
    for field in ("offered_rps", "achieved_rps", "p50_ms", "p99_ms", "errors", "dropped", "passed"):
        assert all(field in p for p in curve), field
    assert curve[1]["passed"] is False and curve[1]["failures"] == ["p99 500 ms > 100", "achieved 50%"]
    assert rows["lua"]["beyond_capacity"]["offered_rps"] == 200
    assert chart.read_bytes().startswith(PNG_MAGIC)
    markdown = (tmp_path / "report.md").read_text()
    assert "| lua | 2 | 100 | 50% |" in markdown and "200 -> 50" in markdown


@pytest.mark.slow
def test_a_short_real_capacity_run(app, tmp_path: Path):
    args = [
        "lab",
        "--scenario",
        "capacity",
        "--strategies",
        "atomic_update",
        "--start-rps",
        "20",
        "--max-rps",
        "40",
        "--warmup",
        "0.5",
        "--step-seconds",
        "1",
        "--burst",
        "100",
        "--burst-quantity",
        "20",
        "--output",
        str(tmp_path),
    ]
    result = app.test_cli_runner().invoke(args=args)
    assert result.exit_code == 0, result.output

    (out,) = tmp_path.iterdir()
    document = json.loads((out / "report.json").read_text())
    rows = {row["label"]: row for row in document["results"]}
    assert list(rows) == ["/ping", "atomic_update"]
    for row in rows.values():
        # 20 then 40 (the cap) on a quiet machine; a busy one may fail a step and bisect below.
        offered = [p["offered_rps"] for p in row["curve"]]
        assert 20 in offered and all(2.5 <= rate <= 40 for rate in offered)
        assert all(p["achieved_rps"] > 0 and p["p99_ms"] > 0 and p["intended"] > 0 for p in row["curve"])
    ping_burst = rows["/ping"]["burst"]
    assert ping_burst["verdict"] == "-" and ping_burst["sent"] == ping_burst["issued"] > 50  # 200s
    assert all(p["exact"] for p in rows["atomic_update"]["curve"])
    burst = rows["atomic_update"]["burst"]
    assert burst["rows"] == burst["quantity"] == 20 and burst["exact"] is True
    assert burst["issued"] == 20 and burst["sent"] == burst["issued"] + burst["refused"] + burst["errors"]
    assert 0 < burst["sold_out_after_ms"] <= burst["drained_after_ms"]
    assert (out / "capacity.png").read_bytes().startswith(PNG_MAGIC)
    spectrum = rows["atomic_update"]["curve"][0]["spectrum"]
    assert list(spectrum) == ["p50", "p90", "p99", "p99.9", "p99.99", "max"]
    assert 0 < spectrum["p50"] <= spectrum["p99"] <= spectrum["p99.99"] <= spectrum["max"]
    assert "Each step" in (out / "report.html").read_text()


def test_the_usl_fit_recovers_known_contention_and_coherency():
    truth = usl.Fit(gamma=400, sigma=0.2, kappa=0.02)
    fitted = usl.fit({n: truth.predict(n) for n in (1, 2, 3, 4)})
    assert fitted is not None
    assert (fitted.sigma, fitted.kappa) == (pytest.approx(0.2, abs=1e-6), pytest.approx(0.02, abs=1e-6))
    assert fitted.peak == pytest.approx(math.sqrt(0.8 / 0.02))
    assert fitted.as_dict()["predicted_rps"] == {"8": round(truth.predict(8)), "16": round(truth.predict(16))}
    # One lock: throughput flat with processes, so sigma is 1 and the ceiling is X(1).
    flat = usl.fit({1: 300, 2: 300, 3: 300, 4: 300})
    assert flat is not None and flat.sigma == pytest.approx(1) and flat.kappa == 0
    assert flat.ceiling == pytest.approx(300) and flat.peak is None
    assert usl.fit({2: 300, 3: 400}) is None and usl.fit({1: 300, 2: 500}) is None


def test_scaling_groups_capacities_by_strategy_and_process_count():
    rows = (
        [Row(Run("/ping", None, 2), [], 3000)]
        + [Row(Run(f"lua x{n}", "lua", n), [], x) for n, x in ((1, 200), (2, 350), (3, 450), (4, 500))]
        + [Row(Run("atomic_update", "atomic_update", 2), [], 150)]
    )
    found = scaling.as_json(rows)
    assert list(found) == ["lua"]  # one process count proves nothing about scaling
    assert found["lua"]["capacity_by_processes"] == {"1": 200, "2": 350, "3": 450, "4": 500}
    assert found["lua"]["usl"]["sigma"] >= 0 and found["lua"]["usl"]["kappa"] >= 0
    assert "| lua | x1: 200, x2: 350, x3: 450, x4: 500 |" in scaling.section(rows)
    assert scaling.section(rows[:1]) == ""
