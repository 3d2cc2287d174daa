"""A probe beside the crowd: one issue request every tick, to see when issues succeed again."""

from __future__ import annotations

import http.client
import itertools
import json
import threading
import time
from urllib.parse import urlsplit

# Probe users count up from here: far from locust's random 62-bit starts in practice.
FIRST_USER = 7 * 10**17
TICK_SECONDS = 0.1


class Probe:
    """Ask for a coupon of its own (never sold out) every tick; remember when each answer came."""

    def __init__(self, url: str, coupon_id: int, strategy: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.path = f"/coupons/{coupon_id}/issue?strategy={strategy}"
        self.answers: list[tuple[float, int]] = []  # (monotonic time of the answer, status)
        self._users = itertools.count(FIRST_USER)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Probe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=15)

    def _ask(self) -> int:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=5)
        try:
            body = json.dumps({"user_id": next(self._users)})
            conn.request("POST", self.path, body, {"Content-Type": "application/json"})
            return conn.getresponse().status
        except (OSError, http.client.HTTPException):
            return 0
        finally:
            conn.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            status = self._ask()
            self.answers.append((time.monotonic(), status))
            self._stop.wait(TICK_SECONDS)

    def recovered_after(self, healed: float) -> float | None:
        """Seconds from healed to the first success (201/202) answered after it; None: never."""
        for at, status in self.answers:
            if at >= healed and status in (201, 202):
                return round(at - healed, 2)
        return None
