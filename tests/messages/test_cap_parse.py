"""CAP 1.2 parsing and validation, variants fitted to the segment budget, and writing back:
real-world-shaped samples in tests/data/cap, and broken and hostile documents refused with
a message naming the element or the problem."""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from messages import render, segments
from messages.cap import (
    CAP_NS,
    Alert,
    Area,
    CapError,
    FeedEntry,
    Info,
    ValuePair,
    atom_feed,
    escape_body,
    fit,
    parse_alert,
    template_key,
    to_template,
    to_xml,
    variants,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "cap"
ICT = timezone(timedelta(hours=7))


def sample(name: str) -> bytes:
    return (DATA / name).read_bytes()


def minimal(info: str = "", *, head: str = "", ns: str = CAP_NS) -> bytes:
    """A valid alert, with ``info`` (whole <info> elements) and ``head`` replaced in."""
    head = head or (
        "<identifier>T-1</identifier><sender>s@example.org</sender>"
        "<sent>2031-01-01T00:00:00+07:00</sent><status>Actual</status>"
        "<msgType>Alert</msgType><scope>Public</scope>"
    )
    return f'<alert xmlns="{ns}">{head}{info}</alert>'.encode()


def info(urgency: str = "Immediate", extra: str = "", language: str = "en-US") -> str:
    return (
        f"<info><language>{language}</language><category>Health</category><event>Flood</event>"
        f"<urgency>{urgency}</urgency><severity>Severe</severity><certainty>Likely</certainty>"
        f"{extra}<headline>Flood</headline><area><areaDesc>Bokeo</areaDesc></area></info>"
    )


def error(data: bytes) -> str:
    with pytest.raises(CapError) as caught:
        parse_alert(data)
    return str(caught.value)


# -- the samples ---------------------------------------------------------------------


def test_a_multi_language_health_alert() -> None:
    alert = parse_alert(sample("health_multilang.xml"))
    assert (alert.identifier, alert.sender, alert.msg_type) == (
        "MOH-LA-2031-0042",
        "cap@moh.gov.la",
        "Alert",
    )
    assert alert.sent == datetime(2031, 3, 2, 8, 30, tzinfo=ICT)
    assert [i.language for i in alert.infos] == ["en-US", "lo-LA", "th-TH"]
    assert alert.urgent  # Expected + Severe
    assert alert.expires == datetime(2099, 3, 16, 8, 30, tzinfo=ICT)
    en = alert.infos[0]
    assert en.categories == ("Health",)
    assert en.event_codes == (ValuePair("WHO-ICD10", "A90"),)
    assert [a.geocodes for a in en.areas] == [
        (ValuePair("ISO3166-2", "LA-BK"),),
        (ValuePair("ISO3166-2", "LA-LM"),),
    ]

    spec, warnings = to_template(alert)
    assert warnings == []
    assert spec.default_language == "en"
    assert sorted(spec.variants) == ["en", "lo", "th"]
    # headline, instruction (the XML's wrapped lines joined again) and contact, one a line
    assert spec.variants["en"] == (
        "Dengue is spreading in Bokeo and Luang Namtha\n"
        "Empty standing water around your home every week. Sleep under a net. "
        "See a health worker if you have a high fever.\n"
        "Free hotline 1166"
    )
    assert spec.variants["lo"].endswith("ສາຍດ່ວນຟຣີ 1166")
    assert spec.key == template_key(alert)
    assert re.fullmatch(r"cap-moh-la-2031-0042-[0-9a-f]{8}", spec.key)
    assert spec.name == "Dengue is spreading in Bokeo and Luang Namtha"
    for language in spec.variants:
        assert segments(spec.preview(language)).parts <= 3


def test_an_update_and_a_cancel_reference_the_alert() -> None:
    update = parse_alert(sample("health_update.xml"))
    cancel = parse_alert(sample("health_cancel.xml"))
    assert update.msg_type == "Update"
    assert not update.urgent  # Expected + Moderate
    assert cancel.msg_type == "Cancel"
    assert cancel.infos == ()
    for alert in (update, cancel):
        (reference,) = alert.references
        assert (reference.sender, reference.identifier) == ("cap@moh.gov.la", "MOH-LA-2031-0042")
        assert reference.sent == datetime(2031, 3, 2, 8, 30, tzinfo=ICT)
        assert str(reference) == "cap@moh.gov.la,MOH-LA-2031-0042,2031-03-02T08:30:00+07:00"


def test_a_polygon_only_area_and_the_default_language() -> None:
    alert = parse_alert(sample("flood_polygon.xml"))
    (only,) = alert.infos
    assert only.language == "en-US"  # no <language>: CAP's default
    assert only.categories == ("Met", "Safety")
    (area,) = only.areas
    assert area.desc == "Chiang Khong riverside"
    assert area.geocodes == ()
    assert len(area.polygons) == 1
    assert only.urgent


@pytest.mark.parametrize(
    "name", ["health_multilang.xml", "health_update.xml", "flood_polygon.xml", "health_cancel.xml"]
)
def test_writing_and_reading_back_gives_the_same_alert(name: str) -> None:
    alert = parse_alert(sample(name))
    assert parse_alert(to_xml(alert)) == alert


# -- refused ---------------------------------------------------------------------------


def test_hostile_xml_is_refused_unparsed() -> None:
    for name in ("billion_laughs.xml", "external_entity.xml"):
        message = error(sample(name))
        assert "refused" in message
        assert "DTD" in message
    internal_entity = (
        b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "y">]>'
        b'<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">&x;</alert>'
    )
    assert "entity-expansion" in error(internal_entity)


def test_malformed_xml() -> None:
    message = error(b"<alert xmlns='urn:oasis:names:tc:emergency:cap:1.2'><identifier>x</alert>")
    assert message.startswith("not well-formed XML: mismatched tag: line 1")
    assert error(b"") == "the document is empty"
    assert "not well-formed" in error(b"just text")


def test_wrong_namespace_or_root() -> None:
    old = error(minimal(ns="http://www.incident.com/cap/1.0"))
    assert old.startswith("alert: namespace 'http://www.incident.com/cap/1.0' is not CAP 1.2")
    assert "CAP 1.0 is not accepted" in old
    assert "no namespace is not CAP 1.2" in error(b"<alert><identifier>x</identifier></alert>")
    assert "the root element is <feed>" in error(f'<feed xmlns="{CAP_NS}"/>'.encode())


def test_a_missing_required_element_is_named() -> None:
    no_sender = minimal(
        head="<identifier>T-1</identifier><sent>2031-01-01T00:00:00+07:00</sent>"
        "<status>Actual</status><msgType>Alert</msgType><scope>Public</scope>"
    )
    assert error(no_sender) == "alert/sender: required element is missing"
    no_event = minimal(info().replace("<event>Flood</event>", ""))
    assert error(no_event) == "alert/info[1]/event: required element is missing"
    no_desc = minimal(info().replace("<areaDesc>Bokeo</areaDesc>", ""))
    assert error(no_desc) == "alert/info[1]/area[1]/areaDesc: required element is missing"


def test_a_bad_value_is_named_with_what_is_allowed() -> None:
    message = error(minimal(info() + info(urgency="Soon", language="lo-LA")))
    assert message == (
        "alert/info[2]/urgency: 'Soon' is not one of Immediate, Expected, Future, Past, Unknown"
    )
    bad_status = minimal(head=minimal().decode().split(">", 1)[1].replace("Actual", "Real"))
    assert "alert/status: 'Real' is not one of Actual, Exercise, System, Test, Draft" in error(
        bad_status.replace(b"</alert></alert>", b"</alert>")
    )


def test_dates_need_a_zone_and_no_z() -> None:
    for bad in (
        "2031-01-01T00:00:00",
        "2031-01-01T00:00:00Z",
        "2031-01-01 00:00:00+07:00",
        "2031-02-30T00:00:00+07:00",
    ):
        data = minimal(info(extra=f"<expires>{bad}</expires>"))
        assert error(data).startswith(f"alert/info[1]/expires: {bad!r} is not a CAP date-time")


def test_order_repeats_unknown_elements_and_identifiers() -> None:
    swapped = minimal(
        head="<sender>s@example.org</sender><identifier>T-1</identifier>"
        "<sent>2031-01-01T00:00:00+07:00</sent><status>Actual</status>"
        "<msgType>Alert</msgType><scope>Public</scope>"
    )
    assert error(swapped) == "alert/identifier: must come before <sender> (CAP 1.2 element order)"
    twice = minimal(info().replace("<event>Flood</event>", "<event>Flood</event><event>x</event>"))
    assert "alert/info[1]/event: <event> may appear only once" in error(twice)
    unknown = minimal(info().replace("<headline>", "<colour>red</colour><headline>"))
    assert error(unknown).startswith("alert/info[1]/colour: not a CAP 1.2 element here")
    spaced = minimal(head=minimal().decode().split(">", 1)[1].replace("T-1", "T 1"))
    assert "alert/identifier: 'T 1' must not contain spaces" in error(
        spaced.replace(b"</alert></alert>", b"</alert>")
    )
    # another namespace's elements (a signature, an extension) are skipped
    signed = minimal(info() + '<Signature xmlns="http://www.w3.org/2000/09/xmldsig#"/>')
    assert len(parse_alert(signed).infos) == 1


def test_every_problem_is_reported_at_once() -> None:
    data = minimal(info(urgency="Soon").replace("Severe", "Bad"))
    message = error(data)
    assert message.startswith("2 problems in the CAP alert:")
    assert "alert/info[1]/urgency: 'Soon'" in message
    assert "alert/info[1]/severity: 'Bad'" in message


def test_shapes_are_coordinates() -> None:
    open_ring = "<area><areaDesc>x</areaDesc><polygon>1,1 2,2 3,3 4,4</polygon></area>"
    data = minimal(info().replace("</info>", open_ring + "</info>"))
    assert error(data).startswith("alert/info[1]/area[2]/polygon[1]: a polygon is at least 4")
    circle = "<area><areaDesc>x</areaDesc><circle>100,20 5</circle></area>"
    data = minimal(info().replace("</info>", circle + "</info>"))
    assert error(data).startswith("alert/info[1]/area[2]/circle[1]: a circle is")


def test_too_large() -> None:
    assert "larger than" in error(b" " * 1_000_001)


# -- variants and the segment budget ----------------------------------------------------


def test_a_long_text_is_cut_at_a_word_boundary_keeping_the_hotline() -> None:
    instruction = " ".join(["Boil drinking water and wash hands with soap."] * 20)
    text, cut = fit("Cholera in Bokeo", instruction, "Hotline 1166")
    assert cut
    assert segments(text).parts == 3
    headline, middle, contact = text.split("\n")
    assert (headline, contact) == ("Cholera in Bokeo", "Hotline 1166")
    assert middle.endswith("...")
    assert instruction.startswith(middle.removesuffix("..."))
    assert middle.removesuffix("...")[-1] != " "
    assert instruction[len(middle.removesuffix("..."))] == " "  # cut before a space

    not_cut = fit("Cholera in Bokeo", "Boil water.", "Hotline 1166")
    assert not_cut == ("Cholera in Bokeo\nBoil water.\nHotline 1166", False)


def test_lao_text_without_spaces_is_cut_between_letters_not_marks() -> None:
    lao = "ລ້າງມືເລື້ອຍໆດ້ວຍສະບູ" * 20
    text, cut = fit("ອະຫິວາ", lao, "ໂທ 1166")
    assert cut
    assert segments(text).parts <= 3
    kept = text.split("\n")[1].removesuffix("...")
    assert lao.startswith(kept)
    assert not unicodedata.category(lao[len(kept)]).startswith("M")
    assert kept[-1] not in "ເແໂໃໄ"


def test_cut_variants_are_warned_about_and_odd_languages_left_out() -> None:
    long = "x " * 400
    alert = Alert(
        identifier="A",
        sender="s",
        sent=datetime(2031, 1, 1, tzinfo=UTC),
        status="Actual",
        msg_type="Alert",
        scope="Public",
        infos=(
            Info(("Health",), "Flood", "Future", "Minor", "Likely", instruction=long),
            Info(("Health",), "Hochwasser", "Future", "Minor", "Likely", language="de-DE"),
            Info(("Health",), "Flood 2", "Future", "Minor", "Likely", language="en-GB"),
            Info(
                ("Health",),
                "Crue",
                "Future",
                "Minor",
                "Likely",
                language="fr",
                headline="L\u2019eau monte",
            ),
        ),
    )
    found, warnings = variants(alert)
    assert [v.language for v in found] == ["en", "fr"]
    assert found[0].cut
    assert found[1].text == "L'eau monte"  # the curly apostrophe would cost UCS-2
    assert any("alert/info[1] (en): headline, instruction and contact take" in w for w in warnings)
    assert any(
        "alert/info[2]/language: 'de-DE' is not a language riskcast sends" in w for w in warnings
    )
    assert any("alert/info[3]/language: a second <info> in 'en'" in w for w in warnings)
    assert any("typographic" in w for w in warnings)


def test_template_syntax_in_an_alert_is_text() -> None:
    text = "Use {{ water }} and {% raw %} now {# not a comment #}"
    assert render(escape_body(text), {}) == text


def test_atom_feed_links_each_alert() -> None:
    now = datetime(2031, 1, 1, tzinfo=UTC)
    feed = atom_feed(
        feed_id="http://x/cap/feed.atom",
        title="riskcast",
        self_link="http://x/cap/feed.atom",
        updated=now,
        entries=[FeedEntry("http://x/cap/1.xml", "Flood", now, "http://x/cap/1.xml", "Flood")],
    )
    assert b'<feed xmlns="http://www.w3.org/2005/Atom">' in feed
    assert b'<link rel="alternate" type="application/cap+xml" href="http://x/cap/1.xml"' in feed


def test_to_xml_writes_one_info_per_language() -> None:
    alert = parse_alert(sample("health_multilang.xml"))
    slim = Alert(
        identifier="riskcast-campaign-1",
        sender="riskcast@example.org",
        sent=alert.sent,
        status="Actual",
        msg_type="Alert",
        scope="Public",
        infos=tuple(
            Info(
                i.categories,
                i.event,
                i.urgency,
                i.severity,
                i.certainty,
                language=i.language,
                headline=i.headline,
                areas=(Area("Bokeo"),),
            )
            for i in alert.infos
        ),
    )
    xml = to_xml(slim)
    assert xml.startswith(b"<?xml version='1.0' encoding='utf-8'?>")
    assert xml.count(b"<info>") == 3
    assert parse_alert(xml) == slim
