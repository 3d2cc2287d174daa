"""The capacity chart (matplotlib, Agg): p99 against throughput, and achieved against offered."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # the backend must be chosen first
from matplotlib import ticker

from coupon.lab.capacity.sweep import Row

PING = "#9d9d9d"


def draw(rows: list[Row], slo_p99_ms: float, path: Path) -> Path:
    """Left: p99 (log) against achieved req/s per strategy, the objective and each capacity
    marked; right: achieved against offered, with y = x (an open loop that keeps up)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 6))
    top, bottom = 1.0, float("inf")
    for row in rows:
        curve = row.curve()
        if not curve:
            continue
        offered = [p.offered_rps for p in curve]
        achieved = [max(p.achieved_rps, 0.5) for p in curve]  # a log axis has no 0
        p99 = [max(p.p99_ms, 0.1) for p in curve]
        style = {"color": PING, "linestyle": "--"} if row.run.is_ping else {}
        (line,) = left.plot(achieved, p99, marker="o", markersize=4, label=row.run.label, **style)
        right.plot(
            offered,
            achieved,
            marker="o",
            markersize=4,
            label=row.run.label,
            color=line.get_color(),
            linestyle=style.get("linestyle", "-"),
        )
        top = max(top, *offered, *achieved)
        bottom = min(bottom, *offered)
        at = next((p for p in curve if p.offered_rps == row.capacity), None)
        if at is not None:
            left.plot(
                [max(at.achieved_rps, 0.5)],
                [max(at.p99_ms, 0.1)],
                marker="*",
                markersize=16,
                color=line.get_color(),
                markeredgecolor="black",
            )
            left.annotate(
                f"{row.capacity:g}",
                (max(at.achieved_rps, 0.5), max(at.p99_ms, 0.1)),
                textcoords="offset points",
                xytext=(6, -12),
                fontsize=8,
            )
            right.plot(
                [at.offered_rps],
                [max(at.achieved_rps, 0.5)],
                marker="*",
                markersize=16,
                color=line.get_color(),
                markeredgecolor="black",
            )
    left.axhline(slo_p99_ms, color="black", linewidth=1.5, label=f"objective p99 {slo_p99_ms:g} ms")
    # Strategies differ by orders of magnitude: log scales throughout (y = x stays a line).
    for axis in (left, right):
        axis.set_xscale("log")
        axis.set_yscale("log")
        for scale in (axis.xaxis, axis.yaxis):
            scale.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
    left.set_xlabel("achieved req/s (answers completed per second, log)")
    left.set_ylabel("p99 latency from intended send time, ms (log)")
    left.set_title("Latency against throughput; star = capacity")
    left.legend(fontsize=8)
    bottom = min(bottom, top) / 2
    right.plot([bottom, top], [bottom, top], color="black", linewidth=1, label="y = x (keeps up)")
    right.set_xlabel("offered req/s (open loop, log)")
    right.set_ylabel("achieved req/s (log)")
    right.set_title("Achieved against offered: under the line = falling behind")
    right.legend(fontsize=8)
    for axis in (left, right):
        axis.grid(True, which="major", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
