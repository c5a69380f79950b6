"""The error table: every row, the fall-backs, and the operator's override file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from workers.providers import errors
from workers.providers.base import ErrorKind
from workers.providers.errors import (
    BUILTIN_RULES,
    OPTED_OUT_CODE,
    ErrorCodesFileError,
    classify,
    error_from_response,
    explain,
    load_extra_codes,
)


@pytest.fixture(autouse=True)
def _builtin_rules():
    errors.reset_rules()
    yield
    errors.reset_rules()


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (20429, ErrorKind.RETRYABLE),
        (30001, ErrorKind.RETRYABLE),
        (30003, ErrorKind.RETRYABLE),
        (30008, ErrorKind.RETRYABLE),
        (63017, ErrorKind.RETRYABLE),
        (21211, ErrorKind.PERMANENT),
        (21408, ErrorKind.PERMANENT),
        (21610, ErrorKind.PERMANENT),
        (21612, ErrorKind.PERMANENT),
        (21614, ErrorKind.PERMANENT),
        (30005, ErrorKind.PERMANENT),
        (30006, ErrorKind.PERMANENT),
        (30007, ErrorKind.PERMANENT),
        (63016, ErrorKind.PERMANENT),
        (20003, ErrorKind.CONFIGURATION),
        (20404, ErrorKind.CONFIGURATION),
        (21602, ErrorKind.CONFIGURATION),
        (21606, ErrorKind.CONFIGURATION),
        (21659, ErrorKind.CONFIGURATION),
    ],
)
def test_the_codes_the_pipeline_depends_on(code: int, kind: ErrorKind) -> None:
    assert classify(code, 400) is kind
    assert classify(code, None) is kind


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (429, ErrorKind.RETRYABLE),
        (500, ErrorKind.RETRYABLE),
        (502, ErrorKind.RETRYABLE),
        (503, ErrorKind.RETRYABLE),
        (504, ErrorKind.RETRYABLE),
        (599, ErrorKind.RETRYABLE),  # unknown 5xx
        (418, ErrorKind.PERMANENT),  # unknown 4xx
        (400, ErrorKind.PERMANENT),
        (401, ErrorKind.CONFIGURATION),
        (404, ErrorKind.CONFIGURATION),
    ],
)
def test_http_status_decides_when_no_code_is_known(status: int, kind: ErrorKind) -> None:
    assert classify(None, status) is kind
    assert classify(99999, status) is kind  # a code the table does not know


def test_code_beats_status() -> None:
    assert classify(30001, 400) is ErrorKind.RETRYABLE
    assert classify(21211, 500) is ErrorKind.PERMANENT


def test_no_answer_at_all_is_retryable_and_unknown_code_alone_is_permanent() -> None:
    assert classify(None, None) is ErrorKind.RETRYABLE
    assert classify(99999, None) is ErrorKind.PERMANENT


def test_every_row_has_a_short_explanation_without_digits_of_a_number() -> None:
    for code, rule in BUILTIN_RULES.items():
        assert isinstance(rule.kind, ErrorKind)
        assert 10 < len(rule.explanation) <= 90, code
        assert explain(code) == rule.explanation
    assert "99999" in explain(99999)
    assert explain(None) == errors.NETWORK_EXPLANATION


def test_opted_out_code() -> None:
    assert OPTED_OUT_CODE == 21610
    assert classify(OPTED_OUT_CODE, 400) is ErrorKind.PERMANENT


def test_error_from_response_message_and_sdk_quirk() -> None:
    err = error_from_response(21211, 400)
    assert (err.kind, err.code, err.http_status) == (ErrorKind.PERMANENT, 21211, 400)
    assert str(err) == "Invalid 'To' phone number (code 21211, HTTP 400)"
    # twilio-python reports the HTTP status as the code when the body has none.
    err = error_from_response(502, 502)
    assert (err.kind, err.code, err.http_status) == (ErrorKind.RETRYABLE, None, 502)
    assert str(err) == "Bad gateway between us and the provider (HTTP 502)"
    assert not error_from_response(21610, 400).retryable
    assert error_from_response(20429, 429).retryable


def test_load_extra_codes_json_merges_over_builtin(tmp_path: Path) -> None:
    path = tmp_path / "codes.json"
    path.write_text(
        json.dumps(
            {
                "30410": {"kind": "retryable", "explanation": "Provider timeout"},
                "30007": {"kind": "RETRYABLE"},  # override, keeping the built-in text
            }
        )
    )
    extra = load_extra_codes(path)
    assert set(extra) == {30410, 30007}
    assert classify(30410, 400) is ErrorKind.RETRYABLE
    assert explain(30410) == "Provider timeout"
    assert classify(30007, 400) is ErrorKind.RETRYABLE
    assert explain(30007) == BUILTIN_RULES[30007].explanation
    assert classify(21211, 400) is ErrorKind.PERMANENT  # built-ins kept
    errors.reset_rules()
    assert classify(30007, 400) is ErrorKind.PERMANENT


def test_load_extra_codes_yaml_replaces_previous_file(tmp_path: Path) -> None:
    first = tmp_path / "first.json"
    first.write_text('{"30410": {"kind": "retryable", "explanation": "x timeout"}}')
    load_extra_codes(first)
    second = tmp_path / "codes.yaml"
    second.write_text(
        "63049:\n  kind: permanent\n  explanation: Meta chose not to deliver this message\n"
    )
    load_extra_codes(second)
    assert classify(63049, 400) is ErrorKind.PERMANENT
    assert explain(63049) == "Meta chose not to deliver this message"
    assert 30410 not in errors.rules()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[1, 2]", "expected a mapping"),
        ('{"abc": {"kind": "retryable", "explanation": "x"}}', "'abc' is not a numeric code"),
        ('{"30410": {"kind": "sometimes", "explanation": "x"}}', "code 30410: kind 'sometimes'"),
        ('{"30410": {"kind": "permanent"}}', "code 30410: explanation is required"),
        ('{"30410": "permanent"}', "code 30410: expected kind and explanation"),
        ("{not json", "not valid JSON"),
    ],
)
def test_bad_extra_codes_file_names_the_entry(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "codes.json"
    path.write_text(content)
    with pytest.raises(ErrorCodesFileError, match=message):
        load_extra_codes(path)
    assert dict(errors.rules()) == dict(BUILTIN_RULES)


def test_missing_extra_codes_file(tmp_path: Path) -> None:
    with pytest.raises(ErrorCodesFileError, match="cannot read"):
        load_extra_codes(tmp_path / "absent.yaml")
