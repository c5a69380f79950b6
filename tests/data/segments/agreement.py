"""Measure how often ``messages.segments`` agrees with Twilio's calculator on random texts.

Not a test (it needs node and the calculator); run it after changing the counter or the
``grapheme`` package's version::

    PYTHONPATH=. python tests/data/segments/agreement.py --node-modules /tmp/segcalc/node_modules

Texts of 1 to 400 units in five families: catalog windows and made-up syllables in Lao,
Thai, Khmer and Burmese; any code points of those scripts' blocks (the Lao Pali virama
included); GSM-7 with extension characters and CR LF; mixed (emoji, curly quotes,
decomposed Vietnamese, CR LF in UCS-2). It counts the texts whose encoding and segment count agree, and those whose
units in every part agree too.
"""

from __future__ import annotations

import random
import unicodedata
from collections import Counter

from make_corpus import (
    BLOCKS,
    arguments,
    calculator,
    catalog_text,
    cut,
    gsm_text,
    mixed_text,
    syllables,
    window,
)

from messages import part_sizes, segments


def any_code_points(rng: random.Random, lang: str, units: int) -> str:
    low, high = BLOCKS[lang]
    block = [chr(c) for c in range(low, high + 1) if unicodedata.category(chr(c)) != "Cn"]
    return "".join(rng.choices([*block, " "], k=units))


def random_texts(seed: int, count: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    sources = {lang: catalog_text(lang) for lang in BLOCKS}
    made_up = {lang: syllables(rng, lang) for lang in BLOCKS}
    texts = []
    for _ in range(count):
        units = rng.randint(1, 400)
        lang = rng.choice(list(BLOCKS))
        family = rng.choice(["catalog", "syllables", "code points", "gsm", "mixed"])
        if family == "catalog":
            text = window(rng, sources[lang], units)
        elif family == "syllables":
            text = cut(made_up[lang], units)
        elif family == "code points":
            text = any_code_points(rng, lang, units)
        elif family == "gsm":
            text = gsm_text(rng, units)
        else:
            text = mixed_text(rng, max(units, 2))
        texts.append((family, text))
    return texts


def cause(text: str) -> str:
    if "\u0eba" in text:
        return "Lao Pali virama (U+0EBA)"
    if any(ord(ch) > 0xFFFF or ch in "\u200d\u2764" for ch in text):
        return "emoji"
    return "other"


def main() -> None:
    args = arguments(__doc__.splitlines()[0])
    pairs = random_texts(args.seed, 20_000)
    version, answers = calculator([text for _, text in pairs], args.node_modules)
    texts, counts_differ, parts_differ, causes = (Counter[str]() for _ in range(4))
    for (family, text), answer in zip(pairs, answers, strict=True):
        texts[family] += 1
        ours = segments(text)
        if (ours.encoding, ours.parts) != (answer["encoding"], answer["segments"]):
            counts_differ[family] += 1
        if (ours.encoding, list(part_sizes(text))) != (answer["encoding"], answer["part_units"]):
            parts_differ[family] += 1
            causes[cause(text)] += 1
    print(f"sms-segments-calculator {version}, seed {args.seed}: texts whose segment count")
    print("(and whose units in every part) agree")
    for family in [*texts, "all"]:
        count = texts[family] if family != "all" else sum(texts.values())
        counts = counts_differ[family] if family != "all" else sum(counts_differ.values())
        parts = parts_differ[family] if family != "all" else sum(parts_differ.values())
        print(f"  {family:12} {count - counts:6,} ({count - parts:6,}) of {count:6,}")
    print("texts whose parts differ, by cause:", dict(causes) or "none")


if __name__ == "__main__":
    main()
