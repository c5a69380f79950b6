"""/api/v1/contacts: search by whole number or name, and add one contact.

Numbers are shown masked to everyone but admins. A search takes a whole number in any
format or part of a name, never part of a number: digit by digit, searches for parts would
reveal a whole number (see :func:`broadcaster.contacts.service.search`).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, File, Query, UploadFile
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field
from starlette.background import BackgroundTask

from broadcaster.contacts import importer
from broadcaster.contacts import service as contacts
from broadcaster.db import utcnow
from broadcaster.errors import InvalidInput, NotFound
from broadcaster.models import Contact
from broadcaster.web.common import ERRORS, phone_for
from broadcaster.web.deps import Actor, Anyone, Db, Official, Rt

router = APIRouter(prefix="/api/v1/contacts", tags=["contacts"], responses=ERRORS)
# The CSV upload, under its own body limit (RISKCAST_MAX_IMPORT_BYTES, set where the app
# includes it); the multipart parser spools the file to disk past 1 MB.
import_router = APIRouter(prefix="/api/v1/contacts", tags=["contacts"], responses=ERRORS)


class ContactOut(BaseModel):
    id: int
    phone: str
    name: str | None
    language: str | None
    country: str | None
    channel: str
    timezone: str | None = Field(description="The person's own time zone, if set")
    status: str


class ContactIn(BaseModel):
    phone: str = Field(min_length=1, max_length=40)
    name: str | None = Field(default=None, max_length=200)
    language: str | None = Field(default=None, max_length=16)
    communities: list[str] = Field(default_factory=list, max_length=100)
    channel: Literal["sms", "whatsapp"] | None = None
    timezone: str | None = Field(
        default=None,
        max_length=64,
        description="The person's own IANA time zone (e.g. Asia/Bangkok): quiet hours and "
        "local-time sends go by it, else by their first community's",
    )


def _out(caller: Actor, c: Contact) -> ContactOut:
    return ContactOut(
        id=c.id,
        phone=phone_for(caller, c.phone) or "",
        name=c.name,
        language=c.language,
        country=c.country,
        channel=c.channel,
        timezone=c.timezone,
        status=c.status,
    )


@router.get("")
def search_contacts(
    caller: Anyone,
    session: Db,
    rt: Rt,
    q: str = Query(
        min_length=1, max_length=100, description="a whole number (any format) or a name"
    ),
    limit: int = Query(default=50, ge=1, le=200),
) -> list[ContactOut]:
    """Contacts by whole number or by name (never by part of a number); each search is
    audited, at most 30 a minute per person."""
    rows = contacts.search(
        session, caller, q, rt.settings.default_region, limit=limit, now=utcnow()
    )
    return [_out(caller, c) for c in rows]


@router.post("", status_code=201)
def add_contact(body: ContactIn, caller: Official, session: Db, rt: Rt) -> ContactOut:
    """Add a contact to communities in your areas (a person working over areas names at
    least one), or update the one with that number."""
    contacts.check_target(session, caller, body.communities)
    contact, created = contacts.add_contact(
        session,
        body.phone,
        region=rt.settings.default_region,
        name=body.name,
        language=body.language,
        communities=body.communities,
        channel=body.channel,
        timezone=body.timezone,
    )
    caller.record(session, "contact.add", "contact", contact.id, created=created)
    return _out(caller, contact)


class ImportRowError(BaseModel):
    line: int
    column: str
    reason: str
    phone: str  # masked


class ImportOut(BaseModel):
    imported: int
    updated: int
    rejected: int
    merged_duplicates: int
    unchanged_opted_out: int
    blank_lines: int
    rows: int
    errors: list[ImportRowError] = Field(
        description=f"The first {importer.MAX_KEPT_ERRORS} rejected rows; ask for "
        "errors=csv to get every one."
    )
    errors_truncated: bool


IMPORT_DOC = """Import contacts from a CSV file (multipart field ``file``), as
``riskcast contacts import`` does: header ``phone,name,language,communities,country,
consent_source,consent_at`` (only phone required; communities separated by ``;``), UTF-8
with or without BOM, comma or semicolon. Upserts by number; opted-out contacts are never
re-subscribed; good rows are kept when others are rejected.

``errors=json`` (default) answers the counts and the first rejected rows; ``errors=csv``
answers every rejected row as CSV (``line,column,reason,phone``, numbers masked), with the
counts in ``X-Riskcast-*`` headers."""


@import_router.post(
    "/import",
    description=IMPORT_DOC,
    response_model=ImportOut,
    responses={
        **ERRORS,
        200: {"content": {"text/csv": {}}, "description": "The counts (or the rejected rows)."},
        413: {**ERRORS[413], "description": "The file is over RISKCAST_MAX_IMPORT_BYTES."},
    },
)
def import_contacts(
    caller: Official,
    session: Db,
    rt: Rt,
    file: Annotated[UploadFile, File(description="The CSV file.")],
    community: Annotated[
        str | None,
        Query(max_length=64, description="Add every imported contact to this community."),
    ] = None,
    errors: Annotated[Literal["json", "csv"], Query()] = "json",
) -> ImportOut | FileResponse:
    report = tempfile.NamedTemporaryFile(  # noqa: SIM115 - the response deletes it
        "w+", encoding="utf-8", newline="", suffix=".errors.csv", delete=False
    )
    path = Path(report.name)
    handed_over = False
    try:
        with report:
            summary = importer.import_contacts(
                session,
                file.file,
                region=rt.settings.default_region,
                default_community=community,
                errors_out=report if errors == "csv" else None,
                actor=caller,  # audits the import, from its start (it commits per chunk)
                file_name=file.filename or "",
            )
        counts = {
            "imported": summary.imported,
            "updated": summary.updated,
            "rejected": summary.rejected,
            "merged_duplicates": summary.merged_duplicates,
            "unchanged_opted_out": summary.unchanged_opted_out,
            "blank_lines": summary.blank_lines,
            "rows": summary.rows,
        }
        if errors == "csv":
            handed_over = True
            return FileResponse(
                path,
                media_type="text/csv",
                filename="rejected.csv",
                headers={
                    f"X-Riskcast-{k.replace('_', '-').title()}": str(v) for k, v in counts.items()
                },
                background=BackgroundTask(path.unlink, missing_ok=True),
            )
        return ImportOut(
            **counts,
            errors=[
                ImportRowError(line=e.line, column=e.column, reason=e.reason, phone=e.phone)
                for e in summary.errors
            ],
            errors_truncated=summary.rejected > len(summary.errors),
        )
    except importer.ImportFileError as exc:
        raise InvalidInput(str(exc), field="file") from None
    except NotFound as exc:
        raise InvalidInput(str(exc), field="community") from None
    finally:
        if not handed_over:
            path.unlink(missing_ok=True)
