"""Every Redis key of the service, built here and only here.

Each key of one coupon carries the hash tag ``{<coupon_id>}`` so that all keys a script touches
for that coupon land in one Redis Cluster slot.
"""

from __future__ import annotations

from dataclasses import dataclass


def queued_registry(prefix: str) -> str:
    """Set of coupon ids whose stream the workers poll (written outside any script)."""
    return f"{prefix}queued:coupons"


def journal_registry(prefix: str) -> str:
    """Set of coupon ids whose reservation journal the workers sweep (written outside scripts)."""
    return f"{prefix}journaled:coupons"


@dataclass(frozen=True)
class CouponKeys:
    """The Redis keys of one coupon."""

    prefix: str
    coupon_id: int

    def _key(self, suffix: str) -> str:
        return f"{self.prefix}{{{self.coupon_id}}}:{suffix}"

    @property
    def meta(self) -> str:
        """Hash: total, start, end (epoch seconds, empty when open-ended)."""
        return self._key("meta")

    @property
    def users(self) -> str:
        """Set of user ids holding a reservation or an issued coupon."""
        return self._key("users")

    @property
    def count(self) -> str:
        """Counter of the seated coupons (lua, queued): the highest seat handed out so far."""
        return self._key("count")

    @property
    def seats(self) -> str:
        """Hash user id -> seat (1..total) of every seated reservation (lua, queued)."""
        return self._key("seats")

    @property
    def free(self) -> str:
        """Set of seats given back, handed out again before the counter moves on."""
        return self._key("free")

    @property
    def journal(self) -> str:
        """Sorted set user id -> reserve time of reservations whose write is not known done."""
        return self._key("journal")

    def reserve_keys(self) -> list[str]:
        """Return the keys reserve.lua takes, in its header's order."""
        return [self.meta, self.users, self.count, self.free, self.seats]

    def release_keys(self) -> list[str]:
        """Return the keys release.lua takes, in its header's order."""
        return [self.users, self.free, self.seats, self.journal]

    @property
    def lock(self) -> str:
        """Name of the python-redis-lock lock (the library adds its own prefix)."""
        return self._key("lock")

    @property
    def fence(self) -> str:
        """Counter handing out fencing tokens."""
        return self._key("fence")

    @property
    def stream(self) -> str:
        """Stream of accepted requests waiting for the worker."""
        return self._key("stream")

    @property
    def dead(self) -> str:
        """Stream of dead-lettered requests."""
        return self._key("dead")

    def all(self) -> list[str]:
        """Return every key this coupon may own (for resets and cleanup)."""
        return [
            self.meta,
            self.users,
            self.count,
            self.seats,
            self.free,
            self.journal,
            self.fence,
            self.stream,
            self.dead,
        ]
