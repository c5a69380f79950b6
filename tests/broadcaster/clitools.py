"""The CLI on a fresh SQLite file, as the CLI tests run it (one Typer runner per test),
signed in as an admin unless told otherwise."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner, Result

from broadcaster.cli import app
from broadcaster.config import get_settings
from broadcaster.models import AuditEvent, User
from broadcaster.runtime import get_runtime, set_runtime
from broadcaster.schema import upgrade
from broadcaster.users import auth

Run = Callable[..., Result]


ADMIN = "ada"


@contextmanager
def cli_on_sqlite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, signed_in: bool = True, **env: str
) -> Iterator[Run]:
    """``run(*args, input=None)`` invokes ``riskcast ARGS`` against ``tmp_path/cli.db``
    (migrated) with ``RISKCAST_<NAME>`` settings from ``env``, signed in (RISKCAST_TOKEN) as
    the admin ``ada`` unless ``signed_in`` is False; :func:`sign_in` changes who. The login
    file lives under ``tmp_path``, never in the real home."""
    monkeypatch.setenv("RISKCAST_DATABASE_URL", f"sqlite:///{tmp_path}/cli.db")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("RISKCAST_TOKEN", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(f"RISKCAST_{name.upper()}", value)
    monkeypatch.setenv("COLUMNS", "200")
    get_settings.cache_clear()
    set_runtime(None)
    upgrade(get_runtime().engine)
    if signed_in:
        sign_in(monkeypatch, ADMIN, "admin")
    runner = CliRunner()

    def run(*args: str, input: str | None = None) -> Result:
        return runner.invoke(app, list(args), input=input)

    try:
        yield run
    finally:
        set_runtime(None)
        get_settings.cache_clear()


def ok(result: Result) -> Result:
    assert result.exit_code == 0, result.output
    return result


def audit_events(action: str) -> list[AuditEvent]:
    with get_runtime().session() as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def token_for(name: str, role: str = "official") -> str:
    """A new API token of ``name`` (made, active, with ``role``, if they do not exist)."""
    with get_runtime().session() as session:
        user = session.scalar(select(User).where(User.name == name))
        if user is None:
            user = auth.create_user(session, name, role=role)
        _row, token = auth.issue_token(session, user)
    return token


def sign_in(monkeypatch: pytest.MonkeyPatch, name: str, role: str = "official") -> str:
    """Run the next commands as ``name`` (RISKCAST_TOKEN); their token."""
    token = token_for(name, role)
    monkeypatch.setenv("RISKCAST_TOKEN", token)
    return token


def sign_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RISKCAST_TOKEN", raising=False)
