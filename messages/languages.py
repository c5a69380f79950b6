"""The languages riskcast knows, by BCP-47 primary language subtag."""

from __future__ import annotations

import re
from typing import Final

LANGUAGES: Final[dict[str, str]] = {
    "lo": "Lao",
    "th": "Thai",
    "en": "English",
    "km": "Khmer",
    "vi": "Vietnamese",
    "my": "Burmese",
    "zh": "Chinese",
    "ms": "Malay",
    "id": "Indonesian",
    "tl": "Tagalog",
    "ne": "Nepali",
    "hi": "Hindi",
    "bn": "Bengali",
    "fr": "French",
}

# Codes that spreadsheets and phones also produce for the same languages: ISO 639-2/3
# three-letter codes, Filipino, and the deprecated "in" for Indonesian.
_ALIASES: Final[dict[str, str]] = {
    "lao": "lo",
    "tha": "th",
    "eng": "en",
    "khm": "km",
    "vie": "vi",
    "mya": "my",
    "bur": "my",
    "zho": "zh",
    "chi": "zh",
    "cmn": "zh",
    "msa": "ms",
    "may": "ms",
    "zsm": "ms",
    "ind": "id",
    "in": "id",
    "tgl": "tl",
    "fil": "tl",
    "nep": "ne",
    "npi": "ne",
    "hin": "hi",
    "ben": "bn",
    "fra": "fr",
    "fre": "fr",
}

_TAG = re.compile(r"[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{1,8})*")


class LanguageError(ValueError):
    """A language code riskcast does not know."""


def normalize_language(value: str) -> str:
    """The primary subtag of ``value``: "lo-LA" -> "lo", "th_TH" -> "th", "EN" -> "en".

    Raises LanguageError for anything that is not a known language.
    """
    tag = value.strip()
    primary = re.split(r"[-_]", tag, maxsplit=1)[0].lower() if _TAG.fullmatch(tag) else ""
    code = _ALIASES.get(primary, primary)
    if code not in LANGUAGES:
        known = ", ".join(f"{c} ({name})" for c, name in LANGUAGES.items())
        raise LanguageError(f"unknown language {value!r}; known: {known}")
    return code
