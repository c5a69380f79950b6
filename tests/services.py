"""Real services for the tests: PostgreSQL and Redis on this machine.

Locally a missing service skips the tests that need it; under CI (``CI`` set) it fails them,
so a green CI run always means those tests ran.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
import redis
from sqlalchemy import Engine

from broadcaster.db import make_engine
from broadcaster.schema import upgrade

PG_HOST = os.environ.get("RISKCAST_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("RISKCAST_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("RISKCAST_TEST_PG_USER", "postgres")
REDIS_URL = os.environ.get("RISKCAST_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
IN_CI = bool(os.environ.get("CI"))


def unavailable(what: str, exc: Exception) -> None:
    message = f"{what} is not reachable ({exc.__class__.__name__}: {exc})"
    if IN_CI:
        pytest.fail(message + "; CI must start it", pytrace=False)
    pytest.skip(message)


def pg_admin() -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(
        host=PG_HOST,
        port=PG_PORT,
        user=PG_USER,
        dbname="postgres",
        autocommit=True,
        connect_timeout=5,
    )


def pg_url(name: str) -> str:
    return f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"


def create_pg_database(prefix: str = "riskcast_test", *, template: str | None = None) -> str:
    """A new database, empty or a copy of ``template``; returns its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    copy = f' TEMPLATE "{template}"' if template else ""
    try:
        with pg_admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"{copy}')
    except psycopg.OperationalError as exc:
        unavailable("PostgreSQL", exc)
    return pg_url(name)


def drop_pg_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    try:
        with pg_admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    except psycopg.OperationalError:
        pass


# One migrated database per backend per test session, copied for each test that asks for a
# fresh one: migrating costs far more than copying (CREATE DATABASE ... TEMPLATE on
# PostgreSQL, a file copy on SQLite).
_templates: dict[str, str] = {}


def _template(kind: str) -> str:
    """The session's migrated template of ``kind``: a database name or a file path."""
    if kind in _templates:
        return _templates[kind]
    if kind == "sqlite":
        folder = Path(tempfile.mkdtemp(prefix="riskcast-template-"))
        atexit.register(shutil.rmtree, folder, True)
        made = str(folder / "template.db")
        url = f"sqlite:///{made}"
    else:
        url = create_pg_database("riskcast_template")
        made = url.rsplit("/", 1)[1]
        atexit.register(drop_pg_database, url)
    engine = make_engine(url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()  # a PostgreSQL template must have no connections when copied
    _templates[kind] = made
    return made


@contextmanager
def migrated_database(kind: str, tmp_dir: str) -> Iterator[tuple[str, Engine]]:
    """A fresh database of ``kind`` (sqlite or postgresql) with every migration applied:
    a copy of the session's migrated template."""
    template = _template(kind)
    if kind == "sqlite":
        path = f"{tmp_dir}/riskcast-{uuid.uuid4().hex[:8]}.db"
        shutil.copyfile(template, path)
        url = f"sqlite:///{path}"
    else:
        url = create_pg_database(template=template)
    engine = make_engine(url)
    try:
        yield url, engine
    finally:
        engine.dispose()
        if kind == "postgresql":
            drop_pg_database(url)


def redis_client() -> redis.Redis:
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=5)
    try:
        client.ping()
    except redis.RedisError as exc:
        unavailable("Redis", exc)
    return client
