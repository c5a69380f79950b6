"""Audiences: the community tree, language and country filters, cross-border contacts, and
the contacts and communities commands."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from broadcaster.campaigns import service as campaigns
from broadcaster.campaigns.audience import eligible_contacts
from broadcaster.communities import service as communities
from broadcaster.contacts import service as contacts
from broadcaster.errors import InvalidInput
from broadcaster.models import Contact
from broadcaster.runtime import get_runtime
from tests import factories
from tests.broadcaster.clitools import Run, audit_events, cli_on_sqlite, ok


def _audience(session: Session, slugs: list[str], **kwargs: object) -> set[int]:
    camp = factories.campaign(session, slugs, **kwargs)
    ids = communities.expand_ids(
        session, camp.audience["communities"], descendants=camp.audience["descendants"]
    )
    return {row.id for row in session.execute(eligible_contacts(camp, ids, 0, 1000))}


@pytest.fixture
def border(session: Session) -> dict[str, Contact]:
    """Laos > Bokeo > Ton Pheung, and a worksite in Thailand."""
    factories.community(session, "laos", kind="country", country="LA")
    factories.community(session, "bokeo", parent="laos", kind="province")
    factories.community(session, "tonpheung", parent="bokeo", kind="district")
    factories.community(session, "chiang-rai-farm", kind="worksite", country="TH", language="th")
    lao = factories.contact(session, community_slugs=("tonpheung",), language="lo")
    # a Lao worker's Thai SIM, in a Lao community: a cross-border contact
    thai_sim = factories.contact(
        session, factories.thai_number(7), community_slugs=("tonpheung",), language="lo"
    )
    thai, _ = contacts.add_contact(
        session,
        "081-234-5678",
        region="LA",
        country="TH",
        communities=["chiang-rai-farm"],
        language="th",
    )
    english = factories.contact(session, community_slugs=("bokeo",), language="en")
    return {"lao": lao, "thai_sim": thai_sim, "thai": thai, "english": english}


def test_country_comes_from_the_number(border: dict[str, Contact]) -> None:
    assert border["lao"].country == "LA"
    assert border["thai_sim"].country == "TH"
    assert border["thai"].country == "TH"  # typed locally, read with country TH


def test_descendants_and_filters(session: Session, border: dict[str, Contact]) -> None:
    c = {k: v.id for k, v in border.items()}
    assert _audience(session, ["laos"]) == {c["lao"], c["thai_sim"], c["english"]}
    assert _audience(session, ["laos"], descendants=False) == set()
    assert _audience(session, ["bokeo"], descendants=False) == {c["english"]}
    assert _audience(session, ["laos"], languages=["lo"]) == {c["lao"], c["thai_sim"]}
    # cross-border: Thai numbers in a Lao community, found by the country filter
    assert _audience(session, ["laos"], countries=["TH"]) == {c["thai_sim"]}
    assert _audience(session, ["laos"], countries=["LA"]) == {c["lao"], c["english"]}
    assert _audience(session, ["laos", "chiang-rai-farm"], countries=["TH"]) == {
        c["thai_sim"],
        c["thai"],
    }
    assert _audience(session, ["laos", "chiang-rai-farm"], countries=["TH"], languages=["th"]) == {
        c["thai"]
    }
    contacts.opt_out(session, border["thai_sim"], source="official")
    assert _audience(session, ["laos"], countries=["TH"]) == set()


def test_recipient_count_uses_the_same_filters(
    session: Session, border: dict[str, Contact]
) -> None:
    camp = factories.campaign(session, ["laos", "chiang-rai-farm"], countries=["TH"])
    assert campaigns.count_recipients(session, camp) == 2


def test_tree_with_member_counts(session: Session, border: dict[str, Contact]) -> None:
    contacts.add_contact(session, border["lao"].phone, region="LA", communities=["laos"])
    roots = communities.tree(session)
    assert [r.community.slug for r in roots] == ["chiang-rai-farm", "laos"]
    farm, laos = roots
    assert (farm.members, farm.total) == (1, 1)
    assert (laos.members, laos.total) == (1, 3)  # the Lao contact counted once
    (bokeo,) = laos.children
    assert (bokeo.members, bokeo.total) == (1, 3)
    (district,) = bokeo.children
    assert (district.community.slug, district.members, district.total) == ("tonpheung", 2, 2)


def test_add_contact_checks_language_and_country(session: Session) -> None:
    with pytest.raises(InvalidInput, match="language: unknown language 'xx'"):
        contacts.add_contact(session, "020 5555 1234", region="LA", language="xx")
    with pytest.raises(InvalidInput, match="country: 'Thailand' is not a known"):
        contacts.add_contact(session, "081 234 5678", region="LA", country="Thailand")
    with pytest.raises(InvalidInput, match="phone: not a valid number for Laos"):
        contacts.add_contact(session, "081 234 5678", region="LA")
    thai, created = contacts.add_contact(
        session, "081 234 5678", region="LA", country="th", language="th-TH"
    )
    assert created and (thai.phone, thai.country, thai.language) == ("+66812345678", "TH", "th")
    again, created = contacts.add_contact(session, "+66 81 234 5678", region="LA", name="Somchai")
    assert not created and again.id == thai.id and again.name == "Somchai"


def test_a_community_keeps_its_countrys_time_and_language(session: Session) -> None:
    laos = factories.community(session, "laos", kind="country", country="LA")
    thai = factories.community(session, "chiang-rai", country="TH")
    assert (laos.timezone, laos.language) == ("Asia/Vientiane", "lo")
    assert (thai.timezone, thai.language) == ("Asia/Bangkok", "th")
    # a province inherits its country's; a Thai worksite under it takes Thailand's
    bokeo = factories.community(session, "bokeo", parent="laos", timezone="Asia/Bangkok")
    farm = factories.community(session, "farm", parent="bokeo", country="th")
    village = factories.community(session, "village", parent="bokeo", language="th")
    assert (bokeo.country, bokeo.language) == ("LA", "lo")
    assert (farm.country, farm.timezone, farm.language) == ("TH", "Asia/Bangkok", "th")
    assert (village.country, village.timezone, village.language) == ("LA", "Asia/Bangkok", "th")
    for slug, country, zone, language in [
        ("phnom-penh", "KH", "Asia/Phnom_Penh", "km"),
        ("hanoi", "VN", "Asia/Ho_Chi_Minh", "vi"),
        ("yangon", "MM", "Asia/Yangon", "my"),
        ("shanghai", "CN", "Asia/Shanghai", "lo"),  # the first of a country's zones
    ]:
        row = factories.community(session, slug, country=country)
        assert (row.timezone, row.language) == (zone, language)
    explicit = factories.community(
        session, "mae-sot", country="TH", timezone="Asia/Yangon", language="my"
    )
    assert (explicit.timezone, explicit.language) == ("Asia/Yangon", "my")
    with pytest.raises(InvalidInput, match="no time zone is known for country 'ZZ'"):
        factories.community(session, "nowhere", country="ZZ")


# -- the CLI -----------------------------------------------------------------------------------
@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Run]:
    with cli_on_sqlite(tmp_path, monkeypatch) as run:
        yield run


def test_cli_communities_list_and_contacts(cli: Run) -> None:
    assert "no communities yet" in ok(cli("communities", "list")).stdout
    ok(cli("communities", "add", "laos", "--name", "Laos", "--kind", "country", "--country", "LA"))
    ok(cli("communities", "add", "bokeo", "--name", "Bokeo", "--parent", "laos"))
    out = ok(cli("contacts", "add", "081-234-5678", "--country", "TH", "--community", "bokeo"))
    assert "contact +66 81 ••• ••78 added (country TH, sms, status active)" in out.stdout
    ok(cli("contacts", "add", "020 5555 1234", "--community", "laos", "--language", "lo"))
    bad = cli("contacts", "add", "020 5555 1235", "--country", "Lao")
    assert bad.exit_code == 1 and "country: 'Lao' is not a known" in bad.output
    listing = ok(cli("communities", "list")).stdout
    assert "laos  Laos  (country, LA, lo, Asia/Vientiane)  1 member, 2 with sub-communities" in (
        listing
    )
    assert "└── bokeo  Bokeo" in listing and "1 member" in listing.splitlines()[1]
    thai = ok(cli("communities", "add", "worksite", "--name", "Farm", "--country", "TH"))
    assert "community worksite added (th, Asia/Bangkok)" in thai.stdout


def test_cli_contacts_add_with_a_time_zone(cli: Run) -> None:
    ok(cli("communities", "add", "laos", "--name", "Laos", "--kind", "country", "--country", "LA"))
    out = ok(
        cli("contacts", "add", "020 5555 1234", "--community", "laos", "--timezone", "Asia/Bangkok")
    )
    assert "(country LA, sms, status active, time zone Asia/Bangkok)" in out.stdout
    bad = cli("contacts", "add", "020 5555 1235", "--community", "laos", "--timezone", "Lao")
    assert bad.exit_code == 1 and "unknown time zone 'Lao'" in bad.output
    with get_runtime().session() as session:
        zones = dict(session.execute(select(Contact.phone, Contact.timezone)).all())
    assert zones == {"+8562055551234": "Asia/Bangkok"}


def test_cli_opt_out_and_opt_in_are_audited(cli: Run) -> None:
    ok(cli("contacts", "add", "020 5555 1234"))
    out = ok(cli("contacts", "opt-out", "+856 20 5555 1234")).stdout
    assert "contact +856 20 ••• ••34 opted out" in out
    assert "already opted out" in ok(cli("contacts", "opt-out", "2055551234")).stdout
    assert "opted in" in ok(cli("contacts", "opt-in", "020 5555 1234")).stdout
    assert "already active" in ok(cli("contacts", "opt-in", "020 5555 1234")).stdout
    events = audit_events("contact.opt_out") + audit_events("contact.opt_in")
    assert [e.detail["changed"] for e in events] == [True, False, True, False]
    assert all("5555" not in str(e.detail) and e.object_id for e in events)
    with get_runtime().session() as session:
        contact = session.scalars(select(Contact)).one()
        assert (contact.status, contact.opted_out_source) == ("active", "official")
        assert contact.consent_source == "official"
    missing = cli("contacts", "opt-out", "020 5555 9999")
    assert missing.exit_code == 1 and "no contact with that number" in missing.output


def test_cli_import(cli: Run, tmp_path: Path) -> None:
    ok(cli("communities", "add", "bokeo", "--name", "Bokeo"))
    ok(cli("communities", "add", "farm", "--name", "Farm", "--country", "TH"))
    csv_file = tmp_path / "people.csv"
    csv_file.write_bytes(
        b"\xef\xbb\xbfphone;name;language;communities\n"
        b'020 5555 1234;Kham;lo;"bokeo;farm"\n'
        b"020 5555 1235;Noy;xx;bokeo\n"
        b"021 212 345;Office;lo;bokeo\n"
        b"\n"
        b"020 5555 1234;;;\n"
        b"+66 81 234 5678;Jos\xe9;th;farm\n"
    )
    result = ok(cli("contacts", "import", str(csv_file), "--community", "bokeo"))
    assert "imported 1, updated 0, rejected 3" in result.stdout
    assert "1 duplicate rows merged; 1 blank lines skipped" in result.stdout
    report = tmp_path / "people.csv.errors.csv"
    assert f"rejected rows (line, column, reason): {report}" in result.stdout.replace("\n", "")
    lines = report.read_text(encoding="utf-8").splitlines()
    # A masked number starts with "+": quoted, so a spreadsheet shows it as text.
    assert lines == [
        "line,column,reason,phone",
        "3,language,unknown language 'xx','+856 20 ••• ••35",
        '4,phone,"landline, SMS cannot reach it",\'+856 21 ••• ••45',
        "7,,not UTF-8 (save the file as CSV UTF-8),'+66 81 ••• ••78",
    ]
    for digits in ("55551234", "55551235", "212345", "2345678"):
        assert digits not in result.output and digits not in report.read_text()
    (started,) = audit_events("contact.import")
    assert started.detail["file"] == "people.csv"
    (event,) = audit_events("contact.import.done")
    assert event.detail["imported"] == 1 and event.detail["rejected"] == 3
    assert "people.csv" in ok(cli("contacts", "imports")).stdout
    # a clean re-run removes the stale report and counts updates
    csv_file.write_text("phone\n020 5555 1234\n", encoding="utf-8")
    assert (
        "imported 0, updated 1, rejected 0" in ok(cli("contacts", "import", str(csv_file))).stdout
    )
    assert not report.exists()


def test_cli_import_exit_codes(cli: Run, tmp_path: Path) -> None:
    missing = cli("contacts", "import", str(tmp_path / "nope.csv"))
    assert missing.exit_code == 1 and "cannot read the file" in missing.output
    bad = tmp_path / "bad.csv"
    bad.write_text("name,language\nA,lo\n", encoding="utf-8")
    result = cli("contacts", "import", str(bad))
    assert result.exit_code == 1 and "no 'phone' column" in result.output
    assert not (tmp_path / "bad.csv.errors.csv").exists()
    good = tmp_path / "good.csv"
    good.write_text("phone\n020 5555 1234\n", encoding="utf-8")
    unknown = cli("contacts", "import", str(good), "--community", "nowhere")
    assert unknown.exit_code == 1 and "community 'nowhere' does not exist" in unknown.output
