"""Load for the lab and for your own runs: a crowd asking for one coupon, first come first served.

    locust -f locustfile.py --headless -u 200 -r 200 -t 30s --host http://127.0.0.1:8000 \
        --strategy lua --coupon-quantity 1000 --duplicate-share 0.1 --csv reports/run

Each request names a user who never asked before, except a --duplicate-share of them, which
repeat a user of this process who already asked. On test start the coupon is created through
the API (unless --coupon-id names one); on test stop it is audited through the API and the
verdict is logged as PASS or FAIL. Refusals (409) are expected outcomes; 5xx are failures.
Works distributed (--master/--worker, --processes): only the master creates and audits the
coupon, and every simulated user counts its ids up from its own random 62-bit start.

The lab adds two modes. --coupon-ids a,b,c: the crowd sells out these coupons one after another
(it moves on when it hears `sold_out`) and --tally-out gets what callers of each were told.
--rate R (with -u 1): open loop instead of a crowd; one scheduler offers R requests/s for
--warmup + --measure seconds, latency counted from each request's intended send time, and writes
its summary to --arrivals-out (coupon/lab/drive/openloop.py).
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
from pathlib import Path
from typing import Any

import gevent
from locust import FastHttpUser, events, task
from locust.env import Environment
from locust.exception import StopUser
from locust.runners import WorkerRunner

from coupon.core.config import EMBEDDED_ADMIN_TOKEN, Config
from coupon.lab.check.history import Recorder
from coupon.lab.drive.crowd import Cursor, Tokens, minter_for
from coupon.lab.drive.names import FAILED, ISSUED, PING, REFUSED

log = logging.getLogger("coupon.locust")

# Ids drawn so far are remembered (a bounded window) so that repeats name real earlier askers.
RECENT_USERS = 10_000
# New ids drawn (and, in jwt mode, their tokens minted) at a time, ahead of their requests.
AHEAD = 1000
# Requests kept per process for the history (coupon/lab/check/history.py); the header counts the rest.
HISTORY_CAP = 500_000


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    group = parser.add_argument_group("coupon lab")
    group.add_argument("--strategy", default="", help="Strategy to ask for (default: the server's)")
    group.add_argument(
        "--coupon-quantity", type=int, default=1000, help="Quantity of the coupon made on start"
    )
    group.add_argument("--coupon-id", type=int, default=0, help="Use this coupon instead of creating one")
    group.add_argument(
        "--duplicate-share", type=float, default=0.1, help="Share of requests repeating a user"
    )
    settings = Config.from_env()
    group.add_argument(
        "--admin-token",
        default=settings.admin_token or EMBEDDED_ADMIN_TOKEN,
        help="Admin token for creating the coupon (env COUPON_ADMIN_TOKEN)",
    )
    # jwt mode (docs/identity.md): each user's token is minted ahead, a batch at a time.
    group.add_argument(
        "--auth",
        choices=["body", "jwt"],
        default=settings.auth or "body",
        help="How the server knows the user (env COUPON_AUTH)",
    )
    group.add_argument(
        "--jwt-secret",
        default=settings.jwt_secret or "",
        help="HS256 secret to mint tokens with (env COUPON_JWT_SECRET)",
    )
    group.add_argument(
        "--jwt-private-key",
        default=str(settings.jwt_private_key or ""),
        help="Or a private key file (PEM) to mint with (env COUPON_JWT_PRIVATE_KEY)",
    )
    group.add_argument("--jwt-issuer", default=settings.jwt_issuer or "")
    group.add_argument("--jwt-audience", default=settings.jwt_audience or "")
    group.add_argument("--ping", action="store_true", help="Only GET /ping: the reference ceiling")
    group.add_argument(
        "--audit-timeout", type=float, default=30.0, help="Seconds to wait for counts to agree"
    )
    group.add_argument("--no-audit", action="store_true", help="No audit on stop (the lab audits itself)")
    group.add_argument("--coupon-ids", default="", help="Sell these coupons out one after another")
    group.add_argument("--tally-out", default="", help="Write per-coupon told-issued counts here (JSON)")
    group.add_argument("--users-out", default="", help="Write per-coupon user ids by answer here (JSON)")
    group.add_argument(
        "--seconds-out", default="", help="With --users-out: answers per second by kind (JSON)"
    )
    group.add_argument("--rate", type=float, default=0.0, help="Open loop: requests/s offered (with -u 1)")
    group.add_argument("--warmup", type=float, default=1.0, help="Open loop: seconds before measuring")
    group.add_argument("--measure", type=float, default=3.0, help="Open loop: seconds measured")
    group.add_argument("--max-in-flight", type=int, default=500, help="Open loop: pool size (full: dropped)")
    group.add_argument("--seed", type=int, default=1, help="Open loop: seed of the arrival times")
    group.add_argument("--arrivals-out", default="arrivals.json", help="Open loop: summary file")
    group.add_argument("--history-out", default="", help="Write every issue request here (JSON lines)")
    group.add_argument(
        "--history-cap", type=int, default=HISTORY_CAP, help="Requests kept in the history at most"
    )


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
    if (
        isinstance(environment.runner, WorkerRunner)
        or options.ping
        or options.coupon_id
        or options.coupon_ids
    ):
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


@events.test_start.add_listener
def _cursor(environment: Environment, **_: Any) -> None:
    options = environment.parsed_options
    ids = [int(part) for part in options.coupon_ids.split(",") if part.strip()]
    # Shared by this process's users; after _create_coupon, which may have set coupon_id.
    environment.coupon_cursor = Cursor(ids or [options.coupon_id])


@events.test_start.add_listener
def _history(environment: Environment, **_: Any) -> None:
    environment.coupon_history = Recorder(cap=environment.parsed_options.history_cap)


@events.test_stop.add_listener
def _write_tally(environment: Environment, **_: Any) -> None:
    options = environment.parsed_options
    if options.history_out and not options.rate:
        coupons = environment.coupon_cursor.coupon_ids
        environment.coupon_history.write(Path(options.history_out), coupons=coupons, pid=os.getpid())
    if options.tally_out and not options.rate and not isinstance(environment.runner, WorkerRunner):
        environment.coupon_cursor.write(Path(options.tally_out))
    if options.users_out and not options.rate and not isinstance(environment.runner, WorkerRunner):
        environment.coupon_cursor.write_users(Path(options.users_out))
        if options.seconds_out:
            environment.coupon_cursor.write_seconds(Path(options.seconds_out))


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
        "PASS" if passed else "FAIL",
        options.coupon_id,
        issued,
        quantity,
        told,
    )
    if not passed:
        environment.process_exit_code = 1


CLIENTS = itertools.count(1)


class Crowd(FastHttpUser):
    """One member of the crowd: asks again and again, mostly as somebody new."""

    def on_start(self) -> None:
        options = self.environment.parsed_options
        self.options = options
        # A counter from a random 62-bit start: the ranges of any two users, in this process or
        # another (--processes, --worker), overlap with odds of about 1e-8; and stay below 2**63.
        self.ids = itertools.count(random.getrandbits(62) + 1)
        self.recent: deque[int] = deque(maxlen=RECENT_USERS)
        self.tokens = Tokens(minter_for(options), keep=RECENT_USERS + AHEAD)
        self.upcoming: deque[int] = deque()
        self.query = f"?strategy={options.strategy}" if options.strategy else ""
        # A worker process may start users before its test_start: then it keeps a cursor of its own.
        self.cursor: Cursor = getattr(self.environment, "coupon_cursor", None) or Cursor([options.coupon_id])
        self.history: Recorder | None = getattr(self.environment, "coupon_history", None)
        self.name = f"{os.getpid()}-{next(CLIENTS)}"

    def _user_id(self) -> int:
        if self.recent and random.random() < self.options.duplicate_share:
            return random.choice(self.recent)
        if not self.upcoming:
            self.upcoming.extend(itertools.islice(self.ids, AHEAD))
            self.tokens.ahead(self.upcoming)
        user_id = self.upcoming.popleft()
        self.recent.append(user_id)
        return user_id

    @task
    def ask(self) -> None:
        if self.options.rate:
            self._open_loop()
            return
        if self.options.ping:
            self.client.get("/ping", name=PING)
            return
        coupon_id = self.cursor.current
        user_id = self._user_id()
        path, body = f"/coupons/{coupon_id}/issue{self.query}", {"user_id": user_id}
        heard = self.cursor.heard if self.options.users_out else lambda *_: None
        headers = self.tokens.headers(user_id)
        invoked = time.monotonic()
        with self.client.post(path, json=body, headers=headers, name=FAILED, catch_response=True) as response:
            if self.history is not None and self.options.history_out:
                text = (response.text or "") if response.status_code else repr(response.error)
                self.history.record(
                    self.name,
                    coupon_id,
                    user_id,
                    self.options.strategy or None,
                    invoked,
                    response.status_code,
                    text,
                )
            if response.status_code in (201, 202):
                response.request_meta["name"] = ISSUED
                response.success()
                self.cursor.count(coupon_id, "issued")
                heard(coupon_id, user_id, "yes")
            elif response.status_code == 409:
                response.request_meta["name"] = REFUSED
                response.success()
                text = response.text or ""
                heard(coupon_id, user_id, "already" if '"already_issued"' in text else "no")
                if '"sold_out"' in text:
                    self.cursor.sold_out(coupon_id)
            else:
                response.failure(f"status {response.status_code}")
                self.cursor.count(coupon_id, "errors")
                heard(coupon_id, user_id, "error")

    def _open_loop(self) -> None:
        from coupon.lab.drive import openloop  # only the open loop needs the HDR histogram

        path = "/ping" if self.options.ping else f"/coupons/{self.cursor.current}/issue{self.query}"
        openloop.run(self.environment, self.options, path)
        # Quit from a greenlet of its own: quit() kills the users, and test_stop (the audit)
        # must not die with this one.
        gevent.spawn(self.environment.runner.quit)
        raise StopUser()
