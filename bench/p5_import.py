"""P5, contact import: rows per second through :func:`broadcaster.contacts.importer.import_contacts`
(the importer ``riskcast contacts import`` and the API run), the file's size, and the
memory the import takes (``--import-rows 1000000`` shows it does not grow with the file).

The file is the mix a national list has: Lao numbers typed locally and in E.164, Thai
numbers in E.164 and typed locally with ``country`` TH, three languages, two communities
per row, a consent source and date. The numbers are synthetic, distinct from every other
audience of the run, and never printed. An error of the importer is the figure's failure.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from bench.config import TARGETS
from bench.environment import LANGUAGES, BenchEnv
from bench.processes import peak_rss_mb, reset_own_peak_rss, rss_mb
from broadcaster.communities import service as communities
from broadcaster.contacts.importer import import_contacts

HEADER = "phone,name,language,communities,country,consent_source,consent_at\n"
COMMUNITIES = ("bokeo", "worksite")


def write_csv(path: Path, rows: int) -> int:
    """A CSV of ``rows`` distinct, valid contacts; returns its size in bytes."""
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write(HEADER)
        for i in range(rows):
            kind = i % 4
            if kind == 0:
                number, country = f"020 5{i // 10000 % 1000:03d} {i % 10000:04d}", ""
            elif kind == 1:
                number, country = f"+85620{7000_0000 + i % 10_000_000:08d}", ""
            elif kind == 2:
                number, country = f"+6681{i % 10_000_000:07d}", ""
            else:
                number, country = f"089-{i // 10000 % 1000:03d}-{i % 10000:04d}", "TH"
            out.write(
                f"{number},Person {i},{LANGUAGES[i % 3]},{';'.join(COMMUNITIES)},{country},"
                f"district office,2024-0{1 + i % 9}-15\n"
            )
    return path.stat().st_size


def measure_import(env: BenchEnv, rows: int) -> dict[str, Any]:
    """Import a fresh ``rows``-row file into the run's database (which already holds the
    other figures' contacts), as one call of the importer."""
    with env.runtime.session() as session:
        communities.add_community(session, "bokeo", name="Bokeo", country="LA")
        communities.add_community(session, "worksite", name="Worksite", language="th")
    path = env.workdir / "contacts.csv"
    size = write_csv(path, rows)
    progress = logging.getLogger(import_contacts.__module__)
    level = progress.level
    progress.setLevel(logging.WARNING)  # it logs progress every chunk at INFO
    own_peak = reset_own_peak_rss()
    rss_before = rss_mb(os.getpid()) or 0.0
    started = time.perf_counter()
    try:
        with env.runtime.session() as session, path.open("rb") as stream:
            summary = import_contacts(session, stream, region="LA")
    finally:
        progress.setLevel(level)
    seconds = time.perf_counter() - started
    peak = peak_rss_mb(os.getpid()) or 0.0
    per_s = rows / seconds
    reasons = "; ".join(
        f"line {e.line} {e.column or 'row'}: {e.reason}" for e in summary.errors[:3]
    )
    return {
        "rows": rows,
        "bytes": size,
        "imported": summary.imported,
        "updated": summary.updated,
        "rejected": summary.rejected,
        "note": f"{summary.rejected} rows rejected ({reasons})" if summary.rejected else "",
        "seconds": round(seconds, 3),
        "rows_per_s": round(per_s, 1),
        "peak_rss_mb": round(peak, 1),
        # The bench process's peak during the import over its resident set before it;
        # where the peak cannot be reset, the peak is the whole run's and this is None.
        "rss_growth_mb": round(peak - rss_before, 1) if own_peak else None,
        "ratio": round(per_s / TARGETS["import_rows_per_s"], 3),
        "ratio_of": "rows/s / 20,000 target (no in-run reference)",
        "target": ">= 20,000 rows/s",
        "meets_target": per_s >= TARGETS["import_rows_per_s"] and not summary.rejected,
    }
