"""CLI: contacts. Numbers are printed masked, except in ``export`` (the person's own data)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from broadcaster.cli.common import (
    ADMIN,
    OFFICIAL,
    console,
    err_console,
    fail,
    friendly,
    log_action,
    signed_in,
    unit_of_work,
)

app = typer.Typer(help="Contacts: the people riskcast reaches.", no_args_is_help=True)


@app.command("add")
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
    country: Annotated[
        str | None,
        typer.Option(
            help="Two-letter country a number typed without country code is from "
            "(default RISKCAST_DEFAULT_REGION); the contact's country comes from the number."
        ),
    ] = None,
    channel: Annotated[
        str | None,
        typer.Option(help="The channel the person prefers: sms or whatsapp."),
    ] = None,
    timezone: Annotated[
        str | None,
        typer.Option(
            help="The person's own time zone (IANA, e.g. Asia/Bangkok); without it, quiet "
            "hours go by their first community's."
        ),
    ] = None,
) -> None:
    """Add a contact (or update the one with that number)."""
    from broadcaster.contacts import service as contacts
    from broadcaster.phones import mask_phone
    from broadcaster.runtime import get_runtime

    caller = signed_in(OFFICIAL)
    region = get_runtime().settings.default_region
    with unit_of_work() as session:
        contacts.check_target(session, caller, community or [])
        contact, created = contacts.add_contact(
            session,
            phone,
            region=region,
            name=name,
            language=language,
            communities=community or [],
            country=country,
            channel=channel,
            timezone=timezone,
        )
        log_action(
            session, caller, "contact.add" if created else "contact.update", "contact", contact.id
        )
        verb = "added" if created else "updated"
        console.print(
            f"contact {mask_phone(contact.phone)} {verb} "
            f"(country {contact.country}, {contact.channel}, status {contact.status}"
            + (f", time zone {contact.timezone})" if contact.timezone else ")")
        )


def errors_path(file: Path) -> Path:
    """Where ``contacts import FILE`` writes its rejected rows."""
    return file.with_name(file.name + ".errors.csv")


@app.command("import")
@friendly
def contacts_import(
    file: Annotated[Path, typer.Argument(help="CSV file (UTF-8, comma or semicolon).")],
    community: Annotated[
        str | None, typer.Option(help="Add every imported contact to this community (slug).")
    ] = None,
) -> None:
    """Import contacts from a CSV file; rejected rows go to FILE.errors.csv.

    Header: phone,name,language,communities,country,consent_source,consent_at[,channel]
    [,timezone] (only phone is required; communities separated by ';'; channel is sms or
    whatsapp; timezone an IANA name such as Asia/Bangkok). Exit code 0 when the file was read, even
    with rejected rows; 1 when it could not be read at all.
    """
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    from broadcaster.contacts import importer
    from broadcaster.runtime import get_runtime

    caller = signed_in(OFFICIAL)
    settings = get_runtime().settings
    try:
        source = file.open("rb")
        size = file.stat().st_size
    except OSError as exc:
        fail(f"{file}: cannot read the file ({exc.strerror or exc})")
        return
    report = errors_path(file)
    with source, unit_of_work() as session:
        try:
            with (
                report.open("w", encoding="utf-8", newline="") as errors_out,
                Progress(
                    TextColumn("importing"),
                    BarColumn(),
                    DownloadColumn(),
                    TimeRemainingColumn(),
                    console=err_console,
                    transient=True,
                ) as bar,
            ):
                task = bar.add_task("import", total=size or None)
                summary = importer.import_contacts(
                    session,
                    source,
                    region=settings.default_region,
                    default_community=community,
                    errors_out=errors_out,
                    progress=lambda done: bar.update(task, completed=done),
                    actor=caller,  # audits the import, from its start
                    file_name=file.name,
                )
        except BaseException:
            report.unlink(missing_ok=True)
            raise
        if not summary.rejected:
            report.unlink(missing_ok=True)
    console.print(
        f"imported {summary.imported:,}, updated {summary.updated:,}, "
        f"rejected {summary.rejected:,}",
        highlight=False,
    )
    details = []
    if summary.merged_duplicates:
        details.append(f"{summary.merged_duplicates:,} duplicate rows merged")
    if summary.unchanged_opted_out:
        details.append(
            f"{summary.unchanged_opted_out:,} opted-out or blocked contacts left unchanged"
        )
    if summary.blank_lines:
        details.append(f"{summary.blank_lines:,} blank lines skipped")
    if details:
        console.print("; ".join(details), highlight=False)
    if summary.rejected:
        console.print(
            f"rejected rows (line, column, reason): {report}", highlight=False, soft_wrap=True
        )


@app.command("imports")
@friendly
def contacts_imports(
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 20,
) -> None:
    """Recent contact imports and how far each got (yours; an admin sees everyone's)."""
    from rich.table import Table

    from broadcaster.contacts import importer

    caller = signed_in(OFFICIAL)
    table = Table("id", "file", "by", "state", "imported", "updated", "rejected", "through line")
    with unit_of_work() as session:
        for run in importer.recent(session, caller, limit=limit):
            counts = run.counts or {}
            state = run.state if not run.error else f"{run.state}: {run.error}"
            table.add_row(
                str(run.id),
                run.file_name,
                run.actor,
                state,
                f"{counts.get('imported', 0):,}",
                f"{counts.get('updated', 0):,}",
                f"{counts.get('rejected', 0):,}",
                f"{run.through_line:,}",
            )
    console.print(table)


@app.command("opt-out")
@friendly
def contacts_opt_out(phone: str) -> None:
    """Record that this person wants no more messages (source: official)."""
    from broadcaster.contacts import service as contacts
    from broadcaster.models import ConsentSource
    from broadcaster.phones import mask_phone
    from broadcaster.runtime import get_runtime

    caller = signed_in(OFFICIAL)
    region = get_runtime().settings.default_region
    with unit_of_work() as session:
        contact = contacts.find_by_phone(session, phone, region, caller)
        changed = contacts.opt_out(session, contact, source=ConsentSource.OFFICIAL.value)
        log_action(session, caller, "contact.opt_out", "contact", contact.id, changed=changed)
        state = "opted out" if changed else f"already {contact.status.replace('_', ' ')}"
        console.print(f"contact {mask_phone(contact.phone)} {state}", highlight=False)


@app.command("opt-in")
@friendly
def contacts_opt_in(phone: str) -> None:
    """Record that an opted-out person agreed to messages again (source: official)."""
    from broadcaster.contacts import service as contacts
    from broadcaster.models import ConsentSource, ContactStatus
    from broadcaster.phones import mask_phone
    from broadcaster.runtime import get_runtime

    caller = signed_in(OFFICIAL)
    region = get_runtime().settings.default_region
    with unit_of_work() as session:
        contact = contacts.find_by_phone(session, phone, region, caller)
        changed = contacts.opt_in(session, contact, source=ConsentSource.OFFICIAL.value)
        log_action(session, caller, "contact.opt_in", "contact", contact.id, changed=changed)
        masked = mask_phone(contact.phone)
    if changed:
        console.print(f"contact {masked} opted in", highlight=False)
    elif contact.status == ContactStatus.BLOCKED:
        fail(f"contact {masked} is blocked; opt-in does not unblock")
    else:
        console.print(f"contact {masked} is already active", highlight=False)


@app.command("export")
@friendly
def contacts_export(phone: str) -> None:
    """Print, as JSON, everything riskcast holds on this person (full number included; for
    admins, who alone see whole numbers)."""
    from broadcaster.contacts import privacy
    from broadcaster.contacts import service as contacts
    from broadcaster.runtime import get_runtime

    caller = signed_in(ADMIN)
    region = get_runtime().settings.default_region
    with unit_of_work() as session:
        contact = contacts.find_by_phone(session, phone, region, caller)
        data = privacy.export_contact(session, contact)
        log_action(session, caller, "contact.export", "contact", contact.id)
    typer.echo(json.dumps(data, ensure_ascii=False, indent=2))


@app.command("erase")
@friendly
def contacts_erase(
    phone: str,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Erase this person: contact, memberships, messages they sent. Deliveries are kept
    without the person, so campaign counts stay true."""
    from broadcaster.contacts import privacy
    from broadcaster.contacts import service as contacts
    from broadcaster.phones import mask_phone
    from broadcaster.runtime import get_runtime

    caller = signed_in(ADMIN)
    region = get_runtime().settings.default_region
    with unit_of_work() as session:
        contact = contacts.find_by_phone(session, phone, region, caller)
        masked = mask_phone(contact.phone)
        if not yes:
            typer.confirm(f"erase contact {masked} and everything held on them?", abort=True)
        contact_id = contact.id
        kept = privacy.erase_contact(session, contact)
        log_action(session, caller, "contact.erase", "contact", contact_id, deliveries_kept=kept)
    console.print(
        f"contact {masked} erased; {kept:,} deliveries kept without a contact", highlight=False
    )
    console.print(
        "note: nothing records that this number was erased, so a later import can add it again",
        highlight=False,
        soft_wrap=True,
    )


@app.command("purge-inactive")
@friendly
def contacts_purge_inactive(
    days: Annotated[
        int | None,
        typer.Option(min=1, help="Inactive for this many days (default RISKCAST_RETENTION_DAYS)."),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only count them.")] = False,
) -> None:
    """Erase contacts with no activity, delivery or message for N days (opted-out and
    blocked contacts are kept: their record stops a re-import)."""
    from broadcaster.contacts import privacy
    from broadcaster.db import utcnow
    from broadcaster.runtime import get_runtime

    caller = signed_in(ADMIN)
    days = days or get_runtime().settings.retention_days
    if days is None:
        fail("no retention period: pass --days N or set RISKCAST_RETENTION_DAYS")
        return
    now = utcnow()
    with unit_of_work() as session:
        if dry_run:
            count = len(privacy.inactive_ids(session, now, days, limit=10**9))
            console.print(f"{count:,} contacts inactive for {days} days (nothing erased)")
            return
        count = privacy.erase_inactive(session, now, days)
        log_action(
            session, caller, "contact.purge_inactive", "contact", None, days=days, erased=count
        )
    console.print(f"{count:,} contacts inactive for {days} days erased")
