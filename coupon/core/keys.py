"""Every Redis key of the service, built here and only here.

Each key of one coupon carries the hash tag ``{<coupon_id>}`` so that all keys a script touches
for that coupon land in one Redis Cluster slot.
"""
from __future__ import annotations

from dataclasses import dataclass


def queued_registry(prefix: str) -> str:
    """Set of coupon ids whose stream the workers poll (written outside any script)."""
    return f"{prefix}queued:coupons"


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
        """Counter of reservations (issued plus in flight)."""
        return self._key("count")

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
        return [self.meta, self.users, self.count, self.fence, self.stream, self.dead]
