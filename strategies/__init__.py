"""The registry of issuance strategies: a plain dict from name to class."""

from __future__ import annotations

from coupon.core.connections import Services
from strategies.base import Strategy
from strategies.batched import BatchedUpdate
from strategies.database import (
    AtomicUpdate,
    NoLock,
    Optimistic,
    ProcessLock,
    SelectForUpdate,
)
from strategies.fenced import FencedLock
from strategies.queued import Queued
from strategies.redis_backed import RedisCounter, RedisLock
from strategies.seated import LuaScript

REGISTRY: dict[str, type[Strategy]] = {
    cls.name: cls
    for cls in (
        NoLock,
        ProcessLock,
        RedisLock,
        FencedLock,
        SelectForUpdate,
        AtomicUpdate,
        BatchedUpdate,
        Optimistic,
        RedisCounter,
        LuaScript,
        Queued,
    )
}


# Strategies that may share one coupon: a family is the database guard its members write
# through, so that no rebuild, restart, sweep or repair can move a unit from one guard to
# another. The database family (redis_counter among them: Redis only filters, its write is
# the same conditional UPDATE) takes the stock on the coupon row, issued_quantity <= total;
# the redis family writes seated rows, one per seat 1..total (coupon_issue's unique seat).
# Mixed, each guard is blind to the other's rows: a rebuild turned redis_counter's seatless
# rows into free seats, and a sweep gave a frozen writer's unit to lua as a seat (over-issue).
# The lock-based strategies read the count without a row lock and add to it unconditionally:
# exact only while every writer of the coupon takes the same lock (and, for fenced_lock, the
# same fence), so each is a family of its own.
FAMILIES: dict[str, tuple[str, ...]] = {
    "database": ("select_for_update", "atomic_update", "optimistic", "batched_update", "redis_counter"),
    "redis": ("lua", "queued"),
    "redis_lock": ("redis_lock",),
    "fenced_lock": ("fenced_lock",),
    "process_lock": ("process_lock",),
    "none": ("none",),
}
FAMILY_OF = {name: family for family, names in FAMILIES.items() for name in names}

# Not exact once two processes serve, and a service cannot see its replicas: the lab's
# demonstrations only, refused unless the lab's setting enables them.
LAB_ONLY = frozenset(name for name, cls in REGISTRY.items() if not cls.cross_process)


class UnknownStrategy(KeyError):
    """Raised for a strategy name the registry does not know; the message lists the known ones."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name

    def __str__(self) -> str:
        shown = self.name if len(self.name) <= 64 else self.name[:64] + "..."
        return f"unknown strategy {shown!r}; known: {', '.join(REGISTRY)}"


def build_all(services: Services) -> dict[str, Strategy]:
    """Instantiate every registered strategy over one set of connections."""
    return {name: cls(services) for name, cls in REGISTRY.items()}


def pick(strategies: dict[str, Strategy], name: str) -> Strategy:
    """Return the named strategy or raise UnknownStrategy."""
    try:
        return strategies[name]
    except KeyError:
        raise UnknownStrategy(name) from None
