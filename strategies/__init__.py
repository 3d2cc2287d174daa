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


# Strategies that may share one coupon. Within a family every member keeps its count in the
# same place and re-checks the stock where the others write it, so mixing them never
# over-issues. Across families it does: the Redis family counts reservations in Redis, which
# the database strategies never touch (sell a coupon out with atomic_update and lua still
# sees its whole stock). The lock-based strategies read the count without a row lock and add
# to it unconditionally: exact only while every writer of the coupon takes the same lock (and,
# for fenced_lock, the same fence), so each is a family of its own.
FAMILIES: dict[str, tuple[str, ...]] = {
    "database": ("select_for_update", "atomic_update", "optimistic", "batched_update"),
    "redis": ("redis_counter", "lua", "queued"),
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
