"""Quiet hours: whether a moment falls in a local-time window, in the recipient's zone."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo


def in_quiet_hours(moment: datetime, timezone: str, start: int, end: int | None) -> bool:
    """True when ``moment`` is within [start, end) local hours; windows may wrap midnight."""
    if end is None:
        return False
    hour = moment.astimezone(ZoneInfo(timezone)).hour
    if start < end:
        return start <= hour < end
    return hour >= start or hour < end


def quiet_ends(moment: datetime, timezone: str, start: int, end: int) -> datetime:
    """The first moment at or after ``moment`` that is outside the quiet window."""
    local = moment.astimezone(ZoneInfo(timezone))
    if not in_quiet_hours(moment, timezone, start, end):
        return moment
    candidate = local.replace(hour=end, minute=0, second=0, microsecond=0)
    if candidate <= local:
        candidate += timedelta(days=1)
    return candidate
