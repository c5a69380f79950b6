"""Communities: create them in a hierarchy, list the tree, and resolve an audience to
community ids."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, aliased

from broadcaster import countries
from broadcaster.areas import scope
from broadcaster.audit.service import Actor
from broadcaster.errors import Forbidden, InvalidInput, NotFound
from broadcaster.models import Community, CommunityKind, Membership
from messages import LanguageError, normalize_language

SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
# What a community in no known country speaks and keeps time in.
DEFAULT_LANGUAGE = "lo"
DEFAULT_TIMEZONE = "Asia/Vientiane"


def check_timezone(value: str, field: str = "timezone") -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(
            f"unknown time zone {value!r} (use e.g. Asia/Vientiane)", field=field
        ) from None
    return value


def get_by_slug(session: Session, slug: str) -> Community:
    community = session.scalar(select(Community).where(Community.slug == slug))
    if community is None:
        raise NotFound(f"community {slug!r} does not exist")
    return community


def add_community(
    session: Session,
    slug: str,
    *,
    name: str,
    parent: str | None = None,
    country: str | None = None,
    language: str | None = None,
    timezone: str | None = None,
    kind: str = CommunityKind.OTHER.value,
) -> Community:
    """Create a community; an unset country comes from the parent, an unset language and
    time zone from a parent in the same country, else from the country
    (:mod:`broadcaster.countries`), else the defaults (Lao, Asia/Vientiane)."""
    if not SLUG.match(slug):
        raise InvalidInput(
            f"{slug!r} is not a slug (lower-case letters, digits, - and _)", field="slug"
        )
    if session.scalar(select(Community.id).where(Community.slug == slug)) is not None:
        raise InvalidInput(f"community {slug!r} already exists", field="slug")
    if kind not in {k.value for k in CommunityKind}:
        raise InvalidInput(
            f"unknown kind {kind!r}; one of {', '.join(k.value for k in CommunityKind)}",
            field="kind",
        )
    parent_row = get_by_slug(session, parent) if parent else None
    if language is not None:
        try:
            language = normalize_language(language)
        except LanguageError as exc:
            raise InvalidInput(str(exc), field="language") from None
    if country is not None:
        if not re.fullmatch(r"[A-Za-z]{2}", country):
            raise InvalidInput(f"{country!r} is not a two-letter country code", field="country")
        country = country.upper()
    if timezone is not None:
        check_timezone(timezone)
    # A parent in the same country lends its language and zone; a community in a country
    # of its own (a Thai worksite under a Lao province) takes its country's.
    lender = parent_row if parent_row and country in (None, parent_row.country) else None
    country = country or (parent_row.country if parent_row else None)
    if timezone is None and lender is None and country is not None:
        timezone = countries.timezone_of(country)
        if timezone is None:
            raise InvalidInput(
                f"no time zone is known for country {country!r}; name one (e.g. Asia/Vientiane)",
                field="timezone",
            )
    if language is None and lender is None and country is not None:
        language = countries.language_of(country)
    community = Community(
        slug=slug,
        name=name,
        kind=kind,
        parent_id=parent_row.id if parent_row else None,
        country=country,
        language=language or (lender.language if lender else DEFAULT_LANGUAGE),
        timezone=timezone or (lender.timezone if lender else DEFAULT_TIMEZONE),
    )
    session.add(community)
    session.flush()
    community.path = f"{parent_row.path if parent_row else '/'}{community.id}/"
    return community


def resolve_ids(session: Session, slugs: Iterable[str], *, descendants: bool) -> list[int]:
    """Community ids for an audience: the named ones, plus their descendants when asked."""
    roots = [get_by_slug(session, slug) for slug in slugs]
    if not descendants:
        return sorted({c.id for c in roots})
    rows = session.scalars(
        select(Community.id).where(or_(*(Community.path.startswith(c.path) for c in roots)))
    )
    return sorted(set(rows))


def expand_ids(session: Session, ids: Iterable[int], *, descendants: bool) -> list[int]:
    """``ids`` plus, when asked, every community below them."""
    ids = sorted(set(ids))
    if not descendants or not ids:
        return ids
    paths = session.scalars(select(Community.path).where(Community.id.in_(ids))).all()
    rows = session.scalars(
        select(Community.id).where(or_(*(Community.path.startswith(p) for p in paths)))
    )
    return sorted(set(rows))


@dataclass
class CommunityNode:
    """A community in the tree, with its member counts (contacts of any status)."""

    community: Community
    members: int  # contacts in this community itself
    total: int  # distinct contacts in it and every community below it
    children: list[CommunityNode] = field(default_factory=list)


def member_counts(session: Session) -> dict[int, tuple[int, int]]:
    """Community id -> (members, distinct members with descendants), for every community."""
    direct = dict(
        session.execute(
            select(Membership.community_id, func.count()).group_by(Membership.community_id)
        ).all()
    )
    ancestor = aliased(Community)
    below = aliased(Community)
    totals = dict(
        session.execute(
            select(ancestor.id, func.count(func.distinct(Membership.contact_id)))
            .join(below, below.path.startswith(ancestor.path))
            .join(Membership, Membership.community_id == below.id)
            .group_by(ancestor.id)
        ).all()
    )
    ids = session.scalars(select(Community.id)).all()
    return {i: (direct.get(i, 0), totals.get(i, 0)) for i in ids}


def tree(session: Session, caller: Actor | None = None) -> list[CommunityNode]:
    """Every community (in ``caller``'s areas, when given) as a forest (roots first,
    children by slug), with member counts."""
    counts = member_counts(session)
    nodes: dict[int, CommunityNode] = {}
    stmt = select(Community).order_by(Community.slug)
    if caller is not None:
        stmt = stmt.where(scope.community_clause(caller))
    for community in session.scalars(stmt):
        members, total = counts.get(community.id, (0, 0))
        nodes[community.id] = CommunityNode(community, members, total)
    roots: list[CommunityNode] = []
    for node in nodes.values():
        parent = nodes.get(node.community.parent_id or 0)
        (parent.children if parent is not None else roots).append(node)
    return roots


def all_communities(session: Session, caller: Actor | None = None) -> list[Community]:
    """Every community (in ``caller``'s areas, when given), parents before their children
    (ordered by path)."""
    stmt = select(Community).order_by(Community.path)
    if caller is not None:
        stmt = stmt.where(scope.community_clause(caller))
    return list(session.scalars(stmt))


def check_new(session: Session, caller: Actor, parent: str | None) -> None:
    """Forbidden unless ``caller`` may add a community under ``parent`` (a new root: only a
    national person)."""
    if parent is None:
        if not (caller.is_admin or caller.national):
            raise Forbidden("a community outside every area is added by a national user")
        return
    scope.check_communities(session, caller, [get_by_slug(session, parent).id])
