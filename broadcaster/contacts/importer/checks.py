"""Checking each row of an import file: every field, every problem with its line and column."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import phonenumbers
from sqlalchemy import select
from sqlalchemy.orm import Session

from broadcaster.areas import scope
from broadcaster.communities.service import check_timezone
from broadcaster.contacts.importer.reading import header_columns
from broadcaster.db import utcnow
from broadcaster.errors import InvalidInput
from broadcaster.models import Community
from broadcaster.phones import PhoneError, normalize_with_country
from messages import LanguageError, normalize_language

log = logging.getLogger(__name__)

CHANNELS = ("sms", "whatsapp")
MAX_NAME = 200
MAX_CONSENT_SOURCE = 32
_MAX_CACHED = 10_000
_FUTURE_SLACK = timedelta(days=1)
_REGION = re.compile(r"[A-Za-z]{2}")
# Errors kept in the summary (for an API answer); all of them go to ``errors_out``.
MAX_KEPT_ERRORS = 1000


class Bad(Exception):
    """One problem of one row: the column ("" for the whole row) and the reason."""

    def __init__(self, column: str, reason: str) -> None:
        super().__init__(reason)
        self.column = column
        self.reason = reason


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
class Row:
    line: int
    phone: str
    country: str | None
    name: str | None
    language: str | None
    consent_source: str | None
    consent_at: datetime | None
    communities: set[int]
    channel: str | None = None
    timezone: str | None = None

    def merge(self, later: Row) -> None:
        """A later row for the same number: its non-empty fields win."""
        self.name = later.name or self.name
        self.language = later.language or self.language
        self.consent_source = later.consent_source or self.consent_source
        self.consent_at = later.consent_at or self.consent_at
        self.channel = later.channel or self.channel
        self.timezone = later.timezone or self.timezone
        self.communities |= later.communities


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


class Checker:
    """Turns one CSV record into a Row or a list of (column, reason)."""

    def __init__(
        self,
        session: Session,
        region: str,
        header: list[str],
        *,
        areas: Sequence[str] | None = None,
        placed: bool = True,
    ) -> None:
        """``areas``: the community paths the importing person works over (None: every
        community); a row naming a community outside them is rejected, and so is a row
        that would land in no community when ``placed`` is False (no default community)
        for someone working over areas."""
        self.region = region.upper()
        self.columns = header_columns(header)
        self.width = len(header)
        self.has_channel = "channel" in self.columns
        self.has_timezone = "timezone" in self.columns
        self.now = utcnow()
        self._languages: dict[str, str | LanguageError] = {}
        # Every community, read once here: checking rows then never touches the database, so
        # an import holds no transaction (on SQLite, no write lock) while it reads its file.
        # A community added while the import runs is unknown to it, as it was to the cache
        # this replaces.
        self._slugs: dict[str, int] = {}
        self._outside: set[str] = set()
        for slug, community_id, path in session.execute(
            select(Community.slug, Community.id, Community.path)
        ):
            self._slugs[slug] = community_id
            if not scope.within(path, areas):
                self._outside.add(slug)
        self._unplaced_refused = areas is not None and not placed
        self._regions: dict[str, str | None] = {}
        self._zones: dict[str, bool] = {}

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
        return self._slugs.get(slug)

    def parse_region(self, value: str) -> str | None:
        if value not in self._regions:
            code = value.upper()
            ok = _REGION.fullmatch(value) and code in phonenumbers.SUPPORTED_REGIONS
            self._regions[value] = code if ok else None
        return self._regions[value]

    def _phone(self, record: list[str], region: str) -> tuple[str, str | None]:
        phone_text = self.field(record, "phone")
        if not phone_text:
            raise Bad("phone", "phone number is empty")
        try:
            return normalize_with_country(phone_text, region)
        except PhoneError as exc:
            raise Bad("phone", str(exc)) from None

    def _region(self, record: list[str]) -> str:
        country_text = self.field(record, "country")
        if not country_text:
            return self.region
        found = self.parse_region(country_text)
        if found is None:
            raise Bad("country", f"unknown country code {country_text!r}")
        return found

    def _text(self, record: list[str], name: str, limit: int) -> str | None:
        value = self.field(record, name) or None
        if value is not None and len(value) > limit:
            raise Bad(name, f"longer than {limit} characters")
        return value

    def _language(self, record: list[str]) -> str | None:
        value = self.field(record, "language")
        if not value:
            return None
        try:
            return self.language(value)
        except LanguageError:
            raise Bad("language", f"unknown language {value!r}") from None

    def _communities(self, record: list[str], problems: list[Bad]) -> set[int]:
        ids: set[int] = set()
        for raw_slug in self.field(record, "communities").split(";"):
            slug = raw_slug.strip().lower()
            if not slug:
                continue
            found = self.community(slug)
            if found is None:
                problems.append(Bad("communities", f"unknown community {raw_slug.strip()!r}"))
            elif slug in self._outside:
                problems.append(
                    Bad("communities", f"community {raw_slug.strip()!r} is outside your areas")
                )
            else:
                ids.add(found)
        if not ids and self._unplaced_refused and not problems:
            problems.append(Bad("communities", "name a community in your areas"))
        return ids

    def _channel(self, record: list[str]) -> str | None:
        value = self.field(record, "channel").lower()
        if not value:
            return None
        if value not in CHANNELS:
            raise Bad("channel", f"unknown channel {value!r}; use sms or whatsapp")
        return value

    def _timezone(self, record: list[str]) -> str | None:
        value = self.field(record, "timezone")
        if not value:
            return None
        known = self._zones.get(value)
        if known is None:
            try:
                check_timezone(value)
                known = True
            except InvalidInput:
                known = False
            if len(self._zones) < _MAX_CACHED:
                self._zones[value] = known
        if not known:
            raise Bad("timezone", f"unknown time zone {value!r}; use e.g. Asia/Vientiane")
        return value

    def _consent_at(self, record: list[str]) -> datetime | None:
        value = self.field(record, "consent_at")
        if not value:
            return None
        try:
            return _parse_date(value, self.now)
        except ValueError as exc:
            raise Bad("consent_at", str(exc)) from None

    def check(self, line: int, record: list[str]) -> Row | list[Bad]:
        """The row, or every problem it has (each names its column)."""
        if len(record) != self.width and (
            len(record) < self.width or any(v.strip() for v in record[self.width :])
        ):
            reason = f"wrong column count: {len(record)} fields, the header has {self.width}"
            return [Bad("", reason)]
        if "\x00" in "".join(record):  # one scan in C; the column only when there is one
            for name, i in self.columns.items():
                if i < len(record) and "\x00" in record[i]:
                    # Neither database stores it, and no real field holds one.
                    return [Bad(name, "contains a NUL character")]
        problems: list[Bad] = []

        def attempt(fn: Callable[[], Any]) -> Any:
            try:
                return fn()
            except Bad as bad:
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
        timezone = attempt(lambda: self._timezone(record)) if self.has_timezone else None
        if problems or phone is None:
            return problems
        return Row(
            line=line,
            phone=phone[0],
            country=phone[1],
            name=name,
            language=language,
            consent_source=source,
            consent_at=consent_at,
            communities=communities,
            channel=channel,
            timezone=timezone,
        )
