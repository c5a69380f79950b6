"""Engine, sessions, and the after-commit hook that enqueues work.

One owner per transaction: a request, a CLI command or a task opens a session with
:func:`session_scope`, and only that scope commits. Data helpers never commit.

Work for the workers is enqueued with :func:`on_commit`: the callback runs only after the
transaction that wrote the rows has committed, so a worker never looks for a row that is
not there yet, and a rolled-back transaction enqueues nothing (as pypi/warehouse does).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

log = logging.getLogger(__name__)

_AFTER_COMMIT = "riskcast_after_commit"


def utcnow() -> datetime:
    return datetime.now(UTC)


def make_engine(url: str, *, pool: bool = True) -> Engine:
    """An engine for ``url`` with the settings riskcast relies on for each backend."""
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            poolclass=None if pool else NullPool,
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # The driver's own transaction handling would defer BEGIN until the first write,
            # which lets two writers read the same row; BEGIN IMMEDIATE below takes the
            # write lock at the start of every transaction instead.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if pool:
        kwargs.update(pool_size=5, max_overflow=10)
    else:
        kwargs["poolclass"] = NullPool
    return create_engine(url, **kwargs)


def make_session_factory(bind: Engine | Connection) -> sessionmaker[Session]:
    return sessionmaker(bind=bind, expire_on_commit=False, autoflush=True)


def on_commit(session: Session, callback: Callable[[], object]) -> None:
    """Run ``callback`` once the session's current transaction commits; drop it on rollback."""
    session.info.setdefault(_AFTER_COMMIT, []).append(callback)


@event.listens_for(Session, "after_commit")
def _run_after_commit(session: Session) -> None:
    callbacks = session.info.pop(_AFTER_COMMIT, [])
    for callback in callbacks:
        try:
            callback()
        except Exception:
            # The rows are committed; the reconciler re-enqueues anything whose task was lost.
            log.exception("after-commit callback failed; the reconciler will pick the work up")


@event.listens_for(Session, "after_rollback")
def _drop_after_commit(session: Session) -> None:
    session.info.pop(_AFTER_COMMIT, None)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """The one place a unit of work commits or rolls back."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
