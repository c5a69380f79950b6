"""CLI: who you are (login, logout, whoami), users and their API tokens. A token is printed
once, as the last line; only its hash is kept."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from broadcaster.cli.common import (
    ADMIN,
    ANYONE,
    SIGN_IN,
    console,
    fail,
    friendly,
    save_token,
    signed_in,
    stored_token,
    token_path,
    unit_of_work,
    user_actor,
)

if TYPE_CHECKING:
    from broadcaster.users.auth import FirstCredential

app = typer.Typer(help="Users (official, operator, admin) and API tokens.", no_args_is_help=True)


# -- who you are ------------------------------------------------------------------------


@friendly
def login(
    name: Annotated[
        str | None, typer.Option(help="Your user name (asked for when not given).")
    ] = None,
    token_stdin: Annotated[
        bool, typer.Option("--token-stdin", help="Read the API token from standard input.")
    ] = False,
) -> None:
    """Sign in with your API token: commands then run as you, with your role, and the audit
    log names you. The token is kept in ~/.config/riskcast/token (or under
    $XDG_CONFIG_HOME), readable by you only; RISKCAST_TOKEN, when set, is used instead."""
    if token_stdin:
        token = sys.stdin.readline().strip()
    else:
        name = name or typer.prompt("user name")
        token = typer.prompt("API token", hide_input=True).strip()
    if not token:
        fail("no token given")
    with unit_of_work() as session:
        caller = user_actor(session, token)
        if caller is None or (name is not None and caller.name != name):
            # The same answer for an unknown token and another person's: nothing to learn.
            fail("that is not a valid API token of an active user" + (f" {name}" if name else ""))
            return
        caller.record(session, "login", "user", caller.user_id)
    path = save_token(token)
    console.print(f"signed in as {caller.name} ({caller.role}); token kept in {path}")


@friendly
def logout() -> None:
    """Forget the token `riskcast login` kept (the token itself stays valid: revoke it with
    riskcast users revoke ID)."""
    path = token_path()
    if path.exists():
        path.unlink()
        console.print(f"signed out: {path} removed")
    else:
        console.print("not signed in (no token kept)")


@friendly
def whoami() -> None:
    """The user commands run as, and their role."""
    token = stored_token()
    if not token:
        fail(SIGN_IN)
    with unit_of_work() as session:
        caller = user_actor(session, token)
    if caller is None:
        fail(f"the token is invalid or revoked, or its user is inactive; {SIGN_IN}")
        return
    console.print(f"{caller.name} ({caller.role})", highlight=False)


def register(root: typer.Typer) -> None:
    root.command("login")(login)
    root.command("logout")(logout)
    root.command("whoami")(whoami)


# -- users and tokens -------------------------------------------------------------------


@app.command("create")
@friendly
def users_create(
    name: str,
    role: Annotated[str, typer.Option(help="official, operator or admin.")],
    password: Annotated[
        bool, typer.Option("--password", help="Ask for a dashboard password (typed twice).")
    ] = False,
    organisation: Annotated[
        str | None,
        typer.Option(
            help="The organisation's slug (riskcast organisations list); default: the default one."
        ),
    ] = None,
    area: Annotated[
        list[str] | None,
        typer.Option(
            help="A community the user works over, with everything below it (repeatable); "
            "none: national."
        ),
    ] = None,
) -> None:
    """Create a user and print their first API token (shown once) as the last line.

    The first admin is created without signing in (nobody is there yet); after that an admin
    creates users, and a new admin stays inactive until a second admin confirms them
    (riskcast users confirm NAME)."""
    from broadcaster.users import auth

    with unit_of_work() as session:
        bootstrap = not auth.admin_exists(session)
    caller = None if bootstrap else signed_in(ADMIN)
    secret = None
    if password:
        secret = typer.prompt("password", hide_input=True, confirmation_prompt=True)
        if len(secret) < auth.MIN_PASSWORD:
            fail(f"password: must be at least {auth.MIN_PASSWORD} characters")
    with unit_of_work() as session:
        user, first = auth.add_user(
            session,
            caller,
            name,
            role=role,
            password=secret,
            source="cli",
            organisation=organisation,
            areas=area or None,
        )
        pending = not user.active
    if pending:
        console.print(
            f"user {name} created ({role}), inactive until a second admin confirms them with: "
            f"riskcast users confirm {name}"
        )
    else:
        console.print(f"user {name} created ({role})")
    _print_first(name, first)


def _print_first(name: str, first: FirstCredential) -> None:
    """The first admin's own token, or the invitation to pass on, as the last line."""
    if first.token is not None:
        console.print("your API token (shown once, store it now):")
        sys.stdout.write(f"{first.token}\n")
        return
    until = first.expires_at.strftime("%Y-%m-%d %H:%M UTC") if first.expires_at else ""
    console.print(
        f"invitation for {name}, valid until {until}: give it to them (not by the same "
        f"channel as their name); they sign in with: riskcast users accept {name}",
        highlight=False,
    )
    sys.stdout.write(f"{first.invitation}\n")


@app.command("invite")
@friendly
def users_invite(name: str) -> None:
    """A new invitation for NAME, who has no way in (theirs lapsed, or their tokens were
    revoked and they have no password); printed once as the last line."""
    from broadcaster.users import auth

    caller = signed_in(ADMIN)
    with unit_of_work() as session:
        _user, code, expires = auth.reinvite(session, caller, name)
    _print_first(name, auth.FirstCredential(invitation=code, expires_at=expires))


@app.command("accept")
@friendly
def users_accept(
    name: str,
    password: Annotated[
        bool, typer.Option("--password", help="Also set your dashboard password (typed twice).")
    ] = False,
) -> None:
    """Accept your invitation (the code is asked for): your own first API token, kept as
    by riskcast login, and your dashboard password if you like."""
    from broadcaster.db import utcnow
    from broadcaster.errors import Forbidden
    from broadcaster.users import auth

    code = typer.prompt("invitation", hide_input=True).strip()
    secret = None
    if password:
        secret = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    with unit_of_work() as session:
        if auth.sign_in_blocked(session, name, "cli", utcnow()):
            fail("too many failed sign-ins for this name: try again in 15 minutes")
        try:
            user, made = auth.accept_invitation(session, name, code, password=secret, source="cli")
        except Forbidden:
            auth.sign_in_failed(session, name, "cli", step="invitation")
            session.commit()
            raise
        role = user.role
    assert made is not None  # noqa: S101 - a token was asked for
    path = save_token(made[1])
    console.print(f"signed in as {name} ({role}); your token is kept in {path}")


@app.command("areas")
@friendly
def users_areas(
    name: str,
    area: Annotated[
        list[str] | None,
        typer.Option(help="A community NAME works over, with everything below it (repeatable)."),
    ] = None,
    national: Annotated[
        bool, typer.Option("--national", help="NAME works over every community.")
    ] = False,
) -> None:
    """Show NAME's organisation and areas; with --area (or --national), set them."""
    from broadcaster.areas import scope
    from broadcaster.models import Organisation
    from broadcaster.users import auth

    if area and national:
        fail("give --area or --national, not both")
    caller = signed_in(ADMIN)
    with unit_of_work() as session:
        if area or national:
            user = auth.set_user_areas(session, caller, name, None if national else area)
        else:
            user = auth.get_user(session, name)
        org = session.get(Organisation, user.organisation_id) if user.organisation_id else None
        where = "national" if user.national else ", ".join(scope.area_slugs(session, user))
        console.print(f"{user.name} ({user.role}, {org.slug if org else '-'}): {where}")


@app.command("two-factor")
@friendly
def users_two_factor(
    name: str,
    require: Annotated[
        bool | None,
        typer.Option(
            "--require/--no-require", help="Require a code of NAME at dashboard sign-in, or not."
        ),
    ] = None,
    reset: Annotated[
        bool, typer.Option("--reset", help="Forget NAME's authenticator (a lost phone).")
    ] = False,
) -> None:
    """Show whether NAME signs in with a two-factor code; require it, or reset it."""
    from broadcaster.users import auth, totp

    caller = signed_in(ADMIN)
    with unit_of_work() as session:
        user = auth.get_user(session, name)
        if require is not None:
            totp.set_required(session, user, require)
            caller.record(session, "user.two_factor.require", "user", user.id, required=require)
        if reset:
            totp.reset(session, user)
            caller.record(session, "user.two_factor.reset", "user", user.id)
        enrolled = "enrolled" if totp.enrolled(user) else "not enrolled"
        required = "required" if user.totp_required else "not required"
        console.print(f"{user.name}: two-factor {enrolled}, {required}")


@app.command("confirm")
@friendly
def users_confirm(name: str) -> None:
    """Confirm (activate) an admin another admin created: a new admin needs two."""
    from broadcaster.users import auth

    caller = signed_in(ADMIN)
    with unit_of_work() as session:
        auth.confirm_admin(session, caller, name)
    console.print(f"admin {name} confirmed by {caller.name}")


@app.command("token")
@friendly
def users_token(
    name: Annotated[
        str | None, typer.Argument(help="Your own user name (nobody makes another's token).")
    ] = None,
) -> None:
    """A new API token for yourself, printed once as the last line."""
    from broadcaster.users import auth

    caller = signed_in(ANYONE)
    with unit_of_work() as session:
        _row, token = auth.issue_own_token(session, caller, name)
    console.print(f"new API token for {caller.name} (shown once, store it now):")
    sys.stdout.write(f"{token}\n")


@app.command("password")
@friendly
def users_password(
    name: Annotated[
        str | None, typer.Argument(help="Your own user name (nobody sets another's).")
    ] = None,
) -> None:
    """Set your dashboard password (typed twice): your own only; a new person sets theirs
    when they accept their invitation."""
    from broadcaster.users import auth

    caller = signed_in(ANYONE)
    name = name or caller.name
    with unit_of_work() as session:
        auth.check_password_setter(caller, auth.get_user(session, name))
    secret = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    with unit_of_work() as session:
        auth.change_password(session, caller, name, secret)
    console.print(f"password of {name} set")


@app.command("revoke")
@friendly
def users_revoke(token_id: int) -> None:
    """Revoke an API token by its id (riskcast users list shows them)."""
    from broadcaster.users import auth

    caller = signed_in(ADMIN)
    with unit_of_work() as session:
        row = auth.revoke_token(session, token_id)
        caller.record(session, "token.revoke", "token", row.id, user_id=row.user_id)
    console.print(f"token {token_id} revoked")


@app.command("list")
@friendly
def users_list() -> None:
    """Users, their roles and their tokens."""
    from broadcaster.users import auth

    signed_in(ADMIN)
    table = Table("name", "role", "active", "password", "tokens (id: state)")
    with unit_of_work() as session:
        for user in auth.list_users(session):
            tokens = ", ".join(
                f"{t.id}: {'revoked' if t.revoked_at else 'active'}"
                for t in auth.list_tokens(session, user)
            )
            if user.active:
                state = "yes"
            elif auth.pending_proposer(session, user) is not None:
                state = "no (waiting for a second admin)"
            else:
                state = "no"
            table.add_row(user.name, user.role, state, "set" if user.password_hash else "-", tokens)
    console.print(table)
