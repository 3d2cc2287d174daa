"""The registry of issuance strategies: a plain dict from name to class."""
from __future__ import annotations

from coupon.core.connections import Services
from strategies.base import Strategy
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
        Optimistic,
        RedisCounter,
        LuaScript,
        Queued,
    )
}


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
