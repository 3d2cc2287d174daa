"""Which faults exist, and which (strategy, fault) rows the chaos scenario runs by default."""

from __future__ import annotations

from coupon.lab.chaos.redis_private import APPENDFSYNC
from coupon.lab.chaos.sentinel import KINDS as FAILOVER_KINDS

# Faults that restart Redis from its files, once per appendfsync mode (separate rows).
REDIS_RESTARTS = ("redis-kill", "redis-powerloss")
# A Sentinel failover of each kind (coupon/lab/chaos/sentinel.py), per replication mode:
# `async` (Redis's own) and `wait1` (COUPON_REDIS_WAIT_REPLICAS=1). `failover` names them all.
FAILOVER_MODES = ("async", "wait1")
FAILOVERS = tuple(f"failover-{kind}-{mode}" for kind in FAILOVER_KINDS for mode in FAILOVER_MODES)
FAILOVER_STRATEGIES = ("lua", "queued", "redis_counter")  # the strategies that keep Redis state
FAULTS: tuple[str, ...] = (
    *(f"{family}-{mode}" for family in REDIS_RESTARTS for mode in APPENDFSYNC),
    "redis-errors",
    "redis-reply-lost",
    "app-kill",
    "db-cut",
    "commit-lost",
    *FAILOVERS,
)
FAMILIES = (*REDIS_RESTARTS, "failover", *(f"failover-{kind}" for kind in FAILOVER_KINDS))

# Redis faults matter for the Redis strategies, database faults for all: the default rows fit a
# few minutes. `none` and `process_lock` are there to be seen failing (they over-issue anyway).
DEFAULT: tuple[tuple[str, str], ...] = (
    ("none", "db-cut"),
    ("process_lock", "app-kill"),
    ("atomic_update", "db-cut"),
    ("atomic_update", "commit-lost"),
    ("atomic_update", "app-kill"),
    ("batched_update", "db-cut"),
    ("batched_update", "commit-lost"),
    ("batched_update", "app-kill"),
    ("select_for_update", "db-cut"),
    ("redis_lock", "redis-errors"),
    *(("lua", f"redis-powerloss-{mode}") for mode in APPENDFSYNC),
    ("lua", "redis-reply-lost"),
    ("lua", "redis-errors"),
    ("lua", "commit-lost"),
    ("lua", "app-kill"),
    *(("queued", f"{family}-{mode}") for family in REDIS_RESTARTS for mode in APPENDFSYNC),
    ("queued", "redis-reply-lost"),
    ("queued", "redis-errors"),
    ("queued", "db-cut"),
    # About 20 s each (a Sentinel group started, one failover, the drain): `--faults failover`
    # runs all eighteen.
    ("queued", "failover-kill-async"),
    ("queued", "failover-kill-wait1"),
    ("lua", "failover-manual-wait1"),
)


def expand(names: tuple[str, ...]) -> tuple[str, ...]:
    """Resolve fault names; a family stands for its rows (`redis-kill`: its three appendfsync
    modes; `failover-kill`: its two replication modes; `failover`: every failover)."""
    found: list[str] = []
    for name in names:
        matched = [fault for fault in FAULTS if fault == name or fault.startswith(f"{name}-")]
        if not matched:
            raise ValueError(f"unknown fault {name!r}; known: {', '.join(FAULTS)}, {', '.join(FAMILIES)}")
        found += [fault for fault in matched if fault not in found]
    return tuple(found)


def rows(
    strategies: tuple[str, ...], faults: tuple[str, ...], registered: list[str]
) -> list[tuple[str, str]]:
    """Return the (strategy, fault) rows: the default matrix filtered by the choices given.

    Both given: every chosen strategy under every chosen fault. One given, and the default
    matrix has no row for it: that choice under every fault (or every default strategy). Faults
    chosen without strategies: each failover under every strategy of FAILOVER_STRATEGIES. A
    failover row is only for those strategies.
    """
    chosen = expand(faults)
    failovers = [fault for fault in chosen if is_failover(fault)]
    if failovers and not strategies:
        others = tuple(fault for fault in chosen if not is_failover(fault))
        own = [(s, f) for s in FAILOVER_STRATEGIES if s in registered for f in failovers]
        return (_rows(strategies, others, registered) if others else []) + own
    return [
        (s, f)
        for s, f in _rows(strategies, chosen, registered)
        if not is_failover(f) or s in FAILOVER_STRATEGIES
    ]


def _rows(
    strategies: tuple[str, ...], chosen: tuple[str, ...], registered: list[str]
) -> list[tuple[str, str]]:
    if strategies and chosen:
        return [(s, f) for s in strategies for f in chosen]
    picked = [
        (s, f)
        for s, f in DEFAULT
        if s in registered and (not strategies or s in strategies) and (not chosen or f in chosen)
    ]
    if picked:
        return picked
    defaults = tuple(dict.fromkeys(s for s, _ in DEFAULT if s in registered))
    return [(s, f) for s in strategies or defaults for f in chosen or FAULTS]


def appendfsync(fault: str) -> str | None:
    """Return the appendfsync mode a fault's Redis runs with (None: no AOF)."""
    family, _, mode = fault.rpartition("-")
    return mode if family in REDIS_RESTARTS else None


def is_failover(fault: str) -> bool:
    """Tell whether a fault is a Sentinel failover (a row of its own kind: coupon/lab/chaos/failover_row.py)."""
    return fault.startswith("failover-")


def failover_of(fault: str) -> tuple[str, str]:
    """Return a failover fault's (kind, mode): `failover-stop-wait1` -> (`stop`, `wait1`)."""
    _, kind, mode = fault.split("-")
    return kind, mode
