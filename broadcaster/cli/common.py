"""What every CLI command shares: one unit of work, friendly errors, audit, output.

The service layer is imported inside the functions that use it, so building the command
line and printing its help load none of it."""

from __future__ import annotations

import getpass
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

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


def cli_actor() -> Actor:
    """The command line's actor: the account running it, with every role (it has the
    database's credentials)."""
    from broadcaster.audit.service import Actor
    from broadcaster.models import Role

    try:
        name = f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        name = "cli"
    return Actor(user_id=None, name=name, role=Role.ADMIN.value, source="cli")


@contextmanager
def unit_of_work() -> Iterator[Session]:
    from broadcaster.runtime import get_runtime

    with get_runtime().session() as session:
        yield session


def log_action(
    session: Session, action: str, object_type: str, object_id: object, **detail: Any
) -> None:
    cli_actor().record(session, action, object_type, object_id, **detail)
