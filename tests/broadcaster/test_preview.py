"""Campaign and template previews: exact numbers for a small mixed audience, and warnings."""

from __future__ import annotations

import re

import pytest
from sqlalchemy.orm import Session

from broadcaster.campaigns import service as campaigns
from broadcaster.campaigns.preview import (
    CampaignPreview,
    LanguagePreview,
    preview_campaign,
    preview_template,
)
from broadcaster.config import ConfigError, load_settings
from broadcaster.contacts import service as contacts
from messages import segments
from tests import factories

PRICES = {"LA": 0.045, "TH": 0.03, "default": 0.05}

LONG_LAO = "ມີການກວດ COVID-19 ຟຣີ ຢູ່ທຸກໂຮງໝໍເມືອງ. ຖ້າມີໄຂ້ ຫຼື ໄອ ໃຫ້ຢູ່ເຮືອນ ແລະ ໂທ {{ hotline }} ເພື່ອຖາມບ່ອນກວດ."
VARIANTS = {
    "en": "Free COVID-19 testing is available. Call {{ hotline }}.",
    "lo": LONG_LAO,
    "th": "มีบริการตรวจโควิด-19 ฟรี โทร {{ hotline }}",
}
MIXED: dict[str, object] = {
    "key": "mixed",
    "name": "Mixed",
    "default_language": "en",
    "variables": {"hotline": "1166"},
    "variants": VARIANTS,
}


def _by_language(preview: CampaignPreview) -> dict[str, LanguagePreview]:
    return {row.language: row for row in preview.languages}


def _mixed_audience(session: Session) -> tuple[int, dict[str, int]]:
    factories.community(session, "laos", language="lo", country="LA", kind="country")
    factories.community(session, "bokeo", parent="laos", kind="province")
    factories.community(session, "worksite", language="th", country="TH")
    factories.community(session, "elsewhere", language="lo")
    n = iter(range(100, 200))
    # Lao speakers on Lao numbers, one in a sub-community
    factories.contact(
        session, factories.lao_number(next(n)), community_slugs=("laos",), language="lo"
    )
    factories.contact(
        session, factories.lao_number(next(n)), community_slugs=("bokeo",), language="lo"
    )
    # no language on record: the community's (lo), counted as a fallback
    factories.contact(session, factories.lao_number(next(n)), community_slugs=("bokeo",))
    # English speaker on a Lao number
    factories.contact(
        session, factories.lao_number(next(n)), community_slugs=("laos",), language="en"
    )
    # Thai speakers on Thai numbers
    factories.contact(
        session, factories.thai_number(next(n)), community_slugs=("worksite",), language="th"
    )
    factories.contact(
        session, factories.thai_number(next(n)), community_slugs=("worksite",), language="th"
    )
    # Khmer speaker at the Thai worksite: no km variant, falls back to the community's th
    factories.contact(
        session, factories.thai_number(next(n)), community_slugs=("worksite",), language="km"
    )
    # Chinese speaker in Laos on a Thai number: no zh variant, falls back to lo
    factories.contact(
        session, factories.thai_number(next(n)), community_slugs=("laos",), language="zh"
    )
    # not counted: opted out, and outside the audience
    gone = factories.contact(
        session, factories.lao_number(next(n)), community_slugs=("laos",), language="lo"
    )
    contacts.opt_out(session, gone, source="keyword")
    factories.contact(
        session, factories.lao_number(next(n)), community_slugs=("elsewhere",), language="lo"
    )
    key = factories.template(session, MIXED)
    camp = factories.campaign(session, ["laos", "worksite"], key=key, variables={"hotline": "166"})
    texts = {lang: body.replace("{{ hotline }}", "166") for lang, body in VARIANTS.items()}
    return camp.id, {lang: segments(text).parts for lang, text in texts.items()}


def test_numbers_for_a_mixed_audience(session: Session) -> None:
    campaign_id, parts = _mixed_audience(session)
    assert parts == {"en": 1, "lo": 2, "th": 1}  # the fixture itself is what we think
    preview = preview_campaign(session, campaign_id, prices=PRICES)
    rows = _by_language(preview)
    assert list(rows) == ["en", "lo", "th"]  # default language first

    en, lo, th = rows["en"], rows["lo"], rows["th"]
    assert en.text == "Free COVID-19 testing is available. Call 166."
    assert (en.encoding, en.characters, en.units, en.segments) == ("GSM-7", 45, 45, 1)
    assert (en.recipients, en.fell_back, en.countries) == (1, 0, {"LA": 1})
    assert en.is_default

    assert lo.text.endswith("ໂທ 166 ເພື່ອຖາມບ່ອນກວດ.")
    assert (lo.encoding, lo.segments) == ("UCS-2", 2)
    assert lo.units == lo.characters == len(lo.text) > 70
    assert lo.recipients == 4  # lo, lo, no language, zh
    assert lo.fell_back == 2
    assert lo.fell_back_from == {"unset": 1, "zh": 1}
    assert lo.countries == {"LA": 3, "TH": 1}
    assert lo.total_segments == 8

    assert (th.encoding, th.segments) == ("UCS-2", 1)
    assert th.recipients == 3  # th, th, km
    assert (th.fell_back, th.fell_back_from) == (1, {"km": 1})
    assert th.countries == {"TH": 3}
    assert th.total_segments == 3

    assert preview.recipients == 8
    assert preview.total_segments == 1 + 8 + 3
    # Lao numbers: 1 en segment + 3 lo x 2 = 7 at 0.045; Thai numbers: 1 lo x 2 + 3 th = 5 at 0.03
    assert en.cost == pytest.approx(0.045)
    assert lo.cost == pytest.approx(6 * 0.045 + 2 * 0.03)
    assert th.cost == pytest.approx(3 * 0.03)
    countries = {c.country: c for c in preview.countries}
    assert (countries["LA"].recipients, countries["LA"].segments) == (4, 7)
    assert (countries["TH"].recipients, countries["TH"].segments) == (4, 5)
    assert countries["LA"].price == 0.045 and countries["TH"].price == 0.03
    assert preview.cost == pytest.approx(7 * 0.045 + 5 * 0.03)
    assert preview.unpriced_segments == 0

    kinds = sorted(w.kind for w in preview.warnings)
    assert kinds == ["no_variant", "no_variant"]
    missing = {w.language: w.message for w in preview.warnings}
    assert "speak km (Khmer)" in missing["km"] and "th (1)" in missing["km"]
    assert "speak zh (Chinese)" in missing["zh"] and "lo (1)" in missing["zh"]


def test_thai_numbers_are_shown_and_costed_with_thailands_hotline(session: Session) -> None:
    campaign_id, _ = _mixed_audience(session)
    camp = campaigns.get(session, campaign_id)
    camp.variables = {"hotline": "1166"}  # the template's own: the official set none
    session.flush()
    long_number = "1422 (free, 24 hours a day, from any Thai phone)"
    preview = preview_campaign(
        session, campaign_id, prices=PRICES, currency="LAK", hotlines={"TH": long_number}
    )
    assert preview.currency == "LAK"
    en, lo, th = (_by_language(preview)[lang] for lang in ("en", "lo", "th"))
    assert th.text == "มีบริการตรวจโควิด-19 ฟรี โทร 1166"  # the campaign's own, shown as sent
    assert (en.hotlines, lo.hotlines, th.hotlines) == ({}, {"TH": long_number}, {"TH": long_number})
    thai_th = segments(VARIANTS["th"].replace("{{ hotline }}", long_number)).parts
    thai_lo = segments(LONG_LAO.replace("{{ hotline }}", long_number)).parts
    assert (th.segments, thai_th) == (1, 2)  # the longer number costs a segment more
    assert th.total_segments == 3 * thai_th
    assert lo.total_segments == 3 * lo.segments + 1 * thai_lo
    countries = {c.country: c for c in preview.countries}
    assert countries["TH"].segments == 3 * thai_th + thai_lo
    assert preview.cost == pytest.approx(7 * 0.045 + (3 * thai_th + thai_lo) * 0.03)

    # a hotline the official typed is everyone's
    camp.variables = {"hotline": "+856 21 1166"}
    session.flush()
    typed = preview_campaign(session, campaign_id, prices=PRICES, hotlines={"TH": long_number})
    assert all(row.hotlines == {} for row in typed.languages)
    assert typed.currency == "USD"  # RISKCAST_CURRENCY's default


def test_default_price_and_missing_prices(session: Session) -> None:
    campaign_id, _ = _mixed_audience(session)
    one_price = preview_campaign(session, campaign_id, prices={"default": 0.1})
    assert one_price.cost == pytest.approx(12 * 0.1)
    only_laos = preview_campaign(session, campaign_id, prices={"LA": 0.045})
    assert only_laos.cost == pytest.approx(7 * 0.045)
    assert only_laos.unpriced_segments == 5
    (warning,) = [w for w in only_laos.warnings if w.kind == "no_price"]
    assert "TH (4 recipients)" in warning.message


def test_audience_filters_are_fan_outs(session: Session) -> None:
    campaign_id, _ = _mixed_audience(session)
    camp = campaigns.get(session, campaign_id)
    camp.audience = {**camp.audience, "countries": ["TH"]}
    session.flush()
    preview = preview_campaign(session, campaign_id, prices=PRICES)
    assert {r.language: r.recipients for r in preview.languages} == {"en": 0, "lo": 1, "th": 3}
    assert preview.cost == pytest.approx(5 * 0.03)


def test_contact_variables_use_the_samples(session: Session) -> None:
    factories.community(session, "village", language="en")
    factories.contact(session, community_slugs=("village",), name="Noy", language="en")
    key = factories.template(
        session,
        {
            "key": "greet",
            "name": "Greet",
            "default_language": "en",
            "variables": {"hotline": "1166"},
            "variants": {"en": "Hello {{ name }} of {{ community }}, call {{ hotline }}."},
        },
    )
    camp = factories.campaign(session, ["village"], key=key)
    (row,) = preview_campaign(session, camp.id, prices=PRICES).languages
    assert row.text == "Hello Somchai Phommachanh of Savannakhet returnees, call 1166."


def test_one_curly_quote_turns_english_into_ucs2(session: Session) -> None:
    factories.community(session, "village", language="en")
    factories.contact(session, community_slugs=("village",), language="en")
    text = "Don’t wait: if you have a fever or a cough, stay home and call {{ hotline }}. "
    key = factories.template(
        session,
        {
            "key": "quote",
            "name": "Quote",
            "default_language": "en",
            "variables": {"hotline": "1166"},
            "variants": {"en": text + "Testing is free for everyone, whatever their papers."},
        },
    )
    camp = factories.campaign(session, ["village"], key=key)
    preview = preview_campaign(session, camp.id, prices=PRICES)
    (row,) = preview.languages
    assert row.encoding == "UCS-2" and row.non_gsm == ("’",)
    assert row.segments == 2  # 130 characters: 2 parts in UCS-2, 1 in GSM-7
    (warning,) = [w for w in preview.warnings if w.kind == "ucs2_character"]
    assert warning.language == "en"
    assert "'’' (U+2019 RIGHT SINGLE QUOTATION MARK)" in warning.message
    assert "2 segment(s)" in warning.message and "instead of 1 in GSM-7" in warning.message
    assert "'’' -> \"'\"" in warning.message


def test_lao_and_vietnamese_are_not_stray_characters(session: Session) -> None:
    factories.template(
        session,
        {
            "key": "native",
            "name": "Native",
            "default_language": "en",
            "variants": {
                "en": "Wash your hands often.",
                "lo": "ລ້າງມືເລື້ອຍໆ.",
                "vi": "Hãy rửa tay thường xuyên.",
                "fr": "Lavez-vous les mains souvent, s’il vous plaît.",
                "th": "ล้างมือบ่อยๆ “ทุกวัน”",
            },
        },
    )
    preview = preview_template(session, "native")
    stray = {w.language for w in preview.warnings if w.kind == "ucs2_character"}
    assert stray == {"fr"}  # one curly apostrophe in French; Lao, Thai, Vietnamese are UCS-2 anyway


def test_wording_and_long_variants_warn(session: Session) -> None:
    factories.template(
        session,
        {
            "key": "bad-words",
            "name": "Bad words",
            "default_language": "en",
            "budget": 5,
            "variables": {"place": "the district"},
            "variants": {
                "en": "Victims of the virus in {{ place }} should call 1166.",
                "th": "ขอให้ทุกคนล้างมือบ่อยๆ และสวมหน้ากากอนามัยเมื่ออยู่ในที่ชุมชน " * 4,
            },
        },
    )
    preview = preview_template(session, "bad-words")
    by_kind = {(w.kind, w.language): w.message for w in preview.warnings}
    assert "'Victims' may stigmatise" in by_kind["wording", "en"]
    th = next(v for v in preview.variants if v.language == "th")
    assert th.segments > 3
    assert f"th: {th.segments} SMS segments" in by_kind["long", "th"]


def test_template_preview_shows_each_variant_with_samples(session: Session) -> None:
    key = factories.template(session)
    preview = preview_template(session, key)
    assert [v.language for v in preview.variants] == ["en", "lo", "th"]
    assert preview.variants[0].text == "Free COVID-19 testing is available. Call 1166."
    assert preview.variants[0].is_default
    assert [(v.encoding, v.segments) for v in preview.variants] == [
        ("GSM-7", 1),
        ("UCS-2", 1),
        ("UCS-2", 1),
    ]
    assert preview.warnings == []


def test_nobody_in_the_audience(session: Session) -> None:
    factories.community(session, "empty")
    camp = factories.campaign(session, ["empty"])
    preview = preview_campaign(session, camp.id, prices=PRICES)
    assert preview.recipients == 0 and preview.cost == 0
    assert [w.kind for w in preview.warnings] == ["no_recipients"]


def test_segment_prices_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RISKCAST_SEGMENT_PRICES", '{"la": 0.045, "TH": 0.03, "Default": 0.05}')
    assert load_settings().segment_prices == {"LA": 0.045, "TH": 0.03, "default": 0.05}
    monkeypatch.delenv("RISKCAST_SEGMENT_PRICES")
    assert load_settings().segment_prices == {}
    for bad, reason in [
        ("{LA: 1}", "must be JSON"),
        ('{"XX": 1}', "'XX' is not a two-letter country code"),
        ('{"LA": -1}', "must be zero or more"),
        ('{"LA": "cheap"}', "must be a number"),
        ("[1, 2]", "must be a JSON object"),
    ]:
        monkeypatch.setenv("RISKCAST_SEGMENT_PRICES", bad)
        with pytest.raises(ConfigError, match=f"RISKCAST_SEGMENT_PRICES: .*{re.escape(reason)}"):
            load_settings()
