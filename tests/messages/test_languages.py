"""Language codes."""

from __future__ import annotations

import pytest

from messages import LANGUAGES, LanguageError, normalize_language


def test_languages_riskcast_needs() -> None:
    wanted = {"lo", "th", "en", "km", "vi", "my", "zh", "ms", "id", "tl", "ne", "hi", "bn", "fr"}
    assert wanted <= set(LANGUAGES)
    assert LANGUAGES["lo"] == "Lao"
    assert LANGUAGES["my"] == "Burmese"


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("lo", "lo"),
        ("lo-LA", "lo"),
        ("th_TH", "th"),
        ("zh-Hans", "zh"),
        ("zh-Hant-TW", "zh"),
        ("EN", "en"),
        ("  en-GB \n", "en"),
        ("lao", "lo"),
        ("fil", "tl"),
        ("my-MM", "my"),
    ],
)
def test_normalize_language(value: str, code: str) -> None:
    assert normalize_language(value) == code


@pytest.mark.parametrize("value", ["", " ", "xx", "klingon", "l", "lo--LA", "lo LA", "english"])
def test_unknown_language(value: str) -> None:
    with pytest.raises(LanguageError) as info:
        normalize_language(value)
    message = str(info.value)
    assert message.startswith(f"unknown language {value!r}; known: ")
    assert "lo (Lao)" in message
    assert isinstance(info.value, ValueError)
