"""Fitting an alert's text into a budget of SMS segments: headline, instruction and
contact on their own lines, cut at a word boundary when they do not fit."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from typing import Final

from messages.encoding import segments

BUDGET: Final = 3
"""SMS segments an imported variant may cost."""
ELLIPSIS: Final = "..."  # GSM-7, unlike the one-character ellipsis
# Thai and Lao vowels written before the consonant they follow in speech: a cut right after
# one would leave it dangling.
_LEADING_VOWELS: Final = frozenset("เแโใไເແໂໃໄ")


def join_lines(*parts: str) -> str:
    """The non-empty parts, one a line."""
    return "\n".join(p for p in parts if p)


def _boundary(text: str, n: int) -> int:
    """Where to cut ``text`` at or before ``n``: the last space if that keeps at least half,
    else between two letters (never before a combining mark or after a leading vowel)."""
    space = max((m.start() for m in re.finditer(r"\s", text[: n + 1])), default=-1)
    if space >= n // 2 and space > 0:
        return space
    while n > 0 and (
        unicodedata.category(text[n]).startswith("M") or text[n - 1] in _LEADING_VOWELS
    ):
        n -= 1
    return n


def _cut(text: str, fits: Callable[[str], bool]) -> str:
    """The longest start of ``text``, cut at a word boundary and ending in "...", for which
    ``fits`` holds; "" when not even one word does."""
    low, high, best = 1, len(text), 0
    while low <= high:
        middle = (low + high) // 2
        if fits(text[:middle].rstrip() + ELLIPSIS):
            best, low = middle, middle + 1
        else:
            high = middle - 1
    if best == 0:
        return ""
    n = _boundary(text, best) if best < len(text) else best
    kept = text[:n].rstrip()
    return kept + ELLIPSIS if kept else ""


def fit(headline: str, instruction: str, contact: str, *, budget: int = BUDGET) -> tuple[str, bool]:
    """Headline, instruction and contact on their own lines, within ``budget`` SMS segments;
    and whether something was cut. The instruction is cut first, then the headline; the
    contact (the hotline) is kept whole whenever it fits at all."""

    def fits(text: str) -> bool:
        return segments(text).parts <= budget

    whole = join_lines(headline, instruction, contact)
    if fits(whole):
        return whole, False
    if instruction:
        kept = _cut(instruction, lambda s: fits(join_lines(headline, s, contact)))
        if kept:
            return join_lines(headline, kept, contact), True
    if headline:
        kept = _cut(headline, lambda s: fits(join_lines(s, contact)))
        if kept:
            return join_lines(kept, contact), True
    return _cut(join_lines(headline, contact), fits) or _cut(whole, fits), True
