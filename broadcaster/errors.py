"""Errors the service raises for bad input or an illegal move; each names what is wrong."""

from __future__ import annotations


class RiskcastError(Exception):
    """Base of every error meant for the person who caused it."""


class NotFound(RiskcastError):
    pass


class InvalidInput(RiskcastError):
    """Bad input. ``field`` names the field (and ``row`` the line, for files)."""

    def __init__(self, message: str, *, field: str | None = None, row: int | None = None) -> None:
        where = ""
        if row is not None:
            where += f"line {row}: "
        if field:
            where += f"{field}: "
        super().__init__(where + message)
        self.field = field
        self.row = row
        self.reason = message


class Forbidden(RiskcastError):
    """The caller may not do this, whatever their input (HTTP 403)."""


class IllegalState(RiskcastError):
    """A state move that the state machine does not allow (HTTP 409)."""


class TooMany(RiskcastError):
    """Too many requests of one kind from one person in a short time (HTTP 429)."""

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after
