"""CLI: campaigns."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import timedelta
from typing import Annotated, Any

import typer
from rich.table import Table
from sqlalchemy.orm import Session

from broadcaster import campaigns
from broadcaster.cli.common import console, fail, friendly, log_action, unit_of_work
from broadcaster.db import utcnow

app = typer.Typer(help="Campaigns: create, launch, follow.", no_args_is_help=True)


def parse_vars(pairs: list[str]) -> dict[str, str]:
    variables = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            fail(f"--var {pair!r}: expected key=value")
        variables[key.strip()] = value
    return variables


def parse_quiet_hours(text: str) -> tuple[int, int]:
    start, sep, end = text.partition("-")
    if not sep or not start.strip().isdigit() or not end.strip().isdigit():
        fail(f"--quiet-hours {text!r}: expected START-END in local hours, e.g. 21-7")
    return int(start), int(end)


@app.command("create")
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
    quiet_hours: Annotated[
        str | None,
        typer.Option(help="No sending between these local hours of each recipient, e.g. 21-7."),
    ] = None,
    valid_hours: Annotated[
        float | None,
        typer.Option(help="Hours after launch the message stays worth sending (else skipped)."),
    ] = None,
    whole_tree: Annotated[
        bool, typer.Option("--descendants/--no-descendants", help="Include sub-communities.")
    ] = True,
) -> None:
    """Create a draft campaign; prints its id as the last line."""
    quiet = parse_quiet_hours(quiet_hours) if quiet_hours else None
    valid_until = utcnow() + timedelta(hours=valid_hours) if valid_hours else None
    with unit_of_work() as session:
        campaign = campaigns.create_campaign(
            session,
            name=name,
            template_key=template,
            community_slugs=community,
            priority=priority,
            channel=channel,
            variables=parse_vars(var or []),
            quiet_hours=quiet,
            valid_until=valid_until,
            descendants=whole_tree,
        )
        log_action(session, "campaign.create", "campaign", campaign.id, name=name)
        campaign_id = campaign.id
    console.print(
        f"campaign {campaign_id} created as a draft; launch it with: riskcast campaigns launch {campaign_id}"
    )
    sys.stdout.write(f"{campaign_id}\n")


@app.command("launch")
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


app.command("pause")(_action("pause", campaigns.pause))
app.command("resume")(_action("resume", campaigns.resume))
app.command("cancel")(_action("cancel", campaigns.cancel))


@app.command("status")
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


@app.command("list")
@friendly
def campaigns_list() -> None:
    """Recent campaigns."""
    table = Table("id", "name", "state", "priority", "recipients")
    with unit_of_work() as session:
        for c in campaigns.list_campaigns(session):
            table.add_row(str(c.id), c.name, c.state, c.priority, str(c.recipients))
    console.print(table)


@app.command("retry-failed")
@friendly
def campaigns_retry_failed(campaign_id: int) -> None:
    """Queue again the failures a retry can fix (not permanent refusals such as 21211)."""
    with unit_of_work() as session:
        count = campaigns.retry_failed(session, campaign_id)
        log_action(session, "campaign.retry_failed", "campaign", campaign_id, deliveries=count)
    console.print(f"campaign {campaign_id}: {count} deliveries queued again")
