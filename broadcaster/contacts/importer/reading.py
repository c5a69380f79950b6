"""Reading an import file: bytes to lines, the delimiter, the header's columns."""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterator
from typing import IO

from broadcaster.errors import RiskcastError

log = logging.getLogger(__name__)

COLUMNS = (
    "phone",
    "name",
    "language",
    "communities",
    "country",
    "consent_source",
    "consent_at",
    "channel",
    "timezone",
)
_ALIASES = {"community": "communities"}
_BOMS_UTF16 = (b"\xff\xfe", b"\xfe\xff")
_BOM_UTF8 = b"\xef\xbb\xbf"
_DELIMITERS = (",", ";", "\t")


class ImportFileError(RiskcastError):
    """The file as a whole cannot be imported (no header, no phone column, UTF-16...)."""


class Lines:
    """Physical lines of a byte stream decoded for ``csv.reader``; remembers the ones that
    were not UTF-8 (decoded with replacement characters so the CSV structure survives)."""

    def __init__(self, raw: Iterator[bytes], first_number: int) -> None:
        self._raw = raw
        self.number = first_number
        self.bytes_read = 0
        self.bad: set[int] = set()

    def __iter__(self) -> Lines:
        return self

    def __next__(self) -> str:
        line = next(self._raw)
        self.number += 1
        self.bytes_read += len(line)
        try:
            return line.decode("utf-8")
        except UnicodeDecodeError:
            self.bad.add(self.number)
            return line.decode("utf-8", errors="replace")


def _byte_lines(stream: IO[bytes] | IO[str]) -> Iterator[bytes]:
    """Lines of ``stream`` as bytes; a text stream (already decoded) is encoded back."""
    probe = stream.read(0)
    if isinstance(probe, str):
        return (line.encode("utf-8") for line in stream)  # type: ignore[union-attr]
    return iter(stream)  # type: ignore[arg-type]


def _sniff(header: str) -> str:
    counts = {d: header.count(d) for d in _DELIMITERS}
    best = max(_DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


def header_columns(names: list[str]) -> dict[str, int]:
    """Index of each known column; ImportFileError for unknown, repeated or no phone."""
    index: dict[str, int] = {}
    for i, raw in enumerate(names):
        name = raw.strip().lower()
        name = _ALIASES.get(name, name)
        if not name and i == len(names) - 1 and i > 0:
            continue  # a trailing delimiter after the last name
        if name not in COLUMNS:
            raise ImportFileError(
                f"header: unknown column {raw.strip()!r} (column {i + 1}); "
                f"known columns: {', '.join(COLUMNS)}"
            )
        if name in index:
            raise ImportFileError(f"header: column {name!r} appears twice")
        index[name] = i
    if "phone" not in index:
        raise ImportFileError(
            f"header: no 'phone' column (the header must name the columns: {','.join(COLUMNS)})"
        )
    return index


def open_csv(stream: IO[bytes] | IO[str]) -> tuple[Iterator[bytes], list[str], str, int]:
    """(remaining lines, header names, delimiter, header bytes); ImportFileError if unusable."""
    raw_lines = _byte_lines(stream)
    header_bytes = next(raw_lines, b"")
    if header_bytes.startswith(_BOMS_UTF16):
        raise ImportFileError("the file is UTF-16; save it as CSV UTF-8")
    size = len(header_bytes)
    header_bytes = header_bytes.removeprefix(_BOM_UTF8)
    try:
        header_text = header_bytes.decode("utf-8")
    except UnicodeDecodeError:
        raise ImportFileError("header (line 1) is not UTF-8; save the file as CSV UTF-8") from None
    if not header_text.strip():
        raise ImportFileError("the file is empty (no header line)")
    delimiter = _sniff(header_text)
    if "\r" in header_text.rstrip("\r\n"):
        # Lines ended by a bare CR (the old Mac format): the whole file reads as one line.
        raise ImportFileError(
            "lines end with a bare carriage return (CR); save the file as CSV UTF-8"
        )
    try:
        header = next(csv.reader([header_text], delimiter=delimiter))
    except csv.Error as exc:
        raise ImportFileError(f"header (line 1) is not valid CSV: {exc}") from None
    return raw_lines, header, delimiter, size
