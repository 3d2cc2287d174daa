"""Load for the lab and for your own runs: a crowd asking for one coupon, first come first served.

    locust -f locustfile.py --headless -u 200 -r 200 -t 30s --host http://127.0.0.1:8000 \
        --strategy lua --coupon-quantity 1000 --duplicate-share 0.1 --csv reports/run

Each request names a user who never asked before, except a --duplicate-share of them, which
repeat a user of this process who already asked. On test start the coupon is created through
the API (unless --coupon-id names one); on test stop it is audited through the API and the
verdict is logged as PASS or FAIL. Refusals (409) are expected outcomes; 5xx are failures.
Works distributed (--master/--worker, --processes): only the master creates and audits the
coupon, and every simulated user counts its ids up from its own random 62-bit start.
"""
from __future__ import annotations

import itertools
import json
import logging
import os
import random
import time
import urllib.request
from collections import deque
from typing import Any

from locust import FastHttpUser, events, task
from locust.env import Environment
from locust.runners import WorkerRunner

from coupon.lab.names import FAILED, ISSUED, PING, REFUSED

log = logging.getLogger("coupon.locust")

# Ids drawn so far are remembered (a bounded window) so that repeats name real earlier askers.
RECENT_USERS = 10_000


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    group = parser.add_argument_group("coupon lab")
    group.add_argument("--strategy", default="", help="Strategy to ask for (default: the server's)")
    group.add_argument("--coupon-quantity", type=int, default=1000, help="Quantity of the coupon made on start")
    group.add_argument("--coupon-id", type=int, default=0, help="Use this coupon instead of creating one")
    group.add_argument("--duplicate-share", type=float, default=0.1, help="Share of requests repeating a user")
    group.add_argument(
        "--admin-token",
        default=os.environ.get("COUPON_ADMIN_TOKEN") or "dev-admin-token",
        help="Admin token for creating the coupon (env COUPON_ADMIN_TOKEN)",
    )
    group.add_argument("--ping", action="store_true", help="Only GET /ping: the reference ceiling")
    group.add_argument("--audit-timeout", type=float, default=30.0, help="Seconds to wait for counts to agree")
    group.add_argument("--no-audit", action="store_true", help="No audit on stop (the lab audits itself)")


def _call(url: str, method: str = "GET", body: dict[str, Any] | None = None, token: str = "") -> Any:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@events.test_start.add_listener
def _create_coupon(environment: Environment, **_: Any) -> None:
    options = environment.parsed_options
    if isinstance(environment.runner, WorkerRunner) or options.ping or options.coupon_id:
        return
    body = {"name": f"locust {options.strategy or 'default'}", "total_quantity": options.coupon_quantity}
    if options.strategy:  # the coupon is issued by this strategy's family only
        body["strategy"] = options.strategy
    created = _call(f"{environment.host}/coupons", "POST", body, options.admin_token)
    # Set before the master dispatches users: workers receive the parsed options with it.
    options.coupon_id = created["id"]
    log.info("created coupon %s with quantity %s", created["id"], options.coupon_quantity)


def _told_issued(environment: Environment) -> int:
    return environment.stats.get(ISSUED, "POST").num_requests


@events.init.add_listener
def _finish_in_flight(environment: Environment, **_: Any) -> None:
    # A request cut off at the time limit may still write a row its caller never hears of,
    # which the audit would count as a lost success: let users finish what they started.
    if not environment.stop_timeout:
        environment.stop_timeout = 30


@events.test_stop.add_listener
def _audit(environment: Environment, **_: Any) -> None:
    options = environment.parsed_options
    if isinstance(environment.runner, WorkerRunner) or options.ping or options.no_audit:
        return
    deadline = time.monotonic() + options.audit_timeout
    while True:
        # Both sides may still move: workers' last stats reach the master after it stops,
        # and a queued strategy's rows follow its answers once the worker drains the backlog.
        told = _told_issued(environment)
        coupon = _call(f"{environment.host}/coupons/{options.coupon_id}")
        if coupon["issued_quantity"] == told or time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    issued, quantity = coupon["issued_quantity"], coupon["total_quantity"]
    passed = issued <= quantity and issued == told
    log.log(
        logging.INFO if passed else logging.ERROR,
        "%s: coupon %s issued %s of %s, callers told issued %s",
        "PASS" if passed else "FAIL", options.coupon_id, issued, quantity, told,
    )
    if not passed:
        environment.process_exit_code = 1


class Crowd(FastHttpUser):
    """One member of the crowd: asks again and again, mostly as somebody new."""

    def on_start(self) -> None:
        options = self.environment.parsed_options
        self.options = options
        # A counter from a random 62-bit start: the ranges of any two users, in this process or
        # another (--processes, --worker), overlap with odds of about 1e-8; and stay below 2**63.
        self.ids = itertools.count(random.getrandbits(62) + 1)
        self.recent: deque[int] = deque(maxlen=RECENT_USERS)
        query = f"?strategy={options.strategy}" if options.strategy else ""
        self.path = f"/coupons/{options.coupon_id}/issue{query}"

    def _user_id(self) -> int:
        if self.recent and random.random() < self.options.duplicate_share:
            return random.choice(self.recent)
        user_id = next(self.ids)
        self.recent.append(user_id)
        return user_id

    @task
    def ask(self) -> None:
        if self.options.ping:
            self.client.get("/ping", name=PING)
            return
        body = {"user_id": self._user_id()}
        with self.client.post(self.path, json=body, name=FAILED, catch_response=True) as response:
            if response.status_code in (201, 202):
                response.request_meta["name"] = ISSUED
                response.success()
            elif response.status_code == 409:
                response.request_meta["name"] = REFUSED
                response.success()
            else:
                response.failure(f"status {response.status_code}")
