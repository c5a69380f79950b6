"""Real services for the tests: PostgreSQL and Redis on this machine.

Locally a missing service skips the tests that need it; under CI (``CI`` set) it fails them,
so a green CI run always means those tests ran.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

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


def create_pg_database(prefix: str = "riskcast_test") -> str:
    """A new, empty database; returns its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    try:
        with pg_admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
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


@contextmanager
def migrated_database(kind: str, tmp_dir: str) -> Iterator[tuple[str, Engine]]:
    """A fresh database of ``kind`` (sqlite or postgresql) with every migration applied."""
    if kind == "sqlite":
        url = f"sqlite:///{tmp_dir}/riskcast-{uuid.uuid4().hex[:8]}.db"
    else:
        url = create_pg_database()
    engine = make_engine(url)
    try:
        upgrade(engine)
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
