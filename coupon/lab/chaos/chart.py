"""The chaos chart (matplotlib, Agg): which strategy kept its promises under which fault, and
what each appendfsync mode cost in accepted requests per second."""

from __future__ import annotations

from pathlib import Path

import matplotlib
from matplotlib.axes import Axes
from matplotlib.patches import Rectangle

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # the backend must be chosen first

from coupon.lab.chaos.run import Row

KEPT, LOST, OVER, NONE = "#4caf50", "#ff9800", "#e53935", "#f0f0f0"
MODES = ("no", "everysec", "always")


def colour(row: Row) -> str:
    """Red for over-issue, orange for any other broken promise, green when all were kept."""
    if row.figures.over_issued:
        return OVER
    return LOST if row.figures.broken() else KEPT


def label(row: Row) -> str:
    """The figures written in a cell: what went wrong, or the time to recover."""
    f = row.figures
    parts = [
        f"+{f.over_issued}" if f.over_issued else "",
        f"lost {f.lost}" if f.lost else "",
        f"strand {f.stranded}" if f.stranded else "",
        f"phantom {f.phantom}" if f.phantom else "",
    ]
    said = "\n".join(part for part in parts if part)
    return said or ("ok" if row.recover_s is None else f"ok\n{row.recover_s:.1f}s")


def _grid(ax: Axes, rows: list[Row]) -> None:
    strategies = list(dict.fromkeys(row.strategy for row in rows))
    faults = list(dict.fromkeys(row.fault for row in rows))
    for y, strategy in enumerate(strategies):
        for x, fault in enumerate(faults):
            row = next((r for r in rows if (r.strategy, r.fault) == (strategy, fault)), None)
            ax.add_patch(Rectangle((x, y), 0.95, 0.95, color=NONE if row is None else colour(row)))
            if row is not None:
                ax.text(x + 0.47, y + 0.47, label(row), ha="center", va="center", fontsize=7)
    ax.set_xlim(0, len(faults))
    ax.set_ylim(len(strategies), 0)
    ax.set_xticks([x + 0.47 for x in range(len(faults))], faults, rotation=45, ha="right", fontsize=8)
    ax.set_yticks([y + 0.47 for y in range(len(strategies))], strategies, fontsize=9)
    ax.set_title(
        "promises under each fault (green kept; orange lost/stranded/phantom; red over-issued)", fontsize=9
    )


def _cost(ax: Axes, rows: list[Row]) -> None:
    restarts = [row for row in rows if row.appendfsync]
    strategies = list(dict.fromkeys(row.strategy for row in restarts))
    width = 0.8 / max(1, len(strategies))
    for n, strategy in enumerate(strategies):
        rates = []
        for mode in MODES:
            found = [r.accepted_per_s for r in restarts if r.strategy == strategy and r.appendfsync == mode]
            rates.append(sum(found) / len(found) if found else 0.0)
        ax.bar([i + n * width for i in range(len(MODES))], rates, width, label=strategy)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(MODES))], list(MODES))
    ax.set_xlabel("appendfsync")
    ax.set_ylabel("accepted/s before the fault")
    ax.set_title("what each appendfsync mode costs (same run)", fontsize=9)
    if strategies:
        ax.legend(fontsize=8)


def draw(rows: list[Row], path: Path) -> Path:
    """Draw the grid and the cost bars side by side; return the PNG's path."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(16, 6), gridspec_kw={"width_ratios": [2, 1]})
    _grid(left, rows)
    _cost(right, rows)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
