"""The HTML report's charts as inline SVG (matplotlib, Agg), drawn from report.json's figures.

Each series has its own marker and line style and a label at its end, so that the charts read
in print and without colour; inexact bars are red and hatched, as in the PNG charts.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - the backend must be chosen first
from matplotlib import ticker  # noqa: E402

from coupon.lab.baseline.reading import Row  # noqa: E402

GOOD, BAD, PING = "#4c78a8", "#d62728", "#9d9d9d"
MARKERS = ("o", "s", "^", "v", "D", "P", "X", "*", "h", "<", ">")
LINES = ("-", "--", "-.", ":")
ORDER = ("p50", "p90", "p95", "p99", "p99.9", "p99.99", "max")


def render(fig: Any) -> str:
    """Return the figure as an <svg> element (text kept as text: smaller, and searchable)."""
    buffer = io.StringIO()
    with plt.rc_context({"svg.fonttype": "none"}):
        fig.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def styles() -> Any:
    """Return an endless cycle of (marker, line style) pairs, no two alike in a chart."""
    return itertools.cycle(
        zip(
            itertools.cycle(MARKERS),
            itertools.chain.from_iterable(
                itertools.repeat(line, len(MARKERS)) for line in itertools.cycle(LINES)
            ),
        )
    )


def bars(
    labels: Sequence[str],
    values: Sequence[float],
    bad: Sequence[bool],
    notes: Sequence[str],
    title: str,
    xlabel: str,
    reference: tuple[float, str] | None = None,
) -> str:
    """Return horizontal bars, one per label, with a note at each bar's end."""
    fig, ax = plt.subplots(figsize=(9, 0.42 * len(labels) + 1.6))
    drawn = ax.barh(list(labels), list(values), color=GOOD)
    for bar, wrong, note in zip(drawn, bad, notes):
        if wrong:
            bar.set_facecolor(BAD)
            bar.set_edgecolor("black")
            bar.set_hatch("//")
        ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, " " + note, va="center", fontsize=8)
    if reference:
        ax.axvline(reference[0], color=PING, linestyle="--", linewidth=2, label=reference[1])
        ax.legend(loc="lower right", fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, max(list(values) + [reference[0] if reference else 0, 1]) * 1.4)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    return render(fig)


def spectrum(rows: list[Row]) -> str:
    """Return each row's latency spectrum (p50 .. max) as a line, on a log scale."""
    names = [name for name in ORDER if any(name in row.spectrum for row in rows)]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for row, (marker, line) in zip(rows, styles()):
        points = [(i, max(row.spectrum[name], 0.01)) for i, name in enumerate(names) if name in row.spectrum]
        if not points:
            continue
        xs, ys = zip(*points)
        ax.plot(xs, ys, marker=marker, linestyle=line, label=row.label)
        ax.annotate(f" {row.label}", (xs[-1], ys[-1]), fontsize=7, va="center")
    ax.set_xticks(range(len(names)), names)
    ax.set_xlim(-0.3, len(names) - 0.3)
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
    ax.set_ylabel("latency, ms (log; lower is better)")
    ax.set_title("Latency spectrum per row")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    return render(fig)


def capacity(results: list[dict[str, Any]], slo_p99_ms: float) -> str:
    """Return p99 against achieved req/s and achieved against offered, one line per row."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5))
    for row, (marker, line) in zip(results, styles()):
        curve = row.get("curve") or []
        if not curve:
            continue
        achieved = [max(p["achieved_rps"], 0.5) for p in curve]
        p99 = [max(p["p99_ms"], 0.1) for p in curve]
        left.plot(achieved, p99, marker=marker, linestyle=line, label=row["label"])
        right.plot(
            [p["offered_rps"] for p in curve], achieved, marker=marker, linestyle=line, label=row["label"]
        )
        at = next((p for p in curve if p["offered_rps"] == row.get("capacity_rps")), None)
        if at is not None:
            left.annotate(
                f"{row['label']}: {at['offered_rps']:g}",
                (max(at["achieved_rps"], 0.5), max(at["p99_ms"], 0.1)),
                textcoords="offset points",
                xytext=(4, -10),
                fontsize=7,
            )
    left.axhline(slo_p99_ms, color="black", linewidth=1.2, label=f"objective p99 {slo_p99_ms:g} ms")
    top = max([p["offered_rps"] for row in results for p in row.get("curve") or []] + [1.0])
    right.plot([1, top], [1, top], color="black", linewidth=1, label="y = x (keeps up)")
    for axis, (x, y, title) in zip(
        (left, right),
        (
            ("achieved req/s (log)", "p99 from intended send, ms (log)", "Latency against throughput"),
            ("offered req/s (log)", "achieved req/s (log)", "Achieved against offered"),
        ),
    ):
        axis.set_xscale("log")
        axis.set_yscale("log")
        for scale in (axis.xaxis, axis.yaxis):
            scale.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
            scale.set_minor_formatter(ticker.NullFormatter())
        axis.set_xlabel(x)
        axis.set_ylabel(y)
        axis.set_title(title)
        axis.grid(True, which="major", alpha=0.3)
        axis.legend(fontsize=7)
    return render(fig)


def timeline(label: str, data: dict[str, Any]) -> str:
    """Return a chaos row's answers per second by kind, with the fault's band hatched."""
    fig, ax = plt.subplots(figsize=(9, 3.2))
    seconds = data.get("seconds") or []
    for (kind, values), (marker, line) in zip((data.get("per_second") or {}).items(), styles()):
        ax.plot(seconds, values, marker=marker, markersize=4, linestyle=line, label=kind)
    start, end = data.get("fault") or (None, None)
    if start is not None and end is not None:
        ax.axvspan(
            start,
            max(end, start + 0.1),
            facecolor="#ffcc80",
            edgecolor="black",
            hatch="xx",
            alpha=0.5,
            label="fault",
        )
        ax.annotate("fault", (start, 1), xycoords=("data", "axes fraction"), va="top", fontsize=8)
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("seconds from the start of the load")
    ax.set_ylabel("answers per second")
    ax.set_title(f"{label}: load over time")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="upper right")
    return render(fig)
