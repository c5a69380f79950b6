"""Fixtures shared by every test: databases on SQLite and PostgreSQL, rolled back per test."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from broadcaster.config import Settings, load_settings
from tests.services import migrated_database

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(autouse=True)
def _no_outside_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any connection that would leave this machine (the real Twilio) fails loudly."""
    real_connect = socket.socket.connect

    def guarded(self: socket.socket, address: object) -> object:
        host = address[0] if isinstance(address, tuple) else None
        if isinstance(host, str) and not (host.startswith("127.") or host in {"localhost", "::1"}):
            raise RuntimeError(f"test tried to reach {host}; only loopback is allowed")
        return real_connect(self, address)  # type: ignore[arg-type]

    monkeypatch.setattr(socket.socket, "connect", guarded)


@pytest.fixture(scope="session", params=BACKENDS)
def engine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engine]:
    with migrated_database(request.param, str(tmp_path_factory.mktemp("db"))) as (_url, eng):
        yield eng


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    """A session inside an outer transaction that is rolled back after the test; the code
    under test may commit (it commits a savepoint)."""
    conn = engine.connect()
    outer = conn.begin()
    db = Session(bind=conn, join_transaction_mode="create_savepoint", expire_on_commit=False)
    try:
        yield db
    finally:
        db.close()
        outer.rollback()
        conn.close()


@pytest.fixture
def settings() -> Settings:
    return load_settings(database_url="sqlite://")
