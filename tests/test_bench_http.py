"""`bench-http`'s reading of wrk and its verdicts: shares of the ceiling, ratios, the metric audit."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from coupon.lab.bench import bench_targets
from coupon.lab.drive.httpload import Load, Run, parse_wrk

WRK_OUTPUT = """Running 4s test @ http://127.0.0.1:8000/coupons/1/issue?strategy=queued
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     9.90ms    4.17ms  49.11ms   72.50%
    Req/Sec     3.22k   275.13     3.81k    70.00%
  Latency Distribution
     50%    9.60ms
     75%   12.10ms
     90%   15.00ms
     99%   21.60ms
  25712 requests in 4.01s, 4.14MB read
  Socket errors: connect 0, read 0, write 0, timeout 3
  Non-2xx or 3xx responses: 2
Requests/sec:   6412.00
Transfer/sec:      1.03MB
"""


def test_wrk_output_is_read_with_its_failures():
    load = parse_wrk(WRK_OUTPUT)
    assert (load.requests, load.seconds, load.failed) == (25712, 4.01, 5)
    assert (load.p50_ms, load.p99_ms) == (9.6, 21.6)
    assert load.rate == pytest.approx(25712 / 4.01)


def test_an_unreadable_wrk_output_fails_loudly():
    with pytest.raises(RuntimeError, match="unreadable wrk output"):
        parse_wrk("wrk: unable to connect")


def test_a_latency_in_an_unknown_unit_fails_loudly():
    with pytest.raises(ValueError, match="not a wrk duration: '9.6h'"):
        parse_wrk(WRK_OUTPUT.replace("9.60ms", "9.6h"))


def rows(rates: dict[str, float]) -> Run:
    run = Run(seconds=4, connections=64, threads=2, use_wrk=True)
    for name, rate in rates.items():
        run.loads[name] = [Load(int(rate * 4), 4.0, 0, 1.0, 40.0)]
    return run


def test_the_report_reads_every_row_against_the_post_ceiling_and_gives_each_target_a_verdict(capsys):
    run = rows(
        {
            "ceiling": 10_000,
            "ceiling, GET": 11_000,
            "queued": 6_100,
            "sold out": 7_900,
            "lua": 900,
            "atomic_update": 400,
            "select_for_update": 300,
            "batched_update": 1_000,
        }
    )
    run.loads["warm-up"] = [Load(0, 1.0, 0, 1.0, 1.0), Load(100, 1.0, 100, 1.0, 1.0)]
    runtime = SimpleNamespace(
        services=SimpleNamespace(engine=SimpleNamespace(dialect=SimpleNamespace(name="mysql")))
    )
    sent = 24_400 + 31_600 + 100
    bench_targets.report(run, (sent, sent + 10.0), 24_400, (24_400, 24_400), (50_000, 2.0), runtime)  # type: ignore[arg-type]
    out = capsys.readouterr().out
    assert "queued >= 60% of the ceiling: 61.0% met" in out
    assert "sold out >= 80% of the ceiling: 79.0% MISSED" in out
    assert "lua >= 2.0x atomic_update: 2.25x met" in out
    assert "atomic_update >= 1.3x select_for_update: 1.33x met" in out
    assert "batched_update >= 3.0x atomic_update: 2.50x MISSED" in out
    assert "batched_update >= 0.6x lua: 1.11x met" in out
    assert "batched_update p99 <= 50 ms: 40.0 ms met" in out
    assert "(0.02%) met" in out and "drain >= 10,000 rows/s: 25,000" in out
    assert "  ceiling, GET          11,000  110.0%" in out


def test_the_jwt_row_is_read_against_queued_without_it(capsys):
    run = rows(
        {
            "ceiling": 10_000,
            "ceiling, GET": 11_000,
            "queued": 6_000,
            "queued, jwt": 5_300,
            "sold out": 7_900,
            "lua": 900,
            "atomic_update": 400,
            "select_for_update": 300,
            "batched_update": 1_000,
        }
    )
    run.loads["warm-up"] = [Load(0, 1.0, 0, 1.0, 1.0), Load(100, 1.0, 100, 1.0, 1.0)]
    runtime = SimpleNamespace(
        services=SimpleNamespace(engine=SimpleNamespace(dialect=SimpleNamespace(name="mysql")))
    )
    bench_targets.report(run, (100, 100.0), 1, (1, 1), (50_000, 2.0), runtime)  # type: ignore[arg-type]
    assert "queued, jwt >= 90% of queued: 5,300 / 6,000 req/s = 88.3% MISSED" in capsys.readouterr().out
