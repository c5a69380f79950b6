"""CSV import of contacts: streamed, chunked, upserted by number, every bad row reported.

The file
--------
Header ``phone,name,language,communities,country,consent_source,consent_at`` (and
optionally ``channel``): only
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
Rows are read, checked and written ``chunk_size`` at a time; each chunk is one transaction,
committed before the next is read (``session.commit()``: this function owns its
transactions, unlike other data helpers). A crash in the middle of a file keeps the chunks
already committed; importing the same file again is safe (it is an upsert). Memory is
bounded by the chunk, not the file: a 1,000,000-row file imports in the same memory as a
10,000-row one. On PostgreSQL each chunk is loaded with ``COPY`` into a temporary table and
merged with two set-based statements; on SQLite the same statements run over a temporary
table filled with ``executemany``.
"""

from __future__ import annotations

import csv
import logging
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import IO, Any

import phonenumbers
from phonenumbers.phonemetadata import PhoneMetadata
from sqlalchemy import Integer, String, bindparam, column, select, text
from sqlalchemy.orm import Session

from broadcaster.db import utcnow
from broadcaster.errors import NotFound, RiskcastError
from broadcaster.models import Community, ConsentSource, ContactStatus
from broadcaster.models.base import UTCDateTime
from broadcaster.phones import PhoneError, country_of, mask_phone, mask_phones_in_text, mask_raw
from broadcaster.phones import normalize_phone as _normalize_phone
from messages import LanguageError, normalize_language

__all__ = [
    "COLUMNS",
    "ERRORS_HEADER",
    "ImportFileError",
    "ImportSummary",
    "RowError",
    "import_contacts",
]

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
)
CHANNELS = ("sms", "whatsapp")
_ALIASES = {"community": "communities"}
ERRORS_HEADER = ("line", "column", "reason", "phone")

MAX_NAME = 200
MAX_CONSENT_SOURCE = 32
# Errors kept in the summary (for an API answer); all of them go to ``errors_out``.
MAX_KEPT_ERRORS = 1000
_MAX_CACHED = 10_000
_BOMS_UTF16 = (b"\xff\xfe", b"\xfe\xff")
_BOM_UTF8 = b"\xef\xbb\xbf"
_DELIMITERS = (",", ";", "\t")
_FUTURE_SLACK = timedelta(days=1)
_REGION = re.compile(r"[A-Za-z]{2}")


class _Bad(Exception):
    """One problem of one row: the column ("" for the whole row) and the reason."""

    def __init__(self, column: str, reason: str) -> None:
        super().__init__(reason)
        self.column = column
        self.reason = reason


class ImportFileError(RiskcastError):
    """The file as a whole cannot be imported (no header, no phone column, UTF-16...)."""


@dataclass(frozen=True)
class RowError:
    line: int
    column: str  # "" when the problem is the whole row
    reason: str
    phone: str  # masked


@dataclass
class ImportSummary:
    imported: int = 0  # new contacts
    updated: int = 0  # existing active contacts given the row's fields
    rejected: int = 0  # rows with at least one problem
    merged_duplicates: int = 0  # rows whose number came earlier in the same file
    unchanged_opted_out: int = 0  # rows of opted-out or blocked contacts, left alone
    blank_lines: int = 0
    rows: int = 0  # records read, blank lines excluded
    bytes_read: int = 0
    errors: list[RowError] = field(default_factory=list)  # the first MAX_KEPT_ERRORS


@dataclass
class _Row:
    line: int
    phone: str
    country: str | None
    name: str | None
    language: str | None
    consent_source: str | None
    consent_at: datetime | None
    communities: set[int]
    channel: str | None = None

    def merge(self, later: _Row) -> None:
        """A later row for the same number: its non-empty fields win."""
        self.name = later.name or self.name
        self.language = later.language or self.language
        self.consent_source = later.consent_source or self.consent_source
        self.consent_at = later.consent_at or self.consent_at
        self.channel = later.channel or self.channel
        self.communities |= later.communities


class _Lines:
    """Physical lines of a byte stream decoded for ``csv.reader``; remembers the ones that
    were not UTF-8 (decoded with replacement characters so the CSV structure survives)."""

    def __init__(self, raw: Iterator[bytes], first_number: int) -> None:
        self._raw = raw
        self.number = first_number
        self.bytes_read = 0
        self.bad: set[int] = set()

    def __iter__(self) -> _Lines:
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


def _columns(names: list[str]) -> dict[str, int]:
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


def _country_of(e164: str) -> str | None:
    """The number's region: from the country code when only one region has it (fast)."""
    for digits in (1, 2, 3):
        regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(int(e164[1 : 1 + digits]))
        if regions:
            if len(regions) == 1 and regions[0] != phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY:
                return regions[0]
            break
    try:
        return country_of(e164)
    except PhoneError:
        return None


# -- the fast path for phone numbers -------------------------------------------------------
# normalize_phone handles every way a number can be typed; at ~25 µs a row it would cap an
# import near 20,000 rows/s on its own. Most rows are plain ASCII digits, in E.164 or in the
# national format of a country with a simple numbering plan (LA, TH, KH, VN, MM...): for
# those the answer is found with one metadata lookup. Anything else (exit prefixes, shared
# country codes, leading zeros, letters...) returns None and goes the slow, complete way.
# tests/broadcaster/test_importer.py checks that both ways agree.
_FAST_CHARS = re.compile(r"\+?[0-9][0-9 ()./-]*")
_SEPARATORS = str.maketrans("", "", " ()./-")
_SMS_TYPES = frozenset(
    {phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE}
)


def _simple_plans() -> dict[int, str]:
    """Country code -> region for the codes of one region whose national prefix is a plain
    "0" (no carrier codes, no transform) and whose exit prefix starts with "00"."""
    plans: dict[int, str] = {}
    for code, regions in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.items():
        if len(regions) != 1 or regions[0] == phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY:
            continue
        meta = PhoneMetadata.metadata_for_region(regions[0])
        if (
            meta is not None
            and meta.national_prefix_for_parsing == "0"
            and meta.national_prefix_transform_rule is None
            and (meta.international_prefix or "").startswith("00")
        ):
            plans[code] = regions[0]
    return plans


_PLANS = _simple_plans()
_PLAN_OF_REGION = {region: code for code, region in _PLANS.items()}


def _fast_e164(raw: str, region: str) -> tuple[str, str] | None:
    """(E.164, country) of an SMS-capable number typed plainly, or None to go the slow way."""
    text = raw.strip()
    if not _FAST_CHARS.fullmatch(text):
        return None
    digits = text.translate(_SEPARATORS)
    if digits.startswith("+"):
        digits = digits[1:]
        for size in (1, 2, 3):
            code = int(digits[:size])
            if code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
                break
        else:
            return None
        nsn = digits[size:]
        country = _PLANS.get(code)
    else:
        code = _PLAN_OF_REGION.get(region, 0)
        country = region if code else None
        if digits.startswith("00") or digits.startswith(str(code)):
            return None  # an exit prefix, or a country code typed without "+"
        nsn = digits[1:] if digits.startswith("0") else digits
    if country is None or not nsn or nsn[0] == "0" or not 7 <= len(nsn) + len(str(code)) <= 15:
        return None
    number = phonenumbers.PhoneNumber(country_code=code, national_number=int(nsn))
    if phonenumbers.number_type(number) not in _SMS_TYPES:
        return None
    return f"+{code}{nsn}", country


def _parse_date(value: str, now: datetime) -> datetime:
    """``YYYY-MM-DD`` or ISO 8601 (naive means UTC); ValueError with the reason."""
    try:
        if len(value) == 10:
            parsed = datetime.combine(date.fromisoformat(value), time(), tzinfo=UTC)
        else:
            parsed = datetime.fromisoformat(value)
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
    except ValueError:
        raise ValueError(
            f"bad date {value!r}; use YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS][+07:00]"
        ) from None
    if parsed > now + _FUTURE_SLACK:
        raise ValueError(f"date {value!r} is in the future")
    return parsed.astimezone(UTC)


class _Checker:
    """Turns one CSV record into a _Row or a list of (column, reason)."""

    def __init__(self, session: Session, region: str, header: list[str]) -> None:
        self.session = session
        self.region = region.upper()
        self.columns = _columns(header)
        self.width = len(header)
        self.has_channel = "channel" in self.columns
        self.now = utcnow()
        self._languages: dict[str, str | LanguageError] = {}
        self._slugs: dict[str, int | None] = {}
        self._regions: dict[str, str | None] = {}

    def field(self, record: list[str], name: str) -> str:
        i = self.columns.get(name)
        return record[i].strip() if i is not None and i < len(record) else ""

    def language(self, value: str) -> str:
        found = self._languages.get(value)
        if found is None:
            try:
                found = normalize_language(value)
            except LanguageError as exc:
                found = exc
            if len(self._languages) < _MAX_CACHED:
                self._languages[value] = found
        if isinstance(found, LanguageError):
            raise found
        return found

    def community(self, slug: str) -> int | None:
        if slug in self._slugs:
            return self._slugs[slug]
        found = self.session.scalar(select(Community.id).where(Community.slug == slug))
        if len(self._slugs) < _MAX_CACHED:
            self._slugs[slug] = found
        return found

    def parse_region(self, value: str) -> str | None:
        if value not in self._regions:
            code = value.upper()
            ok = _REGION.fullmatch(value) and code in phonenumbers.SUPPORTED_REGIONS
            self._regions[value] = code if ok else None
        return self._regions[value]

    def _phone(self, record: list[str], region: str) -> tuple[str, str | None]:
        phone_text = self.field(record, "phone")
        if not phone_text:
            raise _Bad("phone", "phone number is empty")
        fast = _fast_e164(phone_text, region)
        if fast is not None:
            return fast
        try:
            e164 = _normalize_phone(phone_text, region)
        except PhoneError as exc:
            raise _Bad("phone", str(exc)) from None
        return e164, _country_of(e164)

    def _region(self, record: list[str]) -> str:
        country_text = self.field(record, "country")
        if not country_text:
            return self.region
        found = self.parse_region(country_text)
        if found is None:
            raise _Bad("country", f"unknown country code {country_text!r}")
        return found

    def _text(self, record: list[str], name: str, limit: int) -> str | None:
        value = self.field(record, name) or None
        if value is not None and len(value) > limit:
            raise _Bad(name, f"longer than {limit} characters")
        return value

    def _language(self, record: list[str]) -> str | None:
        value = self.field(record, "language")
        if not value:
            return None
        try:
            return self.language(value)
        except LanguageError:
            raise _Bad("language", f"unknown language {value!r}") from None

    def _communities(self, record: list[str], problems: list[_Bad]) -> set[int]:
        ids: set[int] = set()
        for raw_slug in self.field(record, "communities").split(";"):
            slug = raw_slug.strip().lower()
            if not slug:
                continue
            found = self.community(slug)
            if found is None:
                problems.append(_Bad("communities", f"unknown community {raw_slug.strip()!r}"))
            else:
                ids.add(found)
        return ids

    def _channel(self, record: list[str]) -> str | None:
        value = self.field(record, "channel").lower()
        if not value:
            return None
        if value not in CHANNELS:
            raise _Bad("channel", f"unknown channel {value!r}; use sms or whatsapp")
        return value

    def _consent_at(self, record: list[str]) -> datetime | None:
        value = self.field(record, "consent_at")
        if not value:
            return None
        try:
            return _parse_date(value, self.now)
        except ValueError as exc:
            raise _Bad("consent_at", str(exc)) from None

    def check(self, line: int, record: list[str]) -> _Row | list[_Bad]:
        """The row, or every problem it has (each names its column)."""
        if len(record) != self.width and (
            len(record) < self.width or any(v.strip() for v in record[self.width :])
        ):
            reason = f"wrong column count: {len(record)} fields, the header has {self.width}"
            return [_Bad("", reason)]
        if "\x00" in "".join(record):  # one scan in C; the column only when there is one
            for name, i in self.columns.items():
                if i < len(record) and "\x00" in record[i]:
                    # Neither database stores it, and no real field holds one.
                    return [_Bad(name, "contains a NUL character")]
        problems: list[_Bad] = []

        def attempt(fn: Callable[[], Any]) -> Any:
            try:
                return fn()
            except _Bad as bad:
                problems.append(bad)
                return None

        region: str | None = attempt(lambda: self._region(record))
        phone: tuple[str, str | None] | None = None
        if region is not None:  # with an unknown country, a local number means nothing
            phone = attempt(lambda: self._phone(record, region))
        name = attempt(lambda: self._text(record, "name", MAX_NAME))
        language = attempt(lambda: self._language(record))
        communities = self._communities(record, problems)
        source = attempt(lambda: self._text(record, "consent_source", MAX_CONSENT_SOURCE))
        consent_at = attempt(lambda: self._consent_at(record))
        channel = attempt(lambda: self._channel(record)) if self.has_channel else None
        if problems or phone is None:
            return problems
        return _Row(
            line=line,
            phone=phone[0],
            country=phone[1],
            name=name,
            language=language,
            consent_source=source,
            consent_at=consent_at,
            communities=communities,
            channel=channel,
        )


# -- writing a chunk ----------------------------------------------------------------------
# Every statement below reads the staging tables from start to end and reaches the contact
# and membership tables only through their unique indexes (ON CONFLICT arbiters): no join
# for the planner to get wrong while a large import makes the table statistics stale, and
# no chunk that costs more as the contact table grows.
_STAGE_CONTACT = "riskcast_import_contact"
_STAGE_MEMBERSHIP = "riskcast_import_membership"

# One statement inserts new numbers and updates active contacts (an opted-out or blocked
# one fails the DO UPDATE's WHERE, so it is left exactly as it is and not returned).
# Consent fields are replaced only when the file gives them, hence the look-up in the
# staging table (EXCLUDED already carries the defaults of a new row). updated_at tells
# what happened to each returned row: this run's timestamp `ts` for a row inserted (its
# created_at is `ts` too) or updated for the first time in this run, and `ts2` (one
# microsecond later) for a number an earlier chunk of the same file already wrote: a
# duplicate merged.
_UPSERT = f"""
INSERT INTO contact (phone, name, language, country, channel, status, consent_source,
                     consent_at, created_at, updated_at)
SELECT s.phone, s.name, s.language, s.country, COALESCE(s.channel, 'sms'), :active,
       COALESCE(s.consent_source, :source), COALESCE(s.consent_at, :ts), :ts, :ts
FROM {_STAGE_CONTACT} AS s
WHERE true
ON CONFLICT (phone) DO UPDATE SET
    name = COALESCE(excluded.name, contact.name),
    language = COALESCE(excluded.language, contact.language),
    consent_source = COALESCE(
        (SELECT g.consent_source FROM {_STAGE_CONTACT} AS g WHERE g.phone = excluded.phone),
        contact.consent_source),
    consent_at = COALESCE(
        (SELECT g.consent_at FROM {_STAGE_CONTACT} AS g WHERE g.phone = excluded.phone),
        contact.consent_at),
    channel = COALESCE(
        (SELECT g.channel FROM {_STAGE_CONTACT} AS g WHERE g.phone = excluded.phone),
        contact.channel),
    updated_at = CASE WHEN contact.updated_at IN (:ts, :ts2) THEN :ts2 ELSE :ts END
WHERE contact.status = :active
RETURNING contact.id, contact.phone, contact.created_at, contact.updated_at
"""

_MEMBERSHIPS = f"""
INSERT INTO membership (contact_id, community_id, created_at)
SELECT m.contact_id, m.community_id, :ts FROM {_STAGE_MEMBERSHIP} AS m
WHERE true
ON CONFLICT DO NOTHING
"""


def _statement(sql: str) -> Any:
    stamp = UTCDateTime()
    return (
        text(sql)
        .bindparams(bindparam("ts", type_=stamp), bindparam("ts2", type_=stamp))
        .columns(
            column("id", Integer),
            column("phone", String),
            column("created_at", stamp),
            column("updated_at", stamp),
        )
    )


_TYPED_UPSERT = _statement(_UPSERT)
_TYPED_MEMBERSHIPS = text(_MEMBERSHIPS).bindparams(bindparam("ts", type_=UTCDateTime()))


def _stage_contacts_postgresql(session: Session, rows: Iterable[_Row]) -> None:
    raw = session.connection().connection.driver_connection
    with raw.cursor() as cur:  # type: ignore[union-attr]
        # ON COMMIT DROP: gone with the chunk's transaction. IF NOT EXISTS + TRUNCATE: when
        # the caller's "commit" is only a savepoint (tests), the table is still there.
        cur.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {_STAGE_CONTACT} (phone text PRIMARY KEY,"
            " name text, language text, country text, consent_source text,"
            " consent_at timestamptz, channel text) ON COMMIT DROP"
        )
        cur.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {_STAGE_MEMBERSHIP} (contact_id integer,"
            " community_id integer) ON COMMIT DROP"
        )
        cur.execute(f"TRUNCATE {_STAGE_CONTACT}, {_STAGE_MEMBERSHIP}")
        with cur.copy(
            f"COPY {_STAGE_CONTACT} (phone, name, language, country, consent_source,"
            " consent_at, channel) FROM STDIN"
        ) as copy:
            for r in rows:
                copy.write_row(
                    (
                        r.phone,
                        r.name,
                        r.language,
                        r.country,
                        r.consent_source,
                        r.consent_at,
                        r.channel,
                    )
                )


def _stage_members_postgresql(session: Session, members: list[tuple[int, int]]) -> None:
    raw = session.connection().connection.driver_connection
    with (
        raw.cursor() as cur,  # type: ignore[union-attr]
        cur.copy(f"COPY {_STAGE_MEMBERSHIP} (contact_id, community_id) FROM STDIN") as copy,
    ):
        for member in members:
            copy.write_row(member)


def _stage_contacts_sqlite(session: Session, rows: Iterable[_Row]) -> None:
    session.execute(
        text(
            f"CREATE TEMP TABLE IF NOT EXISTS {_STAGE_CONTACT} (phone TEXT PRIMARY KEY,"
            " name TEXT, language TEXT, country TEXT, consent_source TEXT, consent_at DATETIME,"
            " channel TEXT)"
        )
    )
    session.execute(
        text(
            f"CREATE TEMP TABLE IF NOT EXISTS {_STAGE_MEMBERSHIP} (contact_id INTEGER,"
            " community_id INTEGER)"
        )
    )
    session.execute(text(f"DELETE FROM {_STAGE_CONTACT}"))
    session.execute(text(f"DELETE FROM {_STAGE_MEMBERSHIP}"))
    session.execute(
        text(
            f"INSERT INTO {_STAGE_CONTACT} (phone, name, language, country, consent_source,"
            " consent_at, channel) VALUES (:phone, :name, :language, :country,"
            " :consent_source, :consent_at, :channel)"
        ).bindparams(bindparam("consent_at", type_=UTCDateTime())),
        [
            {
                "phone": r.phone,
                "name": r.name,
                "language": r.language,
                "country": r.country,
                "consent_source": r.consent_source,
                "consent_at": r.consent_at,
                "channel": r.channel,
            }
            for r in rows
        ],
    )


def _stage_members_sqlite(session: Session, members: list[tuple[int, int]]) -> None:
    session.execute(
        text(
            f"INSERT INTO {_STAGE_MEMBERSHIP} (contact_id, community_id)"
            " VALUES (:contact_id, :community_id)"
        ),
        [{"contact_id": c, "community_id": m} for c, m in members],
    )


def _write(session: Session, rows: dict[str, _Row], ts: datetime, summary: ImportSummary) -> None:
    """Upsert one chunk (numbers unique within it) and add its memberships."""
    postgresql = session.get_bind().dialect.name == "postgresql"
    if postgresql:
        _stage_contacts_postgresql(session, rows.values())
    else:
        _stage_contacts_sqlite(session, rows.values())
    ts2 = ts + timedelta(microseconds=1)
    params = {
        "ts": ts,
        "ts2": ts2,
        "active": ContactStatus.ACTIVE.value,
        "source": ConsentSource.IMPORT.value,
    }
    members: list[tuple[int, int]] = []
    returned = 0
    for contact_id, phone, created_at, updated_at in session.execute(_TYPED_UPSERT, params):
        returned += 1
        if updated_at == ts2:
            summary.merged_duplicates += 1
        elif created_at == ts:
            summary.imported += 1
        else:
            summary.updated += 1
        members.extend((contact_id, c) for c in rows[phone].communities)
    summary.unchanged_opted_out += len(rows) - returned
    if members:
        if postgresql:
            _stage_members_postgresql(session, members)
        else:
            _stage_members_sqlite(session, members)
        session.execute(_TYPED_MEMBERSHIPS, params)


# -- the import ---------------------------------------------------------------------------
def _masked(value: str) -> str:
    try:
        return mask_phone(_normalize_phone(value, "LA", require_mobile=False))
    except PhoneError:
        return mask_raw(value)


def _open(stream: IO[bytes] | IO[str]) -> tuple[Iterator[bytes], list[str], str, int]:
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
    header = next(csv.reader([header_text], delimiter=delimiter))
    return raw_lines, header, delimiter, size


class _Import:
    """One run of :func:`import_contacts`."""

    def __init__(
        self,
        session: Session,
        checker: _Checker,
        lines: _Lines,
        *,
        default_id: int | None,
        errors_out: IO[str] | None,
        progress: Callable[[int], None] | None,
        chunk_size: int,
        header_bytes: int,
    ) -> None:
        self.session = session
        self.checker = checker
        self.lines = lines
        self.default_id = default_id
        self.writer = csv.writer(errors_out) if errors_out is not None else None
        if self.writer is not None:
            self.writer.writerow(ERRORS_HEADER)
        self.progress = progress
        self.chunk_size = chunk_size
        self.summary = ImportSummary(bytes_read=header_bytes)
        self.ts = utcnow()
        self.chunk: dict[str, _Row] = {}

    def reject(self, line: int, problems: list[_Bad], phone: str) -> None:
        self.summary.rejected += 1
        masked = _masked(phone) if phone else ""
        for bad in problems:
            error = RowError(line, bad.column, mask_phones_in_text(bad.reason), masked)
            if len(self.summary.errors) < MAX_KEPT_ERRORS:
                self.summary.errors.append(error)
            if self.writer is not None:
                self.writer.writerow((error.line, error.column, error.reason, error.phone))

    def flush(self) -> None:
        if self.chunk:
            _write(self.session, self.chunk, self.ts, self.summary)
            self.session.commit()
            self.chunk.clear()
        if self.progress is not None:
            self.progress(self.summary.bytes_read + self.lines.bytes_read)
        log.info(
            "contact import: %d imported, %d updated, %d rejected so far",
            self.summary.imported,
            self.summary.updated,
            self.summary.rejected,
        )

    def add(self, start: int, end: int, record: list[str]) -> None:
        """Check one record (lines ``start``..``end``) and put it in the chunk."""
        summary = self.summary
        summary.rows += 1
        phone_raw = self.checker.field(record, "phone")
        bad_lines = self.lines.bad
        if bad_lines and not bad_lines.isdisjoint(range(start, end + 1)):
            bad_lines.difference_update(range(start, end + 1))
            self.reject(start, [_Bad("", "not UTF-8 (save the file as CSV UTF-8)")], phone_raw)
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
        if len(self.chunk) >= self.chunk_size:
            self.flush()

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
                self.reject(start, [_Bad("", f"malformed CSV: {exc}")], "")
                continue
            end = lines.number
            if any(v.strip() for v in record):
                self.add(start, end, record)
            else:
                self.summary.blank_lines += end - start + 1
                lines.bad.difference_update(range(start, end + 1))
        self.flush()
        self.summary.bytes_read += lines.bytes_read
        return self.summary


def import_contacts(
    session: Session,
    stream: IO[bytes] | IO[str],
    *,
    region: str,
    default_community: str | None = None,
    errors_out: IO[str] | None = None,
    progress: Callable[[int], None] | None = None,
    chunk_size: int = 5000,
) -> ImportSummary:
    """Import contacts from a CSV ``stream`` (bytes; a text stream is accepted too).

    ``region`` is the default region for numbers without a country code
    (``RISKCAST_DEFAULT_REGION``). Rejected rows go to ``errors_out`` as CSV
    (``line,column,reason,phone`` with the number masked); ``progress`` is called with the
    bytes read so far after each chunk. Commits after every chunk (see the module
    docstring). Raises :class:`ImportFileError` when the file cannot be read at all and
    :class:`~broadcaster.errors.NotFound` for an unknown ``default_community``; neither
    writes anything.
    """
    if chunk_size < 1:
        raise ValueError("chunk_size must be at least 1")
    default_id: int | None = None
    if default_community is not None:
        default_id = session.scalar(select(Community.id).where(Community.slug == default_community))
        if default_id is None:
            raise NotFound(f"community {default_community!r} does not exist")
    raw_lines, header, delimiter, header_bytes = _open(stream)
    checker = _Checker(session, region, header)
    lines = _Lines(raw_lines, first_number=1)
    run = _Import(
        session,
        checker,
        lines,
        default_id=default_id,
        errors_out=errors_out,
        progress=progress,
        chunk_size=chunk_size,
        header_bytes=header_bytes,
    )
    return run.run(csv.reader(lines, delimiter=delimiter))
