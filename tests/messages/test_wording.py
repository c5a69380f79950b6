"""Stigmatising wording is flagged; kind wording passes."""

from __future__ import annotations

import pytest

from messages import WordingWarning, check_wording


@pytest.mark.parametrize(
    ("text", "phrase"),
    [
        ("Help the victims of COVID-19.", "victims"),
        ("Three suspected cases in the village.", "suspected cases"),
        ("COVID cases are rising.", "COVID cases"),
        ("There are many cases of COVID-19 here.", "cases of COVID-19"),
        ("This plague must end.", "plague"),
        ("Returnees are spreading the virus.", "spreading the virus"),
        ("Do not spread the virus.", "spread the virus"),
        ("They are infecting others.", "infecting"),
        ("The Wuhan virus is here.", "Wuhan virus"),
        ("the Chinese virus", "Chinese virus"),
        ("an Asian virus", "Asian virus"),
        ("a foreign virus", "foreign virus"),
        ("a foreigner virus", "foreigner virus"),
        ("the migrant disease", "migrant disease"),
        ("Laos virus", "Laos virus"),
        ("keep away from diseased people", "diseased"),
        ("Virus carriers must stay home.", "carriers"),
        ("a super-spreader event", "super-spreader"),
        ("ช่วยเหลือเหยื่อโควิด-19", "เหยื่อ"),
        ("ผู้ต้องสงสัยติดเชื้อ", "ผู้ต้องสงสัย"),
        ("ระวังไวรัสจีน", "ไวรัสจีน"),
        ("แรงงานต่างด้าวต้องกักตัว", "แรงงานต่างด้าว"),
        ("ຊ່ວຍເຫຼືອຜູ້ເຄາະຮ້າຍ", "ຜູ້ເຄາະຮ້າຍ"),
        ("ລະວັງໄວຣັສຈີນ", "ໄວຣັສຈີນ"),
    ],
)
def test_flagged(text: str, phrase: str) -> None:
    language = "th" if any("\u0e00" <= c <= "\u0e7f" for c in text) else "en"
    language = "lo" if any("\u0e80" <= c <= "\u0eff" for c in text) else language
    warnings = check_wording(text, language)
    assert [w.phrase for w in warnings] == [phrase]
    warning = warnings[0]
    assert text[warning.start : warning.start + len(phrase)] == phrase
    assert warning.suggestion


@pytest.mark.parametrize(
    "text",
    [
        "Treat people who have COVID-19 with kindness. Call 1166.",
        "In case of fever, stay home.",
        "Help stop the spread of the virus: wash your hands.",
        "People who may have COVID-19 can get tested for free.",
        "Ask your mobile carrier about free calls to 1166.",
        "Use only licensed recruitment agencies in Thailand.",
        "COVID-19 can affect anyone, whatever their nationality.",
        "Thai and Lao health workers are here to help.",
        "A disinfecting spray is not a cure.",
    ],
)
def test_clean_english(text: str) -> None:
    assert check_wording(text, "en") == []


def test_warning_fields() -> None:
    assert check_wording("Help the victims.", "en") == [
        WordingWarning("en", "victims", "people who have COVID-19", 9)
    ]


def test_english_terms_are_checked_in_every_language() -> None:
    warnings = check_wording("ໂຄວິດ-19 victims", "lo-LA")
    assert [(w.language, w.phrase) for w in warnings] == [("en", "victims")]


def test_case_insensitive_and_in_order() -> None:
    warnings = check_wording("VICTIMS and the Chinese Virus", "en")
    assert [w.phrase for w in warnings] == ["VICTIMS", "Chinese Virus"]


def test_unknown_language_gets_english_checks() -> None:
    assert [w.phrase for w in check_wording("victim", "xx")] == ["victim"]
    assert check_wording("เหยื่อ", "xx") == []


def test_thai_words_only_checked_for_thai() -> None:
    assert check_wording("เหยื่อ", "lo") == []
    assert [w.language for w in check_wording("เหยื่อ", "th")] == ["th"]
