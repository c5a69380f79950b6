"""Request dependencies: the runtime, and one session (one transaction) per request."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from broadcaster.db import session_scope
from broadcaster.runtime import Runtime


def get_rt(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def db_session(rt: Annotated[Runtime, Depends(get_rt)]) -> Iterator[Session]:
    """The request's unit of work: committed when the handler returns, rolled back on error."""
    with session_scope(rt.sessions) as session:
        yield session
