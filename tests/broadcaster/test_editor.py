# ruff: noqa: F811 - pytest fixtures imported by name
"""Officials write and change messages in the dashboard: one field per language, the
same checks as the YAML loader, the per-language preview, versions and what each
changed; the API takes a template as a file holds it."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from broadcaster.models import AuditEvent
from broadcaster.templates import service as templates
from messages import catalog_dir, load_template_file
from tests.broadcaster.apiclient import (  # noqa: F401
    PASSWORD,
    Person,
    TestClient,
    app,
    client,
    people,
    person,
)
from tests.broadcaster.test_dashboard import login

LAO = "ກວດ COVID-19 ຟຣີ ທີ່ {{ place }}. ໂທ {{ hotline }}."
ENGLISH = "Free COVID-19 testing at {{ place }}. Call {{ hotline }}."


def form(token: str, **fields: str) -> dict[str, str]:
    return {
        "csrf": token,
        "name": "Testing week",
        "default_language": "lo",
        "variables": "place=the district hospital\nhotline=1166",
        "body_lo": LAO,
        "body_en": ENGLISH,
        "review": "true",
        **fields,
    }


def test_an_official_writes_previews_saves_and_changes_a_message(
    app: object, session: Session
) -> None:
    person(session, "noy", "official", password=PASSWORD)
    with TestClient(app) as noy:
        token = login(noy, "noy")
        assert noy.get("/dashboard/templates/new").status_code == 200

        # The loader's checks: a variable no one declared is named, nothing is saved.
        bad = noy.post(
            "/dashboard/templates/new",
            data=form(token, new_key="testing-week", body_en="Call {{ hotlin }}.", action="save"),
        )
        assert "hotlin" in bad.text and 'id="problems"' in bad.text
        assert not templates.exists(session, "testing-week")

        shown = noy.post(
            "/dashboard/templates/new", data=form(token, new_key="testing-week", action="preview")
        )
        assert "ກວດ COVID-19 ຟຣີ ທີ່ the district hospital. ໂທ 1166." in shown.text
        assert "UCS-2" in shown.text and "GSM-7" in shown.text
        assert not templates.exists(session, "testing-week")  # a preview saves nothing

        saved = noy.post(
            "/dashboard/templates/new",
            data=form(token, new_key="testing-week", action="save"),
            follow_redirects=True,
        )
        assert "saved as version 1" in saved.text
        changed = noy.post(
            "/dashboard/templates/testing-week",
            data=form(token, body_lo=LAO.replace("ຟຣີ", "ບໍ່ເສຍຄ່າ"), action="save"),
            follow_redirects=True,
        )
        assert "saved as version 2" in changed.text
        again = noy.post(
            "/dashboard/templates/testing-week",
            data=form(token, body_lo=LAO.replace("ຟຣີ", "ບໍ່ເສຍຄ່າ"), action="save"),
            follow_redirects=True,
        )
        assert "nothing changed: still version 2" in again.text
        diff = noy.get("/dashboard/templates/testing-week/diff", params={"to": 2}).text
        assert '<span class="del">-ກວດ COVID-19 ຟຣີ' in diff
        assert '<span class="add">+ກວດ COVID-19 ບໍ່ເສຍຄ່າ' in diff
        assert "Free COVID-19" not in diff  # English did not change
        assert "testing-week" in noy.get("/dashboard/templates").text

    row = templates.current_version(session, "testing-week")
    assert row.version == 2 and row.review and row.bodies()["en"] == ENGLISH
    saves = session.scalars(
        select(AuditEvent).where(AuditEvent.action == "template.save").order_by(AuditEvent.id)
    ).all()
    assert [(e.actor, e.detail["version"]) for e in saves] == [("noy", 1), ("noy", 2)]


def test_the_editor_is_for_officials(app: object, session: Session) -> None:
    person(session, "otto", "operator", password=PASSWORD)
    with TestClient(app) as otto:
        token = login(otto, "otto")
        page = otto.get("/dashboard/templates/new")
        assert page.status_code == 403 and page.headers["content-type"].startswith("text/html")
        refused = otto.post(
            "/dashboard/templates/new", data=form(token, new_key="x", action="save")
        )
        assert refused.status_code == 403


def test_the_api_saves_a_template_as_its_file_holds_it(
    client: TestClient, session: Session, people: dict[str, Person]
) -> None:
    shipped = load_template_file(sorted(catalog_dir().glob("*.yaml"))[0])
    body = {
        "key": shipped.key,
        "name": shipped.name,
        "default_language": shipped.default_language,
        "variables": shipped.variables,
        "variants": shipped.variants,
        "review": shipped.review,
        "budget": shipped.budget,
        "source": shipped.source,
    }
    official = people["official"].headers
    first = client.post("/api/v1/templates", json=body, headers=official)
    assert first.status_code == 200 and first.json()["version"] == 1, first.text
    # The same text again, as the YAML loader would store it: nothing new.
    assert templates.save_template(session, shipped).changed is False
    again = client.post("/api/v1/templates", json=body, headers=official)
    assert again.json() == {"key": shipped.key, "version": 1, "created": False, "changed": False}
    broken = client.post(
        "/api/v1/templates",
        json={**body, "variants": {"en": "Hello {{ nobody_declared_this }}"}},
        headers=official,
    )
    assert broken.status_code == 422 and "nobody_declared_this" in broken.json()["error"]
    operator = client.post("/api/v1/templates", json=body, headers=people["operator"].headers)
    assert operator.status_code == 403
