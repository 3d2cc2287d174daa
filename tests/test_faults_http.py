"""SIGKILL of real gunicorn workers mid-sale: no seat stays stranded past the recovery bound."""

from __future__ import annotations

import http.client
import json
import os
import signal
import threading
from pathlib import Path

import pytest

from coupon.core import queries
from coupon.lab.drive.serve import Server
from coupon.queue.worker import Settings, Worker
from coupon.runtime import Runtime
from coupon.servers.pids import children as worker_pids
from tests import backends
from tests.crowd import crowd
from tests.queueing import wait_for

pytestmark = pytest.mark.slow

QUANTITY = 150
CALLS = 600
BOUND = 1.0


def post_issue(port: int, coupon_id: int, user_id: int) -> int:
    """POST one issue over a fresh connection; return the status (0: the connection died)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        body = json.dumps({"user_id": user_id})
        conn.request(
            "POST", f"/coupons/{coupon_id}/issue?strategy=lua", body, {"Content-Type": "application/json"}
        )
        return conn.getresponse().status
    except (OSError, http.client.HTTPException):
        return 0
    finally:
        conn.close()


def test_killed_workers_strand_no_seat(backend, redis_server, tmp_path: Path):
    config = backends.test_config(backend.url, redis_server, db_pool_size=10, db_max_overflow=5)
    runtime = Runtime.open(config)
    sweeper = Worker(runtime, settings=Settings(recovery=BOUND))
    try:
        coupon_id = runtime.create_coupon("killed mid-sale", QUANTITY)
        with Server(config, workers=2, log_path=tmp_path / "gunicorn.log") as server:
            assert server.process is not None
            answered: list[int] = []

            def issue(user: int) -> int:
                status = post_issue(server.port, coupon_id, user)
                answered.append(status)
                return status

            victims = worker_pids(server.process.pid)
            killer = threading.Thread(
                target=lambda: (
                    wait_for(lambda: len(answered) >= 40, "the sale to be under way", 30),
                    [os.kill(pid, signal.SIGKILL) for pid in victims],
                ),
                daemon=True,
            )
            killer.start()
            statuses = crowd(issue, [(user,) for user in range(1, CALLS + 1)], threads=32)
            killer.join(timeout=30)
        with runtime.services.engine.connect() as conn:
            rows = queries.holders(conn, coupon_id)
        told = {user for user, status in enumerate(statuses, 1) if status == 201}
        assert 500 not in statuses and told <= set(rows) and len(rows) <= QUANTITY
        thread = threading.Thread(target=sweeper.run, daemon=True)
        thread.start()
        users = iter(range(10_000, 20_000))
        lua = runtime.strategies["lua"]

        def refilled() -> bool:
            lua.issue(coupon_id, next(users))
            with runtime.services.engine.connect() as conn:
                return queries.count_issues(conn, coupon_id)[0] == QUANTITY

        wait_for(refilled, f"{QUANTITY} rows once the dead workers' seats are swept", BOUND * 6 + 10)
        # The kills caught reservations in flight: the sweep resolved them (else: no test).
        assert sweeper.sweeper.released + sweeper.sweeper.written > 0
        with runtime.services.engine.connect() as conn:
            assert queries.count_issues(conn, coupon_id) == (QUANTITY, QUANTITY)
    finally:
        sweeper.stop()
        runtime.close()
