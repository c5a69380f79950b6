"""CAP 1.2 alerts: ``POST /api/v1/cap`` takes an official's alert in (a draft campaign, or a
cancel), ``/api/v1/cap/mappings`` is the CAP area -> community table, and the public
``/cap/feed.atom`` and ``/cap/{id}.xml`` publish sent campaigns for other alerting systems
(message texts and community names only, never a number)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from pydantic import BaseModel, Field

from broadcaster.cap import service as cap
from broadcaster.web.common import ERRORS, Id
from broadcaster.web.deps import Anyone, Db, Official, Rt
from messages.cap import MAX_BYTES, MEDIA_TYPE

router = APIRouter(prefix="/api/v1/cap", tags=["cap"], responses=ERRORS)
public_router = APIRouter(prefix="/cap", tags=["cap"])

XML_TYPES = (MEDIA_TYPE, "application/xml", "text/xml")
ATOM = "application/atom+xml"


async def cap_document(request: Request) -> bytes:
    """The request body, if it is an XML document (its size is bounded by the route:
    ``max_body_size``, so a larger one is refused unread, or cut off at the limit)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in XML_TYPES:
        raise HTTPException(415, f"send the alert as {' or '.join(XML_TYPES)}")
    return await request.body()


class CapImportOut(BaseModel):
    identifier: str
    sender: str
    msg_type: str
    campaign_id: int | None
    template: str | None
    priority: str | None
    valid_until: str | None
    communities: list[str]
    languages: list[str]
    referenced: list[int]
    cancelled: list[int]
    warnings: list[str]


XML_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "One CAP 1.2 <alert> (UTF-8).",
        "content": {
            "application/xml": {"schema": {"type": "string"}},
            MEDIA_TYPE: {"schema": {"type": "string"}},
        },
    }
}


@router.post(
    "",
    status_code=201,
    openapi_extra=XML_BODY,
    max_body_size=MAX_BYTES,
    responses={
        413: {**ERRORS[413], "description": f"The document is over {MAX_BYTES:,} bytes."},
        415: {"description": "Not an XML body."},
    },
)
def import_cap(
    caller: Official, session: Db, document: bytes = Depends(cap_document)
) -> CapImportOut:
    """Take in a CAP 1.2 alert. Alert and Update become a draft campaign (urgent ones wait
    for a second official's approval); Cancel cancels the campaigns of the alerts it
    references. Nothing is sent until an official launches the draft."""
    result = cap.import_alert(session, document, caller=caller)
    kind, subject, detail = result.audit_subject()
    caller.record(session, "cap.import", kind, subject, **detail)
    return CapImportOut.model_validate(result.to_dict())


class MappingIn(BaseModel):
    kind: Literal["geocode", "name"]
    value: str = Field(min_length=1, max_length=255)
    community: str = Field(min_length=1, max_length=64)


class MappingOut(BaseModel):
    id: int
    kind: str
    value: str
    community: str


@router.get("/mappings")
def list_mappings(_caller: Anyone, session: Db) -> list[MappingOut]:
    return [
        MappingOut(id=m.id, kind=m.kind, value=m.value, community=slug)
        for m, slug in cap.list_mappings(session)
    ]


@router.post("/mappings", status_code=201)
def add_mapping(body: MappingIn, caller: Official, session: Db) -> MappingOut:
    """Map CAP areas with this geocode (``VALUE`` or ``valueName=VALUE``) or this areaDesc
    to a community."""
    mapping, created = cap.map_area(
        session, caller, kind=body.kind, value=body.value, community_slug=body.community
    )
    if created:
        caller.record(
            session,
            "cap.map",
            "cap_area_mapping",
            mapping.id,
            kind=body.kind,
            value=mapping.value,
            community=body.community,
        )
    return MappingOut(
        id=mapping.id, kind=mapping.kind, value=mapping.value, community=body.community
    )


@public_router.get(
    "/feed.atom",
    response_class=Response,
    responses={200: {"content": {ATOM: {}}, "description": "An Atom feed of CAP alerts."}},
)
def cap_feed(session: Db, rt: Rt) -> Response:
    """Every sent campaign (the newest 100) as an Atom feed of CAP 1.2 alerts. Public."""
    return Response(cap.feed(session, public_url=rt.settings.public_url), media_type=ATOM)


@public_router.get(
    "/{campaign_id}.xml",
    response_class=Response,
    responses={200: {"content": {MEDIA_TYPE: {}}, "description": "A CAP 1.2 alert."}},
)
def cap_alert(campaign_id: Id, session: Db, rt: Rt) -> Response:
    """A sent campaign as a CAP 1.2 alert, one <info> per language. Public; 404 for a
    campaign that was not sent."""
    xml = cap.campaign_xml(session, campaign_id, public_url=rt.settings.public_url)
    return Response(xml, media_type=MEDIA_TYPE)
