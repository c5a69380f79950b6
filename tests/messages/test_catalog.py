"""The shipped catalog: every template parses, renders, fits its budget, and is kind."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from messages import TemplateSpec, catalog_dir, check_wording, load_dir, segments

SPECS = load_dir(catalog_dir())
VARIANTS = [(spec, language) for spec in SPECS for language in spec.variants]


def test_at_least_twelve_templates() -> None:
    assert len(SPECS) >= 12
    assert len({spec.key for spec in SPECS}) == len(SPECS)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.key)
def test_file_name_is_the_key(spec: TemplateSpec) -> None:
    assert (catalog_dir() / f"{spec.key}.yaml").is_file()


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.key)
def test_core_languages_everywhere(spec: TemplateSpec) -> None:
    assert {"lo", "th", "en"} <= set(spec.variants)
    assert spec.default_language == "en"
    assert spec.variables.get("hotline") == "1166"
    assert spec.source


@pytest.mark.parametrize("language", ["km", "vi", "my"])
def test_more_languages_in_at_least_four(language: str) -> None:
    assert sum(language in spec.variants for spec in SPECS) >= 4


@pytest.mark.parametrize("review", [True, False])
@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.key)
def test_each_file_loads_awaiting_review_or_signed_off(
    spec: TemplateSpec, review: bool, tmp_path: Path
) -> None:
    """A reviewer signs a file off by setting ``review: false`` (drafts say ``true``); either
    way it loads, with that flag and nothing else changed."""
    shipped = (catalog_dir() / f"{spec.key}.yaml").read_text(encoding="utf-8")
    unflagged = re.sub(r"^review:.*\n", "", shipped, flags=re.MULTILINE)
    (tmp_path / f"{spec.key}.yaml").write_text(
        f"{unflagged.rstrip()}\nreview: {str(review).lower()}\n", encoding="utf-8"
    )
    assert load_dir(tmp_path) == [replace(spec, review=review)]


@pytest.mark.parametrize(("spec", "language"), VARIANTS, ids=lambda v: getattr(v, "key", v))
def test_variant_renders_within_budget(spec: TemplateSpec, language: str) -> None:
    text = spec.preview(language)
    cost = segments(text)
    assert cost.parts <= spec.budget, f"{cost.units} {cost.encoding} units"
    if language == "en":
        # A stray curly quote would triple the cost of the English text.
        assert cost.encoding == "GSM-7", cost.non_gsm
    assert spec.variables["hotline"] in text


@pytest.mark.parametrize(("spec", "language"), VARIANTS, ids=lambda v: getattr(v, "key", v))
def test_variant_wording_is_stigma_free(spec: TemplateSpec, language: str) -> None:
    assert check_wording(spec.preview(language), language) == []
