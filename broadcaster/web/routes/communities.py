"""/api/v1/communities: list and create."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from broadcaster.communities import service as communities
from broadcaster.models import Community
from broadcaster.web.common import ERRORS
from broadcaster.web.deps import Anyone, Db, Official

router = APIRouter(prefix="/api/v1/communities", tags=["communities"], responses=ERRORS)


class CommunityIn(BaseModel):
    slug: str = Field(max_length=64)
    name: str = Field(min_length=1, max_length=200)
    parent: str | None = Field(default=None, max_length=64)
    kind: str = "other"
    country: str | None = Field(default=None, max_length=2)
    language: str | None = Field(default=None, max_length=16)
    timezone: str | None = Field(default=None, max_length=64)


class CommunityOut(BaseModel):
    id: int
    slug: str
    name: str
    kind: str
    parent_id: int | None
    country: str | None
    language: str
    timezone: str


def _out(c: Community) -> CommunityOut:
    return CommunityOut(
        id=c.id,
        slug=c.slug,
        name=c.name,
        kind=c.kind,
        parent_id=c.parent_id,
        country=c.country,
        language=c.language,
        timezone=c.timezone,
    )


@router.get("")
def list_communities(caller: Anyone, session: Db) -> list[CommunityOut]:
    """The communities in your areas."""
    return [_out(c) for c in communities.all_communities(session, caller)]


@router.post("", status_code=201)
def create_community(body: CommunityIn, caller: Official, session: Db) -> CommunityOut:
    communities.check_new(session, caller, body.parent)
    community = communities.add_community(
        session,
        body.slug,
        name=body.name,
        parent=body.parent,
        kind=body.kind,
        country=body.country,
        language=body.language,
        timezone=body.timezone,
    )
    caller.record(session, "community.create", "community", community.id, slug=body.slug)
    return _out(community)
