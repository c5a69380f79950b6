"""What a run tells its user: a table of the figures, each with its verdict (``pass``;
``FAIL``, its target missed; ``ERROR``, it could not be measured), and the same figures
as JSON."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text

from bench.config import BenchConfig

ERROR_LENGTH = 500


@dataclass
class Results:
    config: BenchConfig
    figures: dict[str, dict[str, Any]] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {**self.figures, "meta": self.meta}

    def failed(self) -> list[str]:
        """The figures that could not be measured (they have an ``error``)."""
        return [key for key, figure in self.figures.items() if "error" in figure]


def failure(exc: BaseException) -> dict[str, Any]:
    """The figure an exception stopped: its error, and the target not met."""
    message = str(exc).strip()
    if len(message) > ERROR_LENGTH:
        message = message[:ERROR_LENGTH] + "…"
    return {"error": f"{exc.__class__.__name__}: {message}", "meets_target": False}


Row = tuple[str, str, str]  # measured, in-run reference, ratio


def _p1_row(p1: Mapping[str, Any]) -> Row:
    measured = f"{p1['recipients']:,} in {p1['seconds']:.2f}s; worker peak {p1['max_worker_rss_mb']:.0f} MB"
    if "scale" in p1:
        s = p1["scale"]
        measured += (
            f"\n{s['recipients']:,} in {s['seconds']:.2f}s; worker peak "
            f"{s['max_worker_rss_mb']:.0f} MB (floor {s['floor_seconds']:.2f}s)"
        )
    return (
        measured,
        f"INSERT…SELECT {p1['floor_rows']:,}: {p1['floor_seconds']:.2f}s",
        f"{p1['ratio']:.1f}x",
    )


def _p2_row(p2: Mapping[str, Any]) -> Row:
    return (
        f"{p2['per_s']:.0f}/s end to end (accepted {p2['accepted_per_s']:.0f}/s, "
        f"delivered {p2['delivered_per_s']:.0f}/s)",
        f"raw {p2['raw_per_s']:.0f}/s ({p2['processes']} processes x 1 thread)"
        + (
            f"; with callbacks {p2['raw_with_callbacks_per_s']:.0f}/s"
            if p2.get("raw_with_callbacks_per_s")
            else ""
        ),
        f"{p2['ratio']:.2f}",
    )


def _p3_row(p3: Mapping[str, Any]) -> Row:
    return (
        f"p50 {p3['p50_s']:.2f}s, p95 {p3['p95_s']:.2f}s, max {p3['max_s']:.2f}s "
        f"({p3['alerts']} alerts)",
        "—",
        f"{p3['ratio']:.2f}",
    )


def _p4_row(p4: Mapping[str, Any]) -> Row:
    return (
        f"mean {p4['mean_per_s']:.1f}/s, windows {p4['min_window']}-{p4['max_window']} "
        f"({p4['seconds']} x 1 s, {p4['workers']} workers)",
        f"configured {p4['rate']}/s",
        f"{p4['ratio']:.3f}",
    )


def _p5_row(p5: Mapping[str, Any]) -> Row:
    growth = p5.get("rss_growth_mb")
    memory = (
        f"memory +{growth:.1f} MB" if growth is not None else f"peak {p5['peak_rss_mb']:.0f} MB"
    )
    measured = (
        f"{p5['rows_per_s']:,.0f} rows/s ({p5['rows']:,} rows, {p5['bytes'] / 1e6:.1f} MB; "
        f"{memory}); {p5['imported']:,} imported"
    )
    if p5["rejected"]:
        measured += f", {p5['note']}"
    return (measured, "—", f"{p5['ratio']:.2f}")


# Each figure in report order: its title, how its row reads, and its target.
FIGURES: dict[str, tuple[str, Callable[[Mapping[str, Any]], Row], str]] = {
    "p1_fanout": ("P1 fan-out", _p1_row, "<= 10 s, <= 25x, <= 250 MB"),
    "p2_send": ("P2 send", _p2_row, ">= 0.6x raw"),
    "p3_urgent": ("P3 urgent", _p3_row, "p95 <= 2 s"),
    "p4_rate": ("P4 rate", _p4_row, "±5%, max <= 110"),
    "p5_import": ("P5 import", _p5_row, ">= 20,000 rows/s"),
}


def verdict(figure: Mapping[str, Any]) -> str:
    if "error" in figure:
        return "ERROR"
    return "pass" if figure.get("meets_target") else "FAIL"


def summary_rows(results: Results) -> list[tuple[str, str, str, str, str, str]]:
    """(figure, measured, in-run reference, ratio, target, result) per figure of the run."""
    rows = []
    for key, (title, row, target) in FIGURES.items():
        figure = results.figures.get(key)
        if figure is None:
            continue
        if "error" in figure:
            measured: Row = (str(figure["error"]), "—", "—")
        else:
            measured = row(figure)
        rows.append((title, *measured, target, verdict(figure)))
    return rows


def table(results: Results) -> Table:
    """The figures as a Rich table."""
    out = Table(title="riskcast bench" + (" (--quick: smoke run)" if results.config.quick else ""))
    for column in ("figure", "measured", "in-run reference", "ratio", "target", "result"):
        out.add_column(column, overflow="fold")
    styles = {"pass": "green", "FAIL": "red", "ERROR": "bold red"}
    for row in summary_rows(results):
        # Text, not markup: an error's message is printed as it is.
        out.add_row(*(Text(cell) for cell in row[:-1]), Text(row[-1], style=styles[row[-1]]))
    return out


def write_json(results: Results, path: str | Path) -> None:
    Path(path).write_text(json.dumps(results.as_json(), indent=2, ensure_ascii=False) + "\n")
