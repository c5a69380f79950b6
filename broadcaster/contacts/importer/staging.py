"""Writing a chunk of checked rows: staged in a temporary table, merged in two statements."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Integer, String, bindparam, column, text
from sqlalchemy.orm import Session

from broadcaster.contacts.importer.checks import ImportSummary, Row
from broadcaster.models import ConsentSource, ContactStatus
from broadcaster.orm import UTCDateTime

log = logging.getLogger(__name__)

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
INSERT INTO contact (phone, name, language, country, channel, timezone, status,
                     consent_source, consent_at, created_at, updated_at)
SELECT s.phone, s.name, s.language, s.country, COALESCE(s.channel, 'sms'), s.timezone, :active,
       COALESCE(s.consent_source, :source), COALESCE(s.consent_at, :ts), :ts, :ts
FROM {_STAGE_CONTACT} AS s
WHERE true
ON CONFLICT (phone) DO UPDATE SET
    name = COALESCE(excluded.name, contact.name),
    language = COALESCE(excluded.language, contact.language),
    timezone = COALESCE(excluded.timezone, contact.timezone),
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


def _stage_contacts_postgresql(session: Session, rows: Iterable[Row]) -> None:
    raw = session.connection().connection.driver_connection
    with raw.cursor() as cur:  # type: ignore[union-attr]
        # ON COMMIT DROP: gone with the chunk's transaction. IF NOT EXISTS + TRUNCATE: when
        # the caller's "commit" is only a savepoint (tests), the table is still there.
        cur.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {_STAGE_CONTACT} (phone text PRIMARY KEY,"
            " name text, language text, country text, consent_source text,"
            " consent_at timestamptz, channel text, timezone text) ON COMMIT DROP"
        )
        cur.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {_STAGE_MEMBERSHIP} (contact_id integer,"
            " community_id integer) ON COMMIT DROP"
        )
        cur.execute(f"TRUNCATE {_STAGE_CONTACT}, {_STAGE_MEMBERSHIP}")
        with cur.copy(
            f"COPY {_STAGE_CONTACT} (phone, name, language, country, consent_source,"
            " consent_at, channel, timezone) FROM STDIN"
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
                        r.timezone,
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


def _stage_contacts_sqlite(session: Session, rows: Iterable[Row]) -> None:
    session.execute(
        text(
            f"CREATE TEMP TABLE IF NOT EXISTS {_STAGE_CONTACT} (phone TEXT PRIMARY KEY,"
            " name TEXT, language TEXT, country TEXT, consent_source TEXT, consent_at DATETIME,"
            " channel TEXT, timezone TEXT)"
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
            " consent_at, channel, timezone) VALUES (:phone, :name, :language, :country,"
            " :consent_source, :consent_at, :channel, :timezone)"
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
                "timezone": r.timezone,
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


def write_chunk(
    session: Session, rows: dict[str, Row], ts: datetime, summary: ImportSummary
) -> None:
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
