"""Fixtures for the HTTP API and dashboard tests: the app on the test's own session (rolled
back after the test), and one user of each role with a token."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi import FastAPI
from sqlalchemy.orm import Session, sessionmaker

from broadcaster.users import auth

with warnings.catch_warnings():
    # starlette's TestClient asks for its httpx fork; plain httpx works the same here.
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient
from broadcaster.config import load_settings
from broadcaster.runtime import Runtime
from broadcaster.web.app import create_app
from broadcaster.web.deps import db_session

__all__ = ["Person", "TestClient", "app", "client", "make_app", "people", "person"]

PASSWORD = "correct horse battery"


@dataclass
class Person:
    id: int
    name: str
    role: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def make_app(session: Session, **settings: object) -> FastAPI:
    runtime = Runtime(load_settings(database_url="sqlite://", **settings))
    # What the app opens on its own (the token look before a body is read) runs on the
    # test's connection too, in savepoints of its outer transaction.
    runtime.sessions = sessionmaker(
        bind=session.connection(), join_transaction_mode="create_savepoint"
    )
    app = create_app(runtime)

    def shared_session() -> Iterator[Session]:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise

    app.dependency_overrides[db_session] = shared_session
    return app


def person(session: Session, name: str, role: str, *, password: str | None = None) -> Person:
    """A user with a token (and a dashboard password when given: Argon2 is slow on purpose)."""
    user = auth.create_user(session, name, role=role, password=password)
    _, token = auth.issue_token(session, user)
    session.commit()
    return Person(user.id, name, role, token)


@pytest.fixture
def app(session: Session) -> FastAPI:
    return make_app(session, approval_threshold=5)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as c:
        yield c


@pytest.fixture
def people(session: Session) -> dict[str, Person]:
    return {
        "official": person(session, "olivia", "official"),
        "official2": person(session, "omar", "official"),
        "operator": person(session, "otto", "operator"),
        "admin": person(session, "ada", "admin"),
    }
