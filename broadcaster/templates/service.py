"""Templates in the store: save a spec as a new immutable version, list, look up."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from broadcaster.audit.service import Actor
from broadcaster.errors import InvalidInput, NotFound
from broadcaster.models import Template, TemplateVariant, TemplateVersion
from messages import TemplateSpec


@dataclass(frozen=True)
class SaveResult:
    version: TemplateVersion
    created: bool  # a new template
    changed: bool  # a new version was written


def _same(version: TemplateVersion, spec: TemplateSpec) -> bool:
    return (
        version.bodies() == dict(spec.variants)
        and version.default_language == spec.default_language
        and dict(version.variables) == dict(spec.variables)
        and version.source == spec.source
        and version.review == spec.review
    )


def save_template(session: Session, spec: TemplateSpec) -> SaveResult:
    """Store ``spec``; an unchanged spec writes nothing, a changed one a new version."""
    template = session.scalar(
        select(Template)
        .where(Template.key == spec.key)
        .options(selectinload(Template.versions).selectinload(TemplateVersion.variants))
    )
    created = template is None
    if template is None:
        template = Template(key=spec.key, name=spec.name, current_version=0)
        session.add(template)
        session.flush()
    elif template.versions and _same(template.versions[-1], spec):
        return SaveResult(template.versions[-1], created=False, changed=False)
    template.name = spec.name
    template.current_version += 1
    version = TemplateVersion(
        template_id=template.id,
        version=template.current_version,
        default_language=spec.default_language,
        variables=dict(spec.variables),
        source=spec.source,
        review=spec.review,
    )
    session.add(version)
    session.flush()
    for language, body in sorted(spec.variants.items()):
        session.add(TemplateVariant(version_id=version.id, language=language, body=body))
    session.flush()
    session.refresh(version, ["variants"])
    return SaveResult(version, created=created, changed=True)


def save_as(session: Session, caller: Actor, spec: TemplateSpec, *, door: str) -> SaveResult:
    """:func:`save_template` by ``caller``, through ``door`` (api, dashboard, cli): a new
    version is written to the audit log (``template.save``) in the same transaction."""
    result = save_template(session, spec)
    if result.changed:
        caller.record(
            session,
            "template.save",
            "template",
            spec.key,
            version=result.version.version,
            languages=sorted(spec.variants),
            source=door,
        )
    return result


def current_version(session: Session, key: str) -> TemplateVersion:
    """The newest version of the template ``key``."""
    version = session.scalar(
        select(TemplateVersion)
        .join(Template, Template.id == TemplateVersion.template_id)
        .where(Template.key == key, TemplateVersion.version == Template.current_version)
        .options(selectinload(TemplateVersion.variants))
    )
    if version is None:
        raise NotFound(f"template {key!r} does not exist (riskcast templates list shows them)")
    return version


def get_version(session: Session, key: str, version: int | None = None) -> TemplateVersion:
    """Version ``version`` of the template ``key`` (the newest when None)."""
    if version is None:
        return current_version(session, key)
    row = session.scalar(
        select(TemplateVersion)
        .join(Template, Template.id == TemplateVersion.template_id)
        .where(Template.key == key, TemplateVersion.version == version)
        .options(selectinload(TemplateVersion.variants), selectinload(TemplateVersion.template))
    )
    if row is None:
        current_version(session, key)  # names a template that does not exist at all
        raise NotFound(f"template {key!r} has no version {version}")
    return row


def exists(session: Session, key: str) -> bool:
    return session.scalar(select(Template.id).where(Template.key == key)) is not None


def versions(session: Session, key: str) -> list[TemplateVersion]:
    """Every version of template ``key``, newest first."""
    template = session.scalar(select(Template).where(Template.key == key))
    if template is None:
        raise NotFound(f"template {key!r} does not exist")
    return list(
        session.scalars(
            select(TemplateVersion)
            .where(TemplateVersion.template_id == template.id)
            .order_by(TemplateVersion.version.desc())
        )
    )


def save_templates(session: Session, specs: Sequence[TemplateSpec]) -> list[SaveResult]:
    """Save every spec, in order; the caller's transaction makes it all or nothing."""
    keys = [spec.key for spec in specs]
    twice = sorted({k for k in keys if keys.count(k) > 1})
    if twice:
        raise InvalidInput(f"template {twice[0]!r} is given twice", field="key")
    return [save_template(session, spec) for spec in specs]


def list_templates(session: Session) -> list[dict[str, object]]:
    rows = session.scalars(
        select(TemplateVersion)
        .join(Template, Template.id == TemplateVersion.template_id)
        .where(TemplateVersion.version == Template.current_version)
        .options(selectinload(TemplateVersion.variants), selectinload(TemplateVersion.template))
        .order_by(Template.key)
    )
    return [
        {
            "key": v.template.key,
            "name": v.template.name,
            "version": v.version,
            "languages": sorted(v.bodies()),
            "review": v.review,
        }
        for v in rows
    ]
