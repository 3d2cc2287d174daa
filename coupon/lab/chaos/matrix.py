"""Which faults exist, and which (strategy, fault) rows the chaos scenario runs by default."""

from __future__ import annotations

from coupon.lab.chaos.redis_private import APPENDFSYNC

# Faults that restart Redis from its files, once per appendfsync mode (separate rows).
REDIS_RESTARTS = ("redis-kill", "redis-powerloss")
FAULTS: tuple[str, ...] = (
    *(f"{family}-{mode}" for family in REDIS_RESTARTS for mode in APPENDFSYNC),
    "redis-errors", "redis-reply-lost", "app-kill", "db-cut", "commit-lost",
)  # fmt: skip

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
)


def expand(names: tuple[str, ...]) -> tuple[str, ...]:
    """Resolve fault names; a family (`redis-kill`) stands for its three appendfsync rows."""
    found: list[str] = []
    for name in names:
        matched = [fault for fault in FAULTS if fault == name or fault.startswith(f"{name}-")]
        if not matched:
            raise ValueError(
                f"unknown fault {name!r}; known: {', '.join(FAULTS)}, {', '.join(REDIS_RESTARTS)}"
            )
        found += [fault for fault in matched if fault not in found]
    return tuple(found)


def rows(
    strategies: tuple[str, ...], faults: tuple[str, ...], registered: list[str]
) -> list[tuple[str, str]]:
    """Return the (strategy, fault) rows: the default matrix filtered by the choices given.

    Both given: every chosen strategy under every chosen fault. One given, and the default
    matrix has no row for it: that choice under every fault (or every default strategy).
    """
    chosen = expand(faults)
    if strategies and chosen:
        return [(s, f) for s in strategies for f in chosen]
    picked = [(s, f) for s, f in DEFAULT if s in registered
              and (not strategies or s in strategies) and (not chosen or f in chosen)]  # fmt: skip
    if picked:
        return picked
    defaults = tuple(dict.fromkeys(s for s, _ in DEFAULT if s in registered))
    return [(s, f) for s in strategies or defaults for f in chosen or FAULTS]


def appendfsync(fault: str) -> str | None:
    """Return the appendfsync mode a fault's Redis runs with (None: no AOF)."""
    family, _, mode = fault.rpartition("-")
    return mode if family in REDIS_RESTARTS else None
