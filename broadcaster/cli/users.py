"""CLI: users and their API tokens. A token is printed once, as the last line; only its hash
is kept."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.table import Table

from broadcaster.cli.common import console, fail, friendly, log_action, unit_of_work

app = typer.Typer(help="Users (official, operator, admin) and API tokens.", no_args_is_help=True)


@app.command("create")
@friendly
def users_create(
    name: str,
    role: Annotated[str, typer.Option(help="official, operator or admin.")],
    password: Annotated[
        bool, typer.Option("--password", help="Ask for a dashboard password (typed twice).")
    ] = False,
) -> None:
    """Create a user and print their first API token (shown once) as the last line."""
    from broadcaster.users import auth

    secret = None
    if password:
        secret = typer.prompt("password", hide_input=True, confirmation_prompt=True)
        if len(secret) < auth.MIN_PASSWORD:
            fail(f"password: must be at least {auth.MIN_PASSWORD} characters")
    with unit_of_work() as session:
        user = auth.create_user(session, name, role=role, password=secret)
        row, token = auth.issue_token(session, user)
        log_action(session, "user.create", "user", user.id, name=name, role=role, token_id=row.id)
    console.print(f"user {name} created ({role}); API token (shown once, store it now):")
    sys.stdout.write(f"{token}\n")


@app.command("token")
@friendly
def users_token(name: str) -> None:
    """A new API token for NAME, printed once as the last line."""
    from broadcaster.users import auth

    with unit_of_work() as session:
        user = auth.get_user(session, name)
        row, token = auth.issue_token(session, user)
        log_action(session, "token.create", "user", user.id, token_id=row.id)
    console.print(f"new API token for {name} (shown once, store it now):")
    sys.stdout.write(f"{token}\n")


@app.command("password")
@friendly
def users_password(name: str) -> None:
    """Set NAME's dashboard password (typed twice)."""
    from broadcaster.users import auth

    secret = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    with unit_of_work() as session:
        user = auth.get_user(session, name)
        auth.set_password(session, user, secret)
        log_action(session, "user.password", "user", user.id)
    console.print(f"password of {name} set")


@app.command("revoke")
@friendly
def users_revoke(token_id: int) -> None:
    """Revoke an API token by its id (riskcast users list shows them)."""
    from broadcaster.users import auth

    with unit_of_work() as session:
        row = auth.revoke_token(session, token_id)
        log_action(session, "token.revoke", "token", row.id)
    console.print(f"token {token_id} revoked")


@app.command("list")
@friendly
def users_list() -> None:
    """Users, their roles and their tokens."""
    from broadcaster.users import auth

    table = Table("name", "role", "active", "password", "tokens (id: state)")
    with unit_of_work() as session:
        for user in auth.list_users(session):
            tokens = ", ".join(
                f"{t.id}: {'revoked' if t.revoked_at else 'active'}"
                for t in auth.list_tokens(session, user)
            )
            table.add_row(
                user.name,
                user.role,
                "yes" if user.active else "no",
                "set" if user.password_hash else "-",
                tokens,
            )
    console.print(table)
