"""/api/v1/templates: list, one template, and its preview (every language rendered)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from broadcaster.campaigns import preview
from broadcaster.templates import service as templates
from broadcaster.web.common import ERRORS
from broadcaster.web.deps import Anyone, Db

router = APIRouter(prefix="/api/v1/templates", tags=["templates"], responses=ERRORS)


class TemplateSummary(BaseModel):
    key: str
    name: str
    version: int
    languages: list[str]
    review: bool


class TemplateOut(BaseModel):
    key: str
    name: str
    version: int
    default_language: str
    variables: dict[str, Any]
    bodies: dict[str, str]
    source: str | None
    review: bool


@router.get("")
def list_templates(_caller: Anyone, session: Db) -> list[TemplateSummary]:
    return [TemplateSummary.model_validate(t) for t in templates.list_templates(session)]


@router.get("/{key}")
def get_template(
    key: str,
    _caller: Anyone,
    session: Db,
    version: int | None = Query(default=None, ge=1, le=1_000_000),
) -> TemplateOut:
    row = templates.get_version(session, key, version)
    return TemplateOut(
        key=key,
        name=row.template.name,
        version=row.version,
        default_language=row.default_language,
        variables=dict(row.variables),
        bodies=row.bodies(),
        source=row.source,
        review=row.review,
    )


@router.get("/{key}/preview")
def preview_template(
    key: str,
    _caller: Anyone,
    session: Db,
    version: int | None = Query(default=None, ge=1, le=1_000_000),
    channel: str = Query(default="sms", pattern="^(sms|whatsapp)$"),
) -> dict[str, Any]:
    """Every language as it will be sent: text, encoding, segments, and wording warnings."""
    result = preview.preview_template(session, key, version=version, channel=channel)
    return result.to_dict()
