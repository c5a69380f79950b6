"""How a text is encoded for SMS and how many segments (billed parts) it costs.

GSM-7 fits 160 septets in one SMS and 153 per part of a concatenated one (the user
data header takes the rest); the extension-table characters ``€[]{}^~|\\`` and form
feed take two septets (escape + code). One character outside GSM 03.38 turns the
whole message into UCS-2: 70 UTF-16 code units in one SMS, 67 per part. Lao, Thai,
Khmer, Burmese and Chinese are always UCS-2, and every combining mark (tone marks,
vowel signs) is a code unit of its own.

Twilio never splits a GSM escape pair or a UTF-16 surrogate pair across two parts:
a character that would straddle a boundary moves whole to the next part. Counting
parts is therefore a greedy fill, which can cost one part more than
``ceil(units / per_part)``.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Final

from gsm0338.charset import BASIC_CHARACTER_SET, BASIC_CHARACTER_SET_EXTENSION

GSM7: Final = "GSM-7"
UCS2: Final = "UCS-2"
UTF8: Final = "UTF-8"

GSM_SINGLE: Final = 160
GSM_PART: Final = 153
UCS2_SINGLE: Final = 70
UCS2_PART: Final = 67

CHANNELS: Final = frozenset({"sms", "whatsapp"})

# The tables come from the gsm0338 package (GSM 03.38 default alphabet and its
# extension table). ESCAPE itself is left out: it introduces an extension character
# and is not something a message can contain.
_SEPTETS: Final[dict[str, int]] = {
    **{unicodedata.lookup(name): 1 for name in BASIC_CHARACTER_SET.values() if name != "ESCAPE"},
    **{unicodedata.lookup(name): 2 for name in BASIC_CHARACTER_SET_EXTENSION.values()},
}


@dataclass(frozen=True)
class Segments:
    """The cost of one message.

    ``units`` are GSM-7 septets (extension characters count two) or UTF-16 code
    units for UCS-2; for WhatsApp, which has no segments, UTF-8 bytes.
    ``non_gsm`` lists, in order of first appearance, the distinct characters that
    forced UCS-2 (a stray curly quote or emoji in an English text shows up here).
    """

    encoding: str
    units: int
    parts: int
    characters: int
    non_gsm: tuple[str, ...] = ()


def _parts(weights: list[int], single: int, per_part: int) -> int:
    """Greedy fill of ``per_part``-unit parts; a character never straddles two parts."""
    if sum(weights) <= single:
        return 1
    parts, used = 1, 0
    for weight in weights:
        if used + weight > per_part:
            parts += 1
            used = 0
        used += weight
    return parts


def segments(text: str, channel: str = "sms") -> Segments:
    """Encoding, units and parts of ``text`` sent on ``channel`` ("sms" or "whatsapp").

    An empty text costs 0 units and 1 part, as Twilio counts it (a message is never
    free, and riskcast refuses to send empty bodies anyway).
    """
    if channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r}; known: {', '.join(sorted(CHANNELS))}")
    characters = len(text)
    if channel == "whatsapp":
        return Segments(UTF8, len(text.encode("utf-8", "surrogatepass")), 1, characters)

    septets = [_SEPTETS.get(ch, 0) for ch in text]
    if 0 not in septets:
        return Segments(GSM7, sum(septets), _parts(septets, GSM_SINGLE, GSM_PART), characters)

    non_gsm = tuple(dict.fromkeys(ch for ch, w in zip(text, septets, strict=True) if w == 0))
    code_units = [2 if ord(ch) > 0xFFFF else 1 for ch in text]
    return Segments(
        UCS2,
        sum(code_units),
        _parts(code_units, UCS2_SINGLE, UCS2_PART),
        characters,
        non_gsm,
    )
