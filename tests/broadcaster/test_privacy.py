"""Privacy: export all we hold on a person, erase them (counts stay), retention."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from broadcaster.campaigns import scheduling
from broadcaster.campaigns import service as campaigns
from broadcaster.campaigns.fanout import fanout_page
from broadcaster.config import get_settings, load_settings
from broadcaster.contacts import privacy
from broadcaster.contacts import service as contacts
from broadcaster.db import utcnow
from broadcaster.models import Contact, Delivery, InboundMessage, Membership
from broadcaster.runtime import get_runtime, set_runtime
from tests import factories
from tests.broadcaster.clitools import Run, audit_events, cli_on_sqlite, ok


def _campaign_to(session: Session, slug: str, name: str = "Testing") -> int:
    camp = factories.campaign(session, [slug], name=name)
    campaigns.schedule(session, camp.id)
    scheduling.claim_due(session, utcnow())
    fanout_page(session, camp.id, page_size=100, batch_size=100)
    return camp.id


def _inbound(session: Session, contact: Contact | None, sender: str, body: str, sid: str) -> None:
    session.add(
        InboundMessage(
            provider_sid=sid,
            contact_id=contact.id if contact else None,
            from_phone=sender,
            to_phone="+15005550006",
            body=body,
        )
    )
    session.flush()


@pytest.fixture
def person(session: Session) -> Contact:
    factories.community(session, "bokeo", name="Bokeo")
    factories.community(session, "farm", name="Farm")
    someone = factories.contact(
        session, "+8562055551234", community_slugs=("bokeo", "farm"), language="lo", name="Kham"
    )
    factories.contact(session, "+8562055550000", community_slugs=("bokeo",))
    _inbound(session, someone, someone.phone, "Where can I get tested?", "SM1")
    _inbound(session, None, f"whatsapp:{someone.phone}", "hello", "SM2")
    _inbound(session, None, "+8562055550000", "not theirs", "SM3")
    return someone


def test_export_holds_everything_on_one_person(session: Session, person: Contact) -> None:
    cid = _campaign_to(session, "bokeo", name="Testing week")
    data = privacy.export_contact(session, person)
    json.dumps(data)  # JSON-ready
    assert data["contact"]["phone"] == "+8562055551234"
    assert data["contact"]["name"] == "Kham" and data["contact"]["status"] == "active"
    assert [m["community"] for m in data["memberships"]] == ["bokeo", "farm"]
    (delivery,) = data["deliveries"]
    assert delivery["campaign_id"] == cid and delivery["campaign"] == "Testing week"
    assert delivery["state"] == "queued" and delivery["queued_at"]
    assert [m["body"] for m in data["inbound_messages"]] == ["Where can I get tested?", "hello"]


def test_erase_keeps_counts_but_not_the_person(session: Session, person: Contact) -> None:
    cid = _campaign_to(session, "bokeo")
    delivery = session.scalars(select(Delivery).where(Delivery.contact_id == person.id)).one()
    delivery.error_message = "The 'To' number +8562055551234 is not a valid phone number."
    session.flush()
    before = campaigns.status(session, cid)
    contact_id = person.id
    assert privacy.erase_contact(session, person) == 1
    session.expire_all()
    assert session.get(Contact, contact_id) is None
    assert session.scalar(select(func.count()).select_from(Contact)) == 1
    assert (
        session.scalar(
            select(func.count()).select_from(Membership).where(Membership.contact_id == contact_id)
        )
        == 0
    )
    assert [m.provider_sid for m in session.scalars(select(InboundMessage))] == ["SM3"]
    kept = session.get_one(Delivery, delivery.id)
    assert kept.contact_id is None and kept.campaign_id == cid
    assert kept.error_message is not None and "55551234" not in kept.error_message
    assert campaigns.status(session, cid) == before


def test_erase_inactive(session: Session) -> None:
    factories.community(session, "bokeo")
    now = utcnow()
    old = now - timedelta(days=400)
    people = {
        name: factories.contact(session, factories.lao_number(i), community_slugs=("bokeo",))
        for i, name in enumerate(["idle", "wrote", "reached", "new", "opted_out", "active_late"])
    }
    for contact in people.values():
        contact.created_at = old
    people["new"].created_at = now - timedelta(days=3)
    people["active_late"].last_activity_at = now - timedelta(days=10)
    contacts.opt_out(session, people["opted_out"], source="keyword")
    people["opted_out"].updated_at = old
    session.flush()
    _inbound(session, people["wrote"], people["wrote"].phone, "hi", "SM9")
    factories.community(session, "reached-only")
    contacts.add_contact(
        session, people["reached"].phone, region="LA", communities=["reached-only"]
    )
    _campaign_to(session, "reached-only")
    ids = {name: c.id for name, c in people.items()}
    assert privacy.inactive_ids(session, now, 365, limit=100) == [ids["idle"]]
    assert privacy.erase_inactive(session, now, 365) == 1
    session.expire_all()
    left = set(session.scalars(select(Contact.id)))
    assert left == set(ids.values()) - {ids["idle"]}
    assert privacy.erase_inactive(session, now + timedelta(days=400), 365) == 4
    session.expire_all()
    assert set(session.scalars(select(Contact.id))) == {ids["opted_out"]}
    with pytest.raises(ValueError, match="at least 1"):
        privacy.erase_inactive(session, now, 0)


def test_retention_setting() -> None:
    assert load_settings(database_url="sqlite://").retention_days is None
    assert load_settings(database_url="sqlite://", retention_days=90).retention_days == 90


# -- the CLI -----------------------------------------------------------------------------------
@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Run]:
    with cli_on_sqlite(tmp_path, monkeypatch) as run:
        yield run


def test_cli_export_erase_purge(cli: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    ok(cli("communities", "add", "bokeo", "--name", "Bokeo"))
    ok(cli("contacts", "add", "020 5555 1234", "--name", "Kham", "--community", "bokeo"))
    exported = json.loads(ok(cli("contacts", "export", "020 5555 1234")).stdout)
    assert exported["contact"]["phone"] == "+8562055551234"  # the person's own data, whole
    assert exported["memberships"][0]["community"] == "bokeo"
    (event,) = audit_events("contact.export")
    assert event.object_id == str(exported["contact"]["id"])

    declined = cli("contacts", "erase", "020 5555 1234", input="n\n")
    assert declined.exit_code == 1 and "erase contact +856 20 ••• ••34" in declined.output
    out = ok(cli("contacts", "erase", "020 5555 1234", input="y\n")).stdout
    assert "contact +856 20 ••• ••34 erased; 0 deliveries kept without a contact" in out
    (event,) = audit_events("contact.erase")
    assert event.object_id == str(exported["contact"]["id"])
    assert "5555" not in json.dumps(event.detail)
    gone = cli("contacts", "export", "020 5555 1234")
    assert gone.exit_code == 1 and "no contact with that number" in gone.output

    no_days = cli("contacts", "purge-inactive")
    assert no_days.exit_code == 1 and "RISKCAST_RETENTION_DAYS" in no_days.output
    ok(cli("contacts", "add", "020 5555 1235"))
    with get_runtime().session() as session:
        session.execute(Contact.__table__.update().values(created_at=utcnow() - timedelta(days=40)))
    assert "1 contacts inactive for 30 days (nothing erased)" in (
        ok(cli("contacts", "purge-inactive", "--days", "30", "--dry-run")).stdout
    )
    monkeypatch.setenv("RISKCAST_RETENTION_DAYS", "60")
    get_settings.cache_clear()
    set_runtime(None)
    assert "0 contacts inactive for 60 days erased" in ok(cli("contacts", "purge-inactive")).stdout
    assert "1 contacts inactive for 30 days erased" in (
        ok(cli("contacts", "purge-inactive", "--days", "30")).stdout
    )
    assert [e.detail for e in audit_events("contact.purge_inactive")] == [
        {"days": 60, "erased": 0},
        {"days": 30, "erased": 1},
    ]
