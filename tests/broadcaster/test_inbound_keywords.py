"""Keywords people text us, through the signed inbound webhook, on both databases: STOP in
English, Lao and Thai stops every later send and START resumes them; JOIN and LEAVE let an
unknown number subscribe itself; HELP answers with the hotline in the person's language;
everything else lands in the inbox once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree

import pytest
from sqlalchemy import func, select

from broadcaster.models import AuditEvent, Community, Contact, InboundMessage, Membership
from broadcaster.runtime import Runtime
from tests import factories
from tests.broadcaster.twilio_kit import (
    ACCOUNT,
    OUR_NUMBER,
    TOKEN,
    Kit,
    kit_on,
    new_sid,
    uvicorn_logging_restored,
)
from tests.stack import ApiServer
from workers.providers.simulator.core import SimulatorCore

LAO_1, LAO_2, LAO_3 = (
    factories.lao_number(101),
    factories.lao_number(102),
    factories.lao_number(103),
)
THAI_1 = factories.thai_number(201)
HOTLINE = "1323"


@pytest.fixture(params=["sqlite", "postgresql"])
def kit(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Kit]:
    with kit_on(request.param, str(tmp_path), hotline=HOTLINE) as k:
        with k.runtime.session() as s:
            factories.community(s, "village-7", name="Ban Nongbua", timezone="Asia/Vientiane")
        yield k


def answer(response: object) -> str | None:
    """The text of the TwiML <Message>, or None for an empty <Response>."""
    assert response.status_code == 200, response.text  # type: ignore[attr-defined]
    assert response.headers["content-type"].startswith("application/xml")  # type: ignore[attr-defined]
    root = ElementTree.fromstring(response.text)  # type: ignore[attr-defined]  # noqa: S314 -- our own TwiML
    assert root.tag == "Response"
    message = root.find("Message")
    return None if message is None else message.text


def contact(kit: Kit, phone: str) -> Contact | None:
    with kit.runtime.session() as s:
        return s.scalar(select(Contact).where(Contact.phone == phone))


def members(kit: Kit, phone: str) -> set[str]:
    with kit.runtime.session() as s:
        row = s.scalar(select(Contact).where(Contact.phone == phone))
        assert row is not None
        return set(
            s.scalars(
                select(Community.slug)
                .join(Membership, Membership.community_id == Community.id)
                .where(Membership.contact_id == row.id)
            )
        )


def audit_rows(kit: Kit) -> list[tuple[str, str]]:
    with kit.runtime.session() as s:
        return [(a.actor, a.action) for a in s.scalars(select(AuditEvent).order_by(AuditEvent.id))]


# -- STOP and START stop and resume every send ---------------------------------------------


def test_stop_in_english_lao_and_thai_stops_every_later_send_and_start_resumes(kit: Kit) -> None:
    with kit.runtime.session() as s:
        factories.contact(s, LAO_1, community_slugs=("village-7",), language="en")
        factories.contact(s, LAO_2, community_slugs=("village-7",), language="lo")
        factories.contact(s, THAI_1, community_slugs=("village-7",), language="th")
        factories.contact(s, LAO_3, community_slugs=("village-7",), language="lo")
    quitters = {LAO_1: "STOP", LAO_2: "ຢຸດ", THAI_1: "หยุด"}

    # A campaign already fanned out when the STOPs arrive: the send path re-checks.
    first, tokens = kit.launch("village-7")
    replies = {phone: answer(kit.text(phone, word)) for phone, word in quitters.items()}
    assert replies[LAO_1] is not None and "START" in replies[LAO_1]
    assert replies[LAO_2] is not None and "ຍົກເລີກ" in replies[LAO_2]  # answered in Lao
    assert replies[THAI_1] is not None and "ยกเลิก" in replies[THAI_1]  # and in Thai
    for phone in quitters:
        row = contact(kit, phone)
        assert row is not None
        assert (row.status, row.opted_out_source) == ("opted_out", "keyword")
        assert row.opted_out_at is not None
    assert kit.send(first, tokens) == {"sent": 1, "skipped": 3}
    assert kit.core.accepted_by_to() == {LAO_3: 1}
    assert {kit.deliveries(first)[p] for p in quitters} == {("skipped", "opted_out")}

    # A later campaign does not even fan out to them.
    second, tokens = kit.launch("village-7")
    assert set(kit.deliveries(second)) == {LAO_3}
    kit.send(second, tokens)
    assert kit.core.accepted_by_to() == {LAO_3: 2}

    # START (any of its words) resumes: the next campaign reaches them again.
    for phone, word in {LAO_1: "start", LAO_2: "ເລີ່ມ", THAI_1: "เริ่ม"}.items():
        reply = answer(kit.text(phone, word))
        assert reply is not None and "STOP" in reply
        row = contact(kit, phone)
        assert row is not None
        assert (row.status, row.consent_source) == ("active", "keyword")
    third, tokens = kit.launch("village-7")
    assert set(kit.deliveries(third)) == {LAO_1, LAO_2, THAI_1, LAO_3}
    assert kit.send(third, tokens) == {"sent": 4}
    assert kit.core.accepted_by_to() == {LAO_1: 1, LAO_2: 1, THAI_1: 1, LAO_3: 3}

    # Every change is audited under the masked number, never the full one.
    rows = audit_rows(kit)
    assert [action for _, action in rows].count("contact.opt_out") == 3
    assert [action for _, action in rows].count("contact.opt_in") == 3
    assert ("phone:+856 20 ••• ••01", "contact.opt_out") in rows
    assert all(LAO_1 not in actor and THAI_1 not in actor for actor, _ in rows)


@pytest.mark.parametrize(
    "body", ["stop", " Stop. ", "S T O P", "QUIT!", "unsubscribe", "ຢຸດແດ່", "หยุดครับ", "ยกเลิก"]
)
def test_opt_out_words_ignore_case_space_and_punctuation(kit: Kit, body: str) -> None:
    with kit.runtime.session() as s:
        factories.contact(s, LAO_1, community_slugs=("village-7",))
    assert answer(kit.text(LAO_1, body)) is not None
    row = contact(kit, LAO_1)
    assert row is not None and row.status == "opted_out"


def test_stop_please_is_no_keyword_and_goes_to_the_inbox(kit: Kit) -> None:
    with kit.runtime.session() as s:
        factories.contact(s, LAO_1, community_slugs=("village-7",))
    # Twilio's rule: the whole message is the keyword.
    assert answer(kit.text(LAO_1, "please stop sending me these")) is None
    row = contact(kit, LAO_1)
    assert row is not None and row.status == "active"
    with kit.runtime.session() as s:
        message = s.scalars(select(InboundMessage)).one()
        assert (message.keyword, message.contact_id, message.from_phone) == (None, row.id, LAO_1)


def test_stop_from_an_unknown_number_is_kept_so_a_later_import_does_not_subscribe_it(
    kit: Kit,
) -> None:
    assert answer(kit.text(THAI_1, "STOP")) is not None
    row = contact(kit, THAI_1)
    assert row is not None and row.status == "opted_out" and row.country == "TH"
    with kit.runtime.session() as s:
        again = factories.contact(s, THAI_1, community_slugs=("village-7",))
        assert again.status == "opted_out"


def test_twilio_advanced_opt_out_is_recorded_and_not_answered_twice(kit: Kit) -> None:
    with kit.runtime.session() as s:
        factories.contact(s, LAO_1, community_slugs=("village-7",))
    # ARRET is on Twilio's list, not ours: Twilio's OptOutType decides, and it has replied.
    assert answer(kit.text(LAO_1, "ARRET", OptOutType="STOP")) is None
    row = contact(kit, LAO_1)
    assert row is not None and row.status == "opted_out"
    assert answer(kit.text(LAO_1, "START", OptOutType="START")) is None
    row = contact(kit, LAO_1)
    assert row is not None and row.status == "active"


def test_a_blocked_contact_stays_blocked(kit: Kit) -> None:
    with kit.runtime.session() as s:
        row = factories.contact(s, LAO_1, community_slugs=("village-7",))
        row.status = "blocked"
    reply = answer(kit.text(LAO_1, "START"))
    assert reply is not None and HOTLINE in reply
    after = contact(kit, LAO_1)
    assert after is not None and after.status == "blocked"


# -- HELP ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("language", "word", "expected"),
    [
        ("th", "HELP", "สายด่วน"),  # the contact's language wins over the word's
        ("lo", "info", "ສາຍດ່ວນ"),
        ("en", "ຊ່ວຍ", "Hotline"),
        (None, "ช่วยเหลือ", "สายด่วน"),  # no language known: the word's
        (None, "HELP", "Hotline"),
    ],
)
def test_help_is_answered_in_the_contacts_language_with_the_hotline(
    kit: Kit, language: str | None, word: str, expected: str
) -> None:
    with kit.runtime.session() as s:
        factories.contact(s, LAO_1, community_slugs=("village-7",), language=language)
    reply = answer(kit.text(LAO_1, word))
    assert reply is not None and expected in reply and HOTLINE in reply
    with kit.runtime.session() as s:
        assert s.scalars(select(InboundMessage.keyword)).one() == "help"
        assert s.scalar(select(func.count()).select_from(AuditEvent)) == 0


def test_help_from_a_thai_number_gives_thailands_hotline(kit: Kit) -> None:
    with kit.runtime.session() as s:
        factories.contact(s, THAI_1, community_slugs=("village-7",), language="lo")
    reply = answer(kit.text(THAI_1, "HELP"))
    assert reply == "ຂໍ້ມູນສຸຂະພາບ. ສາຍດ່ວນ 1422. ສົ່ງ STOP ເພື່ອຢຸດ, START ເພື່ອຮັບຄືນ."
    reply = answer(kit.text(LAO_1, "HELP"))  # anyone else: RISKCAST_HOTLINE
    assert reply is not None and "Hotline 1323." in reply


def test_help_from_an_unknown_number_creates_no_contact(kit: Kit) -> None:
    reply = answer(kit.text(LAO_1, "ຊ່ວຍເຫຼືອ"))
    assert reply is not None and "ສາຍດ່ວນ" in reply and HOTLINE in reply
    assert contact(kit, LAO_1) is None


# -- JOIN and LEAVE -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("phone", "body", "language", "country", "expected"),
    [
        (LAO_1, "ເຂົ້າຮ່ວມ village-7", "lo", "LA", "ເຂົ້າຮ່ວມ"),
        (LAO_2, "ເຂົ້າຮ່ວມVILLAGE-7", "lo", "LA", "ເຂົ້າຮ່ວມ"),  # no space, any case
        (THAI_1, "เข้าร่วม Village-7", "th", "TH", "เข้าร่วม"),
        (THAI_1, "tham gia village-7", "vi", "TH", "Bạn đã tham gia"),
        # The English words are what every poster and reply asks people to send: they tell
        # no language, so the answer is in the community's (village-7 speaks Lao).
        (LAO_3, "JOIN village-7", None, "LA", "ເຂົ້າຮ່ວມ"),
        (LAO_3, "join village7", None, "LA", "ເຂົ້າຮ່ວມ"),  # separators in a code optional
    ],
)
def test_join_by_an_unknown_number_makes_a_contact_in_the_language_of_the_words(
    kit: Kit, phone: str, body: str, language: str | None, country: str, expected: str
) -> None:
    reply = answer(kit.text(phone, body))
    assert reply is not None and expected in reply and "Ban Nongbua" in reply
    assert "LEAVE village-7" in reply
    row = contact(kit, phone)
    assert row is not None
    assert (row.status, row.consent_source, row.language, row.country, row.channel) == (
        "active",
        "keyword",
        language,
        country,
        "sms",
    )
    assert row.consent_at is not None
    assert members(kit, phone) == {"village-7"}
    assert [action for _, action in audit_rows(kit)] == ["contact.add", "membership.join"]


def test_join_in_english_is_answered_and_sent_in_the_communitys_language(kit: Kit) -> None:
    with kit.runtime.session() as s:
        factories.community(s, "chiang-rai-farm", name="Chiang Rai farm", country="TH")
        factories.contact(s, LAO_2, language="en")
    # Bokeo-style: a new Lao number sends the words on the poster
    reply = answer(kit.text(LAO_1, "JOIN village-7"))
    assert reply == "ທ່ານເຂົ້າຮ່ວມ Ban Nongbua ແລ້ວ. ສົ່ງ LEAVE village-7 ເພື່ອອອກ. ສາຍດ່ວນ 1323."
    # a Thai community answers in Thai, with Thailand's hotline for a Thai number
    reply = answer(kit.text(THAI_1, "JOIN chiang-rai-farm"))
    assert reply is not None and reply.startswith("คุณเข้าร่วม Chiang Rai farm แล้ว")
    assert reply.endswith("สายด่วน 1422")
    # a contact whose language is known keeps it
    reply = answer(kit.text(LAO_2, "JOIN chiang-rai-farm"))
    assert reply is not None and reply.startswith("You joined Chiang Rai farm")
    # and the campaigns that follow reach the newcomer in the community's language too
    campaign_id, tokens = kit.launch("village-7")
    assert kit.send(campaign_id, tokens) == {"sent": 1}
    assert [m["body"] for m in kit.core.messages] == ["ມີການກວດ COVID-19 ຟຣີ. ໂທ 1166."]


def test_join_then_leave_then_join_again(kit: Kit) -> None:
    answer(kit.text(THAI_1, "เข้าร่วม village-7"))
    reply = answer(kit.text(THAI_1, "ออกจาก village-7"))
    assert reply is not None and "ออกจาก" in reply and "JOIN village-7" in reply
    assert members(kit, THAI_1) == set()
    row = contact(kit, THAI_1)
    assert row is not None and row.status == "active"  # left the community, not every message
    # the next campaign to the community does not reach a person who left it
    with kit.runtime.session() as s:
        factories.contact(s, LAO_1, community_slugs=("village-7",))
    campaign_id, _ = kit.launch("village-7")
    assert set(kit.deliveries(campaign_id)) == {LAO_1}
    answer(kit.text(THAI_1, "JOIN village-7"))
    assert members(kit, THAI_1) == {"village-7"}
    actions = [action for _, action in audit_rows(kit)]
    assert actions == ["contact.add", "membership.join", "membership.leave", "membership.join"]
    assert all(actor == "phone:+66 81 ••• ••01" for actor, _ in audit_rows(kit))


def test_join_by_an_opted_out_contact_subscribes_them_again(kit: Kit) -> None:
    answer(kit.text(LAO_1, "STOP"))
    answer(kit.text(LAO_1, "JOIN village-7"))
    row = contact(kit, LAO_1)
    assert row is not None and (row.status, row.consent_source) == ("active", "keyword")
    assert members(kit, LAO_1) == {"village-7"}


def test_leave_by_an_unknown_number_creates_nothing(kit: Kit) -> None:
    reply = answer(kit.text(LAO_1, "LEAVE village-7"))
    assert reply is not None and "ທ່ານອອກຈາກ Ban Nongbua" in reply  # the community's language
    assert contact(kit, LAO_1) is None


def test_join_with_an_unknown_code_goes_to_the_inbox_and_says_so(kit: Kit) -> None:
    reply = answer(kit.text(LAO_1, "ເຂົ້າຮ່ວມ vilage-7"))
    assert reply is not None and "vilage-7" in reply and "ບໍ່ພົບ" in reply
    assert contact(kit, LAO_1) is None
    with kit.runtime.session() as s:
        assert s.scalars(select(InboundMessage.keyword)).one() is None


def test_join_without_a_code_says_how(kit: Kit) -> None:
    reply = answer(kit.text(LAO_1, "join"))
    assert reply is not None and "JOIN" in reply and HOTLINE in reply
    assert contact(kit, LAO_1) is None


def test_join_over_whatsapp_prefers_whatsapp(kit: Kit) -> None:
    reply = answer(kit.text(f"whatsapp:{THAI_1}", "สมัคร village-7"))
    assert reply is not None and "Ban Nongbua" in reply
    row = contact(kit, THAI_1)
    assert row is not None and (row.channel, row.language) == ("whatsapp", "th")
    with kit.runtime.session() as s:
        assert s.scalars(select(InboundMessage.from_phone)).one() == f"whatsapp:{THAI_1}"


# -- the inbox ----------------------------------------------------------------------------


def test_other_messages_are_kept_once_for_officials(kit: Kit) -> None:
    with kit.runtime.session() as s:
        factories.contact(s, LAO_1, community_slugs=("village-7",))
    sid = new_sid()
    question = "ກວດ COVID ຢູ່ໃສ?"
    assert answer(kit.text(LAO_1, question, sid=sid)) is None
    assert answer(kit.text(LAO_1, question, sid=sid)) is None  # Twilio retried the webhook
    with kit.runtime.session() as s:
        rows = s.scalars(select(InboundMessage)).all()
        assert [(m.body, m.keyword, m.provider_sid) for m in rows] == [(question, None, sid)]


def test_a_repeated_stop_webhook_acts_once(kit: Kit) -> None:
    with kit.runtime.session() as s:
        factories.contact(s, LAO_1, community_slugs=("village-7",))
    sid = new_sid()
    assert answer(kit.text(LAO_1, "STOP", sid=sid)) is not None
    assert answer(kit.text(LAO_1, "STOP", sid=sid)) is None
    with kit.runtime.session() as s:
        assert s.scalar(select(func.count()).select_from(InboundMessage)) == 1
    assert [action for _, action in audit_rows(kit)] == ["contact.opt_out"]


def test_inbound_from_the_http_simulator_is_answered(kit: Kit) -> None:
    """The simulator's own inject_inbound, against the API on a real socket."""
    with uvicorn_logging_restored():
        api = ApiServer()
        runtime = Runtime(kit.runtime.settings.model_copy(update={"public_url": api.url}))
        api.start(runtime)
        core = SimulatorCore(ACCOUNT, TOKEN)
        try:
            status, text = core.inject_inbound(
                f"{api.url}/webhooks/twilio/inbound", LAO_1, OUR_NUMBER, "ເຂົ້າຮ່ວມ village-7"
            )
            assert status == 200 and "Ban Nongbua" in text
        finally:
            api.stop()
            core.stop(drain=False)
            runtime.dispose()
    assert members(kit, LAO_1) == {"village-7"}
