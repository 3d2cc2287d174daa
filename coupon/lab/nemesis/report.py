"""The nemesis's report: per strategy, what every seed ran into and what the checker found."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from coupon.lab.check.checker import ANOMALIES
from coupon.lab.nemesis.run import Seed
from strategies import FAMILY_OF

COLUMNS = ("seeds", "faults", "ops", *ANOMALIES, "info_issued", "info_not_issued")


def by_strategy(seeds: list[Seed]) -> dict[str, dict[str, int]]:
    """Sum every seed's figures per pinned strategy (every strategy sees each seed's faults)."""
    rows: dict[str, dict[str, int]] = {}
    for seed in seeds:
        for strategy, sums in seed.check.by_strategy().items():
            row = rows.setdefault(strategy, dict.fromkeys(COLUMNS, 0))
            row["seeds"] += 1
            row["faults"] += seed.faults
            for name in COLUMNS[2:]:
                row[name] += sums[name]
    return rows


def _verdict(row: dict[str, int]) -> str:
    bad = [f"{name.replace('_', ' ')} {row[name]}" for name in ANOMALIES if row[name]]
    return "valid" if not bad else ", ".join(bad)


def write(out: Path, seeds: list[Seed], facts: dict[str, Any], command: str) -> Path:
    """Write report.json and report.md: the table per strategy, then each seed's verdict."""
    rows = by_strategy(seeds)
    document = {
        "scenario": "nemesis",
        "command": command,
        **facts,
        "by_strategy": rows,
        "appendfsync": sorted({seed.schedule.appendfsync for seed in seeds}),
        "seeds": [seed.as_dict() for seed in seeds],
    }
    (out / "report.json").write_text(json.dumps(document, indent=1))
    head = ["strategy", "family", *(c.replace("_", " ") for c in COLUMNS), "checker"]
    modes = ", ".join(sorted({seed.schedule.appendfsync for seed in seeds}))
    lines = [
        "# Nemesis",
        "",
        f"`{command}`; backend: **{facts['backend']['database']}**; Redis appendfsync: **{modes}**",
        "",
        "| " + " | ".join(head) + " |",
        "|" + " --- |" * len(head),
    ]
    for strategy, row in rows.items():
        cells = [strategy, FAMILY_OF.get(strategy, "?"), *(str(row[c]) for c in COLUMNS), _verdict(row)]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "| seed | appendfsync | faults | ops | settled (s) | checker | replay |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for seed in seeds:
        lines.append(
            f"| {seed.schedule.seed} | {seed.schedule.appendfsync} | {seed.faults} | {seed.ops} | {seed.settled_s} | "
            f"{seed.check.verdict()} | `--replay {seed.out}` |"
        )
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def show(seeds: list[Seed], console: Console) -> None:
    """Print the table per strategy."""
    modes = ", ".join(sorted({seed.schedule.appendfsync for seed in seeds}))
    table = Table(title=f"nemesis: per strategy, over every seed (Redis appendfsync {modes})")
    for name in ("strategy", *COLUMNS, "checker"):
        table.add_column(name.replace("_", " "))
    for strategy, row in by_strategy(seeds).items():
        table.add_row(strategy, *(str(row[c]) for c in COLUMNS), _verdict(row))
    console.print(table)
