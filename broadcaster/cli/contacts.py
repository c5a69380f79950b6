"""CLI: contacts. Numbers are printed masked."""

from __future__ import annotations

from typing import Annotated

import typer

from broadcaster import contacts
from broadcaster.cli.common import console, friendly, log_action, unit_of_work
from broadcaster.phones import mask_phone
from broadcaster.runtime import get_runtime

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
