"""What the metrics tests and their gevent subprocess share: samples read back, and a wait."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from prometheus_client import REGISTRY, CollectorRegistry

from coupon.core.metrics import ISSUE_BUCKETS

# A perf_counter reading from long before any fold: a record that says so is never due to fold.
PAST = -1e9
# Every bucket's edge, either side of it, zero, and past the last bound.
ELAPSED = [0.0, 0.0004, *ISSUE_BUCKETS, *(b * 1.01 for b in ISSUE_BUCKETS), 11.0, 0.0123]

# One strategy's samples: (name, result or le) -> value.
Counts = dict[tuple[str, str], float]


def issue_samples(strategy: str, registry: CollectorRegistry = REGISTRY) -> Counts:
    """Return one strategy's issue counts and histogram samples from a registry."""
    return {
        (sample.name, sample.labels.get("result") or sample.labels.get("le", "")): sample.value
        for family in registry.collect()
        if family.name in ("coupon_issues", "coupon_issue_seconds")
        for sample in family.samples
        if sample.labels.get("strategy") == strategy and not sample.name.endswith("_created")
    }


def assert_same_counts(folded: Counts, observed: Counts) -> None:
    """Assert equal samples: every count exactly, the sum within float rounding."""
    assert folded.keys() == observed.keys()
    for key, value in observed.items():
        assert folded[key] == (pytest.approx(value) if key[0].endswith("_sum") else value), key


def wait_for(condition: Callable[[], bool], seconds: float = 10.0) -> bool:
    """Poll a condition until it holds or the deadline passes; return whether it held."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True
