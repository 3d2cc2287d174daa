"""The queued coupons' Redis Streams: the registry, the consumer group, and what an entry holds.

Invariant kept by every writer: a coupon's stream holds exactly the accepted requests not yet
persisted (undelivered, or delivered and pending); an entry leaves it only when the database
has committed it (settle.lua) or when it is dead-lettered (dead_letter.lua).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import redis

from coupon.core import replies
from coupon.store.keys import CouponKeys, queued_registry

# The consumer group every worker joins; one group, so an entry is delivered to one worker.
GROUP = "issue-workers"

MAX_USER_ID = 2**63 - 1
_DIGITS = re.compile(r"[1-9][0-9]{0,18}")


class Malformed(ValueError):
    """Raised for a stream entry that cannot describe an issue; the message is the reason."""


@dataclass(frozen=True)
class Entry:
    """One stream entry as read: its id, its raw fields, and how often it was delivered."""

    id: str
    fields: dict[str, str]
    deliveries: int = 1

    def user_id(self) -> int:
        """Return the entry's user id, or raise Malformed with the reason."""
        raw = self.fields.get("user")
        if raw is None:
            raise Malformed("malformed entry: no 'user' field")
        if not _DIGITS.fullmatch(raw) or int(raw) > MAX_USER_ID:
            raise Malformed(f"malformed entry: user {raw[:40]!r} is not a positive 64-bit integer")
        return int(raw)

    def seat(self) -> int | None:
        """Return the entry's seat (entries enqueued before seats existed have none)."""
        raw = self.fields.get("seat", "")
        return int(raw) if raw.isdigit() and int(raw) > 0 else None

    def payload(self) -> str:
        """Return the fields as JSON, as the failed_issue table keeps them."""
        return json.dumps(self.fields, sort_keys=True)


def register(client: redis.Redis, prefix: str, coupon_id: int) -> None:
    """Add a coupon to the set of streams the workers poll."""
    client.sadd(queued_registry(prefix), coupon_id)


def unregister(client: redis.Redis, prefix: str, coupon_id: int) -> None:
    """Take a coupon out of the set of streams the workers poll."""
    client.srem(queued_registry(prefix), coupon_id)


def discover(client: redis.Redis, prefix: str) -> list[int]:
    """Register every coupon stream that holds entries, found by SCAN; return their ids.

    The safety net under the registry: a process that died between its first entry for a
    coupon and registering it (or any other writer) cannot leave a stream unseen for long.
    """
    found = []
    for key in client.scan_iter(match=f"{prefix}{{*}}:stream", count=1000, _type="STREAM"):
        tag = key[len(prefix) + 1 : key.index("}", len(prefix))]
        if tag.isdigit() and client.xlen(key):
            found.append(int(tag))
    if found:
        client.sadd(queued_registry(prefix), *found)
    return sorted(found)


def registered(client: redis.Redis, prefix: str) -> list[int]:
    """Return the coupon ids whose streams the workers poll, in order."""
    return sorted(int(member) for member in client.smembers(queued_registry(prefix)))


def ensure_group(client: redis.Redis, keys: CouponKeys) -> None:
    """Create the consumer group (and the stream) if absent, reading from the first entry."""
    try:
        client.xgroup_create(keys.stream, GROUP, id="0", mkstream=True)
    except redis.exceptions.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def read_new(client: redis.Redis, keys: CouponKeys, consumer: str, count: int) -> list[Entry]:
    """Read up to count entries never delivered to any consumer of the group."""
    try:
        reply = client.xreadgroup(GROUP, consumer, {keys.stream: ">"}, count=count)
    except redis.exceptions.ResponseError as exc:
        if "NOGROUP" not in str(exc):
            raise
        ensure_group(client, keys)
        return []
    # RESP2 answers [[stream, entries]], RESP3 {stream: [entries]}.
    if isinstance(reply, dict):
        found = [item for batch in reply.values() for item in _flatten(batch)]
    else:
        found = [item for _, batch in reply or [] for item in batch]
    return [Entry(entry_id, fields) for entry_id, fields in found if fields is not None]


def _flatten(batch: list[Any]) -> list[Any]:
    if batch and isinstance(batch[0], list) and batch[0] and isinstance(batch[0][0], list):
        return [item for inner in batch for item in inner]
    return batch


def claim_idle(client: redis.Redis, keys: CouponKeys, consumer: str, idle_ms: int, count: int) -> list[Entry]:
    """Take over up to count entries pending longer than idle_ms, with their delivery counts."""
    try:
        reply = client.xautoclaim(keys.stream, GROUP, consumer, idle_ms, "0-0", count=count)
    except redis.exceptions.ResponseError as exc:
        if "NOGROUP" not in str(exc):
            raise
        ensure_group(client, keys)
        return []
    # Entries deleted meanwhile come back without fields; XAUTOCLAIM drops them from the PEL.
    claimed = [(entry_id, fields) for entry_id, fields in reply[1] if fields is not None]
    if not claimed:
        return []
    first, last = claimed[0][0], claimed[-1][0]
    pending = client.xpending_range(keys.stream, GROUP, first, last, 10 * count, consumername=consumer)
    deliveries = {item["message_id"]: int(item["times_delivered"]) for item in pending}
    return [Entry(entry_id, fields, deliveries.get(entry_id, 1)) for entry_id, fields in claimed]


def remove_consumer_if_idle(client: redis.Redis, keys: CouponKeys, consumer: str) -> None:
    """Delete a consumer from the group unless it still holds pending entries."""
    summary = client.xpending(keys.stream, GROUP)
    mine = [c for c in summary.get("consumers") or [] if c["name"] == consumer]
    if not mine or int(mine[0]["pending"]) == 0:
        client.xgroup_delconsumer(keys.stream, GROUP, consumer)


def backlog(client: redis.Redis, keys: CouponKeys) -> int:
    """Count the entries not yet persisted: undelivered plus pending (see the invariant)."""
    return int(client.xlen(keys.stream))


def entries(client: redis.Redis, stream: str, page: int = 1000) -> Iterable[Entry]:
    """Yield every entry of a stream, oldest first, a page at a time."""
    start = "-"
    while True:
        reply = client.xrange(stream, min=start, max="+", count=page) or []
        chunk = [Entry(replies.text(entry_id), replies.texts(fields)) for entry_id, fields in reply]
        yield from chunk
        if len(chunk) < page:
            return
        start = "(" + chunk[-1].id


def users_of(found: Iterable[Entry]) -> set[int]:
    """Return the user ids of well-formed entries."""
    users = set()
    for entry in found:
        try:
            users.add(entry.user_id())
        except Malformed:
            pass
    return users


def in_flight_seats(client: redis.Redis, keys: CouponKeys) -> dict[int, int]:
    """Return the users of the backlog and dead letters with their seats (0: none)."""
    found: dict[int, int] = {}
    for name in (keys.stream, keys.dead):
        for entry in entries(client, name):
            try:
                found[entry.user_id()] = entry.seat() or 0
            except Malformed:
                pass
    return found
