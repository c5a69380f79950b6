"""SMS encoding and segment counting, checked by hand at every boundary and against the
answers of Twilio's segment calculator pinned in tests/data/segments/corpus.json."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import gsm0338  # noqa: F401  (registers the "gsm03.38" codec)
import pytest
from hypothesis import given
from hypothesis import strategies as st

from messages import Segments, part_sizes, segments

CORPUS = json.loads(
    (Path(__file__).parents[1] / "data" / "segments" / "corpus.json").read_text(encoding="utf-8")
)
EXTENSION = "€[]{}^~|\\\f"
LAO = "ສ"
EMOJI = "😀"


@pytest.mark.parametrize(
    ("text", "encoding", "units", "parts"),
    [
        ("a" * 160, "GSM-7", 160, 1),
        ("a" * 161, "GSM-7", 161, 2),
        ("a" * 306, "GSM-7", 306, 2),
        ("a" * 307, "GSM-7", 307, 3),
        ("a" * 459, "GSM-7", 459, 3),
        ("a" * 460, "GSM-7", 460, 4),
        (LAO * 70, "UCS-2", 70, 1),
        (LAO * 71, "UCS-2", 71, 2),
        (LAO * 134, "UCS-2", 134, 2),
        (LAO * 135, "UCS-2", 135, 3),
        (LAO * 201, "UCS-2", 201, 3),
        (LAO * 202, "UCS-2", 202, 4),
        ("€" * 80, "GSM-7", 160, 1),
        ("€" * 81, "GSM-7", 162, 2),
        # One non-GSM character makes the whole text UCS-2: 160 GSM characters plus
        # an "ສ" are 161 UTF-16 units, three 67-unit parts.
        ("a" * 160 + LAO, "UCS-2", 161, 3),
        (EMOJI * 35, "UCS-2", 70, 1),
        (EMOJI * 36, "UCS-2", 72, 2),
    ],
)
def test_boundaries(text: str, encoding: str, units: int, parts: int) -> None:
    result = segments(text)
    assert (result.encoding, result.units, result.parts) == (encoding, units, parts)


@pytest.mark.parametrize("char", list(EXTENSION))
def test_extension_characters_take_two_septets(char: str) -> None:
    assert segments(char) == Segments("GSM-7", 2, 1, 1, ())
    assert segments("a" * 158 + char).parts == 1
    assert segments("a" * 159 + char).parts == 2


def test_gsm_basic_characters_take_one_septet() -> None:
    text = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABZÄÖÑÜ§¿azäöñüà"
    result = segments(text)
    assert result.encoding == "GSM-7"
    assert result.units == len(text)


def test_tables_agree_with_gsm0338_codec() -> None:
    """Every character below U+2200 (and the euro sign) is GSM-7 exactly when the
    gsm0338 codec can encode it, and costs as many septets as the codec emits."""
    for code in [*range(0x2200), 0x20AC]:
        char = chr(code)
        if char == "\x1b" or 0xD800 <= code <= 0xDFFF:
            continue  # ESC is the escape itself, not a character a text may hold
        try:
            encoded = char.encode("gsm03.38")
        except UnicodeEncodeError:
            assert segments(char).encoding == "UCS-2", repr(char)
        else:
            assert segments(char).encoding == "GSM-7", repr(char)
            assert segments(char).units == len(encoded), repr(char)


def test_escape_character_is_not_gsm() -> None:
    assert segments("\x1b").encoding == "UCS-2"


def test_emoji_is_two_units() -> None:
    result = segments(EMOJI)
    assert (result.encoding, result.units, result.characters) == ("UCS-2", 2, 1)
    assert result.non_gsm == (EMOJI,)


@pytest.mark.parametrize(
    ("text", "units"),
    [
        # ສ ະ ບ າ ຍ ດ ີ: the vowel signs are code units of their own.
        ("ສະບາຍດີ", 7),
        # ส ว ั ส ด ี ค ร ั บ: the combining vowel marks count too.
        ("สวัสดีครับ", 10),
        ("ທ່ານ", 4),  # tone mark ່ is one more unit
        ("ក្រុម", 5),  # Khmer coeng + subscript consonant
    ],
)
def test_lao_and_thai_count_code_units_not_glyphs(text: str, units: int) -> None:
    result = segments(text)
    assert result.encoding == "UCS-2"
    assert result.units == units
    assert result.characters == units
    assert result.parts == 1


def test_escape_pair_never_straddles_a_part_boundary() -> None:
    # 152 + 2 + 152 = 306 septets, which naive division puts in two parts; but the
    # euro sign would occupy septets 153-154, so it moves to part two, and the last
    # "a" spills into a third part.
    text = "a" * 152 + "€" + "a" * 152
    result = segments(text)
    assert result.units == 306
    assert result.parts == 3
    assert math.ceil(result.units / 153) == 2
    # One septet earlier the pair fits in part one: two parts.
    assert segments("a" * 151 + "€" + "a" * 152).parts == 2


def test_surrogate_pair_never_straddles_a_part_boundary() -> None:
    text = LAO * 66 + EMOJI + LAO * 66
    result = segments(text)
    assert result.units == 134
    assert result.parts == 3
    assert segments(LAO * 65 + EMOJI + LAO * 66).parts == 2


def test_non_gsm_lists_distinct_characters_in_order() -> None:
    result = segments("Call “1166” now’")
    assert result.encoding == "UCS-2"
    assert result.non_gsm == ("“", "”", "’")
    assert segments("plain text").non_gsm == ()


def test_empty_text_is_one_part_of_zero_units() -> None:
    assert segments("") == Segments("GSM-7", 0, 1, 0, ())


def test_whatsapp_has_no_segments() -> None:
    result = segments("ສະບາຍດີ" * 100, channel="whatsapp")
    assert result.encoding == "UTF-8"
    assert result.parts == 1
    assert result.units == len(("ສະບາຍດີ" * 100).encode("utf-8"))
    assert result.characters == 700
    assert result.non_gsm == ()


def test_unknown_channel() -> None:
    with pytest.raises(ValueError, match="unknown channel 'fax'"):
        segments("hi", channel="fax")


# Characters that exercise every path: GSM basic, GSM extension, BMP non-GSM with
# combining marks, astral (surrogate pairs).
_MIXED = st.text(
    st.sampled_from(["a", " ", "é", "€", "{", "\\", "ສ", "ີ", "่", "ñ", "😀", "𝐀", "“"]),
    max_size=450,
)
_ANY = st.text(st.characters(blacklist_categories=("Cs",)), max_size=300)


@given(text=st.one_of(_MIXED, _ANY), char=st.one_of(st.sampled_from("a€ສ😀"), st.characters()))
def test_appending_a_character_never_lowers_parts(text: str, char: str) -> None:
    assert segments(text + char).parts >= segments(text).parts


@given(text=st.one_of(_MIXED, _ANY))
def test_ucs2_units_are_utf16_code_units(text: str) -> None:
    result = segments(text)
    if result.encoding == "UCS-2":
        assert result.units == len(text.encode("utf-16-le")) // 2
    else:
        assert result.units == len(text.encode("gsm03.38"))
    assert result.characters == len(text)


@given(text=st.one_of(_MIXED, _ANY))
def test_parts_never_fewer_than_plain_division(text: str) -> None:
    result = segments(text)
    single, per_part = (160, 153) if result.encoding == "GSM-7" else (70, 67)
    if result.units <= single:
        assert result.parts == 1
    else:
        assert math.ceil(result.units / per_part) <= result.parts


@pytest.mark.parametrize(
    "entry",
    CORPUS["texts"],
    ids=[f"{entry['kind']}-{number}" for number, entry in enumerate(CORPUS["texts"])],
)
def test_agrees_with_twilio_calculator(entry: dict[str, Any]) -> None:
    """Lao, Thai, Khmer, Burmese, GSM-7 and mixed texts within a few units of a part
    boundary: encoding, parts and units per part as the calculator counted them."""
    text = entry["text"]
    result = segments(text)
    assert (result.encoding, result.parts) == (entry["encoding"], entry["segments"])
    assert list(part_sizes(text)) == entry["part_units"]


def test_corpus_has_texts_the_plain_division_gets_wrong() -> None:
    """The pinned answers include texts where a cluster crossing a boundary costs a part."""
    crossing = [
        entry
        for entry in CORPUS["texts"]
        if entry["encoding"] == "UCS-2"
        and entry["segments"] > math.ceil(len(entry["text"].encode("utf-16-le")) / 2 / 67)
        and len(entry["text"].encode("utf-16-le")) > 140
    ]
    assert {entry["kind"].split("-")[0] for entry in crossing} >= {"lo", "th", "km", "my"}
