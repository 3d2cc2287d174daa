"""The lab: its audit on crafted data, its stats reading, and one short real run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import bindparam, create_engine, make_url, text

from coupon.core import queries
from coupon.lab import sandbox
from coupon.lab.chaos import failover_row, matrix
from coupon.lab.check.history import History, Recorder
from coupon.lab.drive.crowd import Cursor, read_tally
from coupon.lab.drive.load import percentile, read_stats
from coupon.lab.drive.names import ISSUED, REFUSED
from coupon.lab.plan import SCENARIOS, Settings, plan, pool_env
from coupon.lab.sellout import audit
from coupon.lab.sellout.verdict import SellOuts
from tests import reports

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def crafted(**changes: int) -> audit.Audit:
    """An exact, sold-out audit of a coupon of 10, with the given figures changed."""
    figures = dict(quantity=10, rows=10, users=10, counter=10, reserved=0, told_issued=10, errors=0)
    figures.update(changes)
    return audit.Audit(**figures)


def test_an_exact_sold_out_run_is_exact():
    found = crafted()
    assert found.exact and found.problems() == [] and found.verdict == "exact"


def test_a_run_that_never_sold_out_says_so():
    found = crafted(rows=4, users=4, counter=4, told_issued=4)
    assert found.exact and found.verdict == "exact, not sold out"


def test_a_known_over_issue_is_reported_as_such():
    found = crafted(rows=13, users=13, counter=13, told_issued=13)
    assert not found.exact
    assert found.over_issue == 3
    assert found.verdict == "over-issued +3"
    assert found.as_dict()["over_issue"] == 3 and found.as_dict()["exact"] is False


def test_duplicates_phantoms_lost_and_stranded_are_each_named():
    assert crafted(users=8).problems() == ["2 duplicate rows"]
    assert crafted(told_issued=12).problems() == ["2 phantom successes"]
    assert crafted(told_issued=9).problems() == ["1 lost successes"]
    assert crafted(reserved=11).problems() == ["1 stranded reservations"]
    assert crafted(counter=9).problems() == ["counter off by 1"]
    assert crafted(backlog=5).problems() == ["5 still queued"]
    both = crafted(rows=12, users=11, counter=12, told_issued=11)
    assert both.problems() == ["over-issued +2", "1 duplicate rows", "1 lost successes"]


def test_a_row_verdict_counts_its_sell_outs():
    exact = crafted()
    assert SellOuts((exact,) * 10).verdict == "exact in 10/10 sell-outs"
    over = [crafted(rows=10 + n, users=10 + n, counter=10 + n, told_issued=10 + n) for n in (1, 3, 2)]
    row = SellOuts(tuple(over + [exact] * 7))
    assert not row.exact and row.verdict == "over-issued in 3/10 (+1 .. +3)"
    assert (row.rows, row.quantity, row.told_issued) == (106, 100, 106)
    assert row.as_dict()["over_issued_sellouts"] == 3 and row.as_dict()["over_issue_total"] == 6
    assert len(row.as_dict()["coupons"]) == 10
    assert SellOuts((over[0], over[0])).verdict == "over-issued in 2/2 (+1)"
    unsold = crafted(rows=4, users=4, counter=4, told_issued=4)
    assert SellOuts((exact, unsold)).verdict == "exact in 1/2 sell-outs (1 not sold out)"
    mixed = SellOuts((over[1], crafted(told_issued=12), crafted(told_issued=11), exact))
    assert mixed.verdict == "over-issued in 1/4 (+3), 3 phantom successes in 2/4"


def test_the_crowd_moves_on_only_when_its_current_coupon_sells_out(tmp_path: Path):
    cursor = Cursor([7, 8, 9])
    cursor.sold_out(8)  # a late answer about another coupon changes nothing
    assert cursor.current == 7
    cursor.count(7, "issued")
    cursor.sold_out(7)
    cursor.sold_out(7)
    assert cursor.current == 8
    cursor.sold_out(8)
    cursor.sold_out(9)  # the last coupon stays current: the crowd keeps asking until the time is up
    assert cursor.current == 9
    cursor.count(9, "errors")
    cursor.write(tmp_path / "tally.json")
    assert read_tally(tmp_path / "tally.json") == {
        7: {"issued": 1, "errors": 0},
        8: {"issued": 0, "errors": 0},
        9: {"issued": 0, "errors": 1},
    }


def test_audit_reads_the_database_and_redis_not_the_callers(runtime, make_coupon):
    coupon_id = make_coupon(quantity=3)
    with runtime.services.engine.begin() as conn:
        for user in (1, 2, 3, 4):  # one more row than the quantity, written behind its back
            queries.insert_issue(conn, coupon_id, user)
        queries.add_issued(conn, coupon_id, 3)  # the CHECK keeps the count within the total
    runtime.services.redis.set(runtime.state.keys(coupon_id).count, 6)

    found = audit.read(runtime, coupon_id, told_issued=5, errors=2)

    assert (found.quantity, found.rows, found.users, found.counter) == (3, 4, 4, 3)
    assert found.problems() == [
        "over-issued +1",
        "1 phantom successes",
        "2 stranded reservations",
        "counter off by 1",
    ]


def test_audit_folds_the_count_of_a_strategy_that_does_not_count_as_it_writes(runtime, make_coupon):
    coupon_id = make_coupon(quantity=3, strategy="lua")
    for user in (1, 2):
        assert runtime.strategies["lua"].issue(coupon_id, user).value == "issued"

    unfolded = audit.read(runtime, coupon_id, told_issued=2, errors=0)
    folded = audit.read(runtime, coupon_id, told_issued=2, errors=0, fold=True)

    assert (unfolded.counter, folded.counter) == (0, 2)  # lua leaves the column to the workers
    assert folded.exact and not unfolded.exact


def test_read_stats_counts_what_callers_were_told(tmp_path: Path):
    def entry(name: str, count: int, times: dict[str, int], failures: int = 0) -> dict[str, object]:
        return {
            "name": name,
            "method": "POST",
            "num_requests": count,
            "num_failures": failures,
            "response_times": times,
            "start_time": 100.0,
            "last_request_timestamp": 110.0,
        }

    stats = [
        entry(ISSUED, 10, {"20": 10}),
        entry(REFUSED, 85, {"5": 85}),
        entry("issue: error", 5, {"900": 5}, failures=5),
    ]
    (tmp_path / "run.json").write_text(json.dumps(stats))

    load = read_stats(tmp_path / "run.json", seconds=12.0)

    assert (load.requests, load.issued, load.refused, load.failures) == (100, 10, 85, 5)
    assert load.rps == pytest.approx(10.0)
    assert load.issued_seconds == pytest.approx(10.0)
    assert (load.p50, load.p95, load.p99) == (5.0, 20.0, 900.0)
    assert load.spectrum == {
        "p50": 5.0,
        "p90": 20.0,
        "p99": 900.0,
        "p99.9": 900.0,
        "p99.99": 900.0,
        "max": 900.0,
    }
    assert percentile({}, 0.5) == 0.0


def test_plans_put_ping_first_and_keep_pools_small():
    assert [run.label for run in plan(Settings(), ["none", "lua"])] == ["/ping", "none", "lua"]
    workers = plan(Settings(scenario="workers"), ["none"])
    assert [(run.label, run.workers) for run in workers[1:]] == [
        ("process_lock x1", 1),
        ("process_lock x4", 4),
    ]
    lease = plan(Settings(scenario="lease-expiry"), [])
    assert [run.strategy for run in lease] == [None, "redis_lock", "fenced_lock"]
    assert dict(lease[1].env)["COUPON_FAULT_PAUSE_SECONDS"] == "3" and lease[0].env == ()
    assert Settings().sellouts_for() == 10 and Settings().quantity_for() == 20
    assert Settings(scenario="lease-expiry").sellouts_for() == 1
    capacity = plan(Settings(scenario="capacity"), ["none", "process_lock", "lua", "queued"])
    assert [run.label for run in capacity] == ["/ping", "lua", "queued"]
    scaled = plan(Settings(scenario="scaling"), ["lua"])
    assert [(run.label, run.workers) for run in scaled[1:]] == [(f"lua x{n}", n) for n in (1, 2, 3, 4)]
    assert SCENARIOS["capacity"].driver == "capacity" and SCENARIOS["all"].driver == "sellouts"
    with pytest.raises(ValueError, match="known: all, workers"):
        plan(Settings(scenario="nope"), [])
    for workers_count in (1, 2, 4, 8):
        env = pool_env(workers_count)
        assert workers_count * (int(env["COUPON_DB_POOL_SIZE"]) + int(env["COUPON_DB_MAX_OVERFLOW"])) <= 48


def test_the_chaos_matrix_has_failover_rows_per_kind_and_mode():
    registered = ["atomic_update", "lua", "queued", "redis_counter"]
    assert matrix.expand(("failover-kill",)) == ("failover-kill-async", "failover-kill-wait1")
    assert matrix.failover_of("failover-stop-wait1") == ("stop", "wait1")
    every = matrix.rows((), ("failover",), registered)
    assert len(every) == 3 * 3 * 2 == len(set(every))  # strategies x kinds x modes
    assert {s for s, _ in every} == {"lua", "queued", "redis_counter"}
    assert {f for _, f in every} == {
        f"failover-{k}-{m}" for k in ("kill", "stop", "manual") for m in ("async", "wait1")
    }
    # A failover row is only for a strategy with Redis state; other faults keep their rows.
    assert matrix.rows(("atomic_update", "lua"), ("failover-manual-wait1", "db-cut"), registered) == [
        ("atomic_update", "db-cut"),
        ("lua", "failover-manual-wait1"),
        ("lua", "db-cut"),
    ]
    mixed = matrix.rows((), ("db-cut", "failover-kill-async"), registered)
    assert ("atomic_update", "db-cut") in mixed and ("redis_counter", "failover-kill-async") in mixed
    default = [run.fault for run in plan(Settings(scenario="chaos"), registered)[1:]]
    assert 1 <= sum(map(matrix.is_failover, default)) <= 3  # the default run stays a few minutes
    with pytest.raises(ValueError, match="failover-kill"):
        matrix.expand(("failover-crash",))


def test_a_failover_row_counts_what_each_user_was_told_against_the_rows():
    recorder = Recorder()
    for user, status, body in [
        (1, 202, "{}"),
        (2, 202, "{}"),
        (3, 503, '{"error": "redis unavailable"}'),
        (4, 409, '{"result": "sold_out"}'),
        (1, 409, '{"result": "already_issued"}'),
    ]:
        recorder.record("crowd", 7, user, "queued", 1.0 + user, status, body, complete=1.5 + user)
    events = [{"time": 3.0, "phase": "start"}, {"time": 4.0, "phase": "stop"}]
    state = {7: {"total": 10, "rows": [1, 3, 4], "held": 3}}
    found = {
        "quantity": 10,
        "recover_s": 2.5,
        "drain_s": 0.5,
        "kind": "kill",
        "wait_replicas": 0,
        "old_run": "a",
        "new_run": "b",
        "lost": 1,
        "over_issued": 0,
        "seats_twice": 0,
        "writes_on_old_after_resume": 0,
    }
    row = failover_row._row("queued", "failover-kill-async", History({}, recorder.ops, events), state, found)
    f = row.figures
    # User 2 heard 202 and has no row; user 4 heard sold out and has one; user 3's 503 is unknown.
    assert (f.told_yes, f.rows, f.lost, f.phantom, f.errors, f.over_issued) == (2, 3, 1, 1, 1, 0)
    assert row.recover_s == 2.5 and row.settle_s == 0.5 and row.load.requests == 5
    assert row.facts["timeline"]["per_second"] == {
        "issued": [1, 1, 0, 0],
        "refused": [1, 0, 0, 1],
        "errors": [0, 0, 1, 0],
    }


@pytest.mark.slow
def test_a_short_real_lab_run_writes_a_report(app, tmp_path: Path):
    # A hand-made baseline with the same rows, each 1000 times faster: the run regresses against it.
    baseline = reports.save(
        tmp_path / "baseline",
        reports.sellouts(
            [reports.sellout_row(label, 10**6, 0.01) for label in ("/ping", "atomic_update", "none")]
        ),
    )
    args = [
        "lab",
        "--strategies",
        "atomic_update,none",
        "--duration",
        "3",
        "--users",
        "10",
        "--sellouts",
        "3",
        "--quantity",
        "10",
        "--output",
        str(tmp_path / "runs"),
        "--baseline",
        str(baseline),
        "--fail-on-regression",
    ]
    result = app.test_cli_runner().invoke(args=args)
    assert result.exit_code == 1, result.output  # the gate's exit, once the report is written

    (out,) = (tmp_path / "runs").iterdir()
    document = json.loads((out / "report.json").read_text())
    rows = {row["label"]: row for row in document["results"]}
    assert list(rows) == ["/ping", "atomic_update", "none"]
    assert rows["/ping"]["audit"] is None and rows["/ping"]["load"]["requests"] > 0
    exact = rows["atomic_update"]["audit"]
    assert exact["verdict"] == "exact in 3/3 sell-outs" and exact["rows"] == exact["told_issued"] == 30
    assert [coupon["rows"] for coupon in exact["coupons"]] == [10, 10, 10]
    assert len(set(rows["atomic_update"]["coupon_ids"])) == 3
    racy = rows["none"]["audit"]
    assert racy["rows"] > 0 and all(coupon["duplicates"] == 0 for coupon in racy["coupons"])
    over = sum(coupon["rows"] > coupon["quantity"] for coupon in racy["coupons"])
    assert racy["over_issued_sellouts"] == over
    assert (f"over-issued in {over}/3" in racy["verdict"]) == (over > 0)
    assert document["backend"]["database"] in ("mysql", "postgresql")
    markdown = (out / "report.md").read_text()
    # The checker's verdict is the table's last column.
    assert (
        "| atomic_update | 2 |" in markdown
        and "| 3x10 | 30 | 30 | 30 | exact in 3/3 sell-outs | valid |" in markdown
    )
    assert f"Backend: **{document['backend']['database']}**" in markdown
    for chart in ("throughput", "latency", "correctness"):
        assert (out / f"{chart}.png").read_bytes().startswith(PNG_MAGIC)
    # The checker judged the history every run writes: the exact row valid, none's over-issue seen.
    assert (out / "history.jsonl").exists() and "## Checker" in markdown
    check = document["check"]
    assert check["by_run"]["atomic_update"] == "valid"
    assert ("over" in check["by_run"]["none"]) == (over > 0)
    assert rows["atomic_update"]["checker"] == {"valid": True, "verdict": "valid"}
    assert rows["none"]["checker"]["verdict"] == check["by_run"]["none"] and rows["/ping"]["checker"] is None
    assert set(rows["none"]["load"]["spectrum"]) == {"p50", "p90", "p99", "p99.9", "p99.99", "max"}
    compared = json.loads((out / "compare.json").read_text())
    assert [row["label"] for row in compared["rows"] if row["regressions"]] == ["atomic_update", "none"]
    page = (out / "report.html").read_text()
    assert "regression against the baseline" in page and "exact in 3/3 sell-outs" in page
    assert ">checker</th>" in page and "\u2714 valid" in page


@pytest.mark.slow
def test_the_lab_keeps_its_data_apart_from_the_service(app, tmp_path: Path):
    service = app.extensions["coupon"].config
    lab = sandbox.lab_config(service)
    assert make_url(lab.database_url).database == make_url(service.database_url).database + "_lab"
    assert lab.redis_prefix == service.redis_prefix + "lab:"
    args = [
        "lab",
        "--strategies",
        "atomic_update",
        "--duration",
        "1",
        "--users",
        "2",
        "--sellouts",
        "1",
        "--quantity",
        "2",
        "--output",
        str(tmp_path),
    ]
    runtime = app.extensions["coupon"]
    with runtime.services.engine.connect() as conn:
        before = conn.execute(text("SELECT COUNT(*) FROM coupon")).scalar_one()
    result = app.test_cli_runner().invoke(args=args)
    assert result.exit_code == 0, result.output
    (out,) = tmp_path.iterdir()
    lab_ids = json.loads((out / "report.json").read_text())["results"][1]["coupon_ids"]
    with runtime.services.engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM coupon")).scalar_one() == before
    engine = create_engine(lab.database_url)
    with engine.connect() as conn:
        found = (
            conn.execute(
                text("SELECT id FROM coupon WHERE id IN :ids").bindparams(bindparam("ids", expanding=True)),
                {"ids": lab_ids},
            )
            .scalars()
            .all()
        )
    engine.dispose()
    assert sorted(found) == sorted(lab_ids)
    assert not list(runtime.services.redis.scan_iter(match=f"{service.redis_prefix}{{*", count=1000))


def test_a_lab_run_in_jwt_mode_sends_tokens_minted_ahead(make_client, tmp_path: Path):
    from tests.support.identity import JWT

    app = make_client(**JWT).application
    args = [
        "lab",
        "--strategies",
        "atomic_update",
        "--duration",
        "3",
        "--users",
        "10",
        "--sellouts",
        "1",
        "--quantity",
        "10",
        "--output",
        str(tmp_path),
    ]
    result = app.test_cli_runner().invoke(args=args)
    assert result.exit_code == 0, result.output
    (out,) = tmp_path.iterdir()
    rows = {row["label"]: row for row in json.loads((out / "report.json").read_text())["results"]}
    # Every answer was a 201 or a 409: no request went without a token the server accepts.
    assert rows["atomic_update"]["load"]["failures"] == 0
    assert rows["atomic_update"]["load"]["issued"] == 10
    assert rows["atomic_update"]["audit"]["verdict"] == "exact in 1/1 sell-outs"


def test_the_crowds_tokens_are_minted_ahead_and_bounded():
    from coupon.api.identity import Minter, Verifier
    from coupon.core.config import Config
    from coupon.lab.drive.crowd import Tokens
    from tests.support.identity import SECRET

    config = Config(jwt_secret=SECRET)
    tokens = Tokens(Minter.for_config(config), keep=3)
    tokens.ahead(range(1, 6))
    assert list(tokens.minted) == [3, 4, 5]
    verifier = Verifier(config)
    assert [verifier.user_of(tokens.headers(user)["Authorization"]) for user in (4, 9)] == [4, 9]
    assert Tokens(None, keep=3).headers(4) == {}
