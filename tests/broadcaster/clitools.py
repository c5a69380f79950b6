"""The CLI on a fresh SQLite file, as the CLI tests run it (one Typer runner per test)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner, Result

from broadcaster.cli import app
from broadcaster.config import get_settings
from broadcaster.models import AuditEvent
from broadcaster.runtime import get_runtime, set_runtime
from broadcaster.schema import upgrade

Run = Callable[..., Result]


@contextmanager
def cli_on_sqlite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **env: str) -> Iterator[Run]:
    """``run(*args, input=None)`` invokes ``riskcast ARGS`` against ``tmp_path/cli.db``
    (migrated) with ``RISKCAST_<NAME>`` settings from ``env``."""
    monkeypatch.setenv("RISKCAST_DATABASE_URL", f"sqlite:///{tmp_path}/cli.db")
    for name, value in env.items():
        monkeypatch.setenv(f"RISKCAST_{name.upper()}", value)
    monkeypatch.setenv("COLUMNS", "200")
    get_settings.cache_clear()
    set_runtime(None)
    upgrade(get_runtime().engine)
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
