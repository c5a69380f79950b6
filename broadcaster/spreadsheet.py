"""CSV that is safe to open in a spreadsheet.

A cell that starts with ``=``, ``+``, ``-``, ``@`` (or their full-width forms), a tab or a
line break is read by spreadsheet programs as a formula, so a name or a message someone
typed could run in the official's spreadsheet. Every such cell is written with a leading apostrophe, which the
programs show as text.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import Any

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
