"""Drive locust as a subprocess (it monkey-patches with gevent) and read back its final stats."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from coupon.core.config import PROJECT_ROOT
from coupon.lab.drive.names import ISSUED, REFUSED
from coupon.servers import owner

# Users finish the request in flight when the time is up: a request cut off mid-flight could
# still write a row that its caller never hears of, and the audit would call it lost.
STOP_TIMEOUT_SECONDS = 30
# The latency spectrum a report shows per row: name -> share of the requests at or below it.
SPECTRUM = (("p50", 0.50), ("p90", 0.90), ("p99", 0.99), ("p99.9", 0.999), ("p99.99", 0.9999))


@dataclass(frozen=True)
class Load:
    """What locust measured and what the callers were told."""

    requests: int
    failures: int
    issued: int  # answers 201/202
    refused: int  # answers 409
    rps: float
    p50: float
    p95: float
    p99: float
    seconds: float
    issued_seconds: float = 0.0  # from the first 201/202 answer to the last
    spectrum: dict[str, float] = field(default_factory=dict)  # SPECTRUM and max, ms

    def as_dict(self) -> dict[str, Any]:
        """Return every figure."""
        return asdict(self)


@dataclass(frozen=True)
class Target:
    """What one locust run aims at: a closed-loop crowd, or an open loop when rate is set."""

    host: str
    strategy: str | None  # None: GET /ping
    coupon_ids: tuple[int, ...]  # sold out one after another by the crowd
    users: int
    duration: float
    duplicate_share: float = 0.0
    rate: float = 0.0  # open loop: requests/s offered, over warmup + duration seconds
    warmup: float = 0.0
    max_in_flight: int = 500
    seed: int = 1
    users_out: bool = False  # closed loop: also write who heard what, per coupon (.users.json)
    history_cap: int | None = None  # requests kept in .history.jsonl (None: locust's default cap)
    seconds_out: bool = False  # with users_out: also write answers per second by kind (.seconds.json)
    # The server's identity settings (COUPON_AUTH, COUPON_JWT_*): the crowd mints what it accepts.
    identity: tuple[tuple[str, str], ...] = ()


def command(target: Target, stats_prefix: Path) -> list[str]:
    """Build the headless locust command line for a target."""
    args = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(PROJECT_ROOT / "locustfile.py"),
        "--headless",
        "--only-summary",
        "--loglevel",
        "WARNING",
        "--stop-timeout",
        str(STOP_TIMEOUT_SECONDS),
        "--host",
        target.host,
        "--json-file",
        str(stats_prefix),
        "--no-audit",
        "--history-out",
        f"{stats_prefix}.history.jsonl",
    ]
    if target.history_cap is not None:
        args += ["--history-cap", str(target.history_cap)]
    if target.rate:
        # One user runs the scheduler and quits; -t only bounds a run that hangs.
        cap = target.warmup + target.duration + STOP_TIMEOUT_SECONDS + 30
        args += [
            "-u",
            "1",
            "-r",
            "1",
            "-t",
            f"{round(cap)}s",
            "--rate",
            str(target.rate),
            "--warmup",
            str(target.warmup),
            "--measure",
            str(target.duration),
            "--max-in-flight",
            str(target.max_in_flight),
            "--seed",
            str(target.seed),
            "--arrivals-out",
            f"{stats_prefix}.arrivals.json",
        ]
    else:
        args += [
            "-u",
            str(target.users),
            "-r",
            str(target.users),
            "-t",
            f"{max(1, round(target.duration))}s",
            "--tally-out",
            f"{stats_prefix}.tally.json",
        ]
        if target.users_out:
            args += ["--users-out", f"{stats_prefix}.users.json"]
        if target.users_out and target.seconds_out:
            args += ["--seconds-out", f"{stats_prefix}.seconds.json"]
    if target.strategy is None:
        return args + ["--ping"]
    return args + [
        "--strategy",
        target.strategy,
        "--coupon-ids",
        ",".join(str(coupon_id) for coupon_id in target.coupon_ids),
        "--duplicate-share",
        str(target.duplicate_share),
    ]


def spawn(target: Target, stats_prefix: Path, tick: Callable[[float], None]) -> float:
    """Run locust against the target, calling tick with the seconds elapsed; return them all."""
    log_path = stats_prefix.with_suffix(".log")
    started = time.monotonic()
    env = {**os.environ, **dict(target.identity)}
    with (
        open(log_path, "wb") as log,
        owner.owned(
            command(target, stats_prefix), cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT, env=env
        ) as process,
    ):
        deadline = started + target.warmup + target.duration + STOP_TIMEOUT_SECONDS + 60
        while True:
            try:
                process.wait(timeout=0.25)
                break
            except subprocess.TimeoutExpired:
                tick(time.monotonic() - started)
            if time.monotonic() > deadline:
                raise RuntimeError(f"locust did not finish; see {log_path}")
    return time.monotonic() - started


def run(target: Target, stats_prefix: Path, tick: Callable[[float], None]) -> Load:
    """Run a closed-loop crowd and read back locust's final stats."""
    seconds = spawn(target, stats_prefix, tick)
    return read_stats(Path(f"{stats_prefix}.json"), seconds)


def run_open(target: Target, stats_prefix: Path, tick: Callable[[float], None]) -> dict[str, Any]:
    """Run an open loop (target.rate set) and read back its summary (coupon/lab/drive/openloop.py)."""
    spawn(target, stats_prefix, tick)
    path = Path(f"{stats_prefix}.arrivals.json")
    if not path.exists():
        raise RuntimeError(f"the open loop wrote no summary at {path}; see the log beside it")
    return dict(json.loads(path.read_text()))


def percentile(histogram: dict[int, int], share: float) -> float:
    """Return the response time (ms) below which share of the requests in histogram fell."""
    total = sum(histogram.values())
    if not total:
        return 0.0
    wanted, seen = share * total, 0
    for millis in sorted(histogram):
        seen += histogram[millis]
        if seen >= wanted:
            return float(millis)
    return float(max(histogram))


def spectrum(histogram: dict[int, int]) -> dict[str, float]:
    """Return the latency spectrum (SPECTRUM's percentiles and the max, ms) of a histogram."""
    if not histogram:
        return {}
    return {**{name: percentile(histogram, share) for name, share in SPECTRUM}, "max": float(max(histogram))}


def _span(entry: dict[str, Any]) -> float:
    """Return the seconds from an entry's first request to its last (0 for no entry)."""
    if not entry or not entry.get("last_request_timestamp"):
        return 0.0
    return float(entry["last_request_timestamp"]) - float(entry["start_time"])


def read_stats(path: Path, seconds: float) -> Load:
    """Read locust's final stats (--json-file) into a Load, aggregating every request name.

    Not the CSV: locust rewrites it once a second and never after the last in-flight requests
    finish, so it misses the last answers, which the audit would then count as lost.
    """
    if not path.exists():
        raise RuntimeError(f"locust wrote no stats at {path}; see its log beside it")
    entries = json.loads(path.read_text())
    histogram: Counter[int] = Counter()
    for entry in entries:
        histogram.update({int(k): v for k, v in entry["response_times"].items()})
    by_name = {entry["name"]: entry for entry in entries}
    issued = by_name.get(ISSUED, {})
    requests = sum(entry["num_requests"] for entry in entries)
    started = min((entry["start_time"] for entry in entries), default=0.0)
    last = max((entry["last_request_timestamp"] or 0.0 for entry in entries), default=0.0)
    return Load(
        requests=requests,
        failures=sum(entry["num_failures"] for entry in entries),
        issued=issued.get("num_requests", 0),
        refused=by_name.get(REFUSED, {}).get("num_requests", 0),
        rps=requests / (last - started) if last > started else 0.0,
        p50=percentile(histogram, 0.50),
        p95=percentile(histogram, 0.95),
        p99=percentile(histogram, 0.99),
        seconds=seconds,
        issued_seconds=_span(issued),
        spectrum=spectrum(histogram),
    )
