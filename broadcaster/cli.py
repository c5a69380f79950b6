"""The ``riskcast`` command line: the service's commands (the process commands that run
workers, the scheduler and the simulator are added by :mod:`workers.cli`).

Every command is one unit of work: it commits at the end or changes nothing. Phone numbers
are printed masked. Errors print one line naming what is wrong and exit 1.
"""

from __future__ import annotations

import getpass
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.orm import Session

from broadcaster import audit, campaigns, communities, contacts, templates
from broadcaster.config import ConfigError
from broadcaster.errors import RiskcastError
from broadcaster.phones import mask_phone
from broadcaster.runtime import get_runtime
from broadcaster.schema import upgrade
from messages import TemplateError, load_dir, load_template_file, segments

console = Console()
err_console = Console(stderr=True)

app = typer.Typer(
    help="riskcast: multilingual risk-communication campaigns by SMS and WhatsApp.",
    no_args_is_help=True,
)
communities_app = typer.Typer(
    help="Communities (a hierarchy of places and groups).", no_args_is_help=True
)
contacts_app = typer.Typer(help="Contacts: the people riskcast reaches.", no_args_is_help=True)
templates_app = typer.Typer(help="Message templates, one body per language.", no_args_is_help=True)
campaigns_app = typer.Typer(help="Campaigns: create, launch, follow.", no_args_is_help=True)
db_app = typer.Typer(help="The database schema.", no_args_is_help=True)
app.add_typer(communities_app, name="communities")
app.add_typer(contacts_app, name="contacts")
app.add_typer(templates_app, name="templates")
app.add_typer(campaigns_app, name="campaigns")
app.add_typer(db_app, name="db")

P = ParamSpec("P")
R = TypeVar("R")


def fail(message: str, code: int = 1) -> None:
    err_console.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def friendly(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn riskcast's own errors into one line on stderr and exit code 1."""

    @wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except (RiskcastError, ConfigError, TemplateError) as exc:
            fail(str(exc))
            raise AssertionError("unreachable") from exc

    return wrapper


def actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


@contextmanager
def unit_of_work() -> Iterator[Session]:
    with get_runtime().session() as session:
        yield session


def log_action(
    session: Session, action: str, object_type: str, object_id: object, **detail: Any
) -> None:
    audit.record(
        session,
        actor=actor(),
        action=action,
        object_type=object_type,
        object_id=object_id,
        detail=detail,
        source="cli",
    )


# -- db ----------------------------------------------------------------------------
@db_app.command("upgrade")
@friendly
def db_upgrade() -> None:
    """Create or migrate the database schema to the current version."""
    rt = get_runtime()
    upgrade(rt.engine)
    console.print(f"database is up to date: {rt.engine.url.render_as_string(hide_password=True)}")


# -- communities -------------------------------------------------------------------
@communities_app.command("add")
@friendly
def communities_add(
    slug: str,
    name: Annotated[str, typer.Option(help="Display name.")],
    parent: Annotated[str | None, typer.Option(help="Slug of the parent community.")] = None,
    country: Annotated[str | None, typer.Option(help="Two-letter country code.")] = None,
    language: Annotated[
        str | None, typer.Option(help="Default language (lo, th, en, ...).")
    ] = None,
    timezone: Annotated[
        str | None, typer.Option(help="IANA time zone, e.g. Asia/Vientiane.")
    ] = None,
    kind: Annotated[
        str,
        typer.Option(
            help="country, province, district, village, border_crossing, worksite, quarantine_centre, other"
        ),
    ] = "other",
) -> None:
    """Add a community."""
    with unit_of_work() as session:
        community = communities.add_community(
            session,
            slug,
            name=name,
            parent=parent,
            country=country,
            language=language,
            timezone=timezone,
            kind=kind,
        )
        log_action(session, "community.add", "community", community.id, slug=slug)
        console.print(
            f"community {community.slug} added ({community.language}, {community.timezone})"
        )


# -- contacts ----------------------------------------------------------------------
@contacts_app.command("add")
@friendly
def contacts_add(
    phone: str,
    name: Annotated[str | None, typer.Option(help="The person's name.")] = None,
    language: Annotated[
        str | None, typer.Option(help="Language code: lo, th, en, km, vi, my, zh...")
    ] = None,
    community: Annotated[
        list[str] | None, typer.Option(help="Community slug (repeatable).")
    ] = None,
) -> None:
    """Add a contact (or update the one with that number)."""
    region = get_runtime().settings.default_region
    with unit_of_work() as session:
        contact, created = contacts.add_contact(
            session, phone, region=region, name=name, language=language, communities=community or []
        )
        log_action(session, "contact.add" if created else "contact.update", "contact", contact.id)
        verb = "added" if created else "updated"
        console.print(f"contact {mask_phone(contact.phone)} {verb} (status {contact.status})")


# -- templates ---------------------------------------------------------------------
@templates_app.command("load")
@friendly
def templates_load(
    path: Annotated[Path, typer.Argument(help="A YAML file, or a folder of them.")],
) -> None:
    """Load templates from YAML (one template per file). A changed file becomes a new version."""
    specs = load_dir(path) if path.is_dir() else [load_template_file(path)]
    with unit_of_work() as session:
        for spec in specs:
            result = templates.save_template(session, spec)
            state = "new" if result.created else ("new version" if result.changed else "unchanged")
            if result.changed:
                log_action(
                    session, "template.save", "template", spec.key, version=result.version.version
                )
            console.print(
                f"{spec.key}: {state} (v{result.version.version}, {', '.join(sorted(spec.variants))})"
            )


@templates_app.command("list")
@friendly
def templates_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List templates with their languages."""
    with unit_of_work() as session:
        rows = templates.list_templates(session)
    if as_json:
        sys.stdout.write(json.dumps(rows, ensure_ascii=False) + "\n")
        return
    table = Table("key", "name", "version", "languages")
    for row in rows:
        table.add_row(
            str(row["key"]), str(row["name"]), str(row["version"]), ", ".join(row["languages"])
        )  # type: ignore[arg-type]
    console.print(table)


# -- campaigns ---------------------------------------------------------------------
def parse_vars(pairs: list[str]) -> dict[str, str]:
    variables = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            fail(f"--var {pair!r}: expected key=value")
        variables[key.strip()] = value
    return variables


@campaigns_app.command("create")
@friendly
def campaigns_create(
    name: Annotated[str, typer.Option(help="A name officials will recognise.")],
    template: Annotated[str, typer.Option(help="Template key.")],
    community: Annotated[
        list[str], typer.Option(help="Community slug (repeatable); sub-communities are included.")
    ],
    priority: Annotated[str, typer.Option(help="urgent or bulk.")] = "bulk",
    channel: Annotated[str, typer.Option(help="sms or whatsapp.")] = "sms",
    var: Annotated[
        list[str] | None, typer.Option(help="Template variable, key=value (repeatable).")
    ] = None,
) -> None:
    """Create a draft campaign; prints its id as the last line."""
    with unit_of_work() as session:
        campaign = campaigns.create_campaign(
            session,
            name=name,
            template_key=template,
            community_slugs=community,
            priority=priority,
            channel=channel,
            variables=parse_vars(var or []),
        )
        log_action(session, "campaign.create", "campaign", campaign.id, name=name)
        campaign_id = campaign.id
    console.print(
        f"campaign {campaign_id} created as a draft; launch it with: riskcast campaigns launch {campaign_id}"
    )
    sys.stdout.write(f"{campaign_id}\n")


@campaigns_app.command("launch")
@friendly
def campaigns_launch(campaign_id: int) -> None:
    """Launch a draft campaign now (the scheduler picks it up within seconds)."""
    with unit_of_work() as session:
        campaign = campaigns.schedule(session, campaign_id)
        log_action(session, "campaign.launch", "campaign", campaign_id)
        console.print(
            f"campaign {campaign.id} launched ({campaign.priority}); follow it with: riskcast campaigns status {campaign.id}"
        )


def _action(name: str, fn: Callable[[Session, int], Any]) -> Callable[[int], None]:
    @friendly
    def command(campaign_id: int) -> None:
        with unit_of_work() as session:
            campaign = fn(session, campaign_id)
            log_action(session, f"campaign.{name}", "campaign", campaign_id)
            console.print(f"campaign {campaign_id} is {campaign.state}")

    command.__doc__ = f"{name.capitalize()} a campaign."
    return command


campaigns_app.command("pause")(_action("pause", campaigns.pause))
campaigns_app.command("resume")(_action("resume", campaigns.resume))
campaigns_app.command("cancel")(_action("cancel", campaigns.cancel))


@campaigns_app.command("status")
@friendly
def campaigns_status(
    campaign_id: int, as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False
) -> None:
    """A campaign's state and its deliveries counted by state."""
    with unit_of_work() as session:
        status = campaigns.status(session, campaign_id)
    if as_json:
        sys.stdout.write(json.dumps(status) + "\n")
        return
    console.print(
        f"campaign {status['id']} [bold]{status['name']}[/bold]: {status['state']} ({status['priority']}, {status['channel']}, {status['recipients']} recipients)"
    )
    if status["error"]:
        console.print(f"[red]{status['error']}[/red]")
    table = Table("delivery state", "count")
    for state, count in status["counts"].items():
        table.add_row(state, str(count))
    console.print(table)


@campaigns_app.command("list")
@friendly
def campaigns_list() -> None:
    """Recent campaigns."""
    table = Table("id", "name", "state", "priority", "recipients")
    with unit_of_work() as session:
        for c in campaigns.list_campaigns(session):
            table.add_row(str(c.id), c.name, c.state, c.priority, str(c.recipients))
    console.print(table)


# -- messages ----------------------------------------------------------------------
@app.command("segments")
def segments_cmd(text: str) -> None:
    """How TEXT is encoded and how many SMS segments it costs."""
    result = segments(text)
    console.print(f"encoding: {result.encoding}  units: {result.units}  segments: {result.parts}")
    if result.non_gsm and result.encoding == "UCS-2":
        console.print("non-GSM characters: " + " ".join(repr(c) for c in result.non_gsm))
