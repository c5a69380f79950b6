"""Per-part sizes agree with the segment count; typographic look-alikes have GSM stand-ins."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from messages import GSM_LOOKALIKES, gsm_lookalike, part_sizes, segments

ALPHABET = st.sampled_from(list("ab €[ສເ😀’\u0ec8"))


@given(st.text(ALPHABET, max_size=400))
def test_part_sizes_agree_with_segments(text: str) -> None:
    cost = segments(text)
    sizes = part_sizes(text)
    assert len(sizes) == cost.parts
    assert sum(sizes) == cost.units
    per_part = 153 if cost.encoding == "GSM-7" else 67
    if cost.parts > 1:
        assert all(size <= per_part for size in sizes)


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
