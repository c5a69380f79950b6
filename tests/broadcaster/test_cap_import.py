# ruff: noqa: F811 - pytest fixtures imported by name
"""CAP 1.2 in: an official's alert becomes a draft campaign (urgent ones held for a second
official), Update makes a follow-up draft, Cancel stops what is not yet sent; unmapped
areas, test alerts and bad documents are refused with a message naming the problem."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from broadcaster.campaigns import scheduling
from broadcaster.campaigns import service as campaigns
from broadcaster.campaigns.fanout import fanout_page
from broadcaster.cap import service as cap
from broadcaster.cap.models import CapAlert
from broadcaster.db import utcnow
from broadcaster.errors import IllegalState, InvalidInput
from broadcaster.models import AuditEvent, Delivery
from broadcaster.runtime import get_runtime
from broadcaster.templates import service as templates
from broadcaster.users import auth
from tests import factories
from tests.broadcaster.apiclient import Person, TestClient, app, client, people  # noqa: F401
from tests.broadcaster.clitools import Run, audit_events, cli_on_sqlite, ok, sign_in

DATA = Path(__file__).resolve().parents[1] / "data" / "cap"
ICT = timezone(timedelta(hours=7))


def sample(name: str) -> bytes:
    return (DATA / name).read_bytes()


def provinces(session: Session, *, mapped: bool = True) -> None:
    factories.community(session, "laos", country="LA", language="lo")
    factories.community(session, "bokeo", parent="laos")
    factories.community(session, "namtha", parent="laos")
    for i in range(3):
        factories.contact(session, factories.lao_number(900 + i), community_slugs=("bokeo",))
    if mapped:
        cap.map_area(
            session,
            factories.SYSTEM,
            kind="geocode",
            value="ISO3166-2=LA-BK",
            community_slug="bokeo",
        )
        cap.map_area(
            session, factories.SYSTEM, kind="geocode", value="LA-LM", community_slug="namtha"
        )


def test_an_alert_becomes_an_urgent_draft_held_for_approval(session: Session) -> None:
    provinces(session)
    author = auth.create_user(session, "noy", role="official")
    result = cap.import_alert(
        session, sample("health_multilang.xml"), caller=auth.actor_for(session, author, "test")
    )

    assert result.msg_type == "Alert"
    assert result.priority == "urgent"  # Expected + Severe
    assert result.communities == ["bokeo", "namtha"]
    assert result.languages == ["en", "lo", "th"]
    assert result.valid_until == datetime(2099, 3, 16, 8, 30, tzinfo=ICT)
    assert result.warnings == []
    campaign = campaigns.get(session, result.campaign_id or 0)
    assert campaign.state == "draft"
    assert campaign.priority == "urgent"
    assert campaign.created_by == author.id
    assert campaign.valid_until == datetime(2099, 3, 16, 1, 30, tzinfo=UTC)
    assert campaign.template_version.template.key == result.template_key
    bodies = templates.current_version(session, result.template_key or "").bodies()
    assert bodies["en"].startswith("Dengue is spreading in Bokeo and Luang Namtha\n")
    assert bodies["en"].endswith("\nFree hotline 1166")
    # nothing is sent without a second official's approval
    assert campaigns.needs_approval(session, campaign)
    with pytest.raises(IllegalState, match="every urgent campaign"):
        campaigns.schedule(session, campaign.id)

    stored = session.scalars(select(CapAlert)).one()
    assert (stored.identifier, stored.sender, stored.msg_type) == (
        "MOH-LA-2031-0042",
        "cap@moh.gov.la",
        "Alert",
    )
    assert stored.sent == datetime(2031, 3, 2, 1, 30, tzinfo=UTC)
    assert stored.campaign_id == campaign.id
    assert "<identifier>MOH-LA-2031-0042</identifier>" in stored.xml

    with pytest.raises(IllegalState, match=f"already imported \\(campaign {campaign.id}\\)"):
        cap.import_alert(
            session, sample("health_multilang.xml"), caller=auth.actor_for(session, author, "test")
        )


def test_unmapped_areas_are_listed_with_the_command_that_maps_them(session: Session) -> None:
    provinces(session, mapped=False)
    with pytest.raises(InvalidInput) as caught:
        cap.import_alert(session, sample("flood_polygon.xml"), caller=factories.SYSTEM)
    message = str(caught.value)
    assert message.startswith("area: 1 area(s) map to no community:")
    assert "alert/info[1]/area[1] 'Chiang Khong riverside' (polygon only)" in message
    assert "riskcast cap map --name" in message
    assert session.scalars(select(CapAlert)).all() == []

    cap.map_area(
        session,
        factories.SYSTEM,
        kind="name",
        value="  chiang khong   RIVERSIDE ",
        community_slug="bokeo",
    )
    result = cap.import_alert(session, sample("flood_polygon.xml"), caller=factories.SYSTEM)
    assert result.communities == ["bokeo"]
    assert result.priority == "urgent"  # Immediate + Extreme

    # every unmapped area is listed, in each language
    with pytest.raises(InvalidInput) as caught:
        cap.import_alert(session, sample("health_multilang.xml"), caller=factories.SYSTEM)
    assert "6 area(s) map to no community" in str(caught.value)
    assert "alert/info[2]/area[1] 'ແຂວງບໍ່ແກ້ວ' [ISO3166-2=LA-BK]" in str(caught.value)


def test_a_mapping_is_made_once(session: Session) -> None:
    provinces(session, mapped=False)
    first, created = cap.map_area(
        session, factories.SYSTEM, kind="geocode", value="LA-BK", community_slug="bokeo"
    )
    again, created_again = cap.map_area(
        session, factories.SYSTEM, kind="geocode", value=" LA-BK ", community_slug="bokeo"
    )
    assert created and not created_again and first.id == again.id
    with pytest.raises(InvalidInput, match="'shape' is not one of geocode, name"):
        cap.map_area(session, factories.SYSTEM, kind="shape", value="x", community_slug="bokeo")


def test_an_update_is_a_follow_up_draft(session: Session) -> None:
    provinces(session)
    first = cap.import_alert(session, sample("health_multilang.xml"), caller=factories.SYSTEM)
    update = cap.import_alert(session, sample("health_update.xml"), caller=factories.SYSTEM)
    assert update.msg_type == "Update"
    assert update.campaign_id not in (None, first.campaign_id)
    assert update.referenced == [first.campaign_id]
    assert update.priority == "bulk"  # Expected + Moderate
    assert update.communities == ["bokeo"]
    assert update.languages == ["en", "lo"]
    assert any(
        f"campaign {first.campaign_id}, of the alert this updates, is still draft" in w
        for w in update.warnings
    )
    assert campaigns.get(session, first.campaign_id or 0).state == "draft"


def test_a_cancel_stops_what_is_not_yet_sent(session: Session) -> None:
    provinces(session)
    author = auth.create_user(session, "noy", role="official")
    second = auth.create_user(session, "kham", role="official")
    first = cap.import_alert(
        session, sample("health_multilang.xml"), caller=auth.actor_for(session, author, "test")
    )
    update = cap.import_alert(
        session, sample("health_update.xml"), caller=auth.actor_for(session, author, "test")
    )
    campaign_id = first.campaign_id or 0
    campaigns.approve(session, campaign_id, second.id)
    campaigns.schedule(session, campaign_id)
    scheduling.claim_due(session, utcnow())
    while not fanout_page(session, campaign_id, page_size=100, batch_size=100).done:
        pass
    assert (
        len(session.scalars(select(Delivery).where(Delivery.campaign_id == campaign_id)).all()) == 3
    )

    # the cancel names the first alert; the update's draft belongs to the same thread
    cancel = cap.import_alert(
        session, sample("health_cancel.xml"), caller=auth.actor_for(session, author, "test")
    )
    assert cancel.msg_type == "Cancel"
    assert cancel.campaign_id is None
    assert cancel.cancelled == [campaign_id]
    assert campaigns.get(session, campaign_id).state == "cancelled"
    states = session.execute(
        select(Delivery.state, Delivery.reason).where(Delivery.campaign_id == campaign_id)
    ).all()
    assert set(states) == {("skipped", "cancelled")}
    assert campaigns.get(session, update.campaign_id or 0).state == "draft"


def test_a_cancel_of_the_update_thread_cancels_both(session: Session) -> None:
    provinces(session)
    first = cap.import_alert(session, sample("health_multilang.xml"), caller=factories.SYSTEM)
    update = cap.import_alert(session, sample("health_update.xml"), caller=factories.SYSTEM)
    cancel_update = sample("health_cancel.xml").replace(
        b"MOH-LA-2031-0042,2031-03-02T08:30:00+07:00", b"MOH-LA-2031-0043,2031-03-05T09:00:00+07:00"
    )
    result = cap.import_alert(session, cancel_update, caller=factories.SYSTEM)
    assert sorted(result.cancelled) == sorted([first.campaign_id, update.campaign_id])
    # a second cancel finds nothing left to stop
    again = cancel_update.replace(b"MOH-LA-2031-0044", b"MOH-LA-2031-0045")
    assert cap.import_alert(session, again, caller=factories.SYSTEM).cancelled == []


def test_a_cancel_of_an_unknown_alert_is_refused(session: Session) -> None:
    provinces(session)
    with pytest.raises(InvalidInput, match="none of the referenced alerts was imported"):
        cap.import_alert(session, sample("health_cancel.xml"), caller=factories.SYSTEM)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            (b"<status>Actual</status>", b"<status>Test</status>"),
            "alert/status: 'Test' alerts are not imported",
        ),
        (
            (b"<scope>Public</scope>", b"<scope>Private</scope>"),
            "alert/scope: 'Private' alerts are not for the public",
        ),
        (
            (b"<msgType>Alert</msgType>", b"<msgType>Ack</msgType>"),
            "alert/msgType: an Ack message has nothing to broadcast",
        ),
        (
            (b"2099-08-16T06:00:00+07:00", b"2001-08-16T06:00:00+07:00"),
            "the alert expired at 2001-08-16T06:00:00+07:00",
        ),
        (
            (b"<urgency>Immediate</urgency>", b"<urgency>Soon</urgency>"),
            "alert/info[1]/urgency: 'Soon' is not one of",
        ),
    ],
)
def test_refused_alerts(session: Session, change: tuple[bytes, bytes], message: str) -> None:
    provinces(session)
    cap.map_area(
        session,
        factories.SYSTEM,
        kind="name",
        value="Chiang Khong riverside",
        community_slug="bokeo",
    )
    with pytest.raises(InvalidInput) as caught:
        cap.import_alert(
            session, sample("flood_polygon.xml").replace(*change), caller=factories.SYSTEM
        )
    assert message in str(caught.value)


# -- the API ---------------------------------------------------------------------------


def test_post_cap_as_an_official(
    client: TestClient, session: Session, people: dict[str, Person]
) -> None:
    provinces(session)
    session.commit()
    official = people["official"]
    headers = {**official.headers, "Content-Type": "application/cap+xml"}
    response = client.post("/api/v1/cap", content=sample("health_multilang.xml"), headers=headers)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["priority"] == "urgent"
    assert body["languages"] == ["en", "lo", "th"]
    campaign = campaigns.get(session, body["campaign_id"])
    assert campaign.state == "draft"
    assert campaign.created_by == official.id
    event = session.scalars(select(AuditEvent).where(AuditEvent.action == "cap.import")).one()
    assert (event.actor, event.object_id) == ("olivia", str(campaign.id))
    assert event.detail["identifier"] == "MOH-LA-2031-0042"

    again = client.post("/api/v1/cap", content=sample("health_multilang.xml"), headers=headers)
    assert again.status_code == 409
    assert "already imported" in again.json()["error"]


def test_post_cap_refusals(client: TestClient, session: Session, people: dict[str, Person]) -> None:
    provinces(session)
    session.commit()
    xml = {"Content-Type": "application/xml"}
    operator = client.post(
        "/api/v1/cap",
        content=sample("flood_polygon.xml"),
        headers={**people["operator"].headers, **xml},
    )
    assert operator.status_code == 403
    official = {**people["official"].headers, **xml}
    hostile = client.post("/api/v1/cap", content=sample("billion_laughs.xml"), headers=official)
    assert hostile.status_code == 422
    assert "refused" in hostile.json()["error"]
    bad = client.post(
        "/api/v1/cap",
        content=sample("flood_polygon.xml").replace(b"Extreme", b"Huge"),
        headers=official,
    )
    assert bad.status_code == 422
    assert bad.json() == {
        "error": "alert/info[1]/severity: 'Huge' is not one of Extreme, Severe, Moderate, Minor, Unknown",
        "field": "alert/info[1]/severity",
        "row": None,
    }
    json_body = client.post("/api/v1/cap", json={"x": 1}, headers=people["official"].headers)
    assert json_body.status_code == 415

    mapping = client.post(
        "/api/v1/cap/mappings",
        json={"kind": "name", "value": "Chiang Khong riverside", "community": "bokeo"},
        headers=people["official"].headers,
    )
    assert mapping.status_code == 201, mapping.text
    assert mapping.json()["value"] == "chiang khong riverside"
    listed = client.get("/api/v1/cap/mappings", headers=people["operator"].headers).json()
    assert {m["value"] for m in listed} == {
        "la-lm".upper(),
        "ISO3166-2=LA-BK",
        "chiang khong riverside",
    }
    ok = client.post("/api/v1/cap", content=sample("flood_polygon.xml"), headers=official)
    assert ok.status_code == 201, ok.text
    actions = session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)).all()
    assert actions[-2:] == ["cap.map", "cap.import"]


# -- the CLI ---------------------------------------------------------------------------


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Run]:
    with cli_on_sqlite(tmp_path, monkeypatch) as run:
        yield run


class _Serve(http.server.BaseHTTPRequestHandler):
    body = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/cap+xml")
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


def test_cli_map_and_import_from_a_file_and_a_url(
    cli: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def run(*args: str) -> str:
        return ok(cli(*args)).output

    with get_runtime().session() as session:
        provinces(session, mapped=False)
    sign_in(monkeypatch, "noy")  # an official: the drafts are hers
    missing = cli("cap", "import", str(DATA / "health_multilang.xml"))
    assert missing.exit_code == 1
    assert "map to no community" in missing.output

    assert "CAP geocode 'ISO3166-2=LA-BK' mapped to bokeo" in run(
        "cap", "map", "--geocode", "ISO3166-2=LA-BK", "--community", "bokeo"
    )
    run("cap", "map", "--name", "Luang Namtha province", "--community", "namtha")
    run("cap", "map", "--name", "ແຂວງຫຼວງນ້ຳທາ", "--community", "namtha")
    run("cap", "map", "--name", "แขวงหลวงน้ำทา", "--community", "namtha")
    assert "was already mapped" in run(
        "cap", "map", "--name", "luang namtha PROVINCE", "--community", "namtha"
    )
    both = cli("cap", "map", "--geocode", "x", "--name", "y", "--community", "bokeo")
    assert both.exit_code == 1 and "one of --geocode" in both.output
    assert "ISO3166-2=LA-BK" in run("cap", "mappings")

    output = run("cap", "import", str(DATA / "health_multilang.xml"))
    assert "draft campaign 1 (urgent; en, lo, th; communities bokeo, namtha" in output
    assert "a second official approves it: riskcast campaigns approve 1\n" in output
    assert output.strip().splitlines()[-1] == "1"
    with get_runtime().session() as session:
        assert campaigns.get(session, 1).created_by == auth.get_user(session, "noy").id
    assert {e.actor for e in audit_events("cap.import")} == {"noy"}

    _Serve.body = sample("health_update.xml")
    server = http.server.HTTPServer(("127.0.0.1", 0), _Serve)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/alerts/0043.xml"
        output = run("cap", "import", url)
    finally:
        server.shutdown()
        server.server_close()
    assert "CAP update MOH-LA-2031-0043 -> draft campaign 2 (bulk" in output
    assert "of the alert this updates, is still draft" in output

    assert "campaigns cancelled: 1\n" in run("cap", "import", str(DATA / "health_cancel.xml"))
    refused = cli("cap", "import", "ftp://example.org/x.xml")
    assert refused.exit_code == 1 and "only http(s)" in refused.output
    hostile = cli("cap", "import", str(DATA / "external_entity.xml"))
    assert hostile.exit_code == 1 and "refused" in hostile.output

    with get_runtime().session() as session:
        actions = session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)).all()
        assert actions.count("cap.map") == 4
        assert actions.count("cap.import") == 3
        assert (
            session.scalar(select(CapAlert.imported_by).where(CapAlert.campaign_id == 1))
            is not None
        )


def test_cap_update_and_cancel_follow_the_apis_rules(
    client: TestClient, session: Session, people: dict[str, Person]
) -> None:
    """A CAP Cancel used to cancel any official's campaign whoever sent it: now only the
    original alert's sender follows it up, within the caller's areas, and a Cancel is the
    campaign's own official's (or an operator's, as /cancel is)."""
    provinces(session)
    province = auth.create_user(session, "boua", role="official", areas=["bokeo"])
    _, province_token = auth.issue_token(session, province)
    session.commit()
    xml = {"Content-Type": "application/cap+xml"}
    author = {**people["official"].headers, **xml}
    colleague = {**people["official2"].headers, **xml}

    made = client.post("/api/v1/cap", content=sample("health_multilang.xml"), headers=author)
    assert made.status_code == 201, made.text
    campaign_id = made.json()["campaign_id"]

    # Bokeo's official: the update reaches Luang Namtha too, outside their areas.
    provincial = client.post(
        "/api/v1/cap",
        content=sample("health_update.xml"),
        headers={"Authorization": f"Bearer {province_token}", **xml},
    )
    assert provincial.status_code == 403, provincial.text
    # Nor does Bokeo's official map CAP areas onto another province's communities.
    as_province = {"Authorization": f"Bearer {province_token}"}
    mapping = {"kind": "geocode", "value": "LA-XA"}
    elsewhere = client.post(
        "/api/v1/cap/mappings", json={**mapping, "community": "namtha"}, headers=as_province
    )
    assert elsewhere.status_code == 403
    own_area = client.post(
        "/api/v1/cap/mappings", json={**mapping, "community": "bokeo"}, headers=as_province
    )
    assert own_area.status_code == 201, own_area.text

    # A Cancel naming the alert but sent by someone else is refused, whoever posts it.
    forged = (
        sample("health_cancel.xml")
        .replace(b"<sender>cap@moh.gov.la</sender>", b"<sender>cap@elsewhere.example</sender>")
        .replace(b"MOH-LA-2031-0044", b"ELSE-1")
    )
    refused = client.post("/api/v1/cap", content=forged, headers=author)
    assert refused.status_code == 403 and "only its sender" in refused.json()["error"]

    # Another official of the same sender may not cancel a campaign they did not make.
    other = client.post("/api/v1/cap", content=sample("health_cancel.xml"), headers=colleague)
    assert other.status_code == 403, other.text
    assert campaigns.get(session, campaign_id).state == "draft"

    own = client.post("/api/v1/cap", content=sample("health_cancel.xml"), headers=author)
    assert own.status_code == 201, own.text
    assert own.json()["cancelled"] == [campaign_id]
    assert campaigns.get(session, campaign_id).state == "cancelled"
