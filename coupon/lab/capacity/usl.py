"""Gunther's Universal Scalability Law, fitted to capacities measured at several process counts.

    X(N) = gamma * N / (1 + sigma * (N - 1) + kappa * N * (N - 1))

gamma is fixed to the one-process capacity X(1); sigma (contention: the share that runs one at a
time, e.g. a hot row or one lock) and kappa (coherency: the cost of processes agreeing, e.g.
retries) come from least squares on the linearised form
    N * gamma / X(N) - 1 = sigma * (N - 1) + kappa * N * (N - 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

# Processes whose capacity the report predicts (labelled as predictions, never as measured).
PREDICT_AT = (8, 16)


@dataclass(frozen=True)
class Fit:
    """A fitted USL curve."""

    gamma: float
    sigma: float
    kappa: float

    def predict(self, processes: float) -> float:
        """Return the capacity the curve predicts at a process count."""
        n = processes
        return self.gamma * n / (1 + self.sigma * (n - 1) + self.kappa * n * (n - 1))

    @property
    def peak(self) -> float | None:
        """Return N*, the process count of the highest capacity (None: no peak, kappa is 0)."""
        if self.kappa <= 0:
            return None
        return math.sqrt(max(0.0, 1 - self.sigma) / self.kappa)

    @property
    def ceiling(self) -> float | None:
        """Return the contention ceiling gamma / sigma, what no process count gets past."""
        return self.gamma / self.sigma if self.sigma > 0 else None

    def as_dict(self) -> dict[str, Any]:
        """Return the parameters, the peak and the predictions."""
        return {
            "gamma": round(self.gamma, 1),
            "sigma": round(self.sigma, 4),
            "kappa": round(self.kappa, 5),
            "peak_processes": None if self.peak is None else round(self.peak, 1),
            "contention_ceiling_rps": None if self.ceiling is None else round(self.ceiling),
            "predicted_rps": {str(n): round(self.predict(n)) for n in PREDICT_AT},
        }


def fit(capacities: dict[int, float]) -> Fit | None:
    """Fit sigma and kappa (both kept >= 0) with gamma = X(1); None without X(1) and two more."""
    gamma = capacities.get(1)
    points = [(n, x) for n, x in sorted(capacities.items()) if n > 1 and x > 0]
    if not gamma or len(points) < 2:
        return None
    n = np.array([p[0] for p in points], dtype=float)
    y = n * gamma / np.array([p[1] for p in points]) - 1
    design = np.column_stack([n - 1, n * (n - 1)])
    (sigma, kappa), *_ = np.linalg.lstsq(design, y, rcond=None)
    if kappa < 0:  # no coherency cost seen: refit contention alone
        kappa = 0.0
        sigma = float(np.dot(n - 1, y) / np.dot(n - 1, n - 1))
    elif sigma < 0:  # more than linear at first: refit coherency alone
        sigma = 0.0
        kappa = float(np.dot(n * (n - 1), y) / np.dot(n * (n - 1), n * (n - 1)))
    return Fit(float(gamma), max(0.0, float(sigma)), max(0.0, float(kappa)))
