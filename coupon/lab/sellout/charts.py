"""The report's charts as PNG (matplotlib, Agg): throughput, latency, correctness."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # the backend must be chosen first
from matplotlib import ticker

from coupon.lab.sellout.runner import Result

GOOD, BAD, PING = "#4c78a8", "#d62728", "#9d9d9d"


def _rows(results: list[Result]) -> tuple[list[Result], float]:
    ping = next((r.load.rps for r in results if r.audit is None), 0.0)
    return [r for r in results if r.audit is not None], ping


def _mark(bars: object, rows: list[Result]) -> None:
    """Paint the bars of inexact runs red and hatched, so that they stand out."""
    for bar, result in zip(bars, rows):  # type: ignore[call-overload]
        if result.audit is not None and not result.audit.exact:
            bar.set_facecolor(BAD)
            bar.set_edgecolor("black")
            bar.set_hatch("//")
            bar.set_hatchcolor("black")


def throughput(results: list[Result], path: Path) -> None:
    """Requests/s per strategy against the /ping ceiling; inexact strategies in red."""
    rows, ping = _rows(results)
    fig, ax = plt.subplots(figsize=(10, 0.45 * len(rows) + 1.8))
    labels = [r.run.label for r in rows]
    bars = ax.barh(labels, [r.load.rps for r in rows], color=GOOD)
    _mark(bars, rows)
    if ping:
        ax.axvline(ping, color=PING, linestyle="--", linewidth=2, label=f"/ping ceiling {ping:.0f} req/s")
    for bar, result in zip(bars, rows):
        note = f"{result.load.rps:.0f}"
        if ping:
            note += f" ({100 * result.load.rps / ping:.0f}%)"
        if result.audit is not None and not result.audit.exact:
            note += f"  {result.audit.verdict.upper()}"
        ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, " " + note, va="center", fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("requests/s (higher is better); red hatched = not exact")
    ax.set_title("Throughput per strategy")
    ax.set_xlim(0, max([ping] + [r.load.rps for r in rows] + [1]) * 1.35)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def latency(results: list[Result], path: Path) -> None:
    """p50, p95 and p99 per strategy (and /ping), on a log scale."""
    fig, ax = plt.subplots(figsize=(10, 0.55 * len(results) + 1.8))
    height = 0.27
    for offset, (name, shade) in enumerate((("p50", "#9ecae9"), ("p95", "#4c78a8"), ("p99", "#1f3b5a"))):
        values = [max(getattr(r.load, name), 0.5) for r in results]
        positions = [i + (offset - 1) * height for i in range(len(results))]
        ax.barh(positions, values, height=height, color=shade, label=name)
        if name == "p99":
            for position, value in zip(positions, values):
                ax.text(value, position, f" {value:.0f} ms", va="center", fontsize=8)
    ax.set_yticks(range(len(results)), [r.run.label for r in results])
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    ax.set_xlim(right=max(r.load.p99 for r in results) * 3 or 10)
    ax.set_xlabel("latency, ms (log scale; lower is better)")
    ax.set_title("Latency percentiles")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def correctness(results: list[Result], path: Path) -> None:
    """Rows written as a share of the quantity; over 100% is over-issue, marked in red."""
    rows, _ = _rows(results)
    fig, ax = plt.subplots(figsize=(10, 0.45 * len(rows) + 1.8))
    shares = [100 * r.audit.rows / r.audit.quantity for r in rows if r.audit is not None]
    bars = ax.barh([r.run.label for r in rows], shares, color=GOOD)
    _mark(bars, rows)
    ax.axvline(100, color="black", linewidth=1.5, label="quantity (100%)")
    for bar, result in zip(bars, rows):
        assert result.audit is not None
        note = f" {result.audit.rows}/{result.audit.quantity}  {result.audit.verdict}"
        ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, note, va="center", fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, max(shares + [100]) * 1.5)
    ax.set_xlabel("issue rows as % of the quantity (exact = 100% once sold out)")
    ax.set_title("Correctness: rows in the database vs the quantity")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def draw_all(results: list[Result], out: Path) -> list[Path]:
    """Draw every chart into out and return their paths."""
    paths = [out / "throughput.png", out / "latency.png", out / "correctness.png"]
    throughput(results, paths[0])
    latency(results, paths[1])
    correctness(results, paths[2])
    return paths
