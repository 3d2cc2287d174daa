"""What a lab run consists of: its settings, its scenarios, and the runs each one plans."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

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
    fault: str = ""  # chaos: the fault injected mid-load

    @property
    def is_ping(self) -> bool:
        """Tell whether this is the reference row."""
        return self.strategy is None

    @property
    def server_key(self) -> tuple[int, tuple[tuple[str, str], ...]]:
        """Return what a server must share to serve this run (runs with equal keys share one)."""
        return (self.workers, self.env)


@dataclass(frozen=True)
class Steps:
    """The capacity scenario's choices: open-loop steps, the objective, the burst."""

    slo_p99_ms: float = 100.0
    start_rps: float = 100.0
    max_rps: float = 12800.0
    warmup: float = 1.0  # seconds offered before each step's measured seconds
    seconds: float = 3.0  # measured seconds per step
    max_in_flight: int = 256  # the scheduler's pool: an arrival finding it full is dropped
    burst: int = 500  # requests within burst_window seconds ...
    burst_quantity: int = 50  # ... for this many coupons
    burst_window: float = 0.1
    seed: int = 1


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
    sellouts: int | None = None
    steps: Steps = field(default_factory=Steps)
    faults: tuple[str, ...] = ()  # chaos: the faults chosen (default: the matrix's)
    recovery: float = 3.0  # chaos, nemesis: the workers' recovery bound, seconds
    seeds: int = 1  # nemesis: seeds run one after another, from --seed on
    # nemesis: minutes of load per seed: 12 s, about 18 s a seed with its servers, so that
    # --seeds 50 runs in 14 to 16 minutes on 2 cores (reports 20261207-143657, -145343)
    minutes: float = 0.2
    replay: str = ""  # nemesis: a report (or seed) directory whose schedules to run again
    appendfsync: str = "always"  # nemesis: each seed's Redis appendfsync ("drawn": the seed draws it)

    def quantity_for(self) -> int:
        """Return each coupon's quantity: the flag, else the scenario's default."""
        if self.quantity is not None:
            return self.quantity
        return 50 if self.scenario == "lease-expiry" else 20

    def sellouts_for(self) -> int:
        """Return how many coupons each row sells out: the flag, else the scenario's default."""
        if self.sellouts is not None:
            return self.sellouts
        # The stall strikes once per worker process, at its first critical section: one coupon.
        return 1 if self.scenario == "lease-expiry" else 10


def pool_env(workers: int) -> dict[str, str]:
    """Size each worker's database pool so the server stays within SERVER_CONNECTIONS."""
    per_worker = max(3, SERVER_CONNECTIONS // workers)
    pool = max(2, per_worker * 2 // 3)
    return {"COUPON_DB_POOL_SIZE": str(pool), "COUPON_DB_MAX_OVERFLOW": str(per_worker - pool)}


def server_env(workers: int) -> dict[str, str]:
    """Return a lab server's settings: its pool sizes, and the lab-only strategies enabled."""
    return {**pool_env(workers), "COUPON_LAB_STRATEGIES": "1"}


@dataclass(frozen=True)
class Scenario:
    """A named lab scenario: its rows, and which driver measures them."""

    description: str
    runs: Callable[[Settings, list[str]], list[Run]]  # the rows after /ping
    driver: str = "sellouts"  # "sellouts": closed-loop crowd; "capacity": open-loop steps; "chaos"


# The capacity scenario's default rows: one exact strategy of each family, to fit ~5 minutes.
CAPACITY_STRATEGIES = ("atomic_update", "batched_update", "select_for_update", "redis_lock", "lua", "queued")


# The scaling scenario's default rows, each at 1..4 worker processes.
SCALING_STRATEGIES = ("atomic_update", "batched_update", "lua")
SCALING_PROCESSES = (1, 2, 3, 4)


def _each(settings: Settings, names: tuple[str, ...], env: tuple[tuple[str, str], ...] = ()) -> list[Run]:
    return [Run(name, name, settings.workers, env) for name in names]


def _workers(settings: Settings, registered: list[str]) -> list[Run]:
    chosen = settings.strategies or ("process_lock",)
    return [Run(f"{name} x{n}", name, n) for name in chosen for n in (1, 4)]


def _lease_expiry(settings: Settings, registered: list[str]) -> list[Run]:
    return _each(
        settings,
        settings.strategies or ("redis_lock", "fenced_lock"),
        tuple(sorted(LEASE_EXPIRY_ENV.items())),
    )


def _capacity(settings: Settings, registered: list[str]) -> list[Run]:
    return _each(settings, settings.strategies or tuple(n for n in CAPACITY_STRATEGIES if n in registered))


def _scaling(settings: Settings, registered: list[str]) -> list[Run]:
    chosen = settings.strategies or tuple(n for n in SCALING_STRATEGIES if n in registered)
    return [Run(f"{name} x{n}", name, n) for name in chosen for n in SCALING_PROCESSES]


def _chaos(settings: Settings, registered: list[str]) -> list[Run]:
    from coupon.lab.chaos import matrix  # the chaos scenario's own registry of faults

    chosen = matrix.rows(settings.strategies, settings.faults, registered)
    return [Run(f"{name} / {fault}", name, settings.workers, fault=fault) for name, fault in chosen]


SCENARIOS: dict[str, Scenario] = {
    "all": Scenario("every strategy", lambda s, registered: _each(s, s.strategies or tuple(registered))),
    "workers": Scenario("process_lock at 1 vs 4 workers", _workers),
    "lease-expiry": Scenario(
        "a holder stalls past its Redis lease (redis_lock vs fenced_lock)", _lease_expiry
    ),
    "capacity": Scenario("open-loop steps: the highest rate within the p99 objective", _capacity, "capacity"),
    "scaling": Scenario("capacity at 1..4 worker processes, with a USL fit", _scaling, "capacity"),
    "chaos": Scenario("each strategy under load while a fault is injected (--faults)", _chaos, "chaos"),
    "nemesis": Scenario(
        "a crowd under a seeded schedule of overlapping faults, then the checker (--seed, "
        "--seeds, --minutes, --replay)",
        lambda s, registered: [],
        "nemesis",
    ),
}


def plan(settings: Settings, registered: list[str]) -> list[Run]:
    """List the runs of the chosen scenario, the /ping reference row first."""
    scenario = SCENARIOS.get(settings.scenario)
    if scenario is None:
        raise ValueError(f"unknown scenario {settings.scenario!r}; known: {', '.join(SCENARIOS)}")
    return [Run("/ping", None, settings.workers)] + scenario.runs(settings, registered)
