"""The open loop inside locust: one scheduler, a bounded gevent pool, answers fired into stats.

Imported by locustfile.py only (it needs gevent's monkey-patching, which locust does first).
"""

from __future__ import annotations

import gc
import json
import random
import time
from pathlib import Path
from typing import Any

import gevent
import gevent.pool
from geventhttpclient import URL, HTTPClient
from locust.env import Environment

from coupon.lab.check.history import Recorder
from coupon.lab.drive import arrivals
from coupon.lab.drive.crowd import Tokens, minter_for
from coupon.lab.drive.names import FAILED, ISSUED, PING, REFUSED

NAMES = {arrivals.ISSUED: ISSUED, arrivals.REFUSED: REFUSED, arrivals.ERROR: FAILED}
# A request is given up after TIMEOUT_SECONDS: longer than the server's own retry deadline
# (COUPON_RETRY_DEADLINE, 10 s by default), so that a lock waiter's answer (201, or 503) is
# heard. Cut off sooner, a request could still write a row that its caller is never told of,
# and the audit would blame the strategy for a lost success that the generator caused.
TIMEOUT_SECONDS = 30.0
# After the last arrival, answers still in flight get this long before they count as faults.
DRAIN_SECONDS = TIMEOUT_SECONDS + 5


def _sender(
    client: HTTPClient,
    path: str,
    ping: bool,
    tokens: Tokens,
    count: int,
    recorder: Recorder | None,
    coupon_id: int,
) -> Any:
    """Return send(): one request, its outcome; every caller is new (the issue path, no repeats).

    In jwt mode every caller's token is minted here, before the first arrival; with a recorder,
    every request goes into the run's history.
    """
    start = random.getrandbits(62) + 1
    ids = iter(range(start, start + count))
    if not ping:
        tokens.ahead(range(start, start + count))
    plain = {"Content-Type": "application/json"}

    def send() -> str:
        user, invoked, text = 0, time.monotonic(), ""
        try:
            if ping:
                response = client.get(path)
            else:
                user = next(ids)
                headers = {**plain, **tokens.headers(user)}
                response = client.post(path, body=f'{{"user_id": {user}}}', headers=headers)
            text = response.read().decode(errors="replace")
        except Exception as exc:  # a broken connection or a timeout is a counted fault
            if recorder is not None:
                recorder.record("open-loop", coupon_id, user, None, invoked, 0, repr(exc))
            return arrivals.ERROR
        status = response.status_code
        if recorder is not None:
            recorder.record("open-loop", coupon_id, user, None, invoked, status, text)
        if status in (200, 201, 202):
            return arrivals.ISSUED
        return arrivals.REFUSED if status == 409 else arrivals.ERROR

    return send


def run(environment: Environment, options: Any, path: str) -> None:
    """Offer options.rate requests/s for warmup + measure seconds, then write the summary."""
    seconds = options.warmup + options.measure
    times = arrivals.intended_times(options.rate, seconds, options.seed)
    windows = [arrivals.Window(0.0, float("inf")), arrivals.Window(options.warmup, seconds)]
    if environment.host is None:
        raise ValueError("the open loop needs the service's URL (locust --host)")
    client = HTTPClient.from_url(
        URL(environment.host),
        concurrency=options.max_in_flight,
        connection_timeout=TIMEOUT_SECONDS,
        network_timeout=TIMEOUT_SECONDS,
    )
    pool = gevent.pool.Pool(options.max_in_flight)
    ping = options.ping
    recorder = Recorder(cap=options.history_cap) if options.history_out and not ping else None
    coupon_id = 0 if ping else environment.coupon_cursor.current  # type: ignore[attr-defined]  # the locustfile sets it

    def fire(latency: float, outcome: str) -> None:
        failed = outcome == arrivals.ERROR
        environment.events.request.fire(
            request_type="GET" if ping else "POST",
            name=PING if ping and not failed else NAMES[outcome],
            response_time=1000 * latency,
            response_length=0,
            context={},
            exception=RuntimeError("fault") if failed else None,
        )

    tokens = Tokens(minter_for(options), keep=len(times))
    scheduler = arrivals.Scheduler(
        times,
        pool,
        _sender(client, path, ping, tokens, len(times), recorder, coupon_id),
        windows,
        time.perf_counter,
        gevent.sleep,
        fire,
    )
    # Locust's own objects need no collecting: keep the collector's pauses out of the latencies.
    gc.freeze()
    scheduler.run()
    pool.join(timeout=DRAIN_SECONDS)
    stuck = len(pool)
    pool.kill()
    client.close()
    everything, measured = windows
    document = {
        "rate": options.rate,
        "seed": options.seed,
        "warmup": options.warmup,
        "measure": options.measure,
        "max_in_flight": options.max_in_flight,
        "stuck": stuck,
        "all": everything.summary(),
        "measured": measured.summary(),
    }
    Path(options.arrivals_out).write_text(json.dumps(document, indent=1))
    if recorder is not None:
        recorder.write(Path(options.history_out), coupons=[coupon_id])
