"""CSV import of contacts: streamed, chunked, upserted by number, every bad row reported.

The file
--------
Header ``phone,name,language,communities,country,consent_source,consent_at`` (and
optionally ``channel`` and ``timezone``): only
``phone`` is required, columns may come in any order, names are case-insensitive
(``community`` is read as ``communities``). An unknown or repeated column stops the import
before any row is read (a misspelt ``langauge`` would otherwise import without languages).
UTF-8 with or without a BOM; the delimiter (comma, semicolon or tab) is the one the header
line uses most.

- ``phone``: any form :func:`broadcaster.phones.normalize_phone` accepts; stored in E.164.
  Landlines and service numbers are rejected (SMS cannot reach them).
- ``country``: the two-letter region a number typed *without* a country code was written
  in (``081-234-5678`` with ``TH``); empty means ``RISKCAST_DEFAULT_REGION``. The contact's
  stored country always comes from the number itself, so a Thai SIM of a Lao worker is a
  ``TH`` contact (cross-border), whatever the column says.
- ``communities``: slugs separated by ``;`` (quote the field when the delimiter is ``;``);
  every one must exist. ``default_community`` (``--community``) is added to every row.
- ``language``: a known code (``lo``, ``th``, ``en``, ``km``, ``vi``, ``my``, ``zh``...).
- ``channel``: the channel the person prefers, ``sms`` or ``whatsapp`` (campaigns on the
  ``preferred`` channel use it); empty keeps what is stored (``sms`` for a new contact).
- ``timezone``: the person's own IANA time zone (``Asia/Bangkok``), for quiet hours and
  local-time sends; empty keeps what is stored (a contact without one goes by its first
  community's zone).
- ``consent_source``: free text up to 32 characters (``import`` when empty);
  ``consent_at``: ``YYYY-MM-DD`` or an ISO 8601 time (no zone means UTC), not in the future;
  empty means the time of the import.

What happens to each row
------------------------
- A row with any bad field is rejected: every problem is reported with its line number
  (the physical line the record starts on; the header is line 1), column and reason, in
  ``errors_out`` (CSV ``line,column,reason,phone``) with the number masked, never whole.
  A line that is not valid UTF-8 (a Latin-1 export) is rejected as ``not UTF-8``; the rest
  of the file is still read. A row with more fields than the header is accepted when the
  extra fields are empty (spreadsheets add trailing delimiters), else rejected.
- Empty lines and lines of empty fields are skipped, not rejected (counted in
  ``blank_lines``): spreadsheets end files with them.
- Upsert by E.164 number: a new number is added ``active``; an existing active contact gets
  the row's non-empty fields (empty fields never erase what is stored) and its communities
  added. A contact that is opted out or blocked is left exactly as it is, memberships
  included: an import never re-subscribes anyone (counted in ``unchanged_opted_out``).
- The same number twice in one file is merged into one contact: a later row's non-empty
  fields win, communities add up (counted in ``merged_duplicates``).

Transactions and memory
-----------------------
The file is read ``chunk_size`` records at a time, good and bad rows alike, and each chunk
ends with one short write transaction: the chunk's good rows upserted, the import's status
row (:class:`~broadcaster.contacts.models.ContactImport`) brought up to date, committed. This function owns those commits (``session.commit()``
in :meth:`_Import.commit_chunk`, unlike other data helpers; the staging helpers it calls
never commit). It commits once before reading the first row, too (the caller's work so far
and the rows saying the import started), so it never reads the file inside a
transaction: reading and checking rows touches no table (communities are read up front),
and on SQLite, where every transaction takes the write lock at its start, other writers
(a campaign created, a status callback, the scheduler) wait at most for one chunk's write,
not for the file. A file of rejected rows holds no lock at all but for the status row's
update after each chunk.

With an ``actor``, the import has a status row and two audit rows, each written once:
``contact.import`` when it starts and ``contact.import.done`` (with its counts) or
``contact.import.failed`` when it ends. The status row's ``state`` is ``running`` until the
last chunk commits with ``done``, ``failed`` (with ``error``) when the import stopped on an
error, and its counts and ``through_line`` (the last line settled) always match what is
committed, as they commit in the same transaction as the chunk. A crash in the middle of a file keeps the chunks already
committed and leaves a row that says ``running`` (or ``failed``) and how far the import got;
importing the same file again is safe (it is an upsert). ``errors_out`` is flushed at each
commit, so the rejected rows of committed chunks are on disk too. Memory is bounded by the
chunk, not the file: a 1,000,000-row file imports in the same memory as a 10,000-row one.
On PostgreSQL each chunk is loaded with ``COPY`` into a temporary table and merged with two
set-based statements; on SQLite the same statements run over a temporary table filled with
``executemany``.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable, Iterator
from typing import IO

from sqlalchemy import select
from sqlalchemy.orm import Session

from broadcaster import spreadsheet
from broadcaster.areas import scope
from broadcaster.audit.service import Actor
from broadcaster.contacts.importer.checks import (
    MAX_KEPT_ERRORS,
    Bad,
    Checker,
    ImportSummary,
    Row,
    RowError,
)
from broadcaster.contacts.importer.reading import COLUMNS, ImportFileError, Lines, open_csv
from broadcaster.contacts.importer.staging import write_chunk
from broadcaster.db import utcnow
from broadcaster.errors import NotFound
from broadcaster.models import Community, ContactImport
from broadcaster.phones import PhoneError, mask_phone, mask_phones_in_text, mask_raw
from broadcaster.phones import normalize_phone as _normalize_phone

__all__ = [
    "COLUMNS",
    "DONE",
    "ERRORS_HEADER",
    "FAILED",
    "RUNNING",
    "ImportFileError",
    "ImportSummary",
    "RowError",
    "import_contacts",
]

log = logging.getLogger(__name__)


ERRORS_HEADER = ("line", "column", "reason", "phone")
# The states of an import's audit row (``detail["state"]``).
RUNNING = "running"
DONE = "done"
FAILED = "failed"
_MAX_ERROR = 300


# -- the import ---------------------------------------------------------------------------
def _masked(value: str) -> str:
    try:
        return mask_phone(_normalize_phone(value, "LA", require_mobile=False))
    except PhoneError:
        return mask_raw(value)


class _Import:
    """One run of :func:`import_contacts`: reads records into chunks and commits each chunk."""

    def __init__(
        self,
        session: Session,
        checker: Checker,
        lines: Lines,
        *,
        default_id: int | None,
        errors_out: IO[str] | None,
        progress: Callable[[int], None] | None,
        chunk_size: int,
        header_bytes: int,
        status: ContactImport | None,
        actor: Actor | None,
    ) -> None:
        self.session = session
        self.checker = checker
        self.lines = lines
        self.default_id = default_id
        self.errors_out = errors_out
        self.writer = spreadsheet.writer(errors_out) if errors_out is not None else None
        if self.writer is not None:
            self.writer.writerow(ERRORS_HEADER)
        self.progress = progress
        self.chunk_size = chunk_size
        self.summary = ImportSummary(bytes_read=header_bytes)
        self.ts = utcnow()
        self.chunk: dict[str, Row] = {}
        self.pending = 0  # records read since the last commit
        self.status = status
        self.actor = actor

    def counts(self) -> dict[str, int]:
        s = self.summary
        return {
            "imported": s.imported,
            "updated": s.updated,
            "rejected": s.rejected,
            "merged_duplicates": s.merged_duplicates,
            "unchanged_opted_out": s.unchanged_opted_out,
            "blank_lines": s.blank_lines,
            "rows": s.rows,
        }

    def reject(self, line: int, problems: list[Bad], phone: str) -> None:
        self.summary.rejected += 1
        masked = _masked(phone) if phone else ""
        for bad in problems:
            error = RowError(line, bad.column, mask_phones_in_text(bad.reason), masked)
            if len(self.summary.errors) < MAX_KEPT_ERRORS:
                self.summary.errors.append(error)
            if self.writer is not None:
                self.writer.writerow((error.line, error.column, error.reason, error.phone))

    def commit_chunk(self, state: str = RUNNING) -> None:
        """Write the chunk's good rows and how far the import got, and commit: the one place
        an import commits a chunk (see the module docstring). The last one also writes the
        audit row of its end."""
        if self.chunk:
            write_chunk(self.session, self.chunk, self.ts, self.summary)
        counts = self.counts()
        if self.status is not None:
            self.status.state = state
            self.status.counts = counts
            self.status.through_line = self.lines.number
            self.status.updated_at = utcnow()
            if state == DONE and self.actor is not None:
                self.actor.record(
                    self.session, "contact.import.done", "contact_import", self.status.id, **counts
                )
        self.session.commit()
        self.chunk.clear()
        self.pending = 0
        if self.errors_out is not None:
            self.errors_out.flush()
        if self.progress is not None:
            self.progress(self.summary.bytes_read + self.lines.bytes_read)
        log.info(
            "contact import: %d imported, %d updated, %d rejected so far",
            self.summary.imported,
            self.summary.updated,
            self.summary.rejected,
        )

    def fail(self, exc: BaseException) -> None:
        """Roll the chunk back and mark the import ``failed`` at its last commit (and say so
        in the audit log)."""
        self.session.rollback()
        if self.status is None:
            return
        error = mask_phones_in_text(f"{type(exc).__name__}: {exc}")[:_MAX_ERROR]
        try:
            status = self.session.get_one(ContactImport, self.status.id)
            status.state = FAILED
            status.error = error
            status.updated_at = utcnow()
            if self.actor is not None:
                self.actor.record(
                    self.session,
                    "contact.import.failed",
                    "contact_import",
                    status.id,
                    error=error,
                    through_line=status.through_line,
                )
            self.session.commit()
        except Exception:
            # The database itself may be what failed; the row then still says "running".
            self.session.rollback()
            log.exception("contact import: could not record that the import failed")

    def add(self, start: int, end: int, record: list[str]) -> None:
        """Check one record (lines ``start``..``end``) and put it in the chunk."""
        summary = self.summary
        summary.rows += 1
        phone_raw = self.checker.field(record, "phone")
        bad_lines = self.lines.bad
        if bad_lines and not bad_lines.isdisjoint(range(start, end + 1)):
            bad_lines.difference_update(range(start, end + 1))
            self.reject(start, [Bad("", "not UTF-8 (save the file as CSV UTF-8)")], phone_raw)
            return
        result = self.checker.check(start, record)
        if isinstance(result, list):
            self.reject(start, result, phone_raw)
            return
        if self.default_id is not None:
            result.communities.add(self.default_id)
        earlier = self.chunk.get(result.phone)
        if earlier is not None:
            earlier.merge(result)
            summary.merged_duplicates += 1
            return
        self.chunk[result.phone] = result

    def run(self, reader: Iterator[list[str]]) -> ImportSummary:
        lines = self.lines
        while True:
            start = lines.number + 1
            try:
                record = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                self.summary.rows += 1
                self.reject(start, [Bad("", f"malformed CSV: {exc}")], "")
                self.pending += 1
                continue
            end = lines.number
            if any(v.strip() for v in record):
                self.add(start, end, record)
                self.pending += 1
                if self.pending >= self.chunk_size:
                    self.commit_chunk()
            else:
                self.summary.blank_lines += end - start + 1
                lines.bad.difference_update(range(start, end + 1))
        self.commit_chunk(DONE)
        self.summary.bytes_read += lines.bytes_read
        return self.summary


def recent(session: Session, actor: Actor, *, limit: int = 20) -> list[ContactImport]:
    """The newest imports, ``actor``'s own (an admin's: everyone's)."""
    stmt = select(ContactImport).order_by(ContactImport.id.desc()).limit(limit)
    if not actor.is_admin:
        stmt = stmt.where(ContactImport.user_id == actor.user_id)
    return list(session.scalars(stmt))


def import_contacts(
    session: Session,
    stream: IO[bytes] | IO[str],
    *,
    region: str,
    default_community: str | None = None,
    errors_out: IO[str] | None = None,
    progress: Callable[[int], None] | None = None,
    chunk_size: int = 5000,
    actor: Actor | None = None,
    file_name: str = "",
) -> ImportSummary:
    """Import contacts from a CSV ``stream`` (bytes; a text stream is accepted too).

    ``region`` is the default region for numbers without a country code
    (``RISKCAST_DEFAULT_REGION``). Rejected rows go to ``errors_out`` as CSV
    (``line,column,reason,phone`` with the number masked); ``progress`` is called with the
    bytes read so far after each chunk. With an ``actor``, the import is audited as
    ``contact.import`` of ``file_name``, from its start, with its state and counts (see
    the module docstring). Commits before the first row and after every chunk, and ends
    with nothing left to commit. Raises :class:`ImportFileError` when the file cannot be
    read at all and :class:`~broadcaster.errors.NotFound` for an unknown
    ``default_community``; neither writes anything.
    """
    if chunk_size < 1:
        raise ValueError("chunk_size must be at least 1")
    # Someone working over areas imports into communities of their areas only.
    areas = None if actor is None or actor.is_admin else actor.areas
    default_id: int | None = None
    if default_community is not None:
        default_id = session.scalar(select(Community.id).where(Community.slug == default_community))
        if default_id is None:
            raise NotFound(f"community {default_community!r} does not exist")
        if actor is not None:
            scope.check_communities(session, actor, [default_id])
    raw_lines, header, delimiter, header_bytes = open_csv(stream)
    checker = Checker(session, region, header, areas=areas, placed=default_id is not None)
    lines = Lines(raw_lines, first_number=1)
    status = None
    if actor is not None:
        status = ContactImport(
            file_name=file_name[:255],
            community=default_community,
            user_id=actor.user_id,
            actor=actor.name,
            state=RUNNING,
            counts={},
            through_line=1,
        )
        session.add(status)
        session.flush()
        actor.record(
            session,
            "contact.import",
            "contact_import",
            status.id,
            file=file_name[:255],
            community=default_community,
        )
    # Whatever the caller's transaction holds is committed now: the file is then read with
    # no transaction open (the first chunk's commit would have committed it anyway).
    session.commit()
    run = _Import(
        session,
        checker,
        lines,
        default_id=default_id,
        errors_out=errors_out,
        progress=progress,
        chunk_size=chunk_size,
        header_bytes=header_bytes,
        status=status,
        actor=actor,
    )
    try:
        return run.run(csv.reader(lines, delimiter=delimiter))
    except BaseException as exc:
        run.fail(exc)
        raise
