"""CSV the project writes opens in a spreadsheet as text, never as a formula."""

from __future__ import annotations

import csv
import io

import pytest

from broadcaster import spreadsheet


@pytest.mark.parametrize(
    "typed",
    ["=1+1", "+856 20 ••• ••34", "-2+3", "@SUM(A1)", "\t=1", "\r=1", "\n=1", "＝1", "＋1"],
)
def test_a_cell_a_spreadsheet_would_run_is_written_as_text(typed: str) -> None:
    out = io.StringIO()
    spreadsheet.writer(out).writerows([["name"], [typed]])
    (cell,) = list(csv.reader(io.StringIO(out.getvalue())))[1]
    assert cell == "'" + typed


@pytest.mark.parametrize("value", ["Noy", "020 5555 1234", "", "a=b", 42, 3.5])
def test_other_cells_are_written_as_they_are(value: object) -> None:
    out = io.StringIO()
    spreadsheet.writer(out).writerow([value])
    assert list(csv.reader(io.StringIO(out.getvalue()))) == [[str(value)]]
