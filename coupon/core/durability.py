"""What the configured Redis promises about accepted requests, read from its own settings.

With an AOF, Redis writes each command to the page cache before it replies, so a killed
redis-server loses nothing it acknowledged, with one exception: under `everysec`, while the
background fsync of the previous second is still running (a busy disk), Redis postpones the
write() for up to 2 s and keeps replying, so a kill -9 then loses those replies' writes
(measured in tests/test_durability.py). Losing the page cache (an OS crash, a power cut)
tells the modes apart: `always` fsyncs before replying, `everysec` about a second later (2 s
when the disk stalls), `no` whenever the kernel flushes (typically 30 s).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import redis

from coupon.core import replies

# Weakest first: with several nodes (a cluster), the service promises what the weakest does.
PROCESS_CRASH = {"always": "yes", "everysec": "yes unless the disk stalls (then up to 2 s)", "no": "yes"}
OS_CRASH = {"always": "yes", "everysec": "up to 1 s (2 s if the disk stalls)", "no": "no"}
RANK = ["unknown", "no", OS_CRASH["everysec"], PROCESS_CRASH["everysec"], "yes"]


@dataclass(frozen=True)
class Promise:
    """What survives a Redis process crash and an OS crash, and the settings that say so."""

    process_crash: str
    os_crash: str
    appendonly: str | None = None
    appendfsync: str | None = None
    detail: str = ""

    def line(self) -> str:
        """Return the one line the service logs at startup."""
        said = (
            f"accepted requests survive a Redis process crash: {self.process_crash}; "
            f"an OS crash: {self.os_crash}"
        )
        return f"{said} ({self.detail})" if self.detail else said

    def as_dict(self) -> dict[str, Any]:
        """Return the promise as JSON-ready fields."""
        return asdict(self)


def promise(appendonly: str | None, appendfsync: str | None, save: str | None) -> Promise:
    """Map Redis's persistence settings to what they promise."""
    if appendonly == "yes":
        mode = appendfsync or "everysec"
        return Promise(
            PROCESS_CRASH.get(mode, "unknown"),
            OS_CRASH.get(mode, "unknown"),
            appendonly,
            mode,
            f"AOF, appendfsync {mode}",
        )
    if appendonly == "no":
        snapshots = f"RDB snapshots only, save '{save}'" if save else "no persistence"
        return Promise("no", "no", appendonly, appendfsync, f"no AOF; {snapshots}")
    return Promise("unknown", "unknown", detail="persistence settings unreadable")


def _settings(client: redis.Redis) -> list[dict[str, str]]:
    # One CONFIG GET per pattern: Redis 6 takes a single pattern per call.
    append, save = client.config_get("append*"), client.config_get("save")
    if append and all(isinstance(value, dict) for value in append.values()):
        # A cluster client answers per node: {node: {name: value}}.
        return [{**replies.texts(append[node]), **replies.texts(save.get(node, {}))} for node in append]
    return [{**replies.texts(append), **replies.texts(save)}]


def read(client: redis.Redis) -> Promise:
    """Ask Redis what it promises; a Redis that refuses CONFIG (managed services) says unknown."""
    try:
        nodes = _settings(client)
    except redis.exceptions.ResponseError as exc:
        return Promise("unknown", "unknown", detail=f"CONFIG GET refused: {exc}")
    found = [promise(n.get("appendonly"), n.get("appendfsync"), n.get("save")) for n in nodes]
    return min(found, key=lambda p: (RANK.index(p.process_crash), RANK.index(p.os_crash)))
