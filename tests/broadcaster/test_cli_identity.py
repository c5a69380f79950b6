"""The command line acts as a signed-in user (`riskcast login` or RISKCAST_TOKEN), with that
user's role, and the audit log names them. Without a token only the bootstrap commands run;
nobody approves, mints another person's token, or adds an admin alone."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from broadcaster.cli.common import token_path
from broadcaster.models import AuditEvent, Campaign, Community
from broadcaster.runtime import get_runtime
from broadcaster.users import auth
from tests.broadcaster.clitools import (
    ADMIN,
    Run,
    audit_events,
    cli_on_sqlite,
    ok,
    sign_in,
    sign_out,
    token_for,
)

SIGN_IN = "sign in first: riskcast login, or set RISKCAST_TOKEN"

TEMPLATE = """\
key: hotline
name: Hotline
default_language: en
variables:
  hotline: "1166"
variants:
  en: Call {{ hotline }} if you feel unwell.
"""


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Run]:
    with cli_on_sqlite(tmp_path, monkeypatch) as run:
        yield run


def refused(result: object, *needles: str) -> None:
    """Exit 1 with one line on stderr naming the reason."""
    exit_code = result.exit_code  # type: ignore[attr-defined]
    output = result.output  # type: ignore[attr-defined]
    assert exit_code == 1, output
    assert len(output.strip().splitlines()) == 1, output
    for needle in needles:
        assert needle in output, output


def audience(cli: Run, tmp_path: Path, people: int = 3) -> None:
    """A template and a community of ``people`` contacts (as the signed-in admin)."""
    (tmp_path / "hotline.yaml").write_text(TEMPLATE, encoding="utf-8")
    ok(cli("templates", "load", str(tmp_path / "hotline.yaml")))
    ok(cli("communities", "add", "bokeo", "--name", "Bokeo", "--country", "LA"))
    csv_file = tmp_path / "people.csv"
    csv_file.write_text(
        "phone\n" + "".join(f"+856 20 55{n:06d}\n" for n in range(people)),
        encoding="utf-8",
    )
    assert (
        f"imported {people:,}"
        in ok(cli("contacts", "import", str(csv_file), "--community", "bokeo")).stdout
    )


def create_campaign(cli: Run, priority: str = "bulk") -> str:
    created = ok(
        cli(
            "campaigns",
            "create",
            "--name",
            "Hotline",
            "--template",
            "hotline",
            "--community",
            "bokeo",
            "--priority",
            priority,
        )
    )
    return created.stdout.strip().splitlines()[-1]


# -- signed out ------------------------------------------------------------------------------

NEEDS_IDENTITY = [
    ("communities", "add", "x", "--name", "X"),
    ("communities", "list"),
    ("contacts", "add", "020 5555 1234"),
    ("contacts", "export", "020 5555 1234"),
    ("contacts", "erase", "020 5555 1234", "--yes"),
    ("contacts", "purge-inactive", "--days", "1"),
    ("templates", "list"),
    ("campaigns", "list"),
    ("campaigns", "status", "1"),
    ("campaigns", "launch", "1"),
    ("campaigns", "schedule", "1", "--at", "2027-01-05T09:00", "--tz", "Asia/Bangkok"),
    ("campaigns", "approve", "1"),
    ("campaigns", "pause", "1"),
    ("cap", "mappings"),
    ("queue",),
    ("users", "list"),
    ("users", "token"),
    ("users", "revoke", "1"),
    ("users", "confirm", "x"),
    ("users", "create", "eve", "--role", "admin"),  # an admin exists: no bootstrap
    ("whoami",),
]


@pytest.mark.parametrize("args", NEEDS_IDENTITY, ids=" ".join)
def test_signed_out_commands_are_refused_before_they_do_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...]
) -> None:
    with cli_on_sqlite(tmp_path, monkeypatch, signed_in=False) as run:
        token_for(ADMIN, "admin")  # an admin exists, but nobody is signed in
        refused(run(*args), SIGN_IN)
        with get_runtime().session() as session:
            assert session.scalar(select(func.count()).select_from(AuditEvent)) == 0
            assert session.scalar(select(func.count()).select_from(Community)) == 0


def test_a_bad_or_revoked_token_is_refused(cli: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RISKCAST_TOKEN", "not-a-token")
    refused(cli("communities", "list"), "invalid or revoked", SIGN_IN)
    token = sign_in(monkeypatch, "olivia")
    ok(cli("communities", "list"))
    with get_runtime().session() as session:
        user = auth.user_for_token(session, token)
        assert user is not None
        (row,) = [t for t in auth.list_tokens(session, user) if t.revoked_at is None]
        auth.revoke_token(session, row.id)
    refused(cli("communities", "list"), "invalid or revoked")


def test_first_admin_without_signing_in_then_never_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with cli_on_sqlite(tmp_path, monkeypatch, signed_in=False) as run:
        refused(run("users", "create", "olivia", "--role", "official"), "first user is an admin")
        made = ok(run("users", "create", "root", "--role", "admin"))
        token = made.stdout.strip().splitlines()[-1]
        (event,) = audit_events("user.create")
        assert (event.actor, event.source, event.detail["first_admin"]) == ("root", "cli", True)
        refused(run("users", "create", "eve", "--role", "admin"), SIGN_IN)
        monkeypatch.setenv("RISKCAST_TOKEN", token)
        assert "root (admin)" in ok(run("whoami")).stdout
        ok(run("users", "create", "olivia", "--role", "official"))
        assert audit_events("user.create")[-1].actor == "root"


def test_pure_commands_need_no_identity(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with cli_on_sqlite(tmp_path, monkeypatch, signed_in=False) as run:
        assert "GSM-7" in ok(run("segments", "Wash your hands")).stdout
        assert "up to date" in ok(run("db", "upgrade")).stdout
        assert "riskcast" in ok(run("--help")).stdout


# -- login, logout, whoami -------------------------------------------------------------------


def test_login_keeps_the_token_for_this_account_only(
    cli: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = token_for("olivia", "official")
    sign_out(monkeypatch)
    wrong = cli("login", "--name", "omar", "--token-stdin", input=token + "\n")
    refused(wrong, "not a valid API token")
    refused(cli("login", "--token-stdin", input="guess\n"), "not a valid API token")
    out = ok(cli("login", input=f"olivia\n{token}\n")).stdout
    assert "signed in as olivia (official)" in out and token not in out
    path = tmp_path / "config" / "riskcast" / "token"
    assert path.read_text(encoding="utf-8").strip() == token
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert "olivia (official)" in ok(cli("whoami")).stdout
    assert [e.actor for e in audit_events("login")] == ["olivia"]

    # RISKCAST_TOKEN, when set, wins over the file
    admin = sign_in(monkeypatch, ADMIN, "admin")
    assert "ada (admin)" in ok(cli("whoami")).stdout
    monkeypatch.delenv("RISKCAST_TOKEN")

    path.chmod(0o644)
    refused(cli("whoami"), "can be read by others")
    ok(cli("login", "--token-stdin", input=admin + "\n"))  # rewritten, 0600 again
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "ada (admin)" in ok(cli("whoami")).stdout

    assert "signed out" in ok(cli("logout")).stdout
    assert not path.exists()
    refused(cli("whoami"), SIGN_IN)


# -- roles -----------------------------------------------------------------------------------


def test_each_command_admits_the_roles_its_api_route_does(
    cli: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    audience(cli, tmp_path)
    campaign_id = create_campaign(cli)
    ok(cli("contacts", "add", "020 5555 1234"))

    sign_in(monkeypatch, "olivia", "official")
    for args in (
        ("campaigns", "pause", campaign_id),
        ("campaigns", "cancel", campaign_id),
        ("campaigns", "retry-failed", campaign_id),
        ("queue", "--json"),
        ("contacts", "export", "020 5555 1234"),
        ("contacts", "erase", "020 5555 1234", "--yes"),
        ("users", "list"),
    ):
        refused(cli(*args), "you are official")
    ok(cli("campaigns", "preview", campaign_id))

    sign_in(monkeypatch, "otto", "operator")
    for args in (
        ("campaigns", "create", "--name", "x", "--template", "hotline", "--community", "bokeo"),
        ("campaigns", "launch", campaign_id),
        ("campaigns", "schedule", campaign_id, "--at", "2027-01-05T09:00+07:00"),
        ("campaigns", "approve", campaign_id),
        ("contacts", "add", "020 5555 1235"),
        ("contacts", "export", "020 5555 1234"),
        ("communities", "add", "x", "--name", "X"),
        ("templates", "load", str(tmp_path / "hotline.yaml")),
    ):
        refused(cli(*args), "you are operator")
    ok(cli("campaigns", "list"))
    ok(cli("queue", "--json"))
    assert "is cancelled" in ok(cli("campaigns", "cancel", campaign_id)).stdout
    assert audit_events("campaign.cancel")[-1].actor == "otto"

    sign_in(monkeypatch, ADMIN, "admin")
    assert "+8562055551234" in ok(cli("contacts", "export", "020 5555 1234")).stdout
    assert audit_events("contact.export")[-1].actor == ADMIN


def test_an_official_sees_the_campaigns_of_their_areas_and_organisation(
    cli: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    audience(cli, tmp_path)
    ok(cli("communities", "add", "savannakhet", "--name", "Savannakhet", "--country", "LA"))
    ok(cli("organisations", "add", "health", "--name", "Provincial Health Office"))
    ok(cli("users", "create", "boun", "--role", "official", "--area", "bokeo"))
    ok(cli("users", "create", "sam", "--role", "official", "--area", "savannakhet"))
    ok(
        cli(
            "users",
            "create",
            "hana",
            "--role",
            "official",
            "--organisation",
            "health",
            "--area",
            "bokeo",
        )
    )
    assert "sam (official, default): savannakhet" in ok(cli("users", "areas", "sam")).stdout
    sign_in(monkeypatch, "omar", "official")  # national
    others = create_campaign(cli)
    ok(cli("campaigns", "launch", others))

    sign_in(monkeypatch, "boun", "official")  # same organisation, Bokeo
    assert "Hotline" in ok(cli("campaigns", "list")).stdout
    urgent = create_campaign(cli, priority="urgent")
    assert "Hotline" not in ok(cli("campaigns", "list", "--awaiting")).stdout  # own
    sign_in(monkeypatch, "omar", "official")
    waiting = ok(cli("campaigns", "list", "--awaiting")).stdout
    ids = [line.split("│")[1].strip() for line in waiting.splitlines() if line.startswith("│")]
    assert ids == [urgent]  # boun's urgent draft only (not omar's own, launched one)
    for outsider in ("sam", "hana"):  # another province; another organisation
        sign_in(monkeypatch, outsider, "official")
        refused(cli("campaigns", "status", others), f"campaign {others} does not exist")
        assert "Hotline" not in ok(cli("campaigns", "list")).stdout

    sign_in(monkeypatch, "sam", "official")
    tree = ok(cli("communities", "list")).stdout
    assert "savannakhet" in tree and "bokeo" not in tree
    refused(cli("contacts", "add", "020 5555 9999", "--community", "bokeo"), "outside your areas")
    refused(
        cli("communities", "add", "xay", "--name", "Xay", "--parent", "bokeo"), "outside your areas"
    )
    ok(cli("communities", "add", "kaysone", "--name", "Kaysone", "--parent", "savannakhet"))


# -- the two-person rule ---------------------------------------------------------------------


def test_approval_is_by_the_signed_in_user_and_never_the_creator(
    cli: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    audience(cli, tmp_path)
    sign_in(monkeypatch, "olivia", "official")
    campaign_id = create_campaign(cli, priority="urgent")
    refused(cli("campaigns", "launch", campaign_id), "needs approval")
    by = cli("campaigns", "approve", campaign_id, "--by", "omar")  # nobody approves for another
    assert by.exit_code == 2 and "No such option" in by.output

    sign_out(monkeypatch)
    refused(cli("campaigns", "approve", campaign_id), SIGN_IN)

    sign_in(monkeypatch, "olivia", "official")
    refused(cli("campaigns", "approve", campaign_id), "a second person must approve it")

    sign_in(monkeypatch, "omar", "official")
    assert "approved by omar" in ok(cli("campaigns", "approve", campaign_id)).stdout

    sign_in(monkeypatch, "olivia", "official")
    ok(cli("campaigns", "launch", campaign_id))

    with get_runtime().session() as session:
        campaign = session.get(Campaign, int(campaign_id))
        assert campaign is not None
        names = auth.names(session, [campaign.created_by, campaign.approved_by])
        assert (names.get(campaign.created_by or 0), names.get(campaign.approved_by or 0)) == (
            "olivia",
            "omar",
        )
        events = session.scalars(
            select(AuditEvent).where(AuditEvent.object_type == "campaign").order_by(AuditEvent.id)
        ).all()
    assert [(e.action, e.actor, e.source) for e in events] == [
        ("campaign.create", "olivia", "cli"),
        ("campaign.approve", "omar", "cli"),
        ("campaign.launch", "olivia", "cli"),
    ]
    assert all(e.user_id is not None for e in events)


def test_a_campaign_is_scheduled_at_a_local_time_in_a_named_zone(
    cli: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    audience(cli, tmp_path)
    sign_in(monkeypatch, "olivia", "official")
    campaign_id = create_campaign(cli)
    at = "2027-01-05T09:00"
    refused(cli("campaigns", "schedule", campaign_id, "--at", at), "has no offset", "--tz")
    refused(cli("campaigns", "schedule", campaign_id, "--at", "tomorrow", "--tz", "Asia/Bangkok"))
    refused(
        cli("campaigns", "schedule", campaign_id, "--at", at, "--tz", "Bangkok"),
        "unknown time zone",
    )
    out = ok(cli("campaigns", "schedule", campaign_id, "--at", at, "--tz", "Asia/Bangkok")).stdout
    assert (
        f"campaign {campaign_id} scheduled for 2027-01-05 09:00 Asia/Bangkok (2027-01-05 02:00 UTC)"
        in out
    )
    status = ok(cli("campaigns", "status", campaign_id)).stdout
    assert ": scheduled (" in status and "send at 2027-01-05 09:00 Asia/Bangkok" in status
    refused(
        cli("campaigns", "schedule", campaign_id, "--at", at, "--tz", "Asia/Bangkok"),
        "only a draft",
    )
    event = audit_events("campaign.schedule")[-1]
    assert (event.actor, event.detail) == (
        "olivia",
        {"send_at": "2027-01-05T02:00:00+00:00", "timezone": "Asia/Bangkok"},
    )

    # an offset alone is enough; the time is then shown in UTC
    other = create_campaign(cli)
    ok(cli("campaigns", "schedule", other, "--at", "2027-01-05T09:00+07:00"))
    assert "send at 2027-01-05 02:00 UTC" in ok(cli("campaigns", "status", other)).stdout

    # the two-person rule holds for a scheduled send as for a launch
    urgent = create_campaign(cli, priority="urgent")
    refused(
        cli("campaigns", "schedule", urgent, "--at", at, "--tz", "Asia/Vientiane"), "needs approval"
    )


def test_the_callers_environment_cannot_raise_the_approval_threshold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 1,001 recipients: more than the service's default threshold (1,000).
    with cli_on_sqlite(tmp_path, monkeypatch, approval_threshold="999999") as cli:
        audience(cli, tmp_path, people=1001)
        sign_in(monkeypatch, "olivia", "official")
        campaign_id = create_campaign(cli)
        refused(cli("campaigns", "launch", campaign_id), "1001 recipients is more than 1000")


def test_a_stricter_threshold_in_the_environment_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with cli_on_sqlite(tmp_path, monkeypatch, approval_threshold="2") as cli:
        audience(cli, tmp_path, people=3)
        sign_in(monkeypatch, "olivia", "official")
        campaign_id = create_campaign(cli)
        refused(cli("campaigns", "launch", campaign_id), "3 recipients is more than 2")


# -- users, tokens, admins -------------------------------------------------------------------


def test_a_token_is_made_by_its_own_user_only(cli: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    token_for("olivia", "official")
    refused(cli("users", "token", "olivia"), "made by its own user")  # not even an admin
    sign_in(monkeypatch, "olivia", "official")
    refused(cli("users", "token", ADMIN), "made by its own user")
    fresh = ok(cli("users", "token")).stdout.strip().splitlines()[-1]
    monkeypatch.setenv("RISKCAST_TOKEN", fresh)
    assert "olivia (official)" in ok(cli("whoami")).stdout
    ok(cli("users", "token", "olivia"))
    assert {e.actor for e in audit_events("token.create")} == {"olivia"}


def accept(cli: Run, name: str, invitation: str, *, password: str | None = None) -> str:
    """``riskcast users accept NAME`` typed by NAME: the token it keeps for them."""
    typed = invitation + "\n" + (f"{password}\n{password}\n" if password else "")
    args = ("users", "accept", name) + (("--password",) if password else ())
    assert f"signed in as {name}" in ok(cli(*args, input=typed)).stdout
    return token_path().read_text(encoding="utf-8").strip()


def test_an_invited_person_makes_their_own_first_token_and_password(
    cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = ok(cli("users", "create", "noy", "--role", "official")).stdout
    assert "invitation for noy" in made and "token" not in made.lower().replace("riskcast", "")
    code = made.strip().splitlines()[-1]
    assert not audit_events("user.invitation.accept")
    wrong = cli("users", "accept", "noy", input="not-the-code\n")
    assert wrong.exit_code == 1 and "invitation is unknown" in wrong.output
    token = accept(cli, "noy", code, password="correct horse battery")
    monkeypatch.setenv("RISKCAST_TOKEN", token)
    assert "noy (official)" in ok(cli("whoami")).stdout
    (accepted,) = audit_events("user.invitation.accept")
    assert (accepted.actor, accepted.detail["password"]) == ("noy", True)
    twice = cli("users", "accept", "noy", input=code + "\n")  # an invitation works once
    assert twice.exit_code == 1 and "invitation is unknown" in twice.output
    assert [e.detail["step"] for e in audit_events("login.failed")] == ["invitation"] * 2
    sign_in(monkeypatch, ADMIN, "admin")
    refused(cli("users", "invite", "noy"), "live token")  # no way into a used account


def test_passwords_are_set_by_their_own_user(cli: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "correct horse battery\n" * 2
    token_for("olivia", "official")
    # Not even an admin sets someone's password (they could then sign in as them).
    refused(cli("users", "password", "olivia", input=secret), "only olivia sets it")
    sign_in(monkeypatch, "olivia", "official")
    ok(cli("users", "password", input=secret))
    sign_in(monkeypatch, "omar", "official")
    refused(cli("users", "password", "olivia", input=secret), "set by its own user")


def test_a_new_admin_needs_a_second_admin(cli: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    # With one admin nobody else could confirm: the second admin is active at once.
    invited = ok(cli("users", "create", "bea", "--role", "admin")).stdout.strip().splitlines()[-1]
    bea = accept(cli, "bea", invited)
    # Now ada's new admin waits for bea.
    made = ok(cli("users", "create", "cid", "--role", "admin")).stdout
    assert "inactive until a second admin confirms them" in made
    cid = accept(cli, "cid", made.strip().splitlines()[-1])
    assert "waiting for a second admin" in ok(cli("users", "list")).stdout
    monkeypatch.setenv("RISKCAST_TOKEN", cid)
    refused(cli("whoami"), "invalid or revoked")

    sign_in(monkeypatch, ADMIN, "admin")
    refused(cli("users", "confirm", "cid"), "a second admin confirms them")
    refused(cli("users", "confirm", "bea"), "not an admin waiting")
    sign_in(monkeypatch, "olivia", "official")
    refused(cli("users", "confirm", "cid"), "you are official")

    monkeypatch.setenv("RISKCAST_TOKEN", bea)
    assert "admin cid confirmed by bea" in ok(cli("users", "confirm", "cid")).stdout
    monkeypatch.setenv("RISKCAST_TOKEN", cid)
    assert "cid (admin)" in ok(cli("whoami")).stdout
    (create,) = [e for e in audit_events("user.create") if e.detail["name"] == "cid"]
    assert (create.actor, create.detail["pending"]) == (ADMIN, True)
    assert [e.actor for e in audit_events("user.confirm")] == ["bea"]

    # A deactivated admin is not pending: confirm does not bring them back.
    with get_runtime().session() as session:
        auth.deactivate(session, auth.get_user(session, "cid"))
        admin = auth.actor_for(session, auth.get_user(session, ADMIN), "test")
        admin.record(session, "user.deactivate", "user", auth.get_user(session, "cid").id)
    monkeypatch.setenv("RISKCAST_TOKEN", bea)
    refused(cli("users", "confirm", "cid"), "not an admin waiting")


def test_an_admin_requires_and_resets_two_factor_codes(
    cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    token_for("noy", "official")
    assert (
        "noy: two-factor not enrolled, not required" in ok(cli("users", "two-factor", "noy")).stdout
    )
    shown = ok(cli("users", "two-factor", "noy", "--require")).stdout
    assert "not enrolled, required" in shown
    assert [e.detail for e in audit_events("user.two_factor.require")] == [{"required": True}]
    ok(cli("users", "two-factor", "noy", "--reset"))
    assert len(audit_events("user.two_factor.reset")) == 1
    sign_in(monkeypatch, "noy", "official")
    refused(cli("users", "two-factor", "noy", "--no-require"), "admin")


def test_an_official_opts_out_only_people_of_their_areas(
    cli: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    audience(cli, tmp_path)  # three people in Bokeo, +856 20 55000000 ...
    ok(cli("communities", "add", "savannakhet", "--name", "Savannakhet", "--country", "LA"))
    ok(cli("users", "create", "sid", "--role", "official", "--area", "savannakhet"))
    ok(cli("users", "create", "boun", "--role", "official", "--area", "bokeo"))
    sign_in(monkeypatch, "sid", "official")
    refused(cli("contacts", "opt-out", "+856 20 55000001"), "no contact with that number")
    sign_in(monkeypatch, "boun", "official")
    assert "opted out" in ok(cli("contacts", "opt-out", "+856 20 55000001")).stdout
