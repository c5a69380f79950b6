"""CSV that is safe to open in a spreadsheet.

A cell that starts with ``=``, ``+``, ``-``, ``@`` (or their full-width forms), a tab or a
line break is read by spreadsheet programs as a formula, so a name or a message someone
typed could run in the official's spreadsheet. Every such cell is written with a leading apostrophe, which the
programs show as text.

:func:`xlsx` writes a workbook the same way safe: every text is stored as a text cell
(never a formula or an error value), and one that starts like a formula carries Excel's
"quote prefix" (the apostrophe it shows nowhere), so editing the cell keeps it text.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from typing import Any

from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

# The ASCII signs, their full-width forms (some spreadsheets read those too) and the
# whitespace that can hide them.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n", "＝", "＋", "－", "＠")


def cell(value: object) -> object:
    """``value`` as a cell no spreadsheet evaluates; numbers stay numbers."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


class SafeWriter:
    """A :func:`csv.writer` whose every cell goes through :func:`cell`."""

    def __init__(self, out: Any) -> None:
        self._writer = csv.writer(out)

    def writerow(self, row: Iterable[Any]) -> Any:
        return self._writer.writerow([cell(v) for v in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


def writer(out: Any) -> SafeWriter:
    return SafeWriter(out)


def xlsx(sheets: Mapping[str, Iterable[Iterable[object]]]) -> bytes:
    """A workbook of one sheet per entry of ``sheets`` (title -> rows), as bytes; numbers
    stay numbers, every string is a text cell."""
    book = Workbook()
    book.remove(book.active)  # type: ignore[arg-type]
    for title, rows in sheets.items():
        sheet = book.create_sheet(title[:31])
        for r, row in enumerate(rows, start=1):
            for c, value in enumerate(row, start=1):
                target = sheet.cell(row=r, column=c)
                if isinstance(value, str):
                    # Control characters are not allowed in the file format at all.
                    text = ILLEGAL_CHARACTERS_RE.sub("", value)
                    target.value = text
                    target.data_type = "s"
                    if text.startswith(FORMULA_STARTS):
                        target.quotePrefix = True
                else:
                    target.value = value
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
