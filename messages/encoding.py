"""How a text is encoded for SMS and how many segments (billed parts) it costs.

GSM-7 fits 160 septets in one SMS and 153 per part of a concatenated one (the user
data header takes the rest); the extension-table characters ``€[]{}^~|\\`` and form
feed take two septets (escape + code). One character outside GSM 03.38 turns the
whole message into UCS-2: 70 UTF-16 code units in one SMS, 67 per part. Lao, Thai,
Khmer, Burmese and Chinese are always UCS-2, and every combining mark (tone marks,
vowel signs) is a code unit of its own.

Parts are counted as Twilio's segment calculator (``sms-segments-calculator``) counts
them: a greedy fill in which nothing that would straddle a boundary is split, and moves
whole to the next part instead. In GSM-7 that is the escape pair of an extension
character; in UCS-2 it is a grapheme cluster, a consonant with its vowel signs and tone
marks (or an emoji with its modifiers), found by the ``grapheme`` package. A carriage
return and line feed are two characters, as the calculator has them. So a text can cost
more than ``ceil(units / per_part)`` parts: 201 units of Lao are 4 parts, not 3, when a
cluster would cross unit 67 or 134.

A cluster longer than a whole part (a letter under dozens of stacked marks) cannot move
whole anywhere; it is split between code points, never inside a surrogate pair.

The calculator's cluster rules are Unicode 10's and the ``grapheme`` package's Unicode
13's; they part only on what came after Unicode 10: the Lao Pali virama (U+0EBA) and
emoji sequences built by the newer rules (a skin tone after a letter, for one).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

import grapheme
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
_GSM_SINGLE_SEPTET: Final = frozenset(ch for ch, septets in _SEPTETS.items() if septets == 1)


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


# Characters that word processors and phones put in place of plain GSM ones; each alone
# turns a whole message into UCS-2, more than doubling its cost.
GSM_LOOKALIKES: Final[dict[str, str]] = {
    "\u2018": "'",  # left single quotation mark
    "\u2019": "'",  # right single quotation mark (the curly apostrophe)
    "\u201a": "'",
    "\u201b": "'",
    "\u2032": "'",
    "\u00b4": "'",
    "`": "'",
    "\u201c": '"',
    "\u201d": '"',
    "\u201e": '"',
    "\u00ab": '"',
    "\u00bb": '"',
    "\u2013": "-",  # en dash
    "\u2014": "-",  # em dash
    "\u2012": "-",
    "\u2010": "-",
    "\u2011": "-",
    "\u2212": "-",
    "\u2026": "...",
    "\u00a0": " ",  # no-break space
    "\u2007": " ",
    "\u202f": " ",
    "\u2009": " ",
    "\u200b": "",  # zero-width space
    "\ufeff": "",
    "\u2022": "-",
    "\u00b7": "-",
}


def gsm_lookalike(char: str) -> str | None:
    """The plain GSM-7 stand-in for a typographic ``char`` (curly quote, dash, ellipsis,
    no-break space), or None when there is none."""
    return GSM_LOOKALIKES.get(char)


def _split(weights: list[int], single: int, per_part: int) -> list[int]:
    """Units in each part: greedy fill of ``per_part``-unit parts, where a weighted item
    (a character, or a cluster of them) never straddles two parts."""
    total = sum(weights)
    if total <= single:
        return [total]
    sizes = [0]
    for weight in weights:
        if sizes[-1] + weight > per_part:
            sizes.append(0)
        sizes[-1] += weight
    return sizes


def _even_parts(units: int, single: int, per_part: int) -> int:
    """What :func:`_split` counts when every item is one unit: nothing can straddle a
    boundary, so the parts are full but the last."""
    return 1 if units <= single else -(-units // per_part)


def _utf16_units(text: str) -> int:
    return len(text) + sum(ord(ch) > 0xFFFF for ch in text)


def _clusters(text: str) -> Iterator[str]:
    """The grapheme clusters of ``text``, with CR LF as two, as the calculator has it."""
    cluster: str
    for cluster in grapheme.graphemes(text):
        if cluster == "\r\n":
            yield from cluster
        else:
            yield cluster


def _ucs2_weights(text: str) -> Iterator[int]:
    """UTF-16 units of each item that must not be split: a cluster, or each code point
    of a cluster too long for any part."""
    for cluster in _clusters(text):
        units = _utf16_units(cluster)
        if units <= UCS2_PART:
            yield units
        else:
            yield from (_utf16_units(ch) for ch in cluster)


@lru_cache(maxsize=1024)
def _ucs2_part_sizes(text: str) -> tuple[int, ...]:
    """UTF-16 units in each UCS-2 part of ``text``. Cached: a campaign renders the same
    long body for many recipients, and finding clusters costs about 1 µs a character."""
    return tuple(_split(list(_ucs2_weights(text)), UCS2_SINGLE, UCS2_PART))


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

    # Per distinct character first (set and dict operations run in C): most texts are all
    # one-septet GSM or all BMP UCS-2, where every character is one unit.
    distinct = set(text)
    if distinct <= _GSM_SINGLE_SEPTET:
        return Segments(GSM7, characters, _even_parts(characters, GSM_SINGLE, GSM_PART), characters)
    outside = distinct.difference(_SEPTETS)
    if not outside:
        septets = [_SEPTETS[ch] for ch in text]
        return Segments(GSM7, sum(septets), len(_split(septets, GSM_SINGLE, GSM_PART)), characters)

    non_gsm = tuple(sorted(outside, key=text.index))
    units = characters if max(distinct) <= "\uffff" else _utf16_units(text)
    parts = 1 if units <= UCS2_SINGLE else len(_ucs2_part_sizes(text))
    return Segments(UCS2, units, parts, characters, non_gsm)


def part_sizes(text: str, channel: str = "sms") -> tuple[int, ...]:
    """The units (septets or UTF-16 code units) in each SMS part of ``text``, as
    :func:`segments` splits it; one entry (UTF-8 bytes) for WhatsApp."""
    cost = segments(text, channel)
    if cost.encoding == UTF8:
        return (cost.units,)
    if cost.encoding == GSM7:
        return tuple(_split([_SEPTETS[ch] for ch in text], GSM_SINGLE, GSM_PART))
    return (cost.units,) if cost.parts == 1 else _ucs2_part_sizes(text)
