"""One row of the chaos table: a strategy under one fault, the audit's figures, and the facts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from coupon.lab.chaos import figures
from coupon.lab.chaos.matrix import appendfsync
from coupon.lab.drive import load


@dataclass
class Row:
    """One (strategy, fault) row of the chaos table."""

    strategy: str
    fault: str
    figures: figures.Figures
    load: load.Load
    recover_s: float | None  # fault healed -> issues succeed again (the probe)
    settle_s: float | None  # load over -> no journal entry and no backlog left (None: never)
    accepted_per_s: float  # before the fault, from what Redis (or the database) counted
    stock_left_at_fault: int
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def appendfsync(self) -> str | None:
        """Return the Redis persistence mode of this row (None: no AOF)."""
        return appendfsync(self.fault)

    def as_dict(self) -> dict[str, Any]:
        """Return every figure of the row."""
        return {
            "strategy": self.strategy,
            "fault": self.fault,
            "appendfsync": self.appendfsync,
            "figures": self.figures.as_dict(),
            "load": self.load.as_dict(),
            "recover_s": self.recover_s,
            "settle_s": self.settle_s,
            "accepted_per_s": round(self.accepted_per_s, 1),
            "stock_left_at_fault": self.stock_left_at_fault,
            "facts": self.facts,
        }
