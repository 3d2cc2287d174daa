"""Lab-only fault injection: a stop-the-world stall inside a lock's critical section.

Nothing here runs unless COUPON_FAULT_PAUSE_SECONDS is set; the lab's lease-expiry scenario
sets it to show a Redis lock's lease running out under a holder that still believes it holds
the lock (Kleppmann, "How to do distributed locking").
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import cast

log = logging.getLogger(__name__)


def _unpatched_sleep() -> Callable[[float], None]:
    """Return the original time.sleep, even in a gevent-patched worker."""
    try:
        from gevent import monkey
    except ImportError:
        return time.sleep
    return cast(Callable[[float], None], monkey.get_original("time", "sleep"))


class Stall:
    """Stall the whole process once, without yielding, the first time it is asked to."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.pending = seconds > 0

    def once(self) -> None:
        """Block this process (every greenlet and thread of it) for the configured time, once."""
        if not self.pending:
            return
        # Check-and-clear before the stall: no other greenlet runs in between, so exactly one stalls.
        self.pending = False
        log.warning("fault injection: stalling this process for %.1fs inside the lock", self.seconds)
        _unpatched_sleep()(self.seconds)
