# ruff: noqa: F811 - pytest fixtures imported by name
"""CAP 1.2 out: sent campaigns published at /cap/{id}.xml and /cap/feed.atom (public, texts
and community names only, never numbers), and the round trip: what riskcast publishes,
imported again, gives the same languages, texts, area and priority."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import defusedxml.ElementTree as SafeET
from sqlalchemy.orm import Session

from broadcaster.cap import service as cap
from broadcaster.db import utcnow
from broadcaster.models import Campaign
from broadcaster.templates import service as templates
from messages import render
from messages.cap import parse_alert
from tests import factories
from tests.broadcaster.apiclient import Person, TestClient, app, client, people  # noqa: F401

ATOM = "{http://www.w3.org/2005/Atom}"


def sent(session: Session, campaign: Campaign, state: str = "completed") -> Campaign:
    now = utcnow()
    campaign.state = state
    campaign.launched_at = now - timedelta(minutes=5)
    campaign.completed_at = now if state == "completed" else None
    session.flush()
    return campaign


def setup(session: Session) -> None:
    factories.community(session, "laos", country="LA", language="lo")
    factories.community(session, "bokeo", name="Bokeo province", parent="laos")
    factories.contact(session, factories.lao_number(501), community_slugs=("bokeo",))
    cap.map_area(
        session, factories.SYSTEM, kind="geocode", value="ISO3166-2=LA-BK", community_slug="bokeo"
    )


def test_round_trip_gives_the_same_languages_texts_area_and_priority(session: Session) -> None:
    setup(session)
    key = factories.template(session)
    original = sent(
        session,
        factories.campaign(
            session,
            ["bokeo"],
            key=key,
            priority="urgent",
            variables={"hotline": "1422"},
            valid_until=utcnow() + timedelta(days=2),
        ),
    )
    xml = cap.campaign_xml(session, original.id, public_url="https://alerts.example.la")
    alert = parse_alert(xml)  # what we publish is valid CAP 1.2
    assert alert.sender == "riskcast@alerts.example.la"
    assert [i.language for i in alert.infos] == ["en", "lo", "th"]
    assert alert.infos[0].areas[0].desc == "Bokeo province"

    result = cap.import_alert(session, xml, caller=factories.SYSTEM)
    assert result.priority == original.priority == "urgent"
    assert result.communities == ["bokeo"]
    copy = session.get(Campaign, result.campaign_id)
    assert copy is not None
    assert copy.audience["communities"] == original.audience["communities"]
    assert copy.valid_until == original.valid_until.replace(microsecond=0)  # type: ignore[union-attr]
    sent_texts = {
        language: render(body, {"hotline": "1422"})
        for language, body in factories.THREE_LANGUAGES["variants"].items()  # type: ignore[attr-defined]
    }
    imported = templates.current_version(session, result.template_key or "").bodies()
    assert imported == sent_texts


def test_round_trip_of_a_bulk_multi_line_message(session: Session) -> None:
    setup(session)
    key = factories.template(
        session,
        {
            "key": "two-lines",
            "name": "Two lines",
            "default_language": "en",
            "variants": {
                "en": "Measles vaccination day\nBring your children to the health centre.\nCall 1166",
                "lo": "ມື້ສັກຢາກັນໝາກແດງ\nໂທ 1166",
            },
        },
    )
    original = sent(session, factories.campaign(session, ["bokeo"], key=key), state="sending")
    xml = cap.campaign_xml(session, original.id, public_url="http://127.0.0.1:8000")
    result = cap.import_alert(session, xml, caller=factories.SYSTEM)
    assert result.priority == "bulk"
    imported = templates.current_version(session, result.template_key or "").bodies()
    assert imported == templates.current_version(session, key).bodies()


def test_public_routes_publish_only_sent_campaigns_and_no_numbers(
    client: TestClient, session: Session
) -> None:
    setup(session)
    key = factories.template(session)
    draft = factories.campaign(session, ["bokeo"], key=key, name="draft one")
    done = sent(session, factories.campaign(session, ["bokeo"], key=key, name="Testing is free"))
    sending = sent(
        session, factories.campaign(session, ["bokeo"], key=key, name="still going"), "sending"
    )
    session.commit()

    response = client.get(f"/cap/{done.id}.xml")  # no token: public
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/cap+xml")
    alert = parse_alert(response.content)
    assert alert.identifier == f"riskcast-campaign-{done.id}"
    assert len(alert.infos) == 3
    assert b"+856" not in response.content and b"205000" not in response.content

    assert client.get(f"/cap/{draft.id}.xml").status_code == 404
    assert client.get("/cap/999999.xml").status_code == 404

    feed = client.get("/cap/feed.atom")
    assert feed.status_code == 200
    assert feed.headers["content-type"].startswith("application/atom+xml")
    root = SafeET.fromstring(feed.content)
    titles = [e.findtext(f"{ATOM}title") for e in root.findall(f"{ATOM}entry")]
    assert titles == ["still going", "Testing is free"]
    links = [e.find(f"{ATOM}link").get("href") for e in root.findall(f"{ATOM}entry")]
    assert links == [
        f"http://127.0.0.1:8000/cap/{sending.id}.xml",
        f"http://127.0.0.1:8000/cap/{done.id}.xml",
    ]


def test_an_imported_alert_is_published_with_its_own_event_and_urgency(
    session: Session,
) -> None:
    setup(session)
    factories.community(session, "namtha", parent="laos")
    cap.map_area(session, factories.SYSTEM, kind="geocode", value="LA-LM", community_slug="namtha")
    xml = (
        Path(__file__).resolve().parents[1] / "data" / "cap" / "health_multilang.xml"
    ).read_bytes()
    result = cap.import_alert(session, xml, caller=factories.SYSTEM)
    campaign = sent(session, session.get(Campaign, result.campaign_id))  # type: ignore[arg-type]
    alert = parse_alert(cap.campaign_xml(session, campaign.id, public_url="http://x"))
    en = alert.infos[0]
    assert (en.categories, en.event, en.urgency, en.severity, en.certainty) == (
        ("Health",),
        "Dengue fever outbreak",
        "Expected",
        "Severe",
        "Observed",
    )
    assert en.headline == "Dengue is spreading in Bokeo and Luang Namtha"
    assert [a.desc for a in en.areas] == ["Bokeo province", "Namtha"]
