"""/api/v1/templates: list, one template, its preview (every language rendered), and a new
version written as a template file is (officials; the same checks as the YAML loader)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from broadcaster.campaigns import preview
from broadcaster.errors import InvalidInput
from broadcaster.templates import service as templates
from broadcaster.web.common import ERRORS
from broadcaster.web.deps import Anyone, Db, Official
from messages import TemplateError, parse_template

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


class TemplateIn(BaseModel):
    """A template as a YAML file holds it (see ``messages/catalog``)."""

    key: str = Field(max_length=64)
    name: str = Field(max_length=200)
    default_language: str = Field(max_length=16)
    variables: dict[str, str] = Field(default_factory=dict, max_length=50)
    variants: dict[str, str] = Field(max_length=20)
    source: str | None = Field(default=None, max_length=500)
    review: bool = True
    budget: int = Field(default=3, ge=1, le=10)


class SavedOut(BaseModel):
    key: str
    version: int
    created: bool
    changed: bool


@router.post("", status_code=200)
def save_template(body: TemplateIn, caller: Official, session: Db) -> SavedOut:
    """Save a template: a new version when anything changed, none otherwise."""
    try:
        spec = parse_template(body.model_dump(exclude_none=True), origin=body.key)
    except TemplateError as exc:
        raise InvalidInput(str(exc), field="template") from None
    result = templates.save_as(session, caller, spec, door="api")
    return SavedOut(
        key=spec.key, version=result.version.version, created=result.created, changed=result.changed
    )


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
