"""``riskcast bench --quick`` as its user sees it: every figure printed with a measured
value and a verdict, none of them ERROR, exit status 0, the JSON written, nothing left
behind. No timing is asserted (the machine running the tests decides those): ``pass`` and
``FAIL`` are both a figure that was measured; ``ERROR`` is one that could not be."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from bench.config import FIGURES, BenchConfig, BenchError, parse_only
from bench.report import Results, failure, summary_rows, table
from broadcaster.contacts.importer import ImportFileError
from tests.services import pg_admin, redis_client

# What each printed row says in quick mode (3,000 recipients, 20 alerts, 10 rate windows,
# 3,000 CSV rows), whatever the machine's speed.
MEASURED = {
    "P1 fan-out": r"3,000 in \d+\.\d\ds; worker peak \d+ MB",
    "P2 send": r"\d+/s end to end \(accepted \d+/s, delivered \d+/s\)",
    "P3 urgent": r"p50 \d+\.\d\ds, p95 \d+\.\d\ds, max \d+\.\d\ds \(20 alerts\)",
    "P4 rate": r"mean \d+\.\d/s, windows \d+-\d+ \(10 x 1 s, 3 workers\)",
    "P5 import": r"[\d,]+ rows/s \(3,000 rows, \d+\.\d MB; memory \+-?\d+\.\d MB\); 3,000 imported",
}


def printed_rows(stdout: str) -> dict[str, list[str]]:
    """The table's rows as printed: figure -> its cells."""
    rows = {}
    for line in stdout.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("│").split("│")]
        if len(cells) == 6 and re.fullmatch(r"P\d \S+", cells[0]):
            rows[cells[0]] = cells
    return rows


@pytest.mark.pipeline
def test_bench_quick_prints_every_figure_measured(tmp_path: Path) -> None:
    # Skips locally (fails under CI) when PostgreSQL or Redis is down.
    pg_admin().close()
    redis_client().close()
    out = tmp_path / "bench.json"
    env = {
        **os.environ,
        "RISKCAST_DATABASE_URL": "postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
        "RISKCAST_BROKER_URL": "redis://127.0.0.1:6379/14",
        "RISKCAST_LOG_LEVEL": "WARNING",
        "COLUMNS": "400",  # one printed line per figure
    }
    result = subprocess.run(
        [sys.executable, "-m", "workers.cli", "bench", "--quick", "--json", str(out)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    said = result.stdout + result.stderr
    assert result.returncode == 0, said[-4000:]
    rows = printed_rows(result.stdout)
    assert list(rows) == list(MEASURED), result.stdout[-3000:]
    for title, pattern in MEASURED.items():
        measured, verdict = rows[title][1], rows[title][-1]
        assert verdict in ("pass", "FAIL"), rows[title]
        assert re.fullmatch(pattern, measured), rows[title]
    figures = json.loads(out.read_text())
    assert figures["meta"]["failed"] == []
    assert figures["meta"]["quick"] is True
    assert (figures["p5_import"]["imported"], figures["p5_import"]["rejected"]) == (3000, 0)
    # Nothing is left behind: the bench's own database is dropped.
    match = re.search(r"bench database (riskcast_bench_[0-9a-f]+)", result.stdout)
    assert match, result.stdout[-2000:]
    with pg_admin() as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_database WHERE datname = %s", (match.group(1),)
        ).fetchone()
    assert row == (0,)
    assert not re.search(r"\+(85620|66)\d", said)  # no phone number is printed


def test_a_figure_that_could_not_be_measured_reads_error() -> None:
    results = Results(BenchConfig.make(recipients=None, quick=True, scale=False))
    results.figures = {"p5_import": failure(ImportFileError("the file is empty (no header line)"))}
    assert summary_rows(results) == [
        (
            "P5 import",
            "ImportFileError: the file is empty (no header line)",
            "—",
            "—",
            ">= 20,000 rows/s",
            "ERROR",
        )
    ]
    assert results.failed() == ["p5_import"]
    console = Console(record=True, width=200)
    console.print(table(results))
    assert "ERROR" in console.export_text()


def test_only_chooses_figures() -> None:
    assert parse_only(None) == frozenset(FIGURES)
    assert parse_only("p1") == {"p1"}
    assert parse_only(" P1, p2 ") == {"p1", "p2"}
    with pytest.raises(BenchError, match="unknown figure p9"):
        parse_only("p1,p9")


def test_riskcast_loads_the_bench_only_to_run_it() -> None:
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, workers.cli; print(sorted(m for m in sys.modules if m.split('.')[0] == 'bench'))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert loaded.stdout.strip() == "[]"
