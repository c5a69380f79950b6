"""Template specs: parsing, YAML files, directories, and choosing a language."""

from __future__ import annotations

import unicodedata
from pathlib import Path
from typing import Any

import pytest

from messages import (
    CONTACT_VARIABLES,
    LanguageError,
    TemplateError,
    TemplateSpec,
    catalog_dir,
    choose_language,
    load_dir,
    load_template_file,
    parse_template,
)


def valid(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "key": "covid-handwashing",
        "name": "Hand washing",
        "default_language": "en",
        "variables": {"hotline": "1166"},
        "variants": {
            "en": "Wash your hands. Call {{ hotline }}.",
            "lo-LA": "ລ້າງມື. ໂທ {{ hotline }}",
            "th_TH": "ล้างมือ โทร {{ hotline }}",
        },
        "source": "WHO",
    }
    data.update(changes)
    return data


def test_parse_valid_template() -> None:
    spec = parse_template(valid())
    assert spec == TemplateSpec(
        key="covid-handwashing",
        name="Hand washing",
        default_language="en",
        variables={"hotline": "1166"},
        variants={
            "en": "Wash your hands. Call {{ hotline }}.",
            "lo": "ລ້າງມື. ໂທ {{ hotline }}",
            "th": "ล้างมือ โทร {{ hotline }}",
        },
        source="WHO",
        review=False,
        budget=3,
    )
    assert spec.preview("lo") == "ລ້າງມື. ໂທ 1166"


def test_contact_variables_are_always_allowed() -> None:
    assert frozenset({"name", "community"}) == CONTACT_VARIABLES
    spec = parse_template(valid(variants={"en": "Hi {{ name }} of {{ community }}"}))
    assert spec.preview("en") == "Hi Somchai Phommachanh of Savannakhet returnees"


def test_error_names_origin_field_line_and_reason() -> None:
    data = valid(variants={"en": "ok {{ hotline }}", "lo": "{{ x }}"})
    with pytest.raises(TemplateError) as info:
        parse_template(data, origin="covid-handwashing.yaml")
    err = info.value
    assert str(err) == "covid-handwashing.yaml: variants.lo: line 1: unknown variable 'x'"
    assert (err.origin, err.field, err.language, err.line) == (
        "covid-handwashing.yaml",
        "variants.lo",
        "lo",
        1,
    )


@pytest.mark.parametrize(
    ("changes", "field", "reason"),
    [
        ({"key": "Covid Handwashing"}, "key", "is not a key"),
        ({"key": "-x"}, "key", "is not a key"),
        ({"key": None}, "key", "must be non-empty text"),
        ({"name": " "}, "name", "must be non-empty text"),
        ({"default_language": "xx"}, "default_language", "unknown language 'xx'"),
        ({"default_language": "km"}, "default_language", "'km' has no variant"),
        ({"default_language": 3}, "default_language", "must be a language code"),
        ({"variants": {}}, "variants", "non-empty mapping"),
        ({"variants": ["en"]}, "variants", "non-empty mapping"),
        ({"variants": {"en": "x", "klingon": "y"}}, "variants.klingon", "unknown language"),
        ({"variants": {"en": "x", "EN-GB": "y"}}, "variants.EN-GB", "a second variant for 'en'"),
        ({"variants": {"en": "x", False: "y"}}, "variants.False", "quote it in YAML"),
        ({"variants": {"en": 5}}, "variants.en", "body must be text"),
        ({"variants": {"en": "  "}}, "variants.en", "empty body"),
        ({"variants": {"en": "{% if hotline %}{% endif %}"}}, "variants.en", "empty after"),
        ({"variants": {"en": "{{ hotline.__class__ }}"}}, "variants.en", "not allowed"),
        ({"variables": {"hotline": 1166}}, "variables.hotline", "quote it in YAML"),
        ({"variables": {"hotline": "1", "_x": "1"}}, "variables._x", "a variable name"),
        ({"variables": ["hotline"]}, "variables", "must be a mapping"),
        ({"review": "yes"}, "review", "must be true or false"),
        ({"budget": 0}, "budget", "from 1 to 10"),
        ({"budget": True}, "budget", "from 1 to 10"),
        ({"varients": {}}, "varients", "unknown field"),
        ({"source": ""}, "source", "must be non-empty text"),
    ],
)
def test_bad_field(changes: dict[str, Any], field: str, reason: str) -> None:
    with pytest.raises(TemplateError) as info:
        parse_template(valid(**changes), origin="t.yaml")
    err = info.value
    assert err.field == field, str(err)
    assert reason in err.reason
    assert str(err).startswith(f"t.yaml: {field}: ")


def test_source_may_be_left_out() -> None:
    data = valid()
    del data["source"]
    assert parse_template(data).source is None


def test_every_problem_is_reported() -> None:
    with pytest.raises(TemplateError) as info:
        parse_template(valid(name="", variants={"en": "{{ x }}", "lo": "{{ y }}"}), origin="t")
    err = info.value
    assert [e.field for e in err.errors] == ["name", "variants.en", "variants.lo"]
    assert str(err).startswith("t: 3 problems:\n  name: ")
    assert "variants.lo: line 1: unknown variable 'y'" in str(err)


def test_not_a_mapping() -> None:
    with pytest.raises(TemplateError, match="a template is a mapping"):
        parse_template(["key"])  # type: ignore[arg-type]


def test_budget_is_enforced_with_sample_variables() -> None:
    lao = "ສ" * 195 + " {{ hotline }}"  # 200 units: 3 parts
    assert parse_template(valid(variants={"en": "x", "lo": lao})).budget == 3
    with pytest.raises(TemplateError) as info:
        parse_template(valid(variants={"en": "x", "lo": lao}, budget=2))
    assert info.value.field == "variants.lo"
    assert info.value.reason == (
        "3 SMS segments with the sample variables (UCS-2, 200 units); the budget is 2"
    )


def test_bodies_are_composed() -> None:
    decomposed = unicodedata.normalize("NFD", "Rửa tay. Gọi {{ hotline }}")
    spec = parse_template(valid(variants={"en": "x", "vi": decomposed}))
    assert spec.variants["vi"] == "Rửa tay. Gọi {{ hotline }}"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


GOOD = """\
key: {key}
name: Test
default_language: en
variables:
  hotline: "1166"
variants:
  en: Call {{{{ hotline }}}}
  lo: ໂທ {{{{ hotline }}}}
"""


def test_load_template_file(tmp_path: Path) -> None:
    spec = load_template_file(write(tmp_path, "a.yaml", GOOD.format(key="a")))
    assert spec.key == "a"
    assert spec.variants == {"en": "Call {{ hotline }}", "lo": "ໂທ {{ hotline }}"}


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("key: [unclosed\n", "invalid YAML"),
        ("", "empty file"),
        ("- a\n- b\n", "holds one mapping, got list"),
        ("key: a\nkey: b\n", "duplicate key 'key'"),
        ("variants:\n  lo: x\n  lo: y\n", "duplicate key 'lo'"),
        ("a: 1\n---\nb: 2\n", "invalid YAML"),
    ],
)
def test_bad_yaml_names_the_file(tmp_path: Path, text: str, reason: str) -> None:
    with pytest.raises(TemplateError) as info:
        load_template_file(write(tmp_path, "bad.yaml", text))
    assert info.value.origin == "bad.yaml"
    assert reason in info.value.reason
    assert str(info.value).startswith("bad.yaml: ")


def test_bad_yaml_has_a_line(tmp_path: Path) -> None:
    with pytest.raises(TemplateError) as info:
        load_template_file(write(tmp_path, "bad.yaml", "key: a\nname: [x\n"))
    assert info.value.line is not None


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match=r"missing\.yaml: cannot read"):
        load_template_file(tmp_path / "missing.yaml")
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: caf\xe9".encode("latin-1"))
    with pytest.raises(TemplateError, match=r"latin1\.yaml: cannot read"):
        load_template_file(path)


def test_load_dir_sorted_by_name(tmp_path: Path) -> None:
    write(tmp_path, "b.yml", GOOD.format(key="b"))
    write(tmp_path, "a.yaml", GOOD.format(key="a"))
    write(tmp_path, "notes.txt", "not a template")
    (tmp_path / "sub.yaml").mkdir()
    assert [s.key for s in load_dir(tmp_path)] == ["a", "b"]


def test_load_dir_lists_every_bad_file(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", GOOD.format(key="a"))
    write(tmp_path, "b.yaml", "key: [\n")
    write(tmp_path, "c.yaml", GOOD.format(key="c").replace("{{ hotline }}", "{{ hotlin }}", 1))
    write(tmp_path, "d.yaml", GOOD.format(key="a"))
    with pytest.raises(TemplateError) as info:
        load_dir(tmp_path)
    err = info.value
    assert [e.origin for e in err.errors] == ["b.yaml", "c.yaml", "d.yaml"]
    message = str(err)
    assert "3 template files have errors" in message
    assert "c.yaml: variants.en: line 1: unknown variable 'hotlin'" in message
    assert "d.yaml: key: key 'a' is already used by a.yaml" in message


def test_load_dir_single_error_is_raised_as_is(tmp_path: Path) -> None:
    write(tmp_path, "b.yaml", "key: [\n")
    with pytest.raises(TemplateError) as info:
        load_dir(tmp_path)
    assert info.value.origin == "b.yaml"


def test_load_dir_needs_a_directory(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match="not a directory"):
        load_dir(tmp_path / "nope")
    assert load_dir(tmp_path) == []


def test_catalog_dir_is_shipped() -> None:
    assert catalog_dir().is_dir()
    assert catalog_dir().name == "catalog"


AVAILABLE = ["en", "lo", "th"]


@pytest.mark.parametrize(
    ("contact", "community", "default", "expected"),
    [
        ("lo", "th", "en", ("lo", False)),
        ("lo-LA", None, "en", ("lo", False)),
        ("km", "th", "en", ("th", True)),
        (None, "th_TH", "en", ("th", True)),
        ("km", "vi", "lo", ("lo", True)),
        ("km", "vi", "my", ("en", True)),
        ("not a language", None, "en", ("en", True)),
        (None, None, "en", ("en", True)),
    ],
)
def test_choose_language(
    contact: str | None, community: str | None, default: str, expected: tuple[str, bool]
) -> None:
    assert choose_language(AVAILABLE, contact, community, default) == expected


def test_choose_language_falls_back_to_first_available() -> None:
    assert choose_language(["th", "lo"], "km", None, "vi") == ("th", True)
    assert choose_language({"lo": "body"}, None, None, "en") == ("lo", True)


def test_choose_language_returns_the_key_as_spelled() -> None:
    assert choose_language(["lo-LA", "en"], "lo", None, "en") == ("lo-LA", False)


def test_choose_language_needs_a_variant() -> None:
    with pytest.raises(LanguageError):
        choose_language([], "lo", None, "en")
