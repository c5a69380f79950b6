"""Make corpus.json: texts near the SMS part boundaries, with Twilio's calculator's answers.

Usage (from the repository root, with the calculator installed outside it)::

    npm install --prefix /tmp/segcalc sms-segments-calculator@1.3.0
    python tests/data/segments/make_corpus.py --node-modules /tmp/segcalc/node_modules

The texts are Lao, Thai, Khmer and Burmese (windows of the catalog's own wording, and
made-up syllables: a letter with vowel signs and tone marks, Khmer subscripts after a
coeng, Burmese stacked consonants after a virama), plus GSM-7 and mixed texts, each cut to
a length within a few units of a part boundary (70 and 67 x 2..5 UTF-16 units; 160 and
153 x 2..3 septets). The same seed makes the same corpus.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import subprocess
import unicodedata
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
CATALOG = HERE.parents[2] / "messages" / "catalog"
CALCULATOR_JS = HERE / "calculator.js"

BLOCKS = {
    "lo": (0x0E80, 0x0EFF),
    "th": (0x0E00, 0x0E7F),
    "km": (0x1780, 0x17FF),
    "my": (0x1000, 0x109F),
}
# Marks that join the next letter to the cluster as a subscript (Khmer coeng, Burmese virama).
STACKERS = {"km": "\u17d2", "my": "\u1039"}
# The Lao Pali virama came in Unicode 12: the calculator's Unicode 10 tables do not know
# it is a mark, so the two counters part on it (README.md). It is left out of the corpus.
NEWER_THAN_CALCULATOR = frozenset("\u0eba")

UCS2_TARGETS = [*range(64, 74), *(n for k in range(2, 6) for n in range(67 * k - 4, 67 * k + 5))]
GSM_TARGETS = [
    *range(157, 164),
    *(n for k in (2, 3) for n in range(153 * k - 3, 153 * k + 4)),
]
EXTENSION = "€[]{}^~|\\"
# Emoji whose clusters Unicode 10 and 13 draw alike: single pictographs, a skin tone on a
# person, a flag, a family joined by ZWJ, a heart with its presentation selector.
EMOJI = ["😀", "👍🏽", "🇱🇦", "👩\u200d👩\u200d👧", "❤️", "🙏", "🏥"]


def _script(lang: str) -> tuple[list[str], list[str]]:
    """Letters and marks (vowel signs, tone marks) of a script's Unicode block."""
    low, high = BLOCKS[lang]
    letters: list[str] = []
    marks: list[str] = []
    for code in range(low, high + 1):
        char = chr(code)
        category = unicodedata.category(char)
        if char in NEWER_THAN_CALCULATOR or char in STACKERS.values():
            continue
        if category == "Lo":
            letters.append(char)
        elif category in {"Mn", "Mc"}:
            marks.append(char)
    return letters, marks


@cache
def catalog_text(lang: str) -> str:
    """Every catalog variant in ``lang``, variables filled with digits, one after another."""
    texts = []
    for path in sorted(CATALOG.glob("*.yaml")):
        variant = yaml.safe_load(path.read_text(encoding="utf-8"))["variants"].get(lang)
        if variant:
            texts.append(re.sub(r"\{\{.*?\}\}", "1166", variant))
    return " ".join(texts)


def syllables(rng: random.Random, lang: str) -> Iterator[str]:
    """Made-up syllables: a letter, perhaps a stacked subscript, then 0-3 marks."""
    letters, marks = _script(lang)
    while True:
        syllable = rng.choice(letters)
        if lang in STACKERS and rng.random() < 0.3:
            syllable += STACKERS[lang] + rng.choice(letters)
        syllable += "".join(rng.choices(marks, k=rng.choices([0, 1, 2, 3], [35, 35, 22, 8])[0]))
        yield syllable + (" " if rng.random() < 0.15 else "")


def cut(pieces: Iterator[str], units: int) -> str:
    """Pieces joined until ``units`` characters, the last piece cut if it runs over (so the
    text may end inside a cluster, as a truncated message does)."""
    text = ""
    while len(text) < units:
        text += next(pieces)
    return text[:units]


def window(rng: random.Random, source: str, units: int) -> str:
    """``units`` characters of ``source`` from a random letter on, wrapping round."""
    starts = [i for i, ch in enumerate(source) if unicodedata.category(ch) == "Lo"]
    start = rng.choice(starts)
    doubled = source + " " + source
    while len(doubled) < start + units:
        doubled += " " + source
    return doubled[start : start + units]


def gsm_text(rng: random.Random, units: int) -> str:
    """English catalog wording with a few extension characters and CR LF line breaks, cut
    to ``units`` septets (padded with "a" where an escape pair would run over)."""
    english = catalog_text("en")
    text, septets = "", 0
    while True:
        roll = rng.random()
        if roll < 0.04:
            piece = rng.choice(EXTENSION)
        elif roll < 0.06:
            piece = "\r\n"
        else:
            piece = english[rng.randrange(len(english))]
        cost = len(piece) + (piece in EXTENSION)
        if septets + cost > units:
            return text + "a" * (units - septets)
        text, septets = text + piece, septets + cost


def escape_at_boundary(units: int, offset: int) -> str:
    """Plain septets with one euro sign starting ``offset`` septets before ``units``."""
    before = units - offset
    return "a" * before + "€" + "b" * max(0, offset - 2)


def mixed_text(rng: random.Random, units: int) -> str:
    """English with emoji, a curly quote, decomposed Vietnamese or CR LF line breaks."""
    words = catalog_text("en").split()
    english = iter(lambda: rng.choice(words) + " ", None)
    kind = rng.choice(["emoji", "quote", "vietnamese", "crlf"])
    if kind == "emoji":
        pieces: Iterator[str] = iter(
            lambda: rng.choice(EMOJI) if rng.random() < 0.3 else next(english), None
        )
    elif kind == "quote":
        pieces = iter(lambda: next(english).replace("'", "\u2019"), None)
        return "\u201c" + cut(pieces, units - 1)
    elif kind == "vietnamese":
        nfd = unicodedata.normalize("NFD", catalog_text("vi")).split()
        pieces = iter(lambda: rng.choice(nfd) + " ", None)
    else:
        pieces = iter(lambda: next(english) + ("\r\n" if rng.random() < 0.2 else ""), None)
        return "ສ" + cut(pieces, units - 1)
    text = ""
    while len(text.encode("utf-16-le")) // 2 < units:
        text += next(pieces)
    while len(text.encode("utf-16-le")) // 2 > units:
        text = text[:-1]
    return text


def corpus(seed: int) -> list[tuple[str, str]]:
    """(kind, text) pairs: every script and source at every target length."""
    rng = random.Random(seed)
    texts: list[tuple[str, str]] = []
    for lang in BLOCKS:
        source = catalog_text(lang)
        made_up = syllables(rng, lang)
        for units in UCS2_TARGETS:
            for _ in range(2):
                texts.append((f"{lang}-catalog", window(rng, source, units)))
                texts.append((f"{lang}-syllables", cut(made_up, units)))
    for units in GSM_TARGETS:
        texts.append(("gsm", gsm_text(rng, units)))
    for units in (160, 306, 459):
        for offset in range(3):
            texts.append(("gsm-escape", escape_at_boundary(units, offset)))
    for units in UCS2_TARGETS:
        for _ in range(2):
            texts.append(("mixed", mixed_text(rng, units)))
    return texts


def calculator(texts: list[str], node_modules: Path) -> tuple[str, list[dict[str, object]]]:
    """The calculator's version and its answer for each text, from node."""
    result = subprocess.run(
        ["node", str(CALCULATOR_JS)],
        input=json.dumps(texts),
        capture_output=True,
        text=True,
        check=True,
        env={"NODE_PATH": str(node_modules), "PATH": "/usr/local/bin:/usr/bin:/bin"},
    )
    answer = json.loads(result.stdout)
    return answer["version"], answer["answers"]


def arguments(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--node-modules", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--out", type=Path, default=HERE / "corpus.json")
    return parser.parse_args()


def main() -> None:
    args = arguments(__doc__.splitlines()[0])
    pairs = corpus(args.seed)
    version, answers = calculator([text for _, text in pairs], args.node_modules)
    entries = [
        {"kind": kind, "text": text, **answer}
        for (kind, text), answer in zip(pairs, answers, strict=True)
    ]
    header = json.dumps({"calculator": f"sms-segments-calculator {version}", "seed": args.seed})
    lines = ",\n".join(json.dumps(entry, ensure_ascii=False) for entry in entries)
    # One text a line, so a diff of a remade corpus shows which answers changed.
    args.out.write_text(f'{header[:-1]}, "texts": [\n{lines}\n]}}\n', encoding="utf-8")
    print(f"{len(entries)} texts, answers from sms-segments-calculator {version} -> {args.out}")


if __name__ == "__main__":
    main()
