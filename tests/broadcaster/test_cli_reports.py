"""`riskcast campaigns report` after a real fan-out, and `campaigns preview` saying when a
launch needs a second official's approval, on a SQLite file."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from broadcaster.areas import scope
from broadcaster.deliveries import service as deliveries
from broadcaster.models import Contact, Delivery, DeliveryState
from broadcaster.runtime import get_runtime
from broadcaster.users import auth
from tests import factories
from tests.broadcaster.clitools import Run, audit_events, cli_on_sqlite, ok, sign_in


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Run]:
    with cli_on_sqlite(tmp_path, monkeypatch) as run:
        yield run


@pytest.fixture
def strict_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Run]:
    """Campaigns of more than 3 people need a second official's approval."""
    with cli_on_sqlite(tmp_path, monkeypatch, approval_threshold="3") as run:
        yield run


def _fanned_out_campaign(cli: Run) -> str:
    """Four people in Bokeo (one in a village of Houayxay), one in Savannakhet; a campaign
    to all of Laos launched and fanned out; two delivered, one failed, one opted out."""
    for args in [
        ("laos", "--name", "Laos", "--country", "LA", "--language", "lo"),
        ("bokeo", "--name", "Bokeo", "--parent", "laos"),
        ("houayxay", "--name", "Houayxay", "--parent", "bokeo"),
        ("savannakhet", "--name", "Savannakhet", "--parent", "laos"),
    ]:
        ok(cli("communities", "add", *args))
    people = [
        ("020 5555 1201", "bokeo", DeliveryState.DELIVERED),
        ("020 5555 1202", "houayxay", DeliveryState.DELIVERED),
        ("020 5555 1203", "houayxay", DeliveryState.FAILED),
        ("020 5555 1204", "savannakhet", DeliveryState.SKIPPED),
    ]
    for phone, community, _ in people:
        ok(cli("contacts", "add", phone, "--community", community))
    with get_runtime().session() as session:
        factories.template(session)
    created = ok(
        cli(
            "campaigns",
            "create",
            "--name",
            "Clinics",
            "--template",
            "covid-test",
            "--community",
            "laos",
        )
    )
    campaign_id = created.stdout.splitlines()[-1]
    ok(cli("campaigns", "launch", campaign_id))
    with get_runtime().session() as session:
        assert factories.fanned_out(session, int(campaign_id)) == 4
        for n, (_, _, state) in enumerate(people, start=1):
            contact = session.scalar(
                select(Contact.id).where(Contact.phone.endswith(f"5551{200 + n}"))
            )
            this = (Delivery.campaign_id == int(campaign_id)) & (Delivery.contact_id == contact)
            if state == DeliveryState.SKIPPED:
                deliveries.move(session, this, state, values={"reason": "opted_out"})
                continue
            deliveries.move(session, this, DeliveryState.SENDING)
            if state == DeliveryState.DELIVERED:
                deliveries.move(session, this, DeliveryState.SENT)
            deliveries.move(session, this, state)
    return campaign_id


def test_report_prints_every_breakdown_and_writes_csv(
    cli: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    campaign_id = _fanned_out_campaign(cli)
    shown = ok(cli("campaigns", "report", campaign_id)).stdout
    assert f"campaign {campaign_id} Clinics (sending): 4 deliveries" in shown, shown
    for heading in ("area", "language", "country", "channel", "opted out", "Houayxay (houayxay)"):
        assert heading in shown, shown

    data = json.loads(ok(cli("campaigns", "report", campaign_id, "--json")).stdout)
    assert data["total"]["delivered"] == 2 and data["total"]["opted_out"] == 1
    assert [(r["key"], r["depth"], r["counts"]["total"]) for r in data["by_area"]] == [
        ("laos", 0, 4),
        ("bokeo", 1, 3),
        ("houayxay", 2, 2),
        ("savannakhet", 1, 1),
    ]

    target = tmp_path / "report.csv"
    ok(cli("campaigns", "report", campaign_id, "--csv", str(target)))
    rows = list(csv.DictReader(io.StringIO(target.read_text(encoding="utf-8"))))
    houayxay = next(r for r in rows if r["breakdown"] == "area" and r["key"] == "houayxay")
    assert (houayxay["delivered"], houayxay["failed"], houayxay["total"]) == ("1", "1", "2")
    assert [e.detail["format"] for e in audit_events("campaign.report.export")] == ["csv"]

    # An official of another province does not see the campaign, nor its report.
    with get_runtime().session() as session:
        scope.add_organisation(session, "ministry", "Ministry of Labour")
        user = auth.create_user(
            session, "sam", role="official", organisation="ministry", areas=["savannakhet"]
        )
        _, token = auth.issue_token(session, user)
    monkeypatch.setenv("RISKCAST_TOKEN", token)
    refused = cli("campaigns", "report", campaign_id)
    assert refused.exit_code == 1 and f"campaign {campaign_id} does not exist" in refused.output


def test_preview_says_a_launch_needs_a_second_official(
    strict_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli = strict_cli
    ok(cli("communities", "add", "laos", "--name", "Laos", "--country", "LA"))
    for n in range(4):
        ok(cli("contacts", "add", f"020 5555 13{n:02d}", "--community", "laos"))
    with get_runtime().session() as session:
        factories.template(session)
    sign_in(monkeypatch, "olivia")
    made = ok(
        cli(
            "campaigns",
            "create",
            "--name",
            "Big",
            "--template",
            "covid-test",
            "--community",
            "laos",
        )
    )
    big = made.stdout.splitlines()[-1]
    shown = ok(cli("campaigns", "preview", big)).output
    assert "second official" in " ".join(shown.split()), shown
    assert "4 recipients is more than 3" in " ".join(shown.split())
    data = json.loads(ok(cli("campaigns", "preview", big, "--json")).stdout)
    assert data["approval"] == "4 recipients is more than 3"
    assert "approval" in [w["kind"] for w in data["warnings"]]
    # Once a second official approved it, the preview no longer warns.
    sign_in(monkeypatch, "omar")
    ok(cli("campaigns", "approve", big))
    sign_in(monkeypatch, "olivia")
    data = json.loads(ok(cli("campaigns", "preview", big, "--json")).stdout)
    assert data["approval"] == "" and "approval" not in [w["kind"] for w in data["warnings"]]
