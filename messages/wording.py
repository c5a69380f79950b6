"""Wording that stigmatises, after the WHO/UNICEF/IFRC guide on COVID-19 social stigma.

Say "people who have COVID-19", not "cases" or "victims"; say people "acquire" or
"contract" the disease rather than "spread" or "transmit" it (which implies blame);
never tie the disease to a place, a nationality or an ethnicity. These lists only
warn: an official decides.

The English list runs on every variant (English terms turn up in any language);
each other language adds its own list. The Thai and Lao lists are a start and
await review by native speakers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from messages.languages import LanguageError, normalize_language

_PEOPLE: Final = "people who have COVID-19"
_ACQUIRE: Final = 'say people "acquire" or "contract" COVID-19; do not imply blame'
_NO_PLACE: Final = "COVID-19 (never tie the disease to a place, nationality or ethnicity)"

_PLACES: Final = (
    r"wuhan|china|chinese|asian?|foreign(?:ers?)?|thai(?:land)?|lao|laos|laotian|burmese"
    r"|myanmar|cambodian?|khmer|vietnamese|indian|african|european|migrants?|immigrants?"
)
_DISEASE: Final = r"virus|flu|disease|covid(?:-19)?|coronavirus|pandemic|plague"

WORD_LISTS: Final[dict[str, list[tuple[str, str]]]] = {
    "en": [
        (r"victims?", _PEOPLE),
        (
            r"(?:suspected|confirmed|positive|new|imported|active|covid(?:-19)?|coronavirus)"
            r"\s+cases?",
            f"{_PEOPLE} (or: people who may have COVID-19)",
        ),
        (r"cases\s+of\s+(?:covid(?:-19)?|coronavirus|the\s+virus)", _PEOPLE),
        (r"plague[sd]?", "COVID-19 / the outbreak"),
        (
            r"(?:spread|spreads|spreading|transmit|transmits|transmitting)\s+"
            r"(?:the\s+)?(?:virus|covid(?:-19)?|coronavirus|disease|infection)",
            _ACQUIRE,
        ),
        (r"infecting|infects?\s+others", _ACQUIRE),
        (r"super[\s-]?spreaders?", _ACQUIRE),
        (rf"(?:{_PLACES})(?:'s)?\s+(?:{_DISEASE})", _NO_PLACE),
        (r"kung[\s-]?flu", _NO_PLACE),
        (r"diseased", _PEOPLE),
        # A mobile or network carrier is a telephone company, not a person.
        (r"(?<!mobile )(?<!phone )(?<!network )carriers?", _PEOPLE),
    ],
    # Native review pending for the Thai list.
    "th": [
        ("เหยื่อ", "ผู้ที่ป่วยเป็นโควิด-19"),  # victim
        ("ผู้ต้องสงสัย", "ผู้ที่อาจติดเชื้อโควิด-19"),  # suspect (criminal sense)
        ("ไวรัสจีน", "โควิด-19"),  # "Chinese virus"
        ("ไวรัสอู่ฮั่น", "โควิด-19"),  # "Wuhan virus"
        ("ผู้แพร่เชื้อ", "ผู้ที่ติดเชื้อ"),  # spreader
        ("ซูเปอร์สเปรดเดอร์", "ผู้ที่ติดเชื้อ"),  # super-spreader
        ("พาหะ", "ผู้ที่ติดเชื้อ"),  # carrier
        ("แรงงานต่างด้าว", "แรงงานข้ามชาติ"),  # "alien workers" -> migrant workers
    ],
    # Native review pending for the Lao list.
    "lo": [
        ("ຜູ້ເຄາະຮ້າຍ", "ຜູ້ທີ່ເປັນໂຄວິດ-19"),  # victim
        ("ຜູ້ຕ້ອງສົງໄສ", "ຜູ້ທີ່ອາດຕິດເຊື້ອ"),  # suspect (criminal sense)
        ("ໄວຣັສຈີນ", "ໂຄວິດ-19"),  # "Chinese virus"
        ("ໄວຣັດຈີນ", "ໂຄວິດ-19"),  # "Chinese virus", other spelling
        ("ຜູ້ແຜ່ເຊື້ອ", "ຜູ້ທີ່ຕິດເຊື້ອ"),  # spreader
    ],
}

_COMPILED: Final[dict[str, list[tuple[re.Pattern[str], str]]]] = {
    language: [
        (
            # Word boundaries only where words are separated by spaces; Thai and Lao
            # are written without spaces between words.
            re.compile(rf"\b(?:{pattern})\b" if pattern.isascii() else pattern, re.IGNORECASE),
            suggestion,
        )
        for pattern, suggestion in entries
    ]
    for language, entries in WORD_LISTS.items()
}


@dataclass(frozen=True)
class WordingWarning:
    """``phrase`` at ``start`` in the text may stigmatise; ``suggestion`` says what
    to say instead."""

    language: str
    phrase: str
    suggestion: str
    start: int


def check_wording(text: str, language: str) -> list[WordingWarning]:
    """Warnings for stigmatising wording in ``text`` (a ``language`` variant), in
    order of position. An unknown language gets the English checks only."""
    try:
        code = normalize_language(language)
    except LanguageError:
        code = "en"
    lists = ["en"] if code == "en" else ["en", code]
    warnings = [
        WordingWarning(lang, match.group(0), suggestion, match.start())
        for lang in lists
        for pattern, suggestion in _COMPILED.get(lang, [])
        for match in pattern.finditer(text)
    ]
    return sorted(warnings, key=lambda w: (w.start, -len(w.phrase)))
