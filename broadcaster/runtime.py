"""The process's handles: settings, the engine and the session factory, made once."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

from broadcaster.config import Settings, get_settings
from broadcaster.db import make_engine, make_session_factory, session_scope


class Sessions(Protocol):
    """Where units of work come from: :class:`Runtime` or a :class:`HeldConnection`."""

    def session(self) -> AbstractContextManager[Session]: ...


@dataclass
class Runtime:
    settings: Settings
    engine: Engine = field(init=False)
    sessions: sessionmaker[Session] = field(init=False)

    def __post_init__(self) -> None:
        self.engine = make_engine(self.settings.database_url)
        self.sessions = make_session_factory(self.engine)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with session_scope(self.sessions) as session:
            yield session

    def held(self) -> HeldConnection:
        return HeldConnection(self.engine)

    def dispose(self) -> None:
        self.engine.dispose()


class HeldConnection:
    """One pooled connection kept for a run of short transactions (a send batch), so the
    pool's checkout and its liveness ping are paid once per run, not once per transaction.

    Each :meth:`session` is its own unit of work, committed or rolled back as
    :meth:`Runtime.session` does. A transaction that fails gives the connection back (a
    dead one is discarded by the pool); the next one takes a fresh, pinged connection.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._conn: Connection | None = None
        self._sessions: sessionmaker[Session] | None = None

    @contextmanager
    def session(self) -> Iterator[Session]:
        if self._conn is None or self._sessions is None:
            self._conn = self._engine.connect()
            self._sessions = make_session_factory(self._conn)
        try:
            with session_scope(self._sessions) as session:
                yield session
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        conn, self._conn, self._sessions = self._conn, None, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()


_runtime: Runtime | None = None


def get_runtime() -> Runtime:
    """The process-wide runtime (made on first use, from the environment)."""
    global _runtime  # noqa: PLW0603 - one engine per process, made lazily
    if _runtime is None:
        _runtime = Runtime(get_settings())
    return _runtime


def set_runtime(runtime: Runtime | None) -> None:
    """Replace the process-wide runtime (tests, and after a worker process forks)."""
    global _runtime  # noqa: PLW0603
    if _runtime is not None and runtime is not _runtime:
        _runtime.dispose()
    _runtime = runtime
