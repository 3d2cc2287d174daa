"""HTTP load from a second process (wrk) or, without wrk, from gevent greenlets in this one."""

from __future__ import annotations

import re
import subprocess
import tempfile
import time
from dataclasses import dataclass, field

from coupon.api.identity import Minter

# POST {"user_id": n}, n unique across wrk's threads (thread k sends base+k, base+k+T, ...).
WRK_SCRIPT = """
local count = 0
function setup(thread)
  count = count + 1
  thread:set("offset", count)
end
function init(args)
  step = tonumber(args[1])
  user = tonumber(args[2]) + offset
end
function request()
  user = user + step
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"},
                    '{"user_id": ' .. user .. '}')
end
"""
# The same with a bearer token per request: each thread takes every T-th line of the tokens file
# ("<user id> <token>", minted before the run), so that no two requests share a user.
WRK_TOKEN_SCRIPT = """
local count = 0
function setup(thread)
  count = count + 1
  thread:set("offset", count)
end
function init(args)
  local step = tonumber(args[1])
  users, tokens, index = {}, {}, 0
  local line_number = 0
  for line in io.lines(args[2]) do
    if line_number % step == offset - 1 then
      local user, token = line:match("^(%d+) (%S+)$")
      users[#users + 1] = user
      tokens[#tokens + 1] = "Bearer " .. token
    end
    line_number = line_number + 1
  end
end
function request()
  index = index % #users + 1
  return wrk.format("POST", nil, {["Content-Type"] = "application/json", ["Authorization"] = tokens[index]},
                    '{"user_id": ' .. users[index] .. '}')
end
"""
# Tokens minted per second of a jwt run: above any rate these rows reach on one machine, so
# that no token (and no user) comes round twice.
TOKENS_PER_SECOND = 25_000
_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


@dataclass(frozen=True)
class Load:
    """What one load run saw."""

    requests: int
    seconds: float
    failed: int  # non-2xx answers plus socket errors
    p50_ms: float
    p99_ms: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


def _ms(text: str) -> float:
    found = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if found is None:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(found[1]) * _UNITS_MS[found[2]]


def parse_wrk(output: str) -> Load:
    """Read requests, duration, failures and the 50th/99th latency percentiles from wrk."""
    found = re.search(r"(\d+) requests in ([\d.]+)(m?s)", output)
    p50 = re.search(r"^\s*50%\s+(\S+)\s*$", output, re.MULTILINE)
    p99 = re.search(r"^\s*99%\s+(\S+)\s*$", output, re.MULTILINE)
    if found is None or p50 is None or p99 is None:
        raise RuntimeError(f"unreadable wrk output:\n{output}")
    seconds = float(found.group(2)) / (1000 if found.group(3) == "ms" else 1)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    failed = sum(int(n) for n in errors.groups()) if errors else 0
    failed += int(non_2xx.group(1)) if non_2xx else 0
    return Load(int(found.group(1)), seconds, failed, _ms(p50.group(1)), _ms(p99.group(1)))


def mint_tokens(minter: Minter, base: int, count: int) -> list[tuple[int, str]]:
    """Mint one token each for the users above base, before the run that sends them."""
    return [(user, minter.mint(user)) for user in range(base + 1, base + 1 + count)]


def wrk(
    url: str,
    seconds: int,
    connections: int,
    threads: int,
    post: bool,
    base: int,
    tokens: list[tuple[int, str]] | None = None,
) -> Load:
    """Run wrk against url; with post, send user ids above base, unique, as JSON bodies."""
    command = ["wrk", "--latency", f"-t{threads}", f"-c{connections}", f"-d{seconds}s"]
    with (
        tempfile.NamedTemporaryFile("w", suffix=".lua") as script,
        tempfile.NamedTemporaryFile("w") as minted,
    ):
        if tokens is not None:
            minted.write("".join(f"{user} {token}\n" for user, token in tokens))
            minted.flush()
            script.write(WRK_TOKEN_SCRIPT)
            script.flush()
            command += ["-s", script.name, url, "--", str(threads), minted.name]
        elif post:
            script.write(WRK_SCRIPT)
            script.flush()
            command += ["-s", script.name, url, "--", str(threads), str(base)]
        else:
            command.append(url)
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return parse_wrk(output)


def gevent_load(
    url: str,
    seconds: int,
    connections: int,
    post: bool,
    base: int,
    tokens: list[tuple[int, str]] | None = None,
) -> Load:
    """The install-free fallback: geventhttpclient greenlets in this process."""
    import gevent
    from geventhttpclient import URL, HTTPClient

    target = URL(url)
    client = HTTPClient.from_url(target, concurrency=connections)
    deadline = time.monotonic() + seconds
    counts = {"failed": 0, "user": base}
    latencies: list[float] = []

    def user_loop() -> None:
        while time.monotonic() < deadline:
            counts["user"] += 1
            sent = time.perf_counter()
            try:
                if post:
                    body = f'{{"user_id": {counts["user"]}}}'
                    headers = {"Content-Type": "application/json"}
                    if tokens:
                        user, token = tokens[counts["user"] % len(tokens)]
                        body, headers["Authorization"] = f'{{"user_id": {user}}}', f"Bearer {token}"
                    response = client.post(target.request_uri, body=body, headers=headers)
                else:
                    response = client.get(target.request_uri)
                response.read()
                latencies.append((time.perf_counter() - sent) * 1000)
                counts["failed"] += not 200 <= response.status_code < 300
            except OSError:
                counts["failed"] += 1

    started = time.monotonic()
    gevent.joinall([gevent.spawn(user_loop) for _ in range(connections)])
    client.close()
    latencies.sort()
    p50, p99 = (latencies[int(len(latencies) * q)] if latencies else 0.0 for q in (0.5, 0.99))
    return Load(len(latencies), time.monotonic() - started, counts["failed"], p50, p99)


@dataclass
class Run:
    """One bench run's settings, and the loads it measured under each row's name."""

    seconds: int
    connections: int
    threads: int
    use_wrk: bool
    loads: dict[str, list[Load]] = field(default_factory=dict)

    def load(self, name: str, url: str, post: bool, minter: Minter | None = None) -> None:
        """Run one load; each run's users are new (ids of run k start above k billion).

        With a minter, every request carries its own user's token, minted before the run.
        """
        base = (1 + sum(len(rounds) for rounds in self.loads.values())) * 10**9
        tokens = None if minter is None else mint_tokens(minter, base, TOKENS_PER_SECOND * self.seconds)
        if self.use_wrk:
            result = wrk(url, self.seconds, self.connections, self.threads, post, base, tokens)
        else:
            result = gevent_load(url, self.seconds, self.connections, post, base, tokens)
        self.loads.setdefault(name, []).append(result)

    def total(self, name: str) -> Load:
        """Add up the rounds of one row (percentiles: the worst round's)."""
        rounds = self.loads[name]
        return Load(
            sum(load.requests for load in rounds),
            sum(load.seconds for load in rounds),
            sum(load.failed for load in rounds),
            max(load.p50_ms for load in rounds),
            max(load.p99_ms for load in rounds),
        )
