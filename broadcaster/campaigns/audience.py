"""A campaign's audience: which contacts it reaches, as one query read page by page.

Fan-out writes deliveries for these contacts; preview and approval count them. Neither
owns the question, so it lives here and both import it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, and_, exists, select
from sqlalchemy.orm import aliased

from broadcaster.models import Campaign, Community, Contact, ContactStatus, Membership


def eligible_contacts(
    campaign: Campaign, community_ids: list[int], after: int, limit: int
) -> Select[*tuple[Any, ...]]:
    """Active members of the audience, in id order after ``after``, with their community.

    A contact in several of the audience's communities comes once, with the first of them
    (lowest id). The membership is joined, not looked up per contact, and every membership
    scan starts at ``after`` too, so a page reads about ``limit`` rows of each table
    whatever the page's place in the audience.
    """
    audience = campaign.audience
    earlier = aliased(Membership)
    stmt: Select[*tuple[Any, ...]] = (
        select(
            Contact.id,
            Contact.name,
            Contact.language,
            Contact.timezone,
            Contact.channel,
            Community.name.label("community_name"),
            Community.language.label("community_language"),
            Community.timezone.label("community_timezone"),
        )
        .join(
            Membership,
            and_(
                Membership.contact_id == Contact.id,
                Membership.contact_id > after,
                Membership.community_id.in_(community_ids),
            ),
        )
        .join(Community, Community.id == Membership.community_id)
        .where(
            Contact.id > after,
            Contact.status == ContactStatus.ACTIVE.value,
            ~exists().where(
                earlier.contact_id == Contact.id,
                earlier.contact_id > after,
                earlier.community_id.in_(community_ids),
                earlier.community_id < Membership.community_id,
            ),
        )
        .order_by(Contact.id)
        .limit(limit)
    )
    if audience.get("languages"):
        stmt = stmt.where(Contact.language.in_(audience["languages"]))
    if audience.get("countries"):
        stmt = stmt.where(Contact.country.in_(audience["countries"]))
    return stmt
