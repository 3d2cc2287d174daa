"""What a lab run consists of: its settings, its scenarios, and the runs each one plans."""
from __future__ import annotations

from dataclasses import dataclass

SCENARIOS = ("all", "workers", "lease-expiry")

# The lease-expiry scenario: a 1 s lease, a holder stalling 3 s inside it (once per process),
# and a 1 s acquire timeout so that waiters retry the expired lock instead of waiting for a
# release signal that a stalled holder never sends.
LEASE_EXPIRY_ENV = {
    "COUPON_LOCK_EXPIRE": "1",
    "COUPON_RETRY_DEADLINE": "1",
    "COUPON_FAULT_PAUSE_SECONDS": "3",
}

# Database connections all of one server's workers may open together, kept well under
# PostgreSQL's default max_connections (100) with room for the lab's own pool.
SERVER_CONNECTIONS = 40


@dataclass(frozen=True)
class Run:
    """One row of the report: a strategy (or /ping) under one server configuration."""

    label: str
    strategy: str | None  # None: the /ping reference row
    workers: int
    env: tuple[tuple[str, str], ...] = ()

    @property
    def is_ping(self) -> bool:
        """Tell whether this is the reference row."""
        return self.strategy is None

    @property
    def server_key(self) -> tuple[int, tuple[tuple[str, str], ...]]:
        """Return what a server must share to serve this run (runs with equal keys share one)."""
        return (self.workers, self.env)


@dataclass(frozen=True)
class Settings:
    """The lab's command-line choices."""

    scenario: str = "all"
    strategies: tuple[str, ...] = ()
    workers: int = 2
    duration: float = 8.0
    users: int = 50
    quantity: int | None = None
    duplicate_share: float = 0.1
    output: str = "reports"

    def quantity_for(self) -> int:
        """Return the coupon quantity: the flag, else the scenario's default."""
        if self.quantity is not None:
            return self.quantity
        return 50 if self.scenario == "lease-expiry" else 200


def pool_env(workers: int) -> dict[str, str]:
    """Size each worker's database pool so the server stays within SERVER_CONNECTIONS."""
    per_worker = max(3, SERVER_CONNECTIONS // workers)
    pool = max(2, per_worker * 2 // 3)
    return {"COUPON_DB_POOL_SIZE": str(pool), "COUPON_DB_MAX_OVERFLOW": str(per_worker - pool)}


def plan(settings: Settings, registered: list[str]) -> list[Run]:
    """List the runs of the chosen scenario, the /ping reference row first."""
    ping = Run("/ping", None, settings.workers)
    if settings.scenario == "workers":
        chosen = settings.strategies or ("process_lock",)
        return [ping] + [Run(f"{name} x{n}", name, n) for name in chosen for n in (1, 4)]
    if settings.scenario == "lease-expiry":
        chosen = settings.strategies or ("redis_lock", "fenced_lock")
        env = tuple(sorted(LEASE_EXPIRY_ENV.items()))
        return [ping] + [Run(name, name, settings.workers, env) for name in chosen]
    chosen = settings.strategies or tuple(registered)
    return [ping] + [Run(name, name, settings.workers) for name in chosen]
