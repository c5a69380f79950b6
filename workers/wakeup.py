"""Waking the scheduler when a campaign is launched, instead of at its next tick.

``campaigns.schedule`` sends ``NOTIFY riskcast_due`` in the launch's transaction; each
scheduler holds one connection that LISTENs on that channel and waits on it between ticks,
so an urgent alert is claimed within milliseconds of its launch commit. PostgreSQL only:
on SQLite, and whenever the listening connection cannot be had, the scheduler waits on its
clock as before (a launch then waits at most one tick).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time

import psycopg
from sqlalchemy.engine import make_url

from broadcaster.campaigns.service import DUE_CHANNEL

log = logging.getLogger(__name__)

POLL = 0.25  # seconds: how often a waiting scheduler looks at its stop flag
RECONNECT_AFTER = 5.0  # seconds between attempts when the listening connection is lost


class DueListener:
    """One LISTEN connection; :meth:`wait` returns early when a launch is announced."""

    def __init__(self, database_url: str) -> None:
        url = make_url(database_url)
        self.enabled = url.get_backend_name() == "postgresql"
        self._dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None
        self._retry_at = 0.0

    def _connection(self) -> psycopg.Connection[tuple[object, ...]] | None:
        if self._conn is not None or not self.enabled or time.monotonic() < self._retry_at:
            return self._conn
        try:
            conn = psycopg.connect(self._dsn, autocommit=True, connect_timeout=5)
            conn.execute(f"LISTEN {DUE_CHANNEL}")
        except psycopg.Error as exc:
            log.warning("launch notifications unavailable (%s); ticking on the clock", exc)
            self._retry_at = time.monotonic() + RECONNECT_AFTER
            return None
        self._conn = conn
        return conn

    def wait(self, timeout: float, stop: threading.Event) -> bool:
        """Wait up to ``timeout`` seconds, or until ``stop`` is set; True if a launch was
        announced meanwhile."""
        deadline = time.monotonic() + timeout
        while not stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            conn = self._connection()
            if conn is None:
                stop.wait(min(left, POLL))
                continue
            try:
                if list(conn.notifies(timeout=min(left, POLL), stop_after=1)):
                    self._drain(conn)
                    return True
            except psycopg.Error as exc:
                log.warning("launch notifications lost (%s); reconnecting", exc)
                self.close()
                self._retry_at = time.monotonic() + RECONNECT_AFTER
        return False

    @staticmethod
    def _drain(conn: psycopg.Connection[tuple[object, ...]]) -> None:
        """Several launches at once need one claim: swallow what else is already here."""
        for _ in conn.notifies(timeout=0, stop_after=100):
            pass

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()
