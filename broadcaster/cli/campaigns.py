"""CLI: campaigns."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from broadcaster.cli.common import (
    ANYONE,
    OFFICIAL,
    OPERATOR,
    approval_threshold,
    console,
    fail,
    friendly,
    signed_in,
    unit_of_work,
)
from broadcaster.cli.templates import print_texts, print_warnings

if TYPE_CHECKING:
    from broadcaster.audit.service import Actor
    from broadcaster.campaigns.preview import CampaignPreview
    from broadcaster.campaigns.report import Report

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
    channel: Annotated[
        str, typer.Option(help="sms, whatsapp, or preferred (each contact's own channel).")
    ] = "sms",
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
    rate: Annotated[
        float | None,
        typer.Option(help="Segments per second for this campaign (under the fleet's rate)."),
    ] = None,
    whole_tree: Annotated[
        bool, typer.Option("--descendants/--no-descendants", help="Include sub-communities.")
    ] = True,
) -> None:
    """Create a draft campaign; prints its id as the last line."""
    from broadcaster.campaigns import actions
    from broadcaster.db import utcnow

    caller = signed_in(OFFICIAL)
    quiet = parse_quiet_hours(quiet_hours) if quiet_hours else None
    valid_until = utcnow() + timedelta(hours=valid_hours) if valid_hours else None
    with unit_of_work() as session:
        campaign = actions.create(
            session,
            caller,
            name=name,
            template_key=template,
            community_slugs=community,
            priority=priority,
            channel=channel,
            variables=parse_vars(var or []),
            quiet_hours=quiet,
            valid_until=valid_until,
            descendants=whole_tree,
            send_rate=rate,
        )
        campaign_id = campaign.id
    console.print(
        f"campaign {campaign_id} created as a draft; launch it with: riskcast campaigns launch {campaign_id}"
    )
    sys.stdout.write(f"{campaign_id}\n")


@app.command("launch")
@friendly
def campaigns_launch(campaign_id: int) -> None:
    """Launch a draft campaign now (the scheduler picks it up within seconds)."""
    from broadcaster.campaigns import actions

    caller = signed_in(OFFICIAL)
    threshold = approval_threshold()
    with unit_of_work() as session:
        campaign = actions.schedule(session, caller, campaign_id, None, threshold)
        console.print(
            f"campaign {campaign.id} launched ({campaign.priority}); follow it with: riskcast campaigns status {campaign.id}"
        )


@app.command("schedule")
@friendly
def campaigns_schedule(
    campaign_id: int,
    at: Annotated[
        str,
        typer.Option(
            "--at",
            help="When to send: a local date and time (2027-01-05T09:00) in --tz, or a time "
            "with its offset (2027-01-05T09:00+07:00).",
        ),
    ],
    tz: Annotated[
        str | None,
        typer.Option(
            "--tz",
            help="The time zone --at is read in (IANA, e.g. Asia/Bangkok); the campaign "
            "shows its time back in it. Needed when --at has no offset.",
        ),
    ] = None,
) -> None:
    """Schedule a draft campaign to send at a time, in a named zone."""
    from datetime import datetime

    from broadcaster.campaigns import actions
    from broadcaster.campaigns import service as campaigns

    try:
        when = datetime.fromisoformat(at)
    except ValueError:
        fail(f"--at: {at!r} is not a date and time (e.g. 2027-01-05T09:00)")
    if when.tzinfo is None and tz is None:
        fail(f"--at {at} has no offset: name its zone with --tz (e.g. --tz Asia/Vientiane)")
    caller = signed_in(OFFICIAL)
    threshold = approval_threshold()
    with unit_of_work() as session:
        campaign = actions.schedule(session, caller, campaign_id, when, threshold, timezone=tz)
        console.print(
            f"campaign {campaign.id} scheduled for {campaigns.local_send_at(campaign)} "
            f"({campaign.send_at:%Y-%m-%d %H:%M} UTC); follow it with: "
            f"riskcast campaigns status {campaign.id}"
        )


def _action(name: str) -> Callable[[int], None]:
    @friendly
    def command(campaign_id: int) -> None:
        from broadcaster.campaigns import actions

        caller = signed_in(OPERATOR)
        with unit_of_work() as session:
            campaign = actions.operate(session, caller, campaign_id, name)
            console.print(f"campaign {campaign_id} is {campaign.state}")

    command.__doc__ = f"{name.capitalize()} a campaign."
    return command


app.command("pause")(_action("pause"))
app.command("resume")(_action("resume"))
app.command("cancel")(_action("cancel"))


@app.command("status")
@friendly
def campaigns_status(
    campaign_id: int,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    watch: Annotated[
        bool, typer.Option("--watch", help="A live progress bar until the campaign finishes.")
    ] = False,
) -> None:
    """A campaign's state and its deliveries counted by state."""
    caller = signed_in(ANYONE)
    if watch:
        watch_status(caller, campaign_id)
        return
    from broadcaster.campaigns import actions
    from broadcaster.campaigns import service as campaigns

    with unit_of_work() as session:
        actions.get_visible(session, caller, campaign_id)
        status = campaigns.status(session, campaign_id)
    if as_json:
        sys.stdout.write(json.dumps(status) + "\n")
        return
    console.print(
        f"campaign {status['id']} [bold]{status['name']}[/bold]: {status['state']} ({status['priority']}, {status['channel']}, {status['recipients']} recipients)"
    )
    if status["send_at_local"]:
        console.print(f"send at {status['send_at_local']}")
    if status["error"]:
        console.print(f"[red]{status['error']}[/red]")
    table = Table("delivery state", "count")
    for state, count in status["counts"].items():
        table.add_row(state, str(count))
    console.print(table)


@app.command("list")
@friendly
def campaigns_list(
    awaiting: Annotated[
        bool,
        typer.Option("--awaiting", help="Only those waiting for your approval (two-person rule)."),
    ] = False,
) -> None:
    """Recent campaigns in your areas (an official: of your organisation)."""
    from broadcaster.campaigns import actions

    caller = signed_in(ANYONE)
    table = Table("id", "name", "state", "priority", "recipients")
    with unit_of_work() as session:
        rows = (
            actions.awaiting_my_approval(session, caller)
            if awaiting
            else actions.list_visible(session, caller)
        )
        for c in rows:
            table.add_row(str(c.id), c.name, c.state, c.priority, str(c.recipients))
    console.print(table)


@app.command("retry-failed")
@friendly
def campaigns_retry_failed(campaign_id: int) -> None:
    """Queue again the failures a retry can fix (not permanent refusals such as 21211)."""
    from broadcaster.campaigns import actions

    caller = signed_in(OPERATOR)
    with unit_of_work() as session:
        count = actions.retry(session, caller, campaign_id)
    console.print(f"campaign {campaign_id}: {count} deliveries queued again")


# -- preview ---------------------------------------------------------------------------


def _money(value: float) -> str:
    return f"{value:,.3f}"


def _print_preview(preview: CampaignPreview) -> None:
    console.print(
        f"campaign {preview.campaign_id} [bold]{preview.name}[/bold] ({preview.state}, "
        f"{preview.channel}): template {preview.template_key} v{preview.template_version}, "
        f"default language {preview.default_language}",
        highlight=False,
    )
    table = Table(
        "language",
        "recipients",
        "fell back",
        "encoding",
        "chars",
        "units",
        "segments",
        "total segments",
        f"cost ({preview.currency})",
        show_footer=True,
    )
    for column in table.columns[1:]:
        column.justify = "right"
    for row in preview.languages:
        origins = ", ".join(f"{lang} {n}" for lang, n in row.fell_back_from.items())
        table.add_row(
            f"{row.language} {row.language_name}" + (" (default)" if row.is_default else ""),
            f"{row.recipients:,}",
            f"{row.fell_back:,}" + (f" ({origins})" if origins else ""),
            row.encoding,
            str(row.characters),
            str(row.units),
            str(row.segments),
            f"{row.total_segments:,}",
            _money(row.cost),
        )
    footers = [
        "total",
        f"{preview.recipients:,}",
        f"{sum(r.fell_back for r in preview.languages):,}",
    ]
    footers += ["", "", "", "", f"{preview.total_segments:,}", _money(preview.cost)]
    for column, footer in zip(table.columns, footers, strict=True):
        column.footer = footer
    console.print(table)
    if preview.countries:
        by_country = Table(
            "country",
            "recipients",
            "segments",
            f"price / segment ({preview.currency})",
            f"cost ({preview.currency})",
        )
        for column in by_country.columns[1:]:
            column.justify = "right"
        for c in preview.countries:
            by_country.add_row(
                c.country,
                f"{c.recipients:,}",
                f"{c.segments:,}",
                "no price" if c.price is None else f"{c.price:g}",
                _money(c.cost),
            )
        console.print(by_country)
    print_texts(
        [(f"{r.language} ({r.encoding}, {r.segments} seg)", r.text) for r in preview.languages]
    )
    for row in preview.languages:
        for country, number in row.hotlines.items():
            console.print(
                f"{row.language}: numbers of {country} are told their country's hotline, {number}",
                highlight=False,
            )
    print_warnings(preview.warnings)
    unpriced = (
        f" (+ {preview.unpriced_segments:,} segments with no price)"
        if preview.unpriced_segments
        else ""
    )
    console.print(
        f"[bold]total:[/bold] {preview.recipients:,} recipients, "
        f"{preview.total_segments:,} SMS segments, "
        f"estimated cost {_money(preview.cost)} {preview.currency}{unpriced}",
        highlight=False,
    )


@app.command("preview")
@friendly
def campaigns_preview(
    campaign_id: int,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """What a campaign sends, per language: text, encoding, segments, recipients, who falls
    back to another language, and the estimated cost (RISKCAST_SEGMENT_PRICES, in
    RISKCAST_CURRENCY)."""
    from broadcaster.campaigns import actions
    from broadcaster.campaigns.preview import preview_campaign
    from broadcaster.runtime import get_runtime

    caller = signed_in(ANYONE)
    settings = get_runtime().settings
    with unit_of_work() as session:
        actions.get_visible(session, caller, campaign_id)
        preview = preview_campaign(
            session,
            campaign_id,
            prices=settings.segment_prices,
            currency=settings.currency,
            hotlines=settings.hotlines,
            approval_threshold=approval_threshold(),
        )
    if as_json:
        sys.stdout.write(json.dumps(preview.to_dict(), ensure_ascii=False) + "\n")
        return
    _print_preview(preview)


# -- report ----------------------------------------------------------------------------


def _print_report(report: Report) -> None:
    from broadcaster.campaigns.report import OUTCOMES

    console.print(
        f"campaign {report.campaign_id} [bold]{report.name}[/bold] ({report.state}): "
        f"{report.total['total']:,} deliveries",
        highlight=False,
    )
    for title, rows in report.breakdowns().items():
        table = Table(title, *(k.replace("_", " ") for k in OUTCOMES), "total")
        for column in table.columns[1:]:
            column.justify = "right"
        for row in rows:
            name = row.name if row.name == row.key else f"{row.name} ({row.key})"
            table.add_row(
                ("  " * row.depth) + name,
                *(f"{row.counts[k]:,}" for k in OUTCOMES),
                f"{row.counts['total']:,}",
            )
        console.print(table)
    console.print(f"areas: {report.area_rule}", highlight=False, style="dim")
    if report.fell_back:
        console.print(
            f"{report.fell_back:,} WhatsApp deliveries were replaced by an SMS: each person "
            "counts once, with their SMS",
            highlight=False,
        )


@app.command("report")
@friendly
def campaigns_report(
    campaign_id: int,
    csv_file: Annotated[
        str | None,
        typer.Option(
            "--csv", metavar="FILE", help="Write the report as CSV to FILE (- for stdout)."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """What became of a campaign's messages (delivered, sent, pending, failed, undelivered,
    opted out, skipped) by area, language, country and channel."""
    from broadcaster.campaigns import actions
    from broadcaster.campaigns.report import to_csv

    caller = signed_in(ANYONE)
    with unit_of_work() as session:
        report = actions.report(
            session, caller, campaign_id, export="csv" if csv_file is not None else None
        )
        if csv_file is not None and csv_file != "-":
            # Written inside the unit of work: the export is recorded only once it is there.
            try:
                Path(csv_file).write_text(to_csv(report), encoding="utf-8", newline="")
            except OSError as exc:
                fail(f"{csv_file}: {exc.strerror or exc}")
    if csv_file == "-":
        sys.stdout.write(to_csv(report))
    elif csv_file is not None:
        console.print(f"campaign {campaign_id}: report written to {csv_file}", highlight=False)
    elif as_json:
        sys.stdout.write(json.dumps(report.to_dict(), ensure_ascii=False, default=str) + "\n")
    else:
        _print_report(report)


# -- approval and live status ---------------------------------------------------------

FINISHED = ("completed", "cancelled", "stopped")


@app.command("approve")
@friendly
def campaigns_approve(campaign_id: int) -> None:
    """Approve a draft as the second person, yourself (two-person rule: urgent or large
    campaigns; its creator cannot approve it)."""
    from broadcaster.campaigns import actions

    caller = signed_in(OFFICIAL)
    with unit_of_work() as session:
        actions.approve(session, caller, campaign_id)
    console.print(
        f"campaign {campaign_id} approved by {caller.name}; launch it with: "
        f"riskcast campaigns launch {campaign_id}"
    )


def watch_status(caller: Actor, campaign_id: int, interval: float = 1.0) -> None:
    """Redraw a progress bar until the campaign is completed, cancelled or stopped; exit 1
    if it stopped on an error."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from broadcaster.campaigns import actions
    from broadcaster.campaigns import service as campaigns

    waiting = ("pending", "queued", "sending")
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        console=console,
    ) as bar:
        task = bar.add_task(f"campaign {campaign_id}", total=None, detail="")
        while True:
            with unit_of_work() as session:
                actions.get_visible(session, caller, campaign_id)
                status = campaigns.status(session, campaign_id)
            counts = status["counts"]
            total = sum(counts.values())
            done = total - sum(counts[s] for s in waiting)
            detail = " ".join(f"{k}={v}" for k, v in counts.items() if v) + f" [{status['state']}]"
            bar.update(task, total=total or None, completed=done, detail=detail)
            if status["state"] in FINISHED:
                break
            time.sleep(interval)
    console.print(f"campaign {campaign_id} is {status['state']}")
    if status["error"]:
        fail(status["error"])
