"""HTTP load from a second process (wrk) or, without wrk, from gevent greenlets in this one."""
from __future__ import annotations

import re
import subprocess
import tempfile
import time
from dataclasses import dataclass

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

@dataclass(frozen=True)
class Load:
    """What one load run saw."""

    requests: int
    seconds: float
    failed: int  # answers other than the expected kind, plus socket errors

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


def wrk(url: str, seconds: int, connections: int, threads: int, post: bool, base: int) -> Load:
    """Run wrk against url; with post, send user ids above base, unique, as JSON bodies."""
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s"]
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        if post:
            script.write(WRK_SCRIPT)
            script.flush()
            command += ["-s", script.name, url, "--", str(threads), str(base)]
        else:
            command.append(url)
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    found = re.search(r"(\d+) requests in ([\d.]+)(m?s)", output)
    if found is None:
        raise RuntimeError(f"unreadable wrk output:\n{output}")
    seconds_run = float(found.group(2)) / (1000 if found.group(3) == "ms" else 1)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    failed = sum(int(n) for n in errors.groups()) if errors else 0
    failed += int(non_2xx.group(1)) if non_2xx else 0
    return Load(int(found.group(1)), seconds_run, failed)


def gevent_load(url: str, seconds: int, connections: int, post: bool, base: int) -> Load:
    """The install-free fallback: geventhttpclient greenlets in this process."""
    import gevent
    from geventhttpclient import URL, HTTPClient

    target = URL(url)
    client = HTTPClient.from_url(target, concurrency=connections)
    deadline = time.monotonic() + seconds
    counts = {"done": 0, "failed": 0, "user": base}

    def user_loop() -> None:
        while time.monotonic() < deadline:
            counts["user"] += 1
            try:
                if post:
                    body = f'{{"user_id": {counts["user"]}}}'
                    headers = {"Content-Type": "application/json"}
                    response = client.post(target.request_uri, body=body, headers=headers)
                else:
                    response = client.get(target.request_uri)
                response.read()
                counts["done"] += 1
                counts["failed"] += not 200 <= response.status_code < 300
            except OSError:
                counts["failed"] += 1

    started = time.monotonic()
    gevent.joinall([gevent.spawn(user_loop) for _ in range(connections)])
    client.close()
    return Load(counts["done"], time.monotonic() - started, counts["failed"])
