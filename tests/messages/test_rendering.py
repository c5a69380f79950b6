"""The sandboxed renderer: what a body may do, what it may not, and how errors read."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from messages import TemplateError, render, rendering, validate_body, variables_used
from messages.rendering import MAX_RENDERED

ALLOWED = {"hotline", "name", "community", "items", "days"}


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("{{ x.__class__ }}", "access to '__class__' is not allowed"),
        ("{{ ''.__class__.__mro__ }}", "access to '__mro__' is not allowed"),
        ("{{ hotline['__class__'] }}", "access to '__class__' is not allowed"),
        ("{{ hotline[name] }}", "only constant subscripts"),
        ("{% import 'os' as os %}", "{% import %} is not allowed"),
        ("{% from 'x' import y %}", "{% from ... import %} is not allowed"),
        ("{% include 'other' %}", "{% include %} is not allowed"),
        ("{% extends 'base' %}", "{% extends %} is not allowed"),
        ("{% macro m() %}x{% endmacro %}", "{% macro %} is not allowed"),
        ("{% call hotline() %}x{% endcall %}", "{% call %} is not allowed"),
        ("{% for i in range(999999999) %}{{ i }}{% endfor %}", "may only go over a variable"),
        ("{{ hotline.upper() }}", "calls are not allowed"),
        ("{{ 'a' * 999999999 }}", "arithmetic is not allowed"),
        ("{{ 10 ** 10 ** 10 }}", "arithmetic is not allowed"),
        ("{{ '%999999999s' % hotline }}", "arithmetic is not allowed"),
        ("{{ hotline|center(999999999) }}", "filter 'center' is not allowed"),
        ("{{ hotline|attr('__class__') }}", "filter 'attr' is not allowed"),
        ("{% filter center(99999) %}x{% endfilter %}", "filter 'center' is not allowed"),
        (
            "{% for a in items %}{% for b in items %}.{% endfor %}{% endfor %}",
            "loops inside loops are not allowed",
        ),
        ("{% for a in items recursive %}{{ a }}{% endfor %}", "recursive loops"),
        ("{% set b = name ~ name %}{% set c = b ~ b %}{{ c }}", "may only hold a variable"),
        ("{% with b = name ~ name %}{{ b }}{% endwith %}", "may only hold a variable"),
        ("{% set b %}{{ name }}{{ name }}{% endset %}{{ b }}", "{% set %}...{% endset %} is not"),
        ("Call {{ hotlin }}", "unknown variable 'hotlin' (did you mean 'hotline'?)"),
        ("{{ lipsum }}", "unknown variable 'lipsum'"),
        ("", "empty body"),
        ("  \n\t ", "empty body"),
    ],
)
def test_rejected_at_validate_time(body: str, reason: str) -> None:
    with pytest.raises(TemplateError) as info:
        validate_body(body, ALLOWED, language="lo")
    assert reason in info.value.reason
    assert info.value.language == "lo"


def test_error_names_variant_line_and_reason() -> None:
    with pytest.raises(TemplateError) as info:
        validate_body("ສະບາຍດີ\nໂທ {{ hotlin }}", {"hotline"}, language="lo")
    err = info.value
    assert (err.language, err.line) == ("lo", 2)
    assert str(err) == "variant 'lo', line 2: unknown variable 'hotlin' (did you mean 'hotline'?)"


def test_syntax_error_has_its_line_number() -> None:
    body = "line one\nline two\nline three {{ hotline }\nline four"
    with pytest.raises(TemplateError) as info:
        validate_body(body, ALLOWED)
    assert info.value.line == 3
    assert str(info.value).startswith("line 3: ")


def test_unclosed_block_reports_a_line() -> None:
    with pytest.raises(TemplateError) as info:
        validate_body("{% if hotline %}\nCall {{ hotline }}\n", ALLOWED)
    assert info.value.line is not None


def test_first_problem_by_line_is_reported() -> None:
    body = "ok\n{{ hotline.__class__ }}\n{{ x.upper() }}"
    with pytest.raises(TemplateError) as info:
        validate_body(body, ALLOWED)
    assert info.value.line == 2


@pytest.mark.parametrize(
    ("body", "variables", "expected"),
    [
        ("Call {{ hotline }}.", {"hotline": "1166"}, "Call 1166."),
        ("ໂທ {{ hotline }}", {"hotline": "1166"}, "ໂທ 1166"),
        ("{{ name|default('friend', true) }}, hi", {"name": ""}, "friend, hi"),
        ("{{ name|upper }} {{ name|title }}", {"name": "noy"}, "NOY Noy"),
        ("{{ name|truncate(8, true, '') }}", {"name": "Somchai Phommachanh"}, "Somchai"),
        (
            "{% if name %}Hi {{ name }}. {% endif %}Call {{ hotline }}",
            {"name": "", "hotline": "1"},
            "Call 1",
        ),
        ("{% for d in days %}[{{ d }}]{% endfor %}", {"days": "12"}, "[1][2]"),
        ("{% set h = hotline %}\nCall {{ h }}", {"hotline": "1166"}, "Call 1166"),
        ("{% set h = hotline|upper if hotline else 'x' %}{{ h }}", {"hotline": "a"}, "A"),
        ("{% with h = hotline[0] %}{{ h }}{% endwith %}", {"hotline": "1166"}, "1"),
        ("{{ name ~ ', ' ~ community }}", {"name": "Noy", "community": "Pakse"}, "Noy, Pakse"),
        ("{{ hotline[0] }}{{ hotline[1:] }}", {"hotline": "1166"}, "1166"),
        ("  Call {{ hotline }}  \n\n", {"hotline": "1166"}, "Call 1166"),
    ],
)
def test_valid_templates_render(body: str, variables: dict[str, object], expected: str) -> None:
    validate_body(body, ALLOWED)
    assert render(body, variables) == expected


def test_undefined_variable_at_render_is_a_template_error() -> None:
    with pytest.raises(TemplateError, match="undefined variable: 'hotline' is undefined"):
        render("Call {{ hotline }}", {})


def test_unsafe_body_is_refused_at_render_too() -> None:
    with pytest.raises(TemplateError, match="access to '__class__'"):
        render("{{ name.__class__ }}", {"name": "x"})


def test_sandbox_blocks_unsafe_attributes_without_underscore() -> None:
    # mro is not underscored, but the sandbox refuses it at render time.
    with pytest.raises(TemplateError):
        render("{{ name.mro }}", {"name": str})


def test_rendered_text_too_long() -> None:
    with pytest.raises(TemplateError, match="rendered text too long"):
        render("{{ name }}", {"name": "x" * (MAX_RENDERED + 1)})
    with pytest.raises(TemplateError, match="rendered text too long"):
        render("{% for c in name %}{{ c }}{{ c }}{% endfor %}", {"name": "x" * 1500})
    assert len(render("{{ name }}", {"name": "x" * MAX_RENDERED})) == MAX_RENDERED


def test_never_empty_after_rendering() -> None:
    with pytest.raises(TemplateError, match="empty after rendering"):
        render("{% if name %}Hi {{ name }}{% endif %}", {"name": ""})
    with pytest.raises(TemplateError, match="empty after rendering"):
        render("{{ name }}", {"name": "  \n "})


def test_render_composes_decomposed_text() -> None:
    decomposed = unicodedata.normalize("NFD", "Rửa tay")
    assert len(decomposed) > len("Rửa tay")
    assert render("{{ v }}", {"v": decomposed}) == "Rửa tay"


def test_variables_used_excludes_loop_and_set_names() -> None:
    body = "{% set h = hotline %}{% for c in name %}{{ c }}{% endfor %}{{ h }}{{ community }}"
    assert variables_used(body) == frozenset({"hotline", "name", "community"})


def test_variables_used_refuses_unsafe_bodies() -> None:
    with pytest.raises(TemplateError):
        variables_used("{{ x.__class__ }}")


@pytest.mark.parametrize("body", ["Cached {{ hotline }}", "Cached {{ hotline|upper }}"])
def test_templates_are_parsed_once(body: str, monkeypatch: pytest.MonkeyPatch) -> None:
    render(body, {"hotline": "1"})
    parsed: list[str] = []
    real_parse = rendering._parse

    def counting(source: str, language: str | None) -> object:
        parsed.append(source)
        return real_parse(source, language)

    monkeypatch.setattr(rendering, "_parse", counting)
    assert render(body, {"hotline": "2"}).startswith("Cached ")
    assert parsed == []


PIECES = st.one_of(
    st.sampled_from(["{{ name }}", "{{hotline}}", "{{ community }}", "{{ missing }}"]),
    st.text(st.sampled_from(list("ab \n\t:.ສ\u0ec8e\u0301😀{}%#")), max_size=12).filter(
        lambda t: "{{" not in t and "{%" not in t and "{#" not in t
    ),
)
VALUES = st.one_of(
    st.text(st.sampled_from(list("Ab \n{}ສe\u0301")), max_size=8), st.integers(), st.none()
)


@given(
    body=st.lists(PIECES, min_size=1, max_size=8).map("".join),
    values=st.dictionaries(st.sampled_from(["name", "hotline", "community"]), VALUES),
)
def test_plain_bodies_render_as_jinja_does(body: str, values: dict[str, object]) -> None:
    def outcome(fn: Callable[[], str]) -> str:
        try:
            return fn()
        except TemplateError as exc:
            return f"error: {exc}"

    def by_jinja() -> str:
        text = unicodedata.normalize("NFC", rendering._generate(body, values)).strip()
        if not text:
            raise TemplateError("empty after rendering")
        return text

    assert outcome(lambda: render(body, values)) == outcome(by_jinja)


def test_no_autoescape_for_plain_text() -> None:
    assert render("{{ v }}", {"v": "<b>&'\"</b>"}) == "<b>&'\"</b>"


def test_template_error_is_a_value_error_with_attributes() -> None:
    err = TemplateError("bad", language="th", line=4)
    assert isinstance(err, ValueError)
    assert (err.language, err.line, err.reason) == ("th", 4, "bad")
    assert str(err) == "variant 'th', line 4: bad"
    assert str(TemplateError("bad")) == "bad"
    located = err.located(origin="x.yaml", field="variants.th")
    assert str(located) == "x.yaml: variants.th: line 4: bad"


@pytest.mark.parametrize("body", ["Hi {{ name.upper }}", "{{ hotline.strip }} now"])
def test_a_method_printed_instead_of_called_is_refused_not_sent_as_an_address(body: str) -> None:
    with pytest.raises(TemplateError, match=r"name \| upper"):
        render(body, {"name": "Noy", "hotline": "1166"})
    assert render("Hi {{ name | upper }}", {"name": "Noy"}) == "Hi NOY"
