"""The process's handles: settings, the engine and the session factory, made once."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from broadcaster.config import Settings, get_settings
from broadcaster.db import make_engine, make_session_factory, session_scope


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

    def dispose(self) -> None:
        self.engine.dispose()


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
