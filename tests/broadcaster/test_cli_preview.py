"""`riskcast campaigns preview`, `templates preview` and `templates load` on a SQLite file."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.broadcaster.clitools import Run, cli_on_sqlite, ok

PRICES = {"LA": 0.045, "TH": 0.03, "default": 0.05}

GOOD = """\
key: hotline
name: Hotline
default_language: en
variables:
  hotline: "1166"
variants:
  en: Call {{ hotline }} if you feel unwell. Testing is free.
  lo: ໂທ {{ hotline }} ຖ້າບໍ່ສະບາຍ. ການກວດແມ່ນບໍ່ເສຍຄ່າ.
  th: โทร {{ hotline }} หากรู้สึกไม่สบาย ตรวจฟรี
"""


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Run]:
    with cli_on_sqlite(
        tmp_path, monkeypatch, segment_prices=json.dumps(PRICES), currency="EUR"
    ) as run:
        yield run


def _audience(cli: Run, tmp_path: Path) -> str:
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "hotline.yaml").write_text(GOOD, encoding="utf-8")
    ok(cli("templates", "load", str(folder)))
    ok(cli("communities", "add", "laos", "--name", "Laos", "--country", "LA", "--language", "lo"))
    ok(cli("communities", "add", "site", "--name", "Site", "--country", "TH", "--language", "th"))
    for phone, language, community in [
        ("020 5555 1201", "lo", "laos"),
        ("020 5555 1202", "lo", "laos"),
        ("020 5555 1203", "en", "laos"),
        ("+66 81 234 5601", "th", "site"),
        ("+66 81 234 5602", "km", "site"),  # no Khmer variant: Thai, the site's language
    ]:
        ok(cli("contacts", "add", phone, "--language", language, "--community", community))
    created = ok(
        cli(
            "campaigns",
            "create",
            "--name",
            "Hotline",
            "--template",
            "hotline",
            "--community",
            "laos",
            "--community",
            "site",
        )
    )
    return created.stdout.splitlines()[-1]


def test_campaign_preview_json(cli: Run, tmp_path: Path) -> None:
    campaign_id = _audience(cli, tmp_path)
    data = json.loads(ok(cli("campaigns", "preview", campaign_id, "--json")).stdout)
    rows = {row["language"]: row for row in data["languages"]}
    assert {k: (v["recipients"], v["fell_back"], v["segments"]) for k, v in rows.items()} == {
        "en": (1, 0, 1),
        "lo": (2, 0, 1),
        "th": (2, 1, 1),
    }
    assert rows["th"]["fell_back_from"] == {"km": 1}
    assert rows["en"]["text"] == "Call 1166 if you feel unwell. Testing is free."
    # the Thai numbers are told Thailand's hotline (RISKCAST_HOTLINES' default)
    assert (rows["en"]["hotlines"], rows["th"]["hotlines"]) == ({}, {"TH": "1422"})
    assert data["currency"] == "EUR"
    assert rows["en"]["encoding"] == "GSM-7" and rows["lo"]["encoding"] == "UCS-2"
    assert data["recipients"] == 5 and data["total_segments"] == 5
    assert data["cost"] == pytest.approx(3 * 0.045 + 2 * 0.03)
    assert [w["kind"] for w in data["warnings"]] == ["no_variant"]


def test_campaign_preview_table(cli: Run, tmp_path: Path) -> None:
    campaign_id = _audience(cli, tmp_path)
    out = ok(cli("campaigns", "preview", campaign_id)).stdout
    assert f"campaign {campaign_id} Hotline (draft, sms): template hotline v1" in out
    for header in ("language", "recipients", "fell back", "encoding", "segments", "cost"):
        assert header in out
    assert "th Thai" in out and "1 (km 1)" in out
    assert "Call 1166 if you feel unwell. Testing is free." in out
    assert "1 warning(s):" in out
    assert (
        "1 recipient(s) speak km (Khmer), which has no variant in v1; they receive: th (1)" in out
    )
    assert "total: 5 recipients, 5 SMS segments, estimated cost 0.195 EUR" in out
    assert "cost (EUR)" in out and "price / segment (EUR)" in out
    assert "th: numbers of TH are told their country's hotline, 1422" in out


def test_campaign_preview_of_a_missing_campaign(cli: Run) -> None:
    result = cli("campaigns", "preview", "99")
    assert result.exit_code == 1
    assert "campaign 99 does not exist" in result.stderr


def test_template_preview(cli: Run, tmp_path: Path) -> None:
    path = tmp_path / "quote.yaml"
    path.write_text(GOOD.replace("if you feel", "if you’re feeling"), encoding="utf-8")
    ok(cli("templates", "load", str(path)))
    out = ok(cli("templates", "preview", "hotline")).stdout
    assert "template hotline v1: Hotline" in out
    assert "en English (default)" in out
    assert "Call 1166 if you’re feeling unwell. Testing is free." in out
    assert "U+2019 RIGHT SINGLE QUOTATION MARK" in out
    data = json.loads(ok(cli("templates", "preview", "hotline", "--json")).stdout)
    assert [v["language"] for v in data["variants"]] == ["en", "lo", "th"]
    assert data["variants"][0]["encoding"] == "UCS-2"
    assert [w["kind"] for w in data["warnings"]] == ["ucs2_character"]
    assert cli("templates", "preview", "nope").exit_code == 1


def test_load_is_all_or_nothing_and_names_every_problem(cli: Run, tmp_path: Path) -> None:
    folder = tmp_path / "batch"
    folder.mkdir()
    (folder / "a-good.yaml").write_text(GOOD, encoding="utf-8")
    (folder / "b-bad.yaml").write_text(
        GOOD.replace("key: hotline", "key: other")
        .replace("{{ hotline }} if", "{{ hotlin }} if")
        .replace("default_language: en", "default_language: xx"),
        encoding="utf-8",
    )
    (folder / "c-broken.yaml").write_text("key: [unclosed\n", encoding="utf-8")
    result = cli("templates", "load", str(folder))
    assert result.exit_code == 1
    err = result.stderr
    assert "problem(s)" in err and "nothing was loaded" in err
    assert "b-bad.yaml: default_language: unknown language 'xx'" in err
    assert "b-bad.yaml: variants.en: line 1: unknown variable 'hotlin'" in err
    assert "c-broken.yaml: line 2: invalid YAML" in err
    assert json.loads(ok(cli("templates", "list", "--json")).stdout) == []

    (folder / "b-bad.yaml").unlink()
    (folder / "c-broken.yaml").unlink()
    assert "hotline: new (v1, en, lo, th)" in ok(cli("templates", "load", str(folder))).stdout


def test_changed_file_new_version_old_campaign_keeps_text(cli: Run, tmp_path: Path) -> None:
    campaign_id = _audience(cli, tmp_path)
    path = tmp_path / "templates" / "hotline.yaml"
    assert "hotline: unchanged (v1" in ok(cli("templates", "load", str(path))).stdout
    path.write_text(GOOD.replace("Testing is free.", "Tests are free."), encoding="utf-8")
    assert "hotline: new version (v2" in ok(cli("templates", "load", str(path))).stdout

    old = json.loads(ok(cli("campaigns", "preview", campaign_id, "--json")).stdout)
    assert old["template_version"] == 1 and old["current_version"] == 2
    en = next(row for row in old["languages"] if row["language"] == "en")
    assert en["text"] == "Call 1166 if you feel unwell. Testing is free."

    new_id = ok(
        cli(
            "campaigns", "create", "--name", "Again", "--template", "hotline", "--community", "laos"
        )
    ).stdout.splitlines()[-1]
    new = json.loads(ok(cli("campaigns", "preview", new_id, "--json")).stdout)
    en = next(row for row in new["languages"] if row["language"] == "en")
    assert en["text"] == "Call 1166 if you feel unwell. Tests are free."
    old_v1 = json.loads(
        ok(cli("templates", "preview", "hotline", "--version", "1", "--json")).stdout
    )
    assert old_v1["variants"][0]["text"].endswith("Testing is free.")
