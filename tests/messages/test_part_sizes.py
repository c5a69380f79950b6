"""Per-part sizes agree with the segment count; typographic look-alikes have GSM stand-ins."""

from __future__ import annotations

from itertools import accumulate

import grapheme
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from messages import GSM_LOOKALIKES, gsm_lookalike, part_sizes, segments

# ເ and ສ are Lao letters, ີ a vowel sign and ່ a tone mark (both join the letter before),
# ្ the Khmer coeng that joins a subscript consonant; \r\n is two characters.
PIECES = st.sampled_from([*"ab €[ສເ😀’\u0ec8\u0eb5\r\n", "ក\u17d2", "👍🏽"])
TEXTS = st.lists(PIECES, max_size=300).map("".join)
LONG_TEXTS = st.lists(PIECES, min_size=72, max_size=400).map("".join)


@given(TEXTS)
def test_part_sizes_agree_with_segments(text: str) -> None:
    cost = segments(text)
    sizes = part_sizes(text)
    assert len(sizes) == cost.parts
    assert sum(sizes) == cost.units
    per_part = 153 if cost.encoding == "GSM-7" else 67
    if cost.parts > 1:
        assert all(size <= per_part for size in sizes)


def _unsplittable(text: str, encoding: str) -> list[int]:
    """Units of each piece no part boundary may cut: characters in GSM-7 (an escape pair
    is two septets); grapheme clusters in UCS-2, CR LF as two characters."""
    if encoding == "GSM-7":
        return [2 if ch in "€[]{}^~|\\\f" else 1 for ch in text]
    clusters = [
        piece
        for cluster in grapheme.graphemes(text)
        for piece in (cluster if cluster == "\r\n" else [cluster])
    ]
    return [len(cluster.encode("utf-16-le")) // 2 for cluster in clusters]


@given(LONG_TEXTS)
def test_parts_are_a_greedy_fill_of_whole_clusters(text: str) -> None:
    """Each boundary falls between two clusters, and each part but the last is as full as
    the cluster that opens the next part allows."""
    cost = segments(text)
    assume(cost.parts > 1)
    per_part = 153 if cost.encoding == "GSM-7" else 67
    pieces = _unsplittable(text, cost.encoding)
    sizes = part_sizes(text)
    starts = list(accumulate(pieces, initial=0))
    for end, size in zip(accumulate(sizes[:-1]), sizes, strict=False):
        assert end in starts
        assert size + pieces[starts.index(end)] > per_part


@pytest.mark.parametrize(
    ("text", "sizes"),
    [
        # ກີ່ (letter, vowel sign, tone mark) would take units 67-69: it opens part two,
        # and 201 units cost 4 parts, not 3.
        ("ສ" * 66 + "ກີ່" + "ສ" * 132, (66, 67, 67, 1)),
        # Two units earlier it fits: 3 full parts.
        ("ສ" * 64 + "ກີ່" + "ສ" * 134, (67, 67, 67)),
        ("ก" * 65 + "ที่" + "ก" * 10, (65, 13)),  # Thai ท with vowel and tone mark
        # Khmer: ក with its coeng is one cluster, the subscript រ with its vowel the next.
        ("ក" * 66 + "ក្រុម" + "ក" * 10, (66, 15)),
        ("က" * 66 + "ကြ" + "က" * 10, (66, 12)),  # Burmese က with its medial ြ
        ("ສ" * 66 + "👍🏽" + "ສ" * 10, (66, 14)),  # an emoji with its skin tone
        ("ສ" * 66 + "\r\n" + "ສ" * 10, (67, 11)),  # CR LF are two characters
    ],
)
def test_a_cluster_moves_whole_to_the_next_part(text: str, sizes: tuple[int, ...]) -> None:
    assert part_sizes(text) == sizes
    assert segments(text).parts == len(sizes)


def test_a_cluster_longer_than_a_part_is_split_between_code_points() -> None:
    # ກ under 80 tone marks is one 81-unit cluster: no part can hold it whole.
    assert part_sizes("ສ" * 5 + "ກ" + "\u0ec8" * 80) == (67, 19)


def test_boundaries() -> None:
    assert part_sizes("a" * 160) == (160,)
    assert part_sizes("a" * 161) == (153, 8)
    assert part_sizes("a" * 152 + "€" + "a" * 10) == (152, 12)  # the escape pair moves whole
    assert part_sizes("ສ" * 135) == (67, 67, 1)
    assert part_sizes("a" * 66 + "😀" + "a" * 10) == (66, 12)  # a surrogate pair moves whole
    assert part_sizes("ສະບາຍດີ", "whatsapp") == (21,)


def test_lookalikes_make_gsm7() -> None:
    for char, stand_in in GSM_LOOKALIKES.items():
        assert segments(char).encoding == "UCS-2", repr(char)
        assert stand_in == "" or segments(stand_in).encoding == "GSM-7", repr(char)
    assert gsm_lookalike("’") == "'"
    assert gsm_lookalike("ສ") is None
