"""A chaos row's load over time: answers per second by kind, as the crowd heard them.

The locustfile counts every answer in the wall-clock second it came back (--seconds-out), in
the process itself: no sampling, and the last answers are in. Times here are seconds from the
start of the load, on the wall clock the fault's moments were taken on too; a point stands for
the second that starts there.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# What the crowd heard (coupon/lab/drive/crowd.py) -> the timeline's kinds.
KINDS = {"yes": "issued", "no": "refused", "already": "refused", "error": "errors"}


def read(path: Path, started: float, fault: tuple[float, float]) -> dict[str, Any]:
    """Return answers per second by kind, with the fault's band, all from started (wall clock)."""
    if not path.exists():
        return {}
    heard = {int(second): counts for second, counts in json.loads(path.read_text()).items()}
    if not heard:
        return {}
    seconds = list(range(min(heard), max(heard) + 1))  # a second with no answer is a zero, not a gap
    series: dict[str, list[int]] = {kind: [0] * len(seconds) for kind in dict.fromkeys(KINDS.values())}
    for index, second in enumerate(seconds):
        for kind, count in heard.get(second, {}).items():
            series[KINDS[kind]][index] += count
    return {
        "seconds": [round(second - started, 2) for second in seconds],
        "per_second": series,
        "fault": [round(fault[0] - started, 2), round(fault[1] - started, 2)],
    }
