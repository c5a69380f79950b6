"""Fan-out: the right people, once each, in their language, resumable page by page."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from broadcaster.campaigns import scheduling
from broadcaster.campaigns import service as campaigns
from broadcaster.campaigns.fanout import _digest, _Digests, fanout_page
from broadcaster.contacts import service as contacts
from broadcaster.db import utcnow
from broadcaster.models import CampaignMessage, CampaignState, Delivery
from tests import factories


def _launch(session: Session, slugs: list[str], **kwargs: object) -> int:
    camp = factories.campaign(session, slugs, **kwargs)
    campaigns.schedule(session, camp.id)
    assert scheduling.claim_due(session, utcnow()) == [(camp.id, camp.priority)]
    return camp.id


def _bodies(session: Session, campaign_id: int) -> dict[int, str]:
    rows = session.execute(
        select(Delivery.contact_id, CampaignMessage.body)
        .join(CampaignMessage, CampaignMessage.id == Delivery.message_id)
        .where(Delivery.campaign_id == campaign_id)
    )
    return dict(rows.all())


def test_each_person_once_in_their_language(session: Session) -> None:
    factories.community(session, "laos", language="lo", kind="country")
    factories.community(session, "bokeo", parent="laos", kind="province")
    factories.community(session, "worksite", language="th")
    lao = factories.contact(session, community_slugs=("laos", "bokeo"), language="lo")
    thai = factories.contact(
        session, factories.thai_number(1), community_slugs=("bokeo", "worksite"), language="th"
    )
    english = factories.contact(session, community_slugs=("bokeo",), language="en")
    fallback = factories.contact(session, community_slugs=("worksite",))  # no language: community's
    outsider = factories.contact(session, language="lo")
    cid = _launch(session, ["laos", "worksite"])
    page = fanout_page(session, cid, page_size=100, batch_size=2)
    assert page.done and page.created == 4
    bodies = _bodies(session, cid)
    assert set(bodies) == {lao.id, thai.id, english.id, fallback.id}
    assert outsider.id not in bodies
    assert bodies[lao.id].startswith("ມີການກວດ") and bodies[lao.id].endswith("1166.")
    assert bodies[thai.id] == "มีบริการตรวจโควิด-19 ฟรี โทร 1422"  # Thailand's hotline
    assert bodies[english.id] == "Free COVID-19 testing is available. Call 1166."
    assert bodies[fallback.id] == "มีบริการตรวจโควิด-19 ฟรี โทร 1166"  # a Lao number reading Thai
    # rendered once per language and hotline, not per person
    assert (
        session.scalar(
            select(func.count())
            .select_from(CampaignMessage)
            .where(CampaignMessage.campaign_id == cid)
        )
        == 4
    )
    assert len(page.batches) == 2  # 4 deliveries in batches of 2
    assert campaigns.get(session, cid).state == CampaignState.SENDING


def test_the_hotline_follows_the_recipients_country_unless_the_official_set_one(
    session: Session,
) -> None:
    factories.community(session, "border", language="lo")
    lao = [factories.contact(session, community_slugs=("border",)) for _ in range(3)]
    thai = [
        factories.contact(session, factories.thai_number(n), community_slugs=("border",))
        for n in range(3)
    ]
    cid = _launch(session, ["border"])
    fanout_page(session, cid, page_size=100, batch_size=100)
    bodies = _bodies(session, cid)
    assert {bodies[c.id] for c in lao} == {"ມີການກວດ COVID-19 ຟຣີ. ໂທ 1166."}
    assert {bodies[c.id] for c in thai} == {"ມີການກວດ COVID-19 ຟຣີ. ໂທ 1422."}
    stored = select(func.count()).where(CampaignMessage.campaign_id == cid)
    assert session.scalar(stored) == 2  # one body per hotline, not per person

    # a number the official typed for this campaign is everyone's
    own = _launch(session, ["border"], variables={"hotline": "+856 21 1166"})
    fanout_page(session, own, page_size=100, batch_size=100)
    assert set(_bodies(session, own).values()) == {"ມີການກວດ COVID-19 ຟຣີ. ໂທ +856 21 1166."}


def test_without_descendants_only_direct_members(session: Session) -> None:
    factories.community(session, "laos", kind="country")
    factories.community(session, "vientiane", parent="laos")
    factories.contact(session, community_slugs=("vientiane",))
    direct = factories.contact(session, community_slugs=("laos",))
    cid = _launch(session, ["laos"], descendants=False)
    fanout_page(session, cid, page_size=100, batch_size=100)
    assert set(_bodies(session, cid)) == {direct.id}


def test_opted_out_people_get_nothing(session: Session) -> None:
    factories.community(session, "village")
    stays = factories.contact(session, community_slugs=("village",))
    leaves = factories.contact(session, community_slugs=("village",))
    contacts.opt_out(session, leaves, source="keyword")
    cid = _launch(session, ["village"])
    fanout_page(session, cid, page_size=100, batch_size=100)
    assert set(_bodies(session, cid)) == {stays.id}


def test_pages_resume_and_never_create_twice(session: Session) -> None:
    factories.community(session, "village")
    people = [factories.contact(session, community_slugs=("village",)) for _ in range(7)]
    cid = _launch(session, ["village"])
    created = []
    while True:
        page = fanout_page(session, cid, page_size=3, batch_size=100)
        created.append(page.created)
        if page.done:
            break
    assert sum(created) == 7 and created[:2] == [3, 3]
    # running fan-out again (a redelivered task) creates nothing more
    campaigns.move(session, cid, CampaignState.PAUSED)
    campaigns.move(session, cid, CampaignState.FANNING_OUT)
    camp = campaigns.get(session, cid)
    camp.fanout_cursor = 0
    page = fanout_page(session, cid, page_size=100, batch_size=100)
    assert page.created == 0
    assert set(_bodies(session, cid)) == {p.id for p in people}
    assert campaigns.get(session, cid).recipients == 7


def test_per_contact_variable_renders_per_person(session: Session) -> None:
    factories.community(session, "village")
    key = factories.english_template(
        session, "greeting", "Hello {{ name }}, call {{ hotline }} if you feel unwell."
    )
    a = factories.contact(session, community_slugs=("village",), name="Noy")
    b = factories.contact(session, community_slugs=("village",), name="Somchai")
    cid = _launch(session, ["village"], key=key, variables={"hotline": "166"})
    fanout_page(session, cid, page_size=100, batch_size=100)
    bodies = _bodies(session, cid)
    assert bodies[a.id] == "Hello Noy, call 166 if you feel unwell."
    assert bodies[b.id] == "Hello Somchai, call 166 if you feel unwell."


def test_a_paused_campaign_fans_out_nothing(session: Session) -> None:
    factories.community(session, "village")
    factories.contact(session, community_slugs=("village",))
    cid = _launch(session, ["village"])
    campaigns.pause(session, cid)
    page = fanout_page(session, cid, page_size=100, batch_size=100)
    assert page.created == 0 and _bodies(session, cid) == {}


def test_a_body_that_renders_empty_stops_the_campaign(session: Session) -> None:
    factories.community(session, "village")
    factories.contact(session, community_slugs=("village",), name="")
    data = {
        "key": "just-a-name",
        "name": "Name only",
        "default_language": "en",
        "variables": {"greeting": "Hello"},
        "variants": {"en": "{{ greeting }}"},
    }
    key = factories.template(session, data)
    cid = _launch(session, ["village"], key=key, variables={"greeting": " "})
    page = fanout_page(session, cid, page_size=100, batch_size=100)
    camp = campaigns.get(session, cid)
    assert page.created == 0 and camp.state == CampaignState.STOPPED
    assert "could not be rendered" in (camp.error or "")


def test_every_name_kept_exactly_each_on_their_channel_and_a_rerun_adds_nothing(
    session: Session,
) -> None:
    factories.community(session, "village")
    key = factories.english_template(session, "named", "{{ name }}: call {{ hotline }}.")
    names = ['Noy "Bo"', "back\\slash", "{a,b}", "NULL", "ສົມ\tໃຈ", "O'Neil", "Noy 7"]
    people = [factories.contact(session, community_slugs=("village",), name=n) for n in names]
    for person in people[::2]:
        person.channel = "whatsapp"
    session.flush()
    cid = _launch(session, ["village"], key=key, channel="preferred")
    while not fanout_page(session, cid, page_size=3, batch_size=2).done:
        pass
    expected = {p.id: f"{n}: call 1166." for p, n in zip(people, names, strict=True)}
    assert _bodies(session, cid) == expected
    channels = dict(
        session.execute(
            select(Delivery.contact_id, Delivery.channel).where(Delivery.campaign_id == cid)
        ).all()
    )
    assert channels == {p.id: "whatsapp" if i % 2 == 0 else "sms" for i, p in enumerate(people)}
    # the same pages again (a redelivered task): nothing is created or rendered twice
    campaigns.move(session, cid, CampaignState.PAUSED)
    campaigns.move(session, cid, CampaignState.FANNING_OUT)
    campaigns.get(session, cid).fanout_cursor = 0
    again = 0
    while True:
        page = fanout_page(session, cid, page_size=3, batch_size=2)
        again += page.created
        if page.done:
            break
    assert again == 0 and _bodies(session, cid) == expected
    assert campaigns.get(session, cid).recipients == len(people)
    stored = session.scalar(
        select(func.count()).select_from(CampaignMessage).where(CampaignMessage.campaign_id == cid)
    )
    assert stored == len(people)


@pytest.mark.parametrize(
    ("fixed", "values"),
    [
        ({"hotline": "1166"}, {"name": 'Noy "B\\o"\n'}),
        ({}, {"name": "ສົມໃຈ", "community": "Ban {x}"}),
        ({"hotline": "\x00name\x00"}, {"name": "x"}),  # a placeholder look-alike: slow path
        ({"hotline": "1", "zone": "z"}, {"community": ""}),
    ],
)
def test_digests_for_a_page_equal_the_plain_digest(
    fixed: dict[str, str], values: dict[str, str]
) -> None:
    for language in ("en", "lo"):
        maker = _Digests(language, fixed, [n for n in ("community", "name") if n in values])
        merged = {**fixed, **values}
        assert maker.digest(merged) == _digest(language, merged)
