"""The message editor of the dashboard: officials write and change templates in the
browser, one field per language, with the compose page's per-language preview, and read
what each version changed. The same checks as ``riskcast templates load`` (one parser,
:func:`messages.parse_template`); YAML files stay for bulk work."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from broadcaster.campaigns import preview
from broadcaster.templates import service as templates
from broadcaster.web.deps import Db
from broadcaster.web.routes.dashboard import (
    OFFICIAL,
    Viewer,
    allow,
    back,
    check_csrf,
    flash,
    render,
    tr,
)
from messages import LANGUAGES, TemplateError, TemplateSpec, parse_template

router = APIRouter(prefix="/dashboard/templates", include_in_schema=False)

# A field for each of these is always shown; a template's other languages are shown too.
SHOWN_LANGUAGES = ("lo", "th", "en")
MAX_BODY = 2000  # characters a language field takes (a message is at most a few SMS)


@dataclass
class Draft:
    """What the editor's form holds."""

    key: str = ""
    name: str = ""
    default_language: str = "lo"
    variables: str = ""
    variants: dict[str, str] | None = None
    review: bool = True

    def data(self) -> dict[str, Any]:
        """As a template file holds it, for :func:`messages.parse_template`."""
        variables: dict[str, str] = {}
        for line in self.variables.splitlines():
            name, sep, value = line.partition("=")
            if name.strip() or sep:
                variables[name.strip()] = value.strip()
        return {
            "key": self.key.strip(),
            "name": self.name.strip(),
            "default_language": self.default_language,
            "variables": variables,
            "variants": {k: v for k, v in (self.variants or {}).items() if v.strip()},
            "review": self.review,
        }


def _draft_of(session: Session, key: str) -> Draft:
    row = templates.current_version(session, key)
    return Draft(
        key=key,
        name=row.template.name,
        default_language=row.default_language,
        variables="\n".join(f"{k}={v}" for k, v in row.variables.items()),
        variants=row.bodies(),
        review=row.review,
    )


def _languages(draft: Draft) -> list[str]:
    have = [lang for lang in (draft.variants or {}) if lang not in SHOWN_LANGUAGES]
    return [*SHOWN_LANGUAGES, *sorted(have)]


def _page(request: Request, caller: Any, draft: Draft, *, new: bool, **extra: Any) -> HTMLResponse:
    return render(
        request,
        "template_edit.html",
        caller,
        draft=draft,
        new=new,
        languages=_languages(draft),
        language_names=LANGUAGES,
        **extra,
    )


@router.get("")
def template_list(request: Request, session: Db, caller: Viewer) -> HTMLResponse:
    allow(caller, OFFICIAL)
    return render(request, "templates.html", caller, templates=templates.list_templates(session))


@router.get("/new")
def new_template(request: Request, caller: Viewer) -> HTMLResponse:
    allow(caller, OFFICIAL)
    return _page(request, caller, Draft(variants={}), new=True)


@router.get("/{key}")
def edit_template(request: Request, session: Db, caller: Viewer, key: str) -> HTMLResponse:
    allow(caller, OFFICIAL)
    draft = _draft_of(session, key)
    versions = templates.versions(session, key)
    spec = parse_template(draft.data(), origin=key)
    shown, warnings = preview.preview_spec(spec)
    return _page(
        request, caller, draft, new=False, versions=versions, shown=shown, warnings=warnings
    )


@router.post("/{key}")
def save_template(
    request: Request,
    session: Db,
    caller: Viewer,
    key: str,
    csrf: Annotated[str, Form()],
    name: Annotated[str, Form(max_length=200)],
    default_language: Annotated[str, Form(max_length=16)],
    variables: Annotated[str, Form(max_length=4000)] = "",
    review: Annotated[bool, Form()] = False,
    action: Annotated[str, Form(max_length=16)] = "preview",
    new_key: Annotated[str, Form(max_length=64)] = "",
    body_lo: Annotated[str, Form(max_length=MAX_BODY)] = "",
    body_th: Annotated[str, Form(max_length=MAX_BODY)] = "",
    body_en: Annotated[str, Form(max_length=MAX_BODY)] = "",
    body_km: Annotated[str, Form(max_length=MAX_BODY)] = "",
    body_vi: Annotated[str, Form(max_length=MAX_BODY)] = "",
    body_my: Annotated[str, Form(max_length=MAX_BODY)] = "",
    body_zh: Annotated[str, Form(max_length=MAX_BODY)] = "",
) -> Response:
    """Preview the form as it stands, or save it: a new version when anything changed
    (``key`` is ``new`` for a new template, named by ``new_key``)."""
    allow(caller, OFFICIAL)
    check_csrf(request, csrf)
    is_new = key == "new"
    bodies = {
        "lo": body_lo,
        "th": body_th,
        "en": body_en,
        "km": body_km,
        "vi": body_vi,
        "my": body_my,
        "zh": body_zh,
    }
    draft = Draft(
        key=new_key if is_new else key,
        name=name,
        default_language=default_language,
        variables=variables,
        variants={k: v.replace("\r\n", "\n") for k, v in bodies.items() if v.strip()},
        review=review,
    )
    if not is_new:
        templates.current_version(session, key)  # 404 for a template that does not exist
    try:
        spec: TemplateSpec = parse_template(draft.data(), origin=draft.key or "new template")
    except TemplateError as exc:
        return _page(request, caller, draft, new=is_new, problems=str(exc).splitlines())
    if is_new and templates.exists(session, spec.key):
        problem = tr(
            request, "a template %(key)s exists already: open it to change it", key=spec.key
        )
        return _page(request, caller, draft, new=True, problems=[problem])
    if action != "save":
        shown, warnings = preview.preview_spec(spec)
        return _page(request, caller, draft, new=is_new, shown=shown, warnings=warnings)
    result = templates.save_as(session, caller, spec, door="dashboard")
    if result.changed:
        flash(request, tr(request, "saved as version %(version)s", version=result.version.version))
    else:
        flash(
            request,
            tr(
                request,
                "nothing changed: still version %(version)s",
                version=result.version.version,
            ),
        )
    return back(f"/dashboard/templates/{spec.key}")


@router.get("/{key}/diff")
def template_diff(
    request: Request,
    session: Db,
    caller: Viewer,
    key: str,
    to: Annotated[int, Query(ge=2, le=1_000_000)],
) -> HTMLResponse:
    """What version ``to`` changed from the one before it, language by language."""
    allow(caller, OFFICIAL)
    before = templates.get_version(session, key, to - 1)
    after = templates.get_version(session, key, to)
    return render(
        request,
        "template_diff.html",
        caller,
        key=key,
        before=before.version,
        after=after.version,
        changes=version_diff(before.bodies(), after.bodies(), before.variables, after.variables),
    )


def version_diff(
    old: dict[str, str],
    new: dict[str, str],
    old_variables: dict[str, Any],
    new_variables: dict[str, Any],
) -> list[tuple[str, list[str]]]:
    """(what, unified diff lines) for each language or the variables that changed."""
    changes: list[tuple[str, list[str]]] = []
    for language in sorted(set(old) | set(new)):
        a, b = old.get(language, ""), new.get(language, "")
        if a != b:
            lines = difflib.unified_diff(
                a.splitlines(), b.splitlines(), lineterm="", n=2, fromfile="", tofile=""
            )
            changes.append(
                (language, [line for line in lines if not line.startswith(("---", "+++"))])
            )
    if old_variables != new_variables:
        a_vars = [f"{k}={v}" for k, v in sorted(old_variables.items())]
        b_vars = [f"{k}={v}" for k, v in sorted(new_variables.items())]
        lines = difflib.unified_diff(a_vars, b_vars, lineterm="", n=0)
        changes.append(
            ("variables", [line for line in lines if not line.startswith(("---", "+++"))])
        )
    return changes
