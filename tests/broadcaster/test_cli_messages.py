"""`riskcast segments`: encoding, units, segments, part sizes, and what forced UCS-2."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from broadcaster.cli import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def _wide(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")


def test_plain_english_is_gsm7() -> None:
    result = runner.invoke(app, ["segments", "Wash your hands often."])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["encoding", "GSM-7"]
    assert lines[1].split() == ["characters", "22"]
    assert lines[2].split() == ["units", "22", "septets"]
    assert lines[3].startswith("segments    1 (one SMS holds 160 units")
    assert "UCS-2" not in result.stdout


def test_extension_characters_count_twice_and_parts_are_shown() -> None:
    result = runner.invoke(app, ["segments", "a" * 152 + "[]"])  # 156 septets: one SMS
    assert "units       156 septets" in result.stdout
    result = runner.invoke(app, ["segments", "a" * 160 + "€"])
    assert "segments    2 " in result.stdout
    assert "parts       153 + 9" in result.stdout


def test_one_curly_quote_is_named() -> None:
    text = "Don’t wait: call 1166 if you have a fever."
    result = runner.invoke(app, ["segments", text])
    assert result.exit_code == 0, result.output
    assert "encoding    UCS-2" in result.stdout
    assert f"units       {len(text)} UTF-16 code units" in result.stdout
    assert "UCS-2 because these characters are not in the GSM-7 alphabet:" in result.stdout
    assert "'’'  U+2019 RIGHT SINGLE QUOTATION MARK  (use \"'\" instead)" in result.stdout


def test_lao_is_named_as_a_script_not_letter_by_letter() -> None:
    text = "ສະບາຍດີ " * 10  # 80 UTF-16 units: two parts of 67 + 13
    result = runner.invoke(app, ["segments", text.strip() + " “1166”"])
    assert "UCS-2 because the text is written in Lao" in result.stdout
    assert "'“'  U+201C LEFT DOUBLE QUOTATION MARK" in result.stdout
    assert "U+0EAA" not in result.stdout
    assert "parts       67 + " in result.stdout


def test_json() -> None:
    result = runner.invoke(app, ["segments", "Stay safe – call 1166 😷", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["encoding"] == "UCS-2"
    assert data["characters"] == 23
    assert data["units"] == 24  # the emoji is a surrogate pair
    assert data["segments"] == 1 and data["part_units"] == [24]
    assert (data["single_limit"], data["part_limit"]) == (70, 67)
    assert [c["char"] for c in data["non_gsm"]] == ["–", "😷"]
    assert data["non_gsm"][0] == {
        "char": "–",
        "codepoint": "U+2013",
        "name": "EN DASH",
        "gsm_replacement": "-",
    }
    assert data["non_gsm"][1]["gsm_replacement"] is None


def test_whatsapp_has_no_segments() -> None:
    data = json.loads(runner.invoke(app, ["segments", "ສະບາຍດີ", "--whatsapp", "--json"]).stdout)
    assert (data["encoding"], data["segments"], data["single_limit"]) == ("UTF-8", 1, None)


def test_empty_text_is_refused() -> None:
    result = runner.invoke(app, ["segments", ""])
    assert result.exit_code == 1
    assert "empty" in result.stderr
