"""What a person may read and target: their organisation and their areas.

An area is a community subtree, named by the community's materialised path (``/1/4/``):
a community is in an area when its path starts with the area's. A national person
(``Actor.areas is None``) works over every community; admins always do.

Each domain asks here for a clause on its own table: communities by path, contacts by a
membership in an area, campaigns by the path that holds their whole audience
(:attr:`Campaign.area_path`) and, for officials, their organisation.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from sqlalchemy import ColumnElement, exists, or_, select, true
from sqlalchemy.orm import QueryableAttribute, Session

from broadcaster.areas.models import DEFAULT_ORGANISATION
from broadcaster.audit.service import Actor
from broadcaster.errors import Forbidden, InvalidInput, NotFound
from broadcaster.models import (
    Campaign,
    Community,
    Contact,
    Membership,
    Organisation,
    Role,
    User,
    UserArea,
)

ROOT = "/"


def common_path(paths: Iterable[str]) -> str:
    """The deepest path holding every one of ``paths`` ("/" for none, or none in common).

    >>> common_path(["/1/4/9/", "/1/4/12/"])
    '/1/4/'
    """
    split = [p.strip("/").split("/") for p in paths if p.strip("/")]
    if not split:
        return ROOT
    shared: list[str] = []
    for parts in zip(*split, strict=False):
        if len(set(parts)) != 1:
            break
        shared.append(parts[0])
    return "/" + "".join(f"{p}/" for p in shared) if shared else ROOT


def within(path: str, areas: Sequence[str] | None) -> bool:
    """Whether the community at ``path`` lies in one of ``areas`` (None: everywhere)."""
    return areas is None or any(path.startswith(a) for a in areas)


def _sees_everything(actor: Actor) -> bool:
    return actor.is_admin or actor.areas is None


def _path_in_areas(column: QueryableAttribute[str], areas: Sequence[str]) -> ColumnElement[bool]:
    if not areas:
        return ~true()
    return or_(*(column.startswith(a, autoescape=True) for a in areas))


def community_clause(actor: Actor) -> ColumnElement[bool]:
    """Communities ``actor`` works over."""
    if _sees_everything(actor):
        return true()
    return _path_in_areas(Community.path, actor.areas or ())


def contact_clause(actor: Actor) -> ColumnElement[bool]:
    """Contacts ``actor`` may see: members of a community in their areas (a Thai SIM in a
    Lao village's community follows the community)."""
    if _sees_everything(actor):
        return true()
    return exists(
        select(Membership.contact_id)
        .join(Community, Community.id == Membership.community_id)
        .where(Membership.contact_id == Contact.id, community_clause(actor))
    )


def campaign_clause(actor: Actor) -> ColumnElement[bool]:
    """Campaigns ``actor`` may see: operators those whose audience lies in their areas,
    officials those of their organisation there too, admins all."""
    if actor.is_admin:
        return true()
    clause: ColumnElement[bool] = true()
    if actor.areas is not None:
        clause = _path_in_areas(Campaign.area_path, actor.areas)
    if actor.role == Role.OFFICIAL:
        same_org = or_(
            Campaign.organisation_id.is_(None), Campaign.organisation_id == actor.organisation_id
        )
        clause = same_org if actor.areas is None else clause & same_org
    return clause


def sees_campaign(actor: Actor, campaign: Campaign) -> bool:
    """:func:`campaign_clause`, for one campaign already read."""
    if actor.is_admin:
        return True
    if not within(campaign.area_path, actor.areas):
        return False
    return actor.role != Role.OFFICIAL or campaign.organisation_id in (
        None,
        actor.organisation_id,
    )


def sees_contact(session: Session, actor: Actor, contact_id: int) -> bool:
    if _sees_everything(actor):
        return True
    return bool(
        session.scalar(select(Contact.id).where(Contact.id == contact_id, contact_clause(actor)))
    )


def check_communities(session: Session, actor: Actor, community_ids: Iterable[int]) -> None:
    """Forbidden unless every community is in ``actor``'s areas (what they may target)."""
    if _sees_everything(actor):
        return
    ids = sorted(set(community_ids))
    if not ids:
        return
    outside = session.scalars(
        select(Community.slug).where(Community.id.in_(ids), ~community_clause(actor)).limit(1)
    ).first()
    if outside is not None:
        raise Forbidden(f"community {outside!r} is outside your areas")


def area_path(session: Session, community_ids: Iterable[int]) -> str:
    """The path that holds every one of these communities: what a campaign's area is."""
    ids = sorted(set(community_ids))
    if not ids:
        return ROOT
    return common_path(session.scalars(select(Community.path).where(Community.id.in_(ids))))


# -- a user's organisation and areas ------------------------------------------------------


def default_organisation(session: Session) -> Organisation:
    """The organisation people belong to unless told otherwise (made on first use)."""
    org = session.scalar(select(Organisation).where(Organisation.slug == DEFAULT_ORGANISATION))
    if org is None:
        org = Organisation(slug=DEFAULT_ORGANISATION, name="Default organisation")
        session.add(org)
        session.flush()
    return org


def get_organisation(session: Session, slug: str) -> Organisation:
    org = session.scalar(select(Organisation).where(Organisation.slug == slug))
    if org is None:
        raise NotFound(f"organisation {slug!r} does not exist")
    return org


def list_organisations(session: Session) -> list[Organisation]:
    return list(session.scalars(select(Organisation).order_by(Organisation.slug)))


def add_organisation(session: Session, slug: str, name: str) -> Organisation:
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,63}", slug):
        raise InvalidInput(
            f"{slug!r} is not a slug (lower-case letters, digits, - and _)", field="slug"
        )
    if session.scalar(select(Organisation.id).where(Organisation.slug == slug)) is not None:
        raise InvalidInput(f"organisation {slug!r} already exists", field="slug")
    org = Organisation(slug=slug, name=name.strip() or slug)
    session.add(org)
    session.flush()
    return org


def areas_of(session: Session, user: User) -> tuple[str, ...] | None:
    """The community paths of ``user``'s areas; None when national."""
    if user.national:
        return None
    paths = session.scalars(
        select(Community.path)
        .join(UserArea, UserArea.community_id == Community.id)
        .where(UserArea.user_id == user.id)
        .order_by(Community.path)
    )
    return tuple(paths)


def area_slugs(session: Session, user: User) -> list[str]:
    """The slugs of ``user``'s areas (empty when national)."""
    if user.national:
        return []
    return list(
        session.scalars(
            select(Community.slug)
            .join(UserArea, UserArea.community_id == Community.id)
            .where(UserArea.user_id == user.id)
            .order_by(Community.slug)
        )
    )


def set_areas(session: Session, user: User, slugs: Sequence[str] | None) -> None:
    """Make ``user`` national (``slugs`` None) or give them exactly these areas."""
    session.query(UserArea).filter(UserArea.user_id == user.id).delete()
    if slugs is None:
        user.national = True
        session.flush()
        return
    if not slugs:
        raise InvalidInput("name at least one area, or make the user national", field="areas")
    rows = {
        str(slug): int(cid)
        for slug, cid in session.execute(
            select(Community.slug, Community.id).where(Community.slug.in_(set(slugs)))
        )
    }
    missing = sorted(set(slugs) - set(rows))
    if missing:
        raise InvalidInput(f"community {missing[0]!r} does not exist", field="areas")
    user.national = False
    session.add_all(UserArea(user_id=user.id, community_id=cid) for cid in sorted(rows.values()))
    session.flush()


def grantable(actor: Actor, areas: tuple[str, ...] | None) -> bool:
    """Whether ``actor`` may give someone these areas: only within their own."""
    if _sees_everything(actor):
        return True
    if areas is None:
        return False
    return all(within(a, actor.areas) for a in areas)
