"""The chaos lab: each fault injector does what it says, the columns add up, and one short real
row runs end to end on servers the lab starts and stops (none left behind)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from coupon.lab.chaos import faults, figures, matrix, timeline
from coupon.lab.chaos import report as chaos_report
from coupon.lab.chaos.figures import CouponFacts
from coupon.lab.chaos.redis_private import (
    build_shim,
    incr_file,
    private_redis,
    shim_env,
)
from coupon.lab.chaos.run import run_row
from coupon.lab.check import checking
from coupon.lab.drive.crowd import Cursor
from coupon.lab.drive.serve import Server
from coupon.lab.plan import Settings
from coupon.servers.pids import alive, children
from tests import backends
from tests.queueing import wait_for

pytestmark = pytest.mark.slow


def answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.exceptions.RedisError:
        return False


def test_redis_kill_keeps_what_an_always_aof_wrote():
    fault = faults.make("redis-kill-always")
    with private_redis(fault.redis_settings()) as server:
        client = server.client(socket_timeout=2)
        client.set("kept", 1)
        owned = SimpleNamespace(redis=server)
        fault.inject(owned)
        assert not alive(server.pid) and not answers(client)
        fault.heal(owned)
        assert client.get("kept") == b"1"


def test_redis_powerloss_cuts_the_aof_back_to_its_last_fsync(tmp_path: Path):
    fault = faults.make("redis-powerloss-no")  # the OS never asked to fsync: nearly all is lost
    assert fault.shim
    with private_redis(fault.redis_settings(), env=shim_env(build_shim(tmp_path))) as server:
        client = server.client(socket_timeout=2)
        client.set("big", b"x" * 100_000)
        owned = SimpleNamespace(redis=server)
        cut = fault.inject(owned)
        assert cut["fsynced_bytes"] < cut["aof_bytes"]
        assert incr_file(server).stat().st_size <= cut["fsynced_bytes"] + 5
        fault.heal(owned)  # redis-check-aof --fix cut the torn tail; the server starts
        assert client.get("big") is None


def test_redis_errors_refuse_writes_until_healed():
    fault = faults.make("redis-errors")
    fault.hold = 0.2
    with private_redis(fault.redis_settings()) as server:
        client, owned = server.client(socket_timeout=2), SimpleNamespace(redis=server)
        assert fault.inject(owned) == {"errors": ["OOM", "READONLY"]}
        with pytest.raises(redis.exceptions.ReadOnlyError):
            client.set("k", 1)
        assert client.config_get("maxmemory") == {"maxmemory": "0"}  # OOM was lifted already
        stats = client.info("errorstats")
        assert "errorstat_READONLY" in stats
        fault.heal(owned)
        assert client.set("k", 1)


def test_redis_reply_lost_drops_evalsha_replies_only_while_on():
    fault = faults.make("redis-reply-lost")
    with private_redis(fault.redis_settings()) as server:
        proxy = fault.redis_proxy(server.port)
        assert fault.db_proxy("") is None and proxy is not None
        with proxy:
            # As the service's clients: never re-send a command by itself.
            client = redis.Redis.from_url(proxy.url, socket_timeout=2, retry=Retry(NoBackoff(), 0))
            sha = client.script_load("return 1")

            def failures() -> int:
                failed = 0
                for _ in range(10):
                    try:
                        client.evalsha(sha, 0)
                    except redis.exceptions.ConnectionError:
                        failed += 1
                return failed

            assert failures() == 0
            fault.inject(None)
            assert failures() == 10 // faults.DROP_EVERY and proxy.dropped == 2
            assert fault.heal(None) == {"seen": 10, "dropped": 2}
            assert failures() == 0


def test_commit_lost_and_db_cut_through_the_lab_proxies(backend):
    lost = faults.make("commit-lost")
    proxy = lost.db_proxy(backend.url)
    assert proxy is not None
    with proxy:
        engine = create_engine(proxy.url, pool_pre_ping=True)
        lost.inject(None)
        failed = 0
        for _ in range(10):
            try:
                with engine.begin() as conn:
                    conn.execute(text("SELECT 1"))
            except DBAPIError:
                failed += 1
        assert lost.heal(None)["dropped"] == failed == 2
        engine.dispose()
    cut = faults.make("db-cut")
    with cut.db_proxy(backend.url) as proxy:
        engine = create_engine(proxy.url, pool_pre_ping=False)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar() == 1
            assert cut.inject(None) == {"connections_dropped": 1}
            with pytest.raises(DBAPIError):
                conn.execute(text("SELECT 1"))
        with pytest.raises(DBAPIError):
            engine.connect()
        cut.heal(None)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar() == 1
        engine.dispose()


def test_app_kill_kills_one_gunicorn_worker_and_the_server_serves_on(backend, redis_server, tmp_path):
    config = backends.test_config(backend.url, redis_server)
    with Server(config, workers=2, log_path=tmp_path / "gunicorn.log") as server:
        before = children(server.process.pid)
        killed = faults.make("app-kill").inject(SimpleNamespace(server=server))["killed_pid"]
        now = lambda: children(server.process.pid)
        wait_for(lambda: killed not in now() and len(now()) == 2, "gunicorn to reap it and start another", 20)
        assert killed in before
        # The surviving worker answers; on a loaded machine a ping may wait past its 1 s
        # timeout while the new worker boots, so the answer is awaited with a deadline.
        wait_for(server._answers, "the server to answer /ping", 20)


def test_the_columns_come_from_the_audit_and_the_answers():
    told = {
        "yes": frozenset({1, 2, 3, 4}),
        "no": frozenset({5, 6, 9}),
        "already": frozenset({7}),
        "error": frozenset({8, 9}),
    }
    # Rows for 1, 2 (told yes), 5 (told only no: phantom), 7 (already), 8 (an error: unknown),
    # 9 (no, then an error: unknown, not phantom); 3 and 4 were told yes and hold none: lost.
    one = CouponFacts(
        quantity=5, rows=6, row_users=frozenset({1, 2, 5, 7, 8, 9}), held=8, told=told, errors=3
    )
    two = CouponFacts(
        quantity=5,
        rows=5,
        row_users=frozenset({11, 12, 13, 14, 15}),
        held=5,
        told={"yes": frozenset({11, 12, 13, 14, 15})},
    )
    f = figures.total([one, two])
    assert (f.told_yes, f.rows, f.lost, f.phantom, f.stranded, f.over_issued, f.errors) == (
        9,
        11,
        2,
        1,
        2,
        1,
        3,
    )
    assert (f.coupons, f.sold_out, f.quantity) == (2, 2, 10)
    assert f.broken() == ["no over-issue", "no lost yes", "no phantom", "no stranded seat"]
    assert f.verdict == "over-issued +1, 2 lost, 1 phantom, 2 stranded"
    assert figures.total([two]).verdict == "kept"


def test_the_matrix_selects_rows():
    registered = ["none", "atomic_update", "lua", "queued"]
    assert matrix.expand(("redis-kill",)) == ("redis-kill-no", "redis-kill-everysec", "redis-kill-always")
    assert matrix.rows(("lua",), ("db-cut", "app-kill"), registered) == [
        ("lua", "db-cut"),
        ("lua", "app-kill"),
    ]
    assert ("queued", "redis-kill-always") in matrix.rows((), ("redis-kill",), registered)
    assert all(s == "none" for s, _ in matrix.rows(("none",), (), registered))
    with pytest.raises(ValueError, match="known: "):
        matrix.expand(("redis-flood",))


def test_a_short_chaos_row_end_to_end_leaves_no_server_behind(backend, tmp_path):
    config = backends.test_config(backend.url, "redis://127.0.0.1:1/0")  # every row has its own Redis
    before = {pid for pid in children(os.getpid()) if alive(pid)}
    settings = Settings(
        scenario="chaos",
        workers=2,
        duration=3.0,
        users=10,
        quantity=10,
        sellouts=20,
        duplicate_share=0.1,
        recovery=1.0,
    )
    row = run_row(config, "lua", "redis-kill-always", settings, tmp_path, lambda doing: None)
    after = {pid for pid in children(os.getpid()) if alive(pid)}
    assert after <= before, "a server of the row outlived it"
    f = row.figures
    assert f.told_yes > 0 and row.facts["fault_seconds"] >= faults.RedisRestart.hold
    assert f.errors > 0  # the kill hit a live load
    assert (f.lost, f.over_issued, f.phantom, f.stranded) == (0, 0, 0, 0), f.verdict
    assert f.told_yes <= f.rows <= f.quantity == 20 * 10
    assert row.recover_s is not None  # the service served again within the row
    assert (tmp_path / "locust_lua_redis_kill_always.users.json").exists()
    line = row.facts["timeline"]
    start, end = line["fault"]
    assert 0 < start < end and end - start == pytest.approx(row.facts["fault_seconds"], abs=0.05)
    assert len(line["seconds"]) >= 2 and sum(map(sum, line["per_second"].values())) > 0
    # The checker judges the row's history, and its verdict is the table's last column.
    judged = checking.judge_run(tmp_path, settings.recovery)
    assert judged is not None and chaos_report.checker_of(judged, row) == {"valid": True, "verdict": "valid"}
    assert chaos_report.table_rows([row], judged)[0][-1] == "valid"


def test_the_timeline_is_each_seconds_answers_by_kind(tmp_path: Path):
    cursor = Cursor([7])
    for kind in ("yes", "yes", "no", "already", "error"):
        cursor.heard(7, 1, kind)
    cursor.write_seconds(tmp_path / "now.json")
    (counts,) = json.loads((tmp_path / "now.json").read_text()).values()
    assert counts == {"yes": 2, "no": 1, "already": 1, "error": 1}

    # Seconds 1001, 1002 and 1004 heard something; 1003 nothing: a zero, not a gap.
    heard = {"1001": {"yes": 20, "no": 5}, "1002": {"already": 10, "error": 3}, "1004": {"no": 20}}
    (tmp_path / "run.seconds.json").write_text(json.dumps(heard))
    line = timeline.read(tmp_path / "run.seconds.json", started=1000.0, fault=(1001.5, 1002.5))
    assert line == {
        "seconds": [1, 2, 3, 4],
        "fault": [1.5, 2.5],
        "per_second": {"issued": [20, 0, 0, 0], "refused": [5, 10, 0, 20], "errors": [0, 3, 0, 0]},
    }
    assert timeline.read(tmp_path / "absent.json", 0.0, (1.0, 2.0)) == {}
