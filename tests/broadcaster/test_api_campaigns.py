# ruff: noqa: F811 - pytest fixtures imported by name
"""The campaign API end to end on one database: create, preview, launch, operator moves,
deliveries by state with paging, errors naming the field, masking, inbox, queue, metrics,
and an audit row (who, what, from where) for every action."""

from __future__ import annotations

import csv
import io

import pytest
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from broadcaster.audit.service import Actor
from broadcaster.db import utcnow
from broadcaster.models import AuditEvent, CampaignMessage, Contact, Delivery, InboundMessage
from tests import factories
from tests.broadcaster.apiclient import Person, TestClient, app, client, people  # noqa: F401


def audience(session: Session, n: int = 3) -> None:
    factories.community(session, "laos", country="LA", language="lo")
    for i in range(n):
        factories.contact(session, factories.lao_number(900 + i), community_slugs=("laos",))
    factories.template(session)
    session.commit()


def new_campaign(client: TestClient, who: Person, **extra: object) -> dict:
    body = {"name": "Testing", "template": "covid-test", "communities": ["laos"], **extra}
    response = client.post("/api/v1/campaigns", json=body, headers=who.headers)
    assert response.status_code == 201, response.text
    return response.json()


def actions(session: Session) -> list[tuple[str, str, str | None]]:
    rows = session.execute(
        select(AuditEvent.actor, AuditEvent.action, AuditEvent.source).order_by(AuditEvent.id)
    )
    return [tuple(r) for r in rows]


def test_create_preview_launch_and_operate(
    client: TestClient, session: Session, people: dict[str, Person]
) -> None:
    audience(session)
    official, operator = people["official"], people["operator"]
    created = new_campaign(client, official)
    cid = created["id"]
    assert created["state"] == "draft" and created["created_by"] == "olivia"

    shown = client.get(f"/api/v1/campaigns/{cid}/preview", headers=official.headers).json()
    assert shown["recipients"] == 3
    assert {lang["language"] for lang in shown["languages"]} >= {"en", "lo", "th"}
    assert all(lang["segments"] >= 1 for lang in shown["languages"])
    assert shown["currency"] == "USD"  # what the cost is in (RISKCAST_CURRENCY)

    launched = client.post(f"/api/v1/campaigns/{cid}/launch", headers=official.headers)
    assert launched.status_code == 200 and launched.json()["state"] == "scheduled"
    again = client.post(f"/api/v1/campaigns/{cid}/launch", headers=official.headers)
    assert again.status_code == 409 and "draft" in again.json()["error"]

    assert (
        client.post(f"/api/v1/campaigns/{cid}/pause", headers=operator.headers).json()["state"]
        == "paused"
    )
    assert (
        client.post(f"/api/v1/campaigns/{cid}/resume", headers=operator.headers).json()["state"]
        == "scheduled"
    )
    assert (
        client.post(f"/api/v1/campaigns/{cid}/cancel", headers=operator.headers).json()["state"]
        == "cancelled"
    )
    twice = client.post(f"/api/v1/campaigns/{cid}/cancel", headers=operator.headers)
    assert twice.status_code == 409
    retry = client.post(f"/api/v1/campaigns/{cid}/retry-failed", headers=operator.headers)
    assert retry.status_code == 409

    assert actions(session) == [
        ("olivia", "campaign.create", "testclient"),
        ("olivia", "campaign.launch", "testclient"),
        ("otto", "campaign.pause", "testclient"),
        ("otto", "campaign.resume", "testclient"),
        ("otto", "campaign.cancel", "testclient"),
    ]


def test_bad_input_names_the_field(
    client: TestClient, session: Session, people: dict[str, Person]
) -> None:
    audience(session)
    h = people["official"].headers
    cases = [
        ({"template": "covid-test", "communities": ["laos"]}, "name"),
        ({"name": "x", "template": "covid-test", "communities": ["nowhere"]}, None),
        (
            {"name": "x", "template": "covid-test", "communities": ["laos"], "priority": "asap"},
            "priority",
        ),
        (
            {
                "name": "x",
                "template": "covid-test",
                "communities": ["laos"],
                "variables": {"nope": "1"},
            },
            "var",
        ),
    ]
    for body, field in cases:
        response = client.post("/api/v1/campaigns", json=body, headers=h)
        if field is None:
            assert response.status_code == 404, response.text
        else:
            assert response.status_code == 422, response.text
            assert response.json()["field"] == field
    cid = new_campaign(client, people["official"])["id"]
    naive = client.post(
        f"/api/v1/campaigns/{cid}/schedule", json={"send_at": "2030-01-01T09:00:00"}, headers=h
    )
    assert naive.status_code == 422 and naive.json()["field"] == "send_at"
    later = client.post(
        f"/api/v1/campaigns/{cid}/schedule",
        json={"send_at": "2030-01-01T09:00:00+07:00"},
        headers=h,
    )
    assert later.status_code == 200 and later.json()["send_at"].startswith("2030-01-01T02:00")
    assert client.get("/api/v1/campaigns/999999", headers=h).status_code == 404
    assert client.get("/api/v1/campaigns/0", headers=h).status_code == 422


def test_a_campaign_is_scheduled_at_a_local_time_in_a_named_zone(
    client: TestClient, session: Session, people: dict[str, Person]
) -> None:
    audience(session)
    h = people["official"].headers
    cid = new_campaign(client, people["official"])["id"]
    url = f"/api/v1/campaigns/{cid}/schedule"
    local = "2027-01-05T09:00:00"
    unknown = client.post(url, json={"send_at": local, "timezone": "Bangkok"}, headers=h)
    assert unknown.status_code == 422 and unknown.json()["field"] == "timezone"
    done = client.post(url, json={"send_at": local, "timezone": "Asia/Bangkok"}, headers=h)
    assert done.status_code == 200, done.text
    shown = client.get(f"/api/v1/campaigns/{cid}", headers=h).json()
    assert shown["send_at"].startswith("2027-01-05T02:00")
    assert (shown["schedule_timezone"], shown["send_at_local"]) == (
        "Asia/Bangkok",
        "2027-01-05 09:00 Asia/Bangkok",
    )
    events = session.scalars(select(AuditEvent).where(AuditEvent.action == "campaign.schedule"))
    assert [(e.actor, e.detail["timezone"]) for e in events] == [("olivia", "Asia/Bangkok")]


def test_deliveries_by_state_paged_and_masked(
    client: TestClient, session: Session, people: dict[str, Person]
) -> None:
    audience(session, 5)
    cid = new_campaign(client, people["official"])["id"]
    message = CampaignMessage(
        campaign_id=cid, digest="d", language="en", body="hi", encoding="GSM-7", parts=1
    )
    session.add(message)
    session.flush()
    contacts = [
        c for (c,) in session.execute(select(factories.Contact.id).order_by(factories.Contact.id))
    ]
    now = utcnow()
    session.execute(
        insert(Delivery),
        [
            {
                "campaign_id": cid,
                "contact_id": c,
                "message_id": message.id,
                "state": "failed" if i % 2 else "delivered",
                "error_code": 30003 if i % 2 else None,
                "error_message": "Unreachable destination handset" if i % 2 else None,
                "created_at": now,
                "updated_at": now,
            }
            for i, c in enumerate(contacts)
        ],
    )
    session.commit()
    h = people["operator"].headers
    first = client.get(f"/api/v1/campaigns/{cid}/deliveries?limit=2", headers=h).json()
    assert len(first["items"]) == 2 and first["next_after"] == first["items"][-1]["id"]
    rest = client.get(
        f"/api/v1/campaigns/{cid}/deliveries?limit=10&after={first['next_after']}", headers=h
    ).json()
    assert len(rest["items"]) == 3 and rest["next_after"] is None
    failed = client.get(f"/api/v1/campaigns/{cid}/deliveries?state=failed", headers=h).json()
    assert {d["state"] for d in failed["items"]} == {"failed"} and len(failed["items"]) == 2
    assert all("•" in d["phone"] for d in first["items"] + rest["items"])
    whole = client.get(f"/api/v1/campaigns/{cid}/deliveries", headers=people["admin"].headers)
    assert all(d["phone"].startswith("+856205") for d in whole.json()["items"])
    groups = client.get(f"/api/v1/campaigns/{cid}/failures", headers=h).json()
    assert groups == [
        {
            "error_code": 30003,
            "reason": None,
            "message": "Unreachable destination handset",
            "count": 2,
        }
    ]
    stats = client.get("/api/v1/stats", headers=h).json()
    assert stats["failures"][0]["count"] == 2 and stats["queue"]["deliveries"]["delivered"] == 3
    metrics = client.get("/metrics", headers=h).text
    assert 'riskcast_deliveries{priority="bulk",state="failed"} 2.0' in metrics
    assert 'riskcast_delivery_errors{error_code="30003"} 2.0' in metrics
    queue = client.get("/api/v1/queue", headers=h).json()
    assert queue["depths"] == {"urgent": None, "bulk": None, "control": None} and queue["error"]


def test_contacts_found_by_whole_number_or_name_masked_unless_admin(
    client: TestClient, session: Session, people: dict[str, Person]
) -> None:
    audience(session)
    factories.contact(session, "020 5555 0777", community_slugs=("laos",), name="Noy Phommachanh")
    session.commit()
    h = people["official"].headers
    number = factories.lao_number(901)  # +8562050000901, typed nationally below
    found = client.get("/api/v1/contacts", params={"q": "020 5000 0901"}, headers=h).json()
    assert [c["phone"] for c in found] == ["+856 20 ••• ••01"]
    by_e164 = client.get("/api/v1/contacts", params={"q": number}, headers=h).json()
    assert [c["id"] for c in by_e164] == [found[0]["id"]]
    by_name = client.get("/api/v1/contacts", params={"q": "phomma"}, headers=h).json()
    assert [c["name"] for c in by_name] == ["Noy Phommachanh"]
    assert by_name[0]["phone"] == "+856 20 ••• ••77"
    admin = client.get("/api/v1/contacts", params={"q": number}, headers=people["admin"].headers)
    assert admin.json()[0]["phone"] == number
    bad = client.get("/api/v1/contacts", params={"q": "+1 abc 1234567"}, headers=h)
    assert bad.status_code == 422 and bad.json()["field"] == "q"


@pytest.mark.parametrize("q", ["0901", "+856 20 ••• ••01", "+856 20 5•", "+85620500", "9"])
def test_part_of_a_number_finds_nothing_so_a_search_reveals_no_digit(
    client: TestClient, session: Session, people: dict[str, Person], q: str
) -> None:
    audience(session)
    answer = client.get("/api/v1/contacts", params={"q": q}, headers=people["official"].headers)
    assert answer.status_code == 422, answer.text
    assert set(answer.json()) == {"error", "field", "row"} and answer.json()["field"] == "q"


def test_every_search_is_audited_without_what_was_searched_and_limited_per_person(
    client: TestClient, session: Session, people: dict[str, Person]
) -> None:
    audience(session)
    official, operator = people["official"].headers, people["operator"].headers
    number = factories.lao_number(900)
    for _ in range(30):
        ok = client.get("/api/v1/contacts", params={"q": number}, headers=official)
        assert ok.status_code == 200
    refused = client.get("/api/v1/contacts", params={"q": number}, headers=official)
    assert refused.status_code == 429 and refused.headers["retry-after"] == "60"
    # another person is not held back by the first one's searches
    assert client.get("/api/v1/contacts", params={"q": number}, headers=operator).status_code == 200
    searches = session.scalars(
        select(AuditEvent).where(AuditEvent.action == "contact.search")
    ).all()
    assert len(searches) == 31
    assert sorted(e.actor for e in searches) == ["olivia"] * 30 + ["otto"]
    assert all(e.detail == {"by": "number", "found": 1} for e in searches)
    assert all("5000" not in str(e.detail) and e.object_id is None for e in searches)


def test_a_contact_prefers_a_channel(
    client: TestClient, session: Session, people: dict[str, Person]
) -> None:
    audience(session)
    h = people["official"].headers
    body = {"phone": "020 5555 0777", "communities": ["laos"], "channel": "whatsapp"}
    made = client.post("/api/v1/contacts", json=body, headers=h)
    assert made.status_code == 201 and made.json()["channel"] == "whatsapp"
    bad = client.post("/api/v1/contacts", json={**body, "channel": "fax"}, headers=h)
    assert bad.status_code == 422 and "channel" in bad.text


def test_a_contact_is_given_its_own_time_zone(
    client: TestClient, session: Session, people: dict[str, Person]
) -> None:
    audience(session)
    h = people["official"].headers
    body = {"phone": "020 5555 0778", "communities": ["laos"], "timezone": "Asia/Bangkok"}
    made = client.post("/api/v1/contacts", json=body, headers=h)
    assert made.status_code == 201 and made.json()["timezone"] == "Asia/Bangkok"
    found = client.get("/api/v1/contacts", params={"q": "020 5555 0778"}, headers=h).json()
    assert [c["timezone"] for c in found] == ["Asia/Bangkok"]
    bad = client.post("/api/v1/contacts", json={**body, "timezone": "Bangkok"}, headers=h)
    assert bad.status_code == 422 and "unknown time zone 'Bangkok'" in bad.text
    session.expire_all()
    stored = session.scalar(select(Contact.timezone).where(Contact.phone == "+8562055550778"))
    assert stored == "Asia/Bangkok"


def test_inbox_tagging_is_audited_and_masked(
    client: TestClient, session: Session, people: dict[str, Person]
) -> None:
    session.add(
        InboundMessage(
            provider_sid="SM1",
            from_phone="+8562055501234",
            to_phone="+15005550006",
            body="is it true? call me on +856 20 5550 1234",
        )
    )
    session.commit()
    h = people["official"].headers
    listed = client.get("/api/v1/inbox", headers=h).json()
    assert listed[0]["from_phone"] == "+856 20 ••• ••34" and "5550 1234" not in listed[0]["body"]
    tagged = client.put(f"/api/v1/inbox/{listed[0]['id']}/tag", json={"tag": "rumour"}, headers=h)
    assert tagged.status_code == 200 and tagged.json()["tag"] == "rumour"
    bad = client.put(f"/api/v1/inbox/{listed[0]['id']}/tag", json={"tag": "spam"}, headers=h)
    assert bad.status_code == 422 and bad.json()["field"] == "tag"
    assert ("olivia", "inbox.tag", "testclient") in actions(session)


def test_audit_json_and_csv_for_admins(
    client: TestClient, session: Session, people: dict[str, Person]
) -> None:
    audience(session)
    new_campaign(client, people["official"])
    admin = people["admin"].headers
    rows = client.get("/api/v1/audit", headers=admin).json()
    assert rows[0]["action"] == "campaign.create" and rows[0]["source"] == "testclient"
    csv = client.get("/api/v1/audit/export.csv", headers=admin)
    assert csv.headers["content-type"].startswith("text/csv")
    assert csv.text.splitlines()[0] == "id,at,actor,action,object_type,object_id,source,detail"
    assert "campaign.create" in csv.text
    assert client.get("/api/v1/audit", headers=people["official"].headers).status_code == 403


def test_audit_csv_cells_are_never_formulas_in_a_spreadsheet(
    client: TestClient, session: Session, people: dict[str, Person]
) -> None:
    # A name typed at the sign-in page is recorded as it was typed (login.failed).
    typed = '=HYPERLINK("http://example.invalid","open")'
    Actor(user_id=None, name=typed, role="", source="+1 evil").record(session, "login.failed")
    session.flush()
    answer = client.get("/api/v1/audit/export.csv", headers=people["admin"].headers)
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    failed = next(r for r in rows if r["action"] == "login.failed")
    assert failed["actor"] == "'" + typed
    assert failed["source"] == "'+1 evil"
    assert not any(v.startswith(("=", "+", "-", "@")) for r in rows for v in r.values())
