"""What every CLI command shares: who runs it (a signed-in user), one unit of work,
friendly errors, audit, output.

The service layer is imported inside the functions that use it, so building the command
line and printing its help load none of it."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, ParamSpec, TypeVar

import typer
from rich.console import Console

from broadcaster.errors import RiskcastError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from broadcaster.audit.service import Actor

console = Console()
err_console = Console(stderr=True)

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
        except Exception as exc:
            # Imported only once something went wrong: configuration and templates are not
            # loaded by every command.
            from broadcaster.config import ConfigError
            from messages import TemplateError

            if not isinstance(exc, RiskcastError | ConfigError | TemplateError):
                raise
            fail(str(exc))
            raise AssertionError("unreachable") from exc

    return wrapper


# Who runs a command: the user whose API token is in RISKCAST_TOKEN, or else in the file
# `riskcast login` writes. Each command names the roles it is for, as its API route does.
SIGN_IN = "sign in first: riskcast login, or set RISKCAST_TOKEN"
RoleName = Literal["official", "operator", "admin"]
OFFICIAL: tuple[RoleName, ...] = ("official",)
OPERATOR: tuple[RoleName, ...] = ("operator",)
ANYONE: tuple[RoleName, ...] = ("official", "operator")
ADMIN: tuple[RoleName, ...] = ("admin",)


def token_path() -> Path:
    """Where `riskcast login` keeps the token: $XDG_CONFIG_HOME/riskcast/token, else
    ~/.config/riskcast/token."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "riskcast" / "token"


def stored_token() -> str | None:
    """The token commands run with: RISKCAST_TOKEN, else the login file (refused when
    others may read it, as ssh refuses a readable key)."""
    token = os.environ.get("RISKCAST_TOKEN", "").strip()
    if token:
        return token
    path = token_path()
    try:
        mode = path.stat().st_mode
        if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
            fail(f"{path} can be read by others: chmod 600 it, or riskcast login again")
        return path.read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        return None
    except OSError as exc:
        fail(f"{path}: cannot read the token ({exc.strerror or exc})")
    return None


def save_token(token: str) -> Path:
    """Write ``token`` where `riskcast login` keeps it, readable by this account only."""
    path = token_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    partial = path.with_name(f".token.{os.getpid()}")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # whatever the umask, or a file left by an earlier attempt
        os.write(fd, f"{token}\n".encode())
    finally:
        os.close(fd)
    partial.replace(path)
    return path


def user_actor(session: Session, token: str | None) -> Actor | None:
    """The actor ``token`` signs in as, or None."""
    from broadcaster.users import auth

    user = auth.user_for_token(session, token) if token else None
    return auth.actor_for(session, user, "cli") if user is not None else None


def signed_in(roles: tuple[RoleName, ...]) -> Actor:
    """The signed-in user, admitted for ``roles`` (admins always) by the rule the API's
    routes apply; else one line on stderr and exit 1, before the command does anything.
    Resolved in its own short transaction (it records when the token was last used)."""
    from broadcaster.users import roles as rules

    token = stored_token()
    if not token:
        fail(SIGN_IN)
    with unit_of_work() as session:
        caller = user_actor(session, token)
    if caller is None:
        fail(f"the token is invalid or revoked, or its user is inactive; {SIGN_IN}")
        raise AssertionError("unreachable")
    allowed = rules.admitted(roles)
    if not rules.admits(caller.role, allowed):
        fail(rules.refusal(caller.role, allowed))
    return caller


def approval_threshold() -> int:
    """The recipients above which a launch from the command line needs a second person: the
    configured RISKCAST_APPROVAL_THRESHOLD, never above riskcast's default. The command
    runs in its caller's environment, so a setting there may make the rule stricter, never
    looser than the service's own."""
    from broadcaster.config import Settings
    from broadcaster.runtime import get_runtime

    default = Settings.model_fields["approval_threshold"].default
    return min(get_runtime().settings.approval_threshold, int(default))


@contextmanager
def unit_of_work() -> Iterator[Session]:
    from broadcaster.runtime import get_runtime

    with get_runtime().session() as session:
        yield session


def log_action(
    session: Session,
    caller: Actor,
    action: str,
    object_type: str,
    object_id: object,
    **detail: Any,
) -> None:
    caller.record(session, action, object_type, object_id, **detail)
