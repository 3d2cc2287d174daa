"""The nemesis: its schedule is seeded and overlaps, it replays, and one short seed per family
ends valid for the safe strategies while the lab-only `none` is caught over-issuing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from coupon.lab.check.checker import ANOMALIES
from coupon.lab.nemesis import schedule as schedules
from coupon.lab.nemesis.driver import plans
from coupon.lab.nemesis.faults import ACTIONS
from coupon.lab.nemesis.run import members, run_seed
from coupon.lab.plan import Settings, Steps
from coupon.servers.pids import alive, children
from strategies import FAMILIES, LAB_ONLY
from tests import backends


def test_a_seed_draws_the_same_schedule_every_time():
    one, again = (schedules.make(7, 60, 3.0, 4) for _ in range(2))
    assert one == again and one != schedules.make(8, 60, 3.0, 4)


def test_schedules_overlap_faults_on_different_things_and_never_on_one():
    overlapping = 0
    for seed in range(20):
        steps = schedules.make(seed, 60, 3.0, 4).steps
        assert all(step.at <= 0.7 * 60 for step in steps)
        for a in steps:
            for b in steps:
                if a is not b and a.at <= b.at < a.ends:
                    assert schedules.KINDS[a.fault][0] != schedules.KINDS[b.fault][0], (seed, a, b)
                    overlapping += 1
    assert overlapping > 20


def test_every_fault_of_the_schedule_can_be_injected():
    assert set(schedules.KINDS) == set(ACTIONS)


def test_a_saved_schedule_replays_as_it_was(tmp_path: Path):
    drawn = schedules.make(3, 30, 1.0, 2)
    (tmp_path / "seed-3").mkdir()
    schedules.save(drawn, tmp_path / "seed-3" / "schedule.json")
    assert plans(Settings(scenario="nemesis", replay=str(tmp_path)), 2) == [drawn]
    fresh = plans(Settings(scenario="nemesis", seeds=2, minutes=0.5, recovery=1.0, steps=Steps(seed=3)), 2)
    assert [plan.seed for plan in fresh] == [3, 4] and fresh[0] == drawn


def test_redis_fsyncs_always_unless_another_mode_is_asked_and_a_replay_keeps_its_own(tmp_path: Path):
    # Under `always` a 202 outlives a power cut (tests/test_durability.py, powerloss-always), so
    # a lost 202 in a seed is a guard's fault, not the durability the seed was configured for.
    assert {schedules.make(seed, 30, 1.0, 2).appendfsync for seed in range(10)} == {"always"}
    assert schedules.make(3, 30, 1.0, 2, appendfsync="no").appendfsync == "no"
    drawn = {schedules.make(seed, 30, 1.0, 2, appendfsync="drawn").appendfsync for seed in range(30)}
    assert drawn == {"always", "everysec", "no"}
    # The mode never changes which faults a seed draws.
    assert schedules.make(3, 30, 1.0, 2, appendfsync="drawn").steps == schedules.make(3, 30, 1.0, 2).steps
    with pytest.raises(ValueError, match="known: no, everysec, always, drawn"):
        schedules.make(3, 30, 1.0, 2, appendfsync="sometimes")
    (tmp_path / "seed-3").mkdir()
    schedules.save(schedules.make(3, 30, 1.0, 2, appendfsync="no"), tmp_path / "seed-3" / "schedule.json")
    replayed = plans(Settings(scenario="nemesis", replay=str(tmp_path)), 2)
    assert [plan.appendfsync for plan in replayed] == ["no"]
    fresh = plans(Settings(scenario="nemesis", appendfsync="everysec", steps=Steps(seed=3)), 2)
    assert [plan.appendfsync for plan in fresh] == ["everysec"]


def test_requests_name_any_safe_member_of_the_coupons_family():
    for names in FAMILIES.values():
        for name in names:
            assert set(members(name)) <= set(names)
            assert name in LAB_ONLY or not set(members(name)) & LAB_ONLY


def _one_per_family() -> tuple[str, ...]:
    picked = [next((n for n in names if n not in LAB_ONLY), None) for names in FAMILIES.values()]
    return (*(name for name in picked if name is not None), "none")


@pytest.mark.slow
def test_one_short_seed_per_family_is_valid_and_none_is_caught(backend, tmp_path: Path):
    config = backends.test_config(backend.url, "redis://127.0.0.1:1/0")  # the seed has its own Redis
    before = {pid for pid in children(os.getpid()) if alive(pid)}
    strategies = _one_per_family()
    plan = schedules.make(1, 20.0, 1.0, len(strategies))
    seed = run_seed(config, plan, strategies, 2, tmp_path / "seed-1", lambda doing: None)
    after = {pid for pid in children(os.getpid()) if alive(pid)}
    assert after <= before, "a server of the seed outlived it"
    assert seed.faults > 0 and seed.ops > 0 and (tmp_path / "seed-1" / "history.jsonl").exists()
    sums = seed.check.by_strategy()
    for strategy, row in sums.items():
        anomalies = {name: row[name] for name in ANOMALIES if row[name]}
        if strategy == "none":
            assert anomalies, "the lab-only strategy was not caught: the checker proves nothing"
        else:
            assert not anomalies, (
                strategy,
                anomalies,
                [c.examples for c in seed.check.coupons if not c.valid],
            )
