"""Quiet hours: whether a moment falls in a local-time window, in the recipient's zone.

A recipient's zone is decided by one rule, :func:`recipient_zone`: the contact's own time
zone if set, else the zone of their first community (lowest id), else UTC. The tick that
releases held deliveries and the send-time check both read it, so they cannot disagree
about a contact in communities in different zones (one releasing what the other holds
back, round and round).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, func, literal, select

from broadcaster.models import Community, Contact, Membership

FALLBACK_ZONE = "UTC"


def recipient_zone() -> ColumnElement[str]:
    """The zone a contact's quiet hours are kept in, as a column over ``Contact``.

    The first community is read through the membership key (contact, community), one
    index probe per contact.
    """
    first_community = (
        select(Community.timezone)
        .join(Membership, Membership.community_id == Community.id)
        .where(Membership.contact_id == Contact.id)
        .order_by(Membership.community_id)
        .limit(1)
        .correlate(Contact)
        .scalar_subquery()
    )
    return func.coalesce(Contact.timezone, first_community, literal(FALLBACK_ZONE))


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
